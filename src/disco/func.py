"""Disco's job helper functions; the same as :mod:`disco.worker.classic.func`."""

from disco.worker.classic.func import *  # noqa: F401,F403
from disco.worker.classic.func import __all__  # noqa: F401
