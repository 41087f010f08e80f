"""What goes wrong with test hosts, said so that the user knows what to do."""

from __future__ import annotations


class TestbedError(RuntimeError):
    """A testbed or image operation that failed; the message is meant for the user."""

    __test__ = False  # not a pytest test class, despite the name
