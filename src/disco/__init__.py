"""DISCO: distributed computing clusters in seconds, looked after for their whole life."""

__version__ = "0.1.0"
