"""HTTP front ends of the service manager: JSON REST under /api/v1 and OCCI under /disco/."""
