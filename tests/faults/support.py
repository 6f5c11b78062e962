"""Tools for the fault suite: bounded background load, a silent orchestrator, a restartable
Ollama stand-in process and a client that sends its body slowly. Loopback only."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.processes import ROOT, http, spawn_logged, wait_for

OLLAMA_STANDIN = ROOT / "tests" / "standins" / "ollama_api.py"


class Load:
    """`threads` clients calling `send` (which returns an HTTP status) until stopped.

    Bounded: at most `limit` requests in all. Statuses are counted per `phase`, which the
    test moves on as it starts and ends a fault; exceptions are kept by class name.
    """

    def __init__(
        self,
        send: Callable[[], int],
        *,
        threads: int = 2,
        pause: float = 0.05,
        limit: int = 200,
    ) -> None:
        self._send = send
        self._pause = pause
        self._limit = limit
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.phase = "before"
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.errors: list[str] = []
        self.sent = 0

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self.sent >= self._limit:
                    return
                self.sent += 1
                phase = self.phase
            try:
                status = self._send()
            except Exception as error:  # every failure is a finding, kept for the assertion
                with self._lock:
                    self.errors.append(f"{phase}: {type(error).__name__}: {error}")
            else:
                with self._lock:
                    self.statuses[(phase, status)] += 1
            self._stop.wait(self._pause)

    def count(self, phase: str) -> int:
        with self._lock:
            return sum(n for (p, _), n in self.statuses.items() if p == phase)

    def status_set(self) -> set[int]:
        with self._lock:
            return {status for _, status in self.statuses}

    def wait_requests(self, phase: str, at_least: int, timeout: float = 10.0) -> None:
        """Wait until `at_least` requests of `phase` were answered (or failed)."""

        def answered() -> int:
            with self._lock:  # the load's threads add to both while this reads
                failed = sum(error.startswith(phase) for error in self.errors)
                return failed + sum(n for (p, _), n in self.statuses.items() if p == phase)

        wait_for(
            lambda: answered() >= at_least,
            timeout,
            what=f"{at_least} requests in phase {phase}",
        )


def gpu_check(base_url: str, agent_id: str = "fault-suite") -> Callable[[], int]:
    """A `send` for Load: POST /gpu-check, returning the status."""
    body = json.dumps({"agent_id": agent_id}).encode()
    headers = {"Content-Type": "application/json"}
    return lambda: http("POST", f"{base_url}/gpu-check", body, headers)[0]


def get(url: str) -> Callable[[], int]:
    return lambda: http("GET", url)[0]


def wait_port_open(port: int, timeout: float = 10.0) -> None:
    def connects() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    wait_for(connects, timeout, what=f"something listening on port {port}")


class OllamaProcess:
    """The Ollama stand-in as its own process, so that stopping it drops every connection."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OllamaProcess:
        self.process = spawn_logged(
            [sys.executable, str(OLLAMA_STANDIN), "--port", str(self.port)], self.log_path
        )
        wait_port_open(self.port)
        return self

    def kill(self) -> None:
        """Like a crashed or restarted Ollama: the process ends, its connections reset."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


class SilentOrchestrator:
    """Accepts TCP connections and reads whatever comes, but never answers a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SilentOrchestrator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self.accepted += 1

    def close(self) -> None:
        """Stop listening and drop every held connection (the port is free again)."""
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for connection in self._held:
            with contextlib.suppress(OSError):
                connection.close()


class SlowBodyClient:
    """A raw HTTP/1.1 POST whose declared body arrives one byte every `interval` seconds.

    `send_bytes` limits how much of the body is sent: less than all of it, then the client
    hangs up (an abandoned upload).
    """

    def __init__(
        self,
        port: int,
        path: str,
        body: bytes,
        *,
        interval: float = 0.1,
        send_bytes: int | None = None,
    ) -> None:
        self._port = port
        self._path = path
        self._body = body
        self._interval = interval
        self._send_bytes = len(body) if send_bytes is None else send_bytes
        self.status: int | None = None
        self.document: Any = None
        self.raw = b""
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SlowBodyClient:
        self._thread.start()
        return self

    @property
    def in_flight(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the slow client never finished"

    def _run(self) -> None:
        head = (
            f"POST {self._path} HTTP/1.1\r\nHost: 127.0.0.1:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self._body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=20) as sock:
                sock.sendall(head)
                for index in range(self._send_bytes):
                    sock.sendall(self._body[index : index + 1])
                    time.sleep(self._interval)
                if self._send_bytes < len(self._body):
                    return  # hang up mid-body
                self.raw = _read_all(sock)
        except OSError as error:
            self.error = f"{type(error).__name__}: {error}"
            return
        status_line, _, rest = self.raw.partition(b"\r\n")
        self.status = int(status_line.split()[1])
        self.document = json.loads(rest.partition(b"\r\n\r\n")[2])


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
