"""The volunteer task farm (docs/taskfarm.md, docs/design/taskfarm.md): projects split into
units, leased to enrolled clients, verified by quorum, assimilated exactly once. Runs alone
(`disco farm server`) or mounted on the service manager; imports nothing of disco.cluster."""
