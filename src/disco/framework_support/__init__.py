"""Code that frameworks' own processes import, named from their framework.yaml (a preload, a
hook): the one place where DISCO runs inside a framework's process."""
