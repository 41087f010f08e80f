"""A loopback TCP proxy that cuts connections at random: some are refused at once, others are
closed after a random number of bytes either way (mid-request or mid-answer), so a client sees
every kind of dropped connection, including a report the server applied whose answer never came."""

from __future__ import annotations

import random
import socket
import threading


class ChaosProxy:
    def __init__(self, target_port: int, cut_probability: float = 0.3, seed: int = 7) -> None:
        self.target_port = target_port
        self.cut_probability = cut_probability
        self.rng = random.Random(seed)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cuts = 0
        self.connections = 0
        self.closed = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cut = self.rng.random() < self.cut_probability
                budget = self.rng.randint(0, 20000) if cut else -1  # bytes passed (both ways) before the cut
                self.cuts += cut
            threading.Thread(target=self._serve, args=(conn, budget), daemon=True).start()

    def _serve(self, conn: socket.socket, budget: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            conn.close()
            return
        left = [budget]
        done = threading.Event()

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while not done.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    if left[0] >= 0:
                        if len(data) >= left[0]:
                            dst.sendall(data[:left[0]])
                            break
                        left[0] -= len(data)
                    dst.sendall(data)
            except OSError:
                pass
            done.set()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threads = [threading.Thread(target=pump, args=(conn, upstream), daemon=True),
                   threading.Thread(target=pump, args=(upstream, conn), daemon=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        conn.close()
        upstream.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
