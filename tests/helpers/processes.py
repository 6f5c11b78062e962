"""Start the real worker (`python -m worker`, real gunicorn) and wait on it, for tests."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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


def spawn_logged(
    command: list[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `command` in the repository root with stdout and stderr appended to `log_path`
    (with `new_session`, in a session and process group of its own, led by it)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=None if env is None else dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )


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
            # usage.sqlite3 goes beside the log, never into the repository's ./data
            "AGENT_NET_DATA_DIR": str(log_path.with_suffix(".data")),
            **env,
        }
        # Under the test's own directory: a worker killed with SIGKILL cannot remove the
        # agent-net-* directory `python -m worker` otherwise makes in the temp directory.
        # AGENT_NET_RUNTIME_DIR="" in `env`: the worker makes (and removes) its own.
        if "AGENT_NET_RUNTIME_DIR" not in env:
            runtime_dir = tempfile.mkdtemp(prefix="runtime-", dir=log_path.parent)
            self.env["AGENT_NET_RUNTIME_DIR"] = runtime_dir
        if ld_library_path is not None:
            self.env["LD_LIBRARY_PATH"] = str(ld_library_path)
        else:
            self.env.pop("LD_LIBRARY_PATH", None)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, new_session: bool = False) -> WorkerProcess:
        self.process = spawn_logged(
            [sys.executable, "-m", "worker"], self.log_path, self.env, new_session
        )
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


def worker_runtime_dir(worker: WorkerProcess) -> Path:
    """The runtime directory a running worker logged at start (its capacity file is there)."""
    match = re.search(r"runtime_dir=(\S+)", worker.logs())
    assert match, "the worker logs its runtime directory at start"
    return Path(match.group(1))


@contextmanager
def capacity_slots_held(worker: WorkerProcess, slots: int) -> Iterator[None]:
    """Hold `slots` of the worker's capacity slots from this process, as running jobs in
    other worker processes would (the same byte locks on the same file)."""
    fd = os.open(worker_runtime_dir(worker) / "capacity.slots", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for slot in range(slots):
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
        yield
    finally:
        os.close(fd)  # drops every lock this process holds on the file
