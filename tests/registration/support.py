"""Processes and small servers for the registration tests."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from tests.helpers.processes import ROOT, free_port, spawn_logged, wait_for

STANDIN = ROOT / "tests" / "standins" / "orchestrator.py"
ORCH_SECRET = "orch-secret"


def insecure(method: str, url: str, timeout: float = 5.0, **kwargs: Any) -> requests.Response:
    """A request that trusts the stand-in's self-signed certificate, without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        return requests.request(
            method,
            url,
            verify=False,
            timeout=timeout,
            **kwargs,
        )


def livepeer_header(capability: str, timeout_seconds: int = 5, **extra: Any) -> str:
    """The gateway's `Livepeer` job header (off-chain: any hex signature verifies)."""
    job = {
        "id": "job-1",
        "request": "{}",
        "parameters": "{}",
        "capability": capability,
        "sender": "0x0000000000000000000000000000000000000001",
        "sig": "00",
        "timeout_seconds": timeout_seconds,
        **extra,
    }
    return base64.b64encode(json.dumps(job).encode()).decode()


def submit_job(
    orchestrator: str, route: str, body: Any, capability: str | None = None, timeout: float = 10.0
) -> requests.Response:
    """POST /process/request/<route> as a gateway does."""
    return insecure(
        "POST",
        f"{orchestrator}/process/request/{route}",
        data=json.dumps(body),
        headers={
            "Livepeer": livepeer_header(capability or route),
            "Content-Type": "application/json",
        },
        timeout=timeout,
    )


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class StandinProcess:
    """tests/standins/orchestrator.py as a subprocess on a fixed port (restartable)."""

    def __init__(
        self,
        log_dir: Path,
        secret: str = ORCH_SECRET,
        tls: bool = False,
        port: int | None = None,
        live_runners: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.secret = secret
        self.tls = tls
        self.live_runners = live_runners
        self.log_dir = log_dir
        self.cert_dir = log_dir / f"standin-{self.port}-tls"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def cert(self) -> Path:
        return self.cert_dir / "cert.pem"

    def start(self) -> StandinProcess:
        self.starts += 1
        command = [
            sys.executable,
            str(STANDIN),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--secret-env",
            "STANDIN_SECRET",
        ]
        if self.tls:
            command += ["--self-signed", "--cert-dir", str(self.cert_dir)]
        if self.live_runners:
            command += ["--live-runners"]
        self.process = spawn_logged(
            command, self.log_path, {**os.environ, "STANDIN_SECRET": self.secret}
        )
        wait_for(self._answers, 10, what=f"stand-in on {self.url}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"stand-in exited:\n{self.logs()}")
        return self.view(timeout=0.5) is not None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"standin-{self.port}.log"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def view(self, timeout: float = 2.0) -> dict[str, Any]:
        response = insecure("GET", f"{self.url}/_standin/capabilities", timeout=timeout)
        response.raise_for_status()
        return response.json()

    def capabilities(self) -> dict[str, dict[str, Any]]:
        return {entry["name"]: entry for entry in self.view()["capabilities"]}

    def counts(self) -> dict[str, int]:
        return self.view()["counts"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


class HealthServer:
    """A stand-in for the worker's HTTP server: /healthz answers 503 `fail_first` times."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.first_ok_at: float | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                ok = self.path == "/healthz" and owner.requests > owner.fail_first
                if ok and owner.first_ok_at is None:
                    owner.first_ok_at = time.time()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Blackhole:
    """A TCP port that accepts connections and never answers (a hung orchestrator)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._sock.close()


def registrar_env(
    runtime_dir: Path, worker_port: int, orch_urls: list[str], **extra: str
) -> dict[str, str]:
    """The environment the gunicorn master hands its registrar."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ORCH_", "CAPABILITY_", "WORKER_", "AGENT_NET_"))
    }
    return {
        **base,
        "AGENT_NET_RUNTIME_DIR": str(runtime_dir),
        "WORKER_HOST": "0.0.0.0",
        "WORKER_PORT": str(worker_port),
        "ORCH_URL": ",".join(orch_urls),
        "ORCH_SECRET": ORCH_SECRET,
        "CAPABILITY_URL": f"http://127.0.0.1:{worker_port}",
        "REGISTER_INTERVAL_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def read_state(runtime_dir: Path) -> list[dict[str, Any]]:
    from worker.registration.state import read_registration_state

    return read_registration_state(runtime_dir)


def state_of(runtime_dir: Path, url: str) -> dict[str, Any]:
    for entry in read_state(runtime_dir):
        if entry["orchestrator"] == url:
            return entry
    return {}


def leaked(text: str, secrets: Mapping[str, str]) -> list[str]:
    """The names of the secrets that appear in `text` (expected: none)."""
    return [name for name, value in secrets.items() if value and value in text]


class RegistrarProcess:
    """`python -m worker.registration`, as the gunicorn master spawns it, logging to a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**env, "AGENT_NET_PARENT_PID": str(os.getpid())}
        self.runtime_dir = Path(env["AGENT_NET_RUNTIME_DIR"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RegistrarProcess:
        self.process = spawn_logged(
            [sys.executable, "-m", "worker.registration"], self.log_path, self.env
        )
        return self

    def state(self, url: str) -> dict[str, Any]:
        return state_of(self.runtime_dir, url)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM it; (exit code, seconds it took to exit)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


class Reply:
    """What a ScriptedServer script uses to answer one request, at its own pace."""

    def __init__(self, handler: BaseHTTPRequestHandler, request: dict[str, Any]) -> None:
        self.handler = handler
        self.request = request
        self._chunked = False

    def start(self, status: int, headers: Mapping[str, str], chunked: bool = True) -> None:
        """Send the status line and headers now (chunked unless a Content-Length is given)."""
        self.handler.send_response(status)
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self._chunked = chunked
        if chunked:
            self.handler.send_header("Transfer-Encoding", "chunked")
        self.handler.end_headers()

    def write(self, data: bytes) -> None:
        """Send `data` at once (one chunk when chunked)."""
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def end(self) -> None:
        if self._chunked:
            self.handler.wfile.write(b"0\r\n\r\n")

    def whole(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.start(status, {**(headers or {}), "Content-Length": str(len(body))}, chunked=False)
        self.write(body)


class ScriptedServer:
    """A loopback HTTP server that records each request and answers it by running
    `script(reply)` (set by the test; by default `200 {}`)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: Any = lambda reply: reply.whole(
            200, b"{}", {"Content-Type": "application/json"}
        )
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, _, query = self.path.partition("?")
                request = {
                    "method": self.command,
                    "path": path,
                    "query": query,
                    "headers": dict(self.headers.items()),
                    "body": body,
                    "at": time.monotonic(),
                }
                owner.requests.append(request)
                self.close_connection = True
                with contextlib.suppress(OSError):  # the orchestrator left mid-answer
                    owner.script(Reply(self, request))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_one

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_lines(
    url: str,
    method: str = "POST",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    until: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[http.client.HTTPResponse, list[tuple[float, bytes]]]:
    """Send one request and read the answer line by line as it arrives: the response
    and [(time.monotonic(), line with its newline)], stopping after a line containing
    `until` (the connection is then closed) or at the end of the body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    conn.request(
        method, parts.path + (f"?{parts.query}" if parts.query else ""), body, dict(headers or {})
    )
    response = conn.getresponse()
    lines: list[tuple[float, bytes]] = []
    try:
        while line := response.readline():
            lines.append((time.monotonic(), line))
            if until is not None and until in line:
                break
    finally:
        conn.close()
    return response, lines
