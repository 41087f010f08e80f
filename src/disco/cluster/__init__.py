"""The DISCO service manager: cluster specs, their store, the lifecycle reconciler, the API."""
