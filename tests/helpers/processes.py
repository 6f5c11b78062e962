"""Start the real worker (`python -m worker`, real gunicorn) and wait on it, for tests."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GaveUp(Exception):
    """Raised inside a `wait_for` predicate to stop waiting at once."""


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except GaveUp:
            raise
        except Exception as error:  # the thing polled may not be up yet
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or predicate}: {last_error}"
    )


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns (status, headers, body) for every status, 4xx/5xx included."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_json(
    url: str, document: Any, headers: Mapping[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, Any]:
    status, _, body = http("POST", url, json.dumps(document).encode(), headers, timeout)
    return status, json.loads(body)


class WorkerProcess:
    """`python -m worker` in a subprocess on a free loopback port, logs in a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, ld_library_path: Path | None = None):
        self.port = int(env.get("WORKER_PORT") or free_port())
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "CAPABILITY_"))},
            "WORKER_HOST": "127.0.0.1",
            "WORKER_PORT": str(self.port),
            "WORKER_WORKERS": "2",
            "WORKER_THREADS": "4",
            "SAMPLE_INTERVAL_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.env.pop("AGENT_NET_RUNTIME_DIR", None)
        if ld_library_path is not None:
            self.env["LD_LIBRARY_PATH"] = str(ld_library_path)
        else:
            self.env.pop("LD_LIBRARY_PATH", None)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise GaveUp(f"worker exited with {self.process.returncode}:\n{self.logs()}")
            return http("GET", f"{self.url}/readyz", timeout=1.0)[0] == 200

        try:
            wait_for(ready, timeout, what="worker /readyz")
        except GaveUp as error:
            raise AssertionError(str(error)) from None

    def check(self, agent_id: str = "demo-agent", route: str = "gpu-check") -> tuple[int, Any]:
        return post_json(f"{self.url}/{route}", {"agent_id": agent_id})

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the worker and wait for it; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


SLOW_JOB_BODY = b'{"agent_id": "slow"}'


class HeldJob:
    """A job whose headers reached the worker and whose body has not: it holds a slot."""

    def __init__(self, port: int, headers: Mapping[str, str] | None = None) -> None:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(
            b"POST /gpu-check HTTP/1.1\r\nHost: worker\r\nContent-Type: application/json\r\n"
            + extra.encode()
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(SLOW_JOB_BODY)
            + SLOW_JOB_BODY[:1]
        )

    def answered(self) -> bool:
        """True if the worker already answered (it was refused instead of holding a slot)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def release(self) -> tuple[int, bytes]:
        """Send the rest of the body; the worker's (status, body)."""
        self.sock.sendall(SLOW_JOB_BODY[1:])
        data = b""
        while chunk := self.sock.recv(65536):
            data += chunk
        self.sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body


def hold_every_slot(
    worker: WorkerProcess, capacity: int, headers: Mapping[str, str] | None = None
) -> list[HeldJob]:
    """Hold all `capacity` slots, proven by a direct job answered 503 while every holder
    is still unanswered. A holder that raced a probe for a slot (and was refused) is
    replaced, so the result does not depend on which gunicorn process ran first."""
    held = [HeldJob(worker.port, headers) for _ in range(capacity)]

    def full() -> bool:
        for index, job in enumerate(held):
            if job.answered():
                job.sock.close()
                held[index] = HeldJob(worker.port, headers)
        status, _, _ = http(
            "POST", f"{worker.url}/gpu-check", b'{"agent_id": "probe"}', headers, timeout=5
        )
        return status == 503 and not any(job.answered() for job in held)

    wait_for(full, 15, interval=0.1, what=f"{capacity} held slots")
    return held
