"""Hostile clients for live tests and the benchmark: trickled bodies and silent sockets.

`HostileClients(...).open()` connects `slow_bodies` clients that send a complete header
block announcing a body of `body_bytes`, then one byte of it every `interval` seconds,
and `silent` clients that connect and send nothing. `close()` hangs up on all of them.
Loopback only; every socket is closed on `close()`, whatever state it is in.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class HostileClients:
    host: str
    port: int
    path: str
    slow_bodies: int = 40
    silent: int = 200
    body_bytes: int = 1000
    interval: float = 0.5
    _slow: list[socket.socket] = field(default_factory=list)
    _idle: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def open(self, settle: float = 1.0) -> HostileClients:
        """Connect every client, start trickling, and give the server `settle` s to accept."""
        self._stop.clear()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {self.body_bytes}\r\n\r\n"
        ).encode()
        for _ in range(self.slow_bodies):
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(head + b"{")
            self._slow.append(sock)
        for _ in range(self.silent):
            self._idle.append(socket.create_connection((self.host, self.port), timeout=5))
        self._thread = threading.Thread(target=self._trickle, name="trickle", daemon=True)
        self._thread.start()
        time.sleep(settle)
        return self

    def _trickle(self) -> None:
        sent = 1
        while not self._stop.wait(self.interval) and sent < self.body_bytes - 1:
            for sock in list(self._slow):
                try:
                    sock.sendall(b" ")
                except OSError:  # the server gave up on it: that is its right
                    sock.close()
                    self._slow.remove(sock)
            sent += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self._slow + self._idle:
            sock.close()
        self._slow.clear()
        self._idle.clear()
