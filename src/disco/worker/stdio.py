"""The worker process's standard streams.

The protocol channel runs on private copies of the process's original stdin and stderr;
file descriptors 0, 1 and 2 are then pointed away from the node's pipes, so that nothing the
task (or a child process of it) writes can break the protocol: Python-level prints go
through :class:`MessageWriter`, and bytes written to fds 1 and 2 are drained from a pipe by
a thread, both ending up as MSG.
"""

from __future__ import annotations

import codecs
import io
import os
import select
import sys
import threading
from typing import Any

class MessageWriter(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a task: text becomes MSG.

    By default each write that ends a line sends the complete lines at once as one MSG, so
    ``print(...)`` is one message, as under Disco's worker; the node counts them, and a
    task that prints in a loop is failed. With :attr:`batch` (the job's
    ``batch_messages=True``) text goes out one message per batch of complete lines, held
    back while the MSG rate limit would be exceeded, so such a task sends fewer, longer
    messages and lives. Output the drain thread reads from fds 1 and 2 is always batched:
    it comes in pipe-sized chunks, not in the task's own writes."""

    def __init__(self, channel: Any) -> None:
        super().__init__()
        self.channel = channel
        self.buffer_text = ""
        self.lock = threading.Lock()
        self.disabled = False
        self.batch = False
        self.timer: threading.Timer | None = None

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> "BinaryMessageWriter":
        """``sys.stdout.buffer``: tasks that write bytes there are heard as well."""
        return BinaryMessageWriter(self)

    def write(self, text: Any) -> int:
        return self._write(text, self.batch)

    def write_batched(self, text: Any) -> int:
        return self._write(text, True)

    def _write(self, text: Any, batch: bool) -> int:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        text = str(text)
        if self.disabled or not text:
            return len(text)
        with self.lock:
            self.buffer_text += text
            cut = self.buffer_text.rfind("\n")
            # Unbatched, a write that ends a line sends what is complete at once: one MSG
            # per print (print writes its arguments, separators and newline one by one).
            held = batch and not self.channel.msg_allowed()
            if cut >= 0 and held:
                self._flush_later()
            if cut < 0 or held:
                if len(self.buffer_text) < (1 << 20):
                    return len(text)
                cut = len(self.buffer_text) - 1  # do not hold more than a megabyte
            ready, self.buffer_text = self.buffer_text[:cut + 1], self.buffer_text[cut + 1:]
        self._send(ready, paced=batch)
        return len(text)

    def _flush_later(self) -> None:
        """Held-back lines go out within a second even if the task prints nothing more."""
        if self.timer is None or not self.timer.is_alive():
            self.timer = threading.Timer(1.0, self._flush_complete_lines)
            self.timer.daemon = True
            self.timer.start()

    def _flush_complete_lines(self) -> None:
        with self.lock:
            cut = self.buffer_text.rfind("\n")
            if cut < 0:
                return
            ready, self.buffer_text = self.buffer_text[:cut + 1], self.buffer_text[cut + 1:]
        try:
            self._send(ready)
        except Exception:
            pass  # the channel is gone; nothing left to tell

    def _send(self, text: str, paced: bool = True) -> None:
        text = text.strip()
        if text and not self.disabled:
            self.channel.msg(text, paced=paced)

    def flush(self, force: bool = False) -> None:  # type: ignore[override]
        if not force:
            return
        with self.lock:
            text, self.buffer_text = self.buffer_text, ""
        self._send(text)


class BinaryMessageWriter(io.BufferedIOBase):
    """The binary face of a :class:`MessageWriter`: bytes are decoded as UTF-8 (invalid
    sequences replaced) and go out as MSG like text does."""

    def __init__(self, text: MessageWriter) -> None:
        super().__init__()
        self.text = text

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.text.write(data)
        return len(data)

    def flush(self) -> None:
        pass


class WorkerIO:
    """The worker process's plumbing: the protocol channel on private copies of the
    original stdin/stderr, and fds 0/1/2 pointed away from the node's pipes."""

    def __init__(self) -> None:
        from disco.worker.protocol import Channel
        proto_in = os.dup(0)
        proto_out = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        self.channel = Channel(proto_in, proto_out)
        self.writer = MessageWriter(self.channel)
        sys.stdout = sys.stderr = self.writer  # type: ignore[assignment]
        sys.stdin = open(os.devnull)  # noqa: SIM115  (lives as long as the process)
        # The stray-output pipe and its thread live as long as the process. A task's end
        # reads the pipe dry itself (under the lock the thread reads with, so chunks keep
        # their order) instead of closing the pipe and joining the thread: that cost a kept
        # worker a thread, and a wait for its scheduling, on every task.
        os.set_blocking(read_end, False)
        self._stray = read_end
        self._stray_lock = threading.Lock()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.drain = threading.Thread(target=self._drain, args=(read_end,), daemon=True,
                                      name="disco-stray-output")
        self.drain.start()

    def restart(self) -> None:
        """Ready for another task after :meth:`finish`: the next task may send MSG at the
        full rate, as a new process would."""
        self.channel.msg_times.clear()
        self.writer.disabled = False

    def _drain(self, fd: int) -> None:
        while True:
            select.select([fd], [], [])
            if not self._read_dry():
                return

    def _read_dry(self) -> bool:
        """Pass on everything the stray-output pipe holds; False once it is closed."""
        with self._stray_lock:
            while True:
                try:
                    chunk = os.read(self._stray, 65536)
                except BlockingIOError:
                    return True
                except OSError:
                    return False
                if not chunk:
                    return False
                try:
                    self.writer.write_batched(self._decoder.decode(chunk))
                except Exception:
                    pass  # the channel is gone; nothing left to tell

    def finish(self) -> None:
        """Pass on the stray output written so far and send what is held."""
        self._read_dry()
        self.writer.flush(force=True)
