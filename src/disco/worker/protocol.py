"""Disco's worker protocol, version 1.1: message framing and the worker's end of the channel.

A message, in both directions, is ``NAME SP <payload length> SP <JSON payload> \\n``: NAME is
at most 10 ASCII bytes, the length counts the bytes of the JSON payload, and a message with
"no payload" carries the JSON string ``""`` (length 2). The worker writes requests to its
stderr and reads the replies on its stdin; it always speaks first and waits for each reply.

:func:`encode` and :class:`Parser` are shared with whoever plays the node's part (the node
runtime, the tests).
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from collections import deque
from typing import Any

PROTOCOL_VERSION = "1.1"
MAX_NAME = 10
MAX_PAYLOAD = 100 * 1024 * 1024
REPLY_TIMEOUT = 600.0  # the protocol tells workers to wait this long for an answer
# The node throttles MSG: more than 5 a second slows its replies, 10 or more a second kill
# the task. The runtime's own messages (and the prints of jobs run with batch_messages)
# stay below both: at most this many go in any second. A task's own prints otherwise go
# as they come, as under Disco, and a task that floods is failed.
MSG_PER_SECOND = 4
MAX_MSG_CHARS = 64 * 1024
MAX_OWED = 256  # posted requests whose replies may wait unread (a few bytes each in the pipe)


class ProtocolError(Exception):
    """Bytes on the channel that are not a well-formed protocol message."""


def encode(name: str, payload: Any = "") -> bytes:
    """One framed message. JSON is written ASCII-only so that lengths are byte lengths."""
    raw_name = name.encode("ascii")
    if not raw_name or len(raw_name) > MAX_NAME or b" " in raw_name:
        raise ProtocolError(f"bad message name {name!r}")
    body = json.dumps(payload, ensure_ascii=True).encode("ascii")
    if len(body) > MAX_PAYLOAD:
        raise ProtocolError(f"{name} payload of {len(body)} bytes exceeds {MAX_PAYLOAD}")
    return b"%s %d %s\n" % (raw_name, len(body), body)


def decode(message: bytes) -> tuple[str, Any]:
    """Parse exactly one framed message (the inverse of :func:`encode`)."""
    parser = Parser()
    messages = parser.feed(message)
    if len(messages) != 1 or parser.pending():
        raise ProtocolError(f"not exactly one message: {message[:80]!r}")
    return messages[0]


class Parser:
    """Incremental parser: feed it bytes as they arrive, get back the complete messages.

    Anything that cannot be the start of a message raises :class:`ProtocolError`; the bytes
    seen so far are kept in :attr:`buffer` so that the caller can report them.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()

    def pending(self) -> bool:
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        self.buffer += data
        messages = []
        while True:
            message = self._next()
            if message is None:
                return messages
            messages.append(message)

    def _next(self) -> tuple[str, Any] | None:
        buf = self.buffer
        name_end = buf.find(b" ", 0, MAX_NAME + 1)
        if name_end < 0:
            if len(buf) > MAX_NAME or not _is_name(bytes(buf)):
                raise ProtocolError(f"bad message header: {bytes(buf[:80])!r}")
            return None
        name = bytes(buf[:name_end])
        if not name or not _is_name(name):
            raise ProtocolError(f"bad message name: {bytes(buf[:80])!r}")
        size_end = buf.find(b" ", name_end + 1, name_end + 12)
        if size_end < 0:
            digits = bytes(buf[name_end + 1:])
            if len(digits) > 10 or (digits and not digits.isdigit()):
                raise ProtocolError(f"bad payload length: {bytes(buf[:80])!r}")
            return None
        digits = bytes(buf[name_end + 1:size_end])
        if not digits.isdigit():
            raise ProtocolError(f"bad payload length: {bytes(buf[:80])!r}")
        size = int(digits)
        if size > MAX_PAYLOAD:
            raise ProtocolError(f"payload of {size} bytes exceeds {MAX_PAYLOAD}")
        end = size_end + 1 + size
        if len(buf) < end + 1:
            return None
        if buf[end] != 0x0A:
            raise ProtocolError(f"message not ended by a newline: {bytes(buf[:80])!r}")
        try:
            payload = json.loads(bytes(buf[size_end + 1:end]))
        except ValueError as exc:
            raise ProtocolError(f"payload is not JSON: {exc}") from None
        del buf[:end + 1]
        return name.decode("ascii"), payload


def _is_name(raw: bytes) -> bool:
    return all(0x21 <= b <= 0x7E for b in raw)


class Channel:
    """The worker's end: requests go to ``out_fd``, replies come from ``in_fd``.

    Requests are serialised with a lock, so that a helper thread (the one that turns stray
    output into MSG) and the task itself never interleave a request with another's reply.

    MSG and OUTPUT are posted (:meth:`post`): sent without waiting for their reply, which is
    read (and must be OK) before the next request's. The node answers frames in order, so the
    protocol is the same; a task no longer waits a node round trip for each (test_50k's map
    tasks sent three OUTPUTs and a MSG each, and spent most of their time waiting).
    """

    def __init__(self, in_fd: int, out_fd: int, timeout: float = REPLY_TIMEOUT) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.timeout = timeout
        self.lock = threading.RLock()
        self.parser = Parser()
        self.replies: deque[tuple[str, Any]] = deque()
        self.msg_times: deque[float] = deque()
        self.closed = False
        self.owed = 0  # replies to posted requests not read yet

    def send(self, name: str, payload: Any = "") -> None:
        data = encode(name, payload)
        with self.lock:
            view = memoryview(data)
            while view:
                written = os.write(self.out_fd, view)
                view = view[written:]

    def request(self, name: str, payload: Any = "", timeout: float | None = None,
                paced: bool = True) -> tuple[str, Any]:
        """Send a request and wait for its reply: ``(NAME, payload)``. A MSG waits for room
        under MSG_PER_SECOND unless ``paced`` is false (it is counted all the same)."""
        with self.lock:
            self._send_request(name, payload, paced)
            return self.receive(timeout)

    def post(self, name: str, payload: Any = "", paced: bool = True) -> None:
        """Send a request whose reply can only be OK; it is read before the next reply."""
        with self.lock:
            if self.owed >= MAX_OWED:
                self._settle(None)
            self._send_request(name, payload, paced)
            self.owed += 1

    def _send_request(self, name: str, payload: Any, paced: bool) -> None:
        if name == "MSG":
            if paced:
                self._pace_msg()
            else:
                self.msg_times.append(time.monotonic())
        self.send(name, payload)

    def _settle(self, timeout: float | None) -> None:
        """Read the replies owed to posted requests."""
        while self.owed:
            name, payload = self._receive_one(timeout)
            self.owed -= 1
            if name != "OK":
                raise ProtocolError(f"the node answered {name} {payload!r} where OK was due")

    def receive(self, timeout: float | None = None) -> tuple[str, Any]:
        with self.lock:
            self._settle(timeout)
            return self._receive_one(timeout)

    def _receive_one(self, timeout: float | None) -> tuple[str, Any]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self.lock:
            while not self.replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no reply from the node in time")
                ready, _, _ = select.select([self.in_fd], [], [], left)
                if not ready:
                    continue
                chunk = os.read(self.in_fd, 65536)
                if not chunk:
                    raise EOFError("the node closed the worker's stdin")
                self.replies.extend(self.parser.feed(chunk))
            return self.replies.popleft()

    # -- MSG pacing ----------------------------------------------------------------------
    def msg_allowed(self, reserve: int = 0) -> bool:
        """Whether a MSG may go now, leaving room for ``reserve`` more in this second."""
        now = time.monotonic()
        while self.msg_times and now - self.msg_times[0] >= 1.0:
            self.msg_times.popleft()
        return len(self.msg_times) + reserve < MSG_PER_SECOND

    def _pace_msg(self) -> None:
        while not self.msg_allowed():
            time.sleep(max(0.01, 1.0 - (time.monotonic() - self.msg_times[0])))
        self.msg_times.append(time.monotonic())

    def msg(self, text: str, paced: bool = True) -> None:
        if len(text) > MAX_MSG_CHARS:
            text = text[:MAX_MSG_CHARS] + f"... [{len(text) - MAX_MSG_CHARS} characters cut]"
        self.post("MSG", text, paced=paced)
