"""A go-livepeer orchestrator stand-in for BYOC capability workers (standard library only).

It enforces what go-livepeer (byoc/job_orchestrator.go, core/external_capabilities.go,
core/ai_orchestrator.go) does with a worker:

- `POST /capability/register`: `Authorization` must equal the secret exactly (no
  "Bearer "), else `400 invalid authorization`. The body is decoded like Go's
  encoding/json into `core.ExternalCapability` (keys case-insensitive, unknown keys
  ignored, a wrong JSON type fails the whole registration with
  `400 Error registering capability: json: cannot unmarshal ...`). A currency other
  than "", "wei" or "eth" panics in go-livepeer without a price feed: the stand-in drops
  the connection without an answer. Registering a name again replaces it (load reset).
- `POST /capability/unregister`: the body is the name as plain text; always `200 ok`.
- `POST /process/request/<route>`: reads the base64 JSON `Livepeer` header, finds the
  capability by its `capability` field and forwards `POST <url>/<route>` with the body,
  `Content-Type` and `Authorization: Bearer <token>`. It forgets the capability when the
  worker cannot be reached (except a timeout) or answers 401, passes an error status back
  as Go's `http.Error` does (text/plain), and copies `Content-Type` on success.
- Capabilities live in memory: a restart forgets them all.

Tests and operators can watch it: `GET /_standin/capabilities` lists what is registered
(never a token) with call counts and removals. Run it:

    python tests/standins/orchestrator.py --port 8935 --self-signed --secret-env ORCH_SECRET
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("standin.orchestrator")

MAX_BODY = 16 * 1024 * 1024
PROCESS_PREFIX = "/process/request/"
FIXED_PRICE_CURRENCIES = ("", "wei", "eth")

# Go structs as {json key: Go type}; the order is the struct's field order.
EXTERNAL_CAPABILITY = {
    "name": "string",
    "description": "string",
    "url": "string",
    "capacity": "int",
    "price_per_unit": "int64",
    "price_scaling": "int64",
    "currency": "string",
    "token": "string",
}
JOB_REQUEST = {
    "id": "string",
    "request": "string",
    "parameters": "string",
    "capability": "string",
    "capability_url": "string",
    "sender": "string",
    "sig": "string",
    "timeout_seconds": "int",
    "OrchSearchTimeout": "time.Duration",
    "OrchSearchRespTimeout": "time.Duration",
}
JOB_REQUEST_DETAILS = {"stream_id": "string"}
_INT64 = (-(2**63), 2**63 - 1)


# --- Go encoding/json, as far as these structs need it ------------------------------------
class GoJSONError(ValueError):
    """What Go's json.Unmarshal would return, with Go's message."""


class _Number(str):
    """A JSON number kept as its literal text, as Go sees it."""


class _Object(list):
    """A JSON object kept as ordered (key, value) pairs, duplicates included."""


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


def _kind(value: Any) -> str:
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return "number"
    return "string"


def _fold(text: str) -> str:
    # Go's foldName: each rune through ToUpper then ToLower (so U+017F matches 's').
    return "".join(ch.upper().lower() if len(ch.upper()) == 1 else ch for ch in text)


def go_unmarshal(data: bytes, struct: str, fields: dict[str, str]) -> dict[str, Any]:
    """Decode `data` into a Go struct like json.Unmarshal, or raise GoJSONError.

    `struct` is the Go type name ("core.ExternalCapability"); missing fields and nulls
    keep their zero value, unknown keys are ignored, the first type error wins.
    """
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        raise GoJSONError("unexpected end of JSON input")
    try:
        value = json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
            object_pairs_hook=_Object,
        )
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise GoJSONError("unexpected end of JSON input") from None
        raise GoJSONError(
            f"invalid character {text[exc.pos]!r} looking for beginning of value"
        ) from None
    result: dict[str, Any] = {key: "" if kind == "string" else 0 for key, kind in fields.items()}
    if value is None:
        return result
    if not isinstance(value, _Object):
        raise GoJSONError(f"json: cannot unmarshal {_kind(value)} into Go value of type {struct}")
    short_name = struct.rsplit(".", 1)[-1]
    exact = {key: key for key in fields}
    folded = {_fold(key): key for key in fields}
    first_error: str | None = None
    for key, item in value:
        field = exact.get(key) or folded.get(_fold(key))
        if field is None or item is None:
            continue
        go_type = fields[field]
        problem: str | None = None
        if go_type == "string":
            if isinstance(item, str) and not isinstance(item, _Number):
                result[field] = item
            else:
                problem = _kind(item)
        elif isinstance(item, _Number):
            try:
                number = int(item)
            except ValueError:
                number = None
            if number is None or not _INT64[0] <= number <= _INT64[1]:
                problem = f"number {item}"
            else:
                result[field] = number
        else:
            problem = _kind(item)
        if problem is not None and first_error is None:
            first_error = (
                f"json: cannot unmarshal {problem} into Go struct field"
                f" {short_name}.{field} of type {go_type}"
            )
    if first_error is not None:
        raise GoJSONError(first_error)
    return result


# --- The orchestrator's memory -------------------------------------------------------------
class CapabilityStore:
    """Registered capabilities (go-livepeer's ExternalCapabilities) plus counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._capabilities: dict[str, dict[str, Any]] = {}
        self.counts: Counter[str] = Counter()
        self.removed: list[dict[str, Any]] = []
        self.started_at = time.time()

    def register(self, capability: dict[str, Any]) -> bool:
        """Store (or replace, load reset) the capability; True when the name was new."""
        entry = dict(capability, load=0, registered_at=time.time())
        if entry["price_scaling"] == 0:
            entry["price_scaling"] = 1
        with self._lock:
            new = entry["name"] not in self._capabilities
            self._capabilities[entry["name"]] = entry
            self.counts["register_ok"] += 1
            return new

    def remove(self, name: str, reason: str) -> None:
        with self._lock:
            existed = self._capabilities.pop(name, None) is not None
            self.removed.append(
                {"name": name, "reason": reason, "existed": existed, "at": time.time()}
            )

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._capabilities.get(name)
            return None if entry is None else dict(entry)

    def reserve(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._capabilities.get(name)
            if entry is None:
                return None
            entry["load"] += 1
            return dict(entry)

    def free(self, name: str) -> None:
        with self._lock:
            entry = self._capabilities.get(name)
            if entry is not None:
                entry["load"] -= 1

    def count(self, event: str) -> None:
        with self._lock:
            self.counts[event] += 1

    def view(self) -> dict[str, Any]:
        """Everything a test may look at; tokens appear only as `has_token`."""
        with self._lock:
            capabilities = [
                {
                    **{k: v for k, v in entry.items() if k != "token"},
                    "has_token": bool(entry["token"]),
                }
                for entry in self._capabilities.values()
            ]
            return {
                "capabilities": capabilities,
                "counts": dict(self.counts),
                "removed": list(self.removed),
                "started_at": self.started_at,
                "pid": os.getpid(),
            }


# --- HTTP -------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin-orchestrator"
    timeout = 60
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("access %s %s", self.address_string(), format % args)

    # Responses -------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _go_error(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        """Go's http.Error: text/plain, nosniff, the message and a newline."""
        self._send(
            status,
            (text + "\n").encode(),
            "text/plain; charset=utf-8",
            {"X-Content-Type-Options": "nosniff", **(headers or {})},
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length)

    # Routing ---------------------------------------------------------------------------
    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._go_error(400, "Error reading request body")
            return
        path = urlsplit(self.path).path
        if path == "/capability/register":
            self._register(body)
        elif path == "/capability/unregister":
            self._unregister(body)
        elif path.startswith(PROCESS_PREFIX):
            self._process(path, body)
        elif path == "/_standin/capabilities" and self.command == "GET":
            self._send(200, json.dumps(self.server.store.view()).encode(), "application/json")
        else:
            self._go_error(404, "404 page not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _authorised(self) -> bool:
        if self.command != "POST":
            self._go_error(405, "Method not allowed")
            return False
        if self.headers.get("Authorization", "") != self.server.secret:
            self.server.store.count("auth_rejected")
            log.warning("auth_rejected path=%s from=%s", self.path, self.client_address[0])
            self._go_error(400, "invalid authorization")
            return False
        return True

    def _register(self, body: bytes) -> None:
        if not self._authorised():
            return
        try:
            capability = go_unmarshal(body, "core.ExternalCapability", EXTERNAL_CAPABILITY)
        except GoJSONError as exc:
            self.server.store.count("register_rejected")
            log.warning("register_rejected error=%r", str(exc))
            self._send(400, f"Error registering capability: {exc}".encode(), "application/json")
            return
        if capability["currency"].lower() not in FIXED_PRICE_CURRENCIES:
            # go-livepeer panics ("PriceFeedWatcher is not initialized"): no answer at all.
            self.server.store.count("register_panicked")
            log.error(
                "register_panic currency=%r (go-livepeer drops the connection)",
                capability["currency"],
            )
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        new = self.server.store.register(capability)
        log.info(
            "%s capability=%s url=%s capacity=%d price=%d/%d%s token=%s",
            "registered" if new else "re_registered",
            capability["name"],
            capability["url"],
            capability["capacity"],
            capability["price_per_unit"],
            capability["price_scaling"] or 1,
            capability["currency"],
            "yes" if capability["token"] else "no",
        )
        self._send(200, b"ok", "application/json")

    def _unregister(self, body: bytes) -> None:
        if not self._authorised():
            return
        name = body.decode("utf-8", errors="replace")
        self.server.store.remove(name, "unregistered")
        self.server.store.count("unregister")
        log.info("unregistered capability=%s", name)
        self._send(200, b"ok", "application/json")

    def _process(self, path: str, body: bytes) -> None:
        if self.command != "POST":
            self._go_error(405, "Method not allowed")
            return
        store = self.server.store
        try:
            raw = base64.b64decode(self.headers.get("Livepeer", ""), validate=True)
            job = go_unmarshal(raw, "byoc.JobRequest", JOB_REQUEST)
        except (binascii.Error, GoJSONError):
            self._go_error(400, "Could not verify job creds")
            return
        if job["timeout_seconds"] == 0:
            self._go_error(400, "no timeout_seconds set with request, timeout_seconds is required")
            return
        sig = job["sig"][2:] if len(job["sig"]) > 130 else job["sig"]
        if len(sig) % 2 or not all(char in string.hexdigits for char in sig):
            self._go_error(400, "Could not verify job creds")  # hex.DecodeString failed
            return
        # Off-chain: every signature verifies and the price is zero, so no payment.
        name = job["capability"]
        capability = store.reserve(name)
        if capability is None:
            self._go_error(503, "No capacity available for capability")
            return
        try:
            go_unmarshal(job["request"].encode(), "byoc.JobRequestDetails", JOB_REQUEST_DETAILS)
        except GoJSONError as exc:
            # go-livepeer returns here without freeing the reserved load; so does this.
            self._go_error(400, f"Unable to unmarshal job request details err={exc}")
            return
        route = path[len(PROCESS_PREFIX) :]
        target = capability["url"] + ("/" + route if route else "")
        store.count("jobs")
        try:
            status, headers, data = _forward(
                target,
                body,
                self.headers.get("Content-Type", ""),
                capability["token"],
                job["timeout_seconds"],
            )
        except TimeoutError as exc:
            self._go_error(
                500,
                f"job not able to be processed, removing capability"
                f' err=Post "{target}": context canceled ({exc})',
                {"Livepeer-Balance": "0"},
            )
            return
        except (OSError, http.client.HTTPException) as exc:
            store.remove(name, "connection_error")
            log.warning(
                "capability_removed capability=%s reason=connection_error error=%r",
                name,
                f"{type(exc).__name__}: {exc}",
            )
            self._go_error(
                500,
                f"job not able to be processed, removing capability"
                f' err=Post "{target}": {type(exc).__name__}: {exc}',
                {"Livepeer-Balance": "0"},
            )
            return
        if status == 401:
            store.remove(name, "worker_401")
            log.warning("capability_removed capability=%s reason=worker_401", name)
            self._go_error(
                500,
                "job not able to be processed, removing capability err=worker auth token failed",
                {"Livepeer-Balance": "0"},
            )
            return
        store.free(name)
        store.count(f"jobs_status_{status}")
        log.info("job_forwarded capability=%s route=%s status=%d", name, route, status)
        if status > 399:
            # http.Error replaces the worker's Content-Type and adds a newline.
            self._go_error(
                status, data.decode("utf-8", errors="replace"), {"Livepeer-Balance": "0"}
            )
            return
        extra = {"Livepeer-Balance": "0"}
        if headers.get("X-Metadata"):
            extra["X-Metadata"] = headers["X-Metadata"]
        # w.Write without WriteHeader: always 200, whatever 2xx/3xx the worker sent.
        self._send(200, data, headers.get("Content-Type", ""), extra)


def _forward(
    target: str, body: bytes, content_type: str, token: str, timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """POST like go-livepeer's job client (TLS not verified); (status, headers, body)."""
    parts = urlsplit(target)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    headers = {"User-Agent": "Go-http-client/1.1", "Content-Length": str(len(body))}
    if content_type:
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        path = parts.path or "/"
        conn.request("POST", path + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = conn.getresponse()
        return response.status, dict(response.headers.items()), response.read()
    finally:
        conn.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], secret: str, ssl_context: ssl.SSLContext | None
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.secret = secret
        self.ssl_context = ssl_context
        self.store = CapabilityStore()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread, never in accept().
        if self.ssl_context is not None:
            request.settimeout(10)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("tls_handshake_failed from=%s error=%s", client_address[0], exc)
                return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            if self.ssl_context is not None:
                request.close()

    def close_connections(self) -> None:
        """Cut every open connection, as a process exit would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class StandinOrchestrator:
    """The stand-in, served from a background thread (for tests) or in the foreground."""

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("the orchestrator secret must not be empty")
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        self._server = _Server((host, port), secret, context)
        self._thread: threading.Thread | None = None
        scheme = "https" if context else "http"
        bound_host, bound_port = self._server.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        shown = "[::1]" if shown == "::" else shown
        self.url = f"{scheme}://{shown}:{bound_port}"
        self.port = bound_port

    @property
    def store(self) -> CapabilityStore:
        return self._server.store

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> StandinOrchestrator:
        self._thread = threading.Thread(target=self.serve_forever, name="standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a process exit: no listener, no open connection, memory gone."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandinOrchestrator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Certificates ------------------------------------------------------------------------
def make_self_signed_cert(directory: Path, names: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write cert.pem and key.pem (a self-signed CA certificate for localhost, 127.0.0.1,
    this host and `names`) with the `openssl` command; return their paths."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is not installed: pass --tls-cert and --tls-key")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    alt = {"DNS:localhost", "IP:127.0.0.1", "IP:::1", f"DNS:{socket.gethostname()}"}
    for name in names:
        is_ip = all(part.isdigit() for part in name.split(".")) or ":" in name
        alt.add(f"{'IP' if is_ip else 'DNS'}:{name}")
    config = directory / "openssl.cnf"
    config.write_text(
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n"
        "[dn]\nCN = standin-orchestrator\n"
        "[ext]\nbasicConstraints = critical,CA:TRUE\n"
        "keyUsage = critical,digitalSignature,keyCertSign\n"
        f"subjectAltName = {','.join(sorted(alt))}\n"
    )
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-config",
            str(config),
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# --- Command line ------------------------------------------------------------------------
def _secret_from(args: argparse.Namespace) -> str:
    if args.secret is not None:
        # Like go-livepeer's -orchSecret: a value, or the path of a file holding it.
        path = Path(args.secret)
        return path.read_text().strip() if path.is_file() else args.secret
    return os.environ.get(args.secret_env, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8935)
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--self-signed",
        action="store_true",
        help="serve HTTPS with a fresh self-signed certificate (needs openssl)",
    )
    tls.add_argument("--tls-cert", type=Path, help="certificate PEM (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, help="private key PEM (with --tls-cert)")
    parser.add_argument(
        "--cert-dir",
        type=Path,
        help="where --self-signed writes cert.pem/key.pem (default: a temp dir)",
    )
    parser.add_argument(
        "--cert-name",
        action="append",
        default=[],
        help="an extra DNS name or IP for the self-signed certificate",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret", help="the orchestrator secret, or a file holding it")
    secret.add_argument(
        "--secret-env",
        default="ORCH_SECRET",
        help="environment variable holding the secret (default ORCH_SECRET)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s standin %(message)s",
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    secret_value = _secret_from(args)
    if not secret_value:
        parser.error("no secret: pass --secret or set the variable --secret-env names")
    pair = (args.tls_cert, args.tls_key) if args.tls_cert else None
    with contextlib.ExitStack() as cleanup:
        if args.self_signed:
            # Without --cert-dir, a temporary directory removed when the stand-in stops.
            directory = args.cert_dir or Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="standin-tls-"))
            )
            try:
                pair = make_self_signed_cert(directory, tuple(args.cert_name))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                parser.error(f"cannot make a self-signed certificate: {exc}")
            log.info("self_signed_certificate cert=%s", pair[0])
        orchestrator = StandinOrchestrator(secret_value, args.host, args.port, pair)
        signal.signal(
            signal.SIGTERM,
            lambda *_: threading.Thread(target=orchestrator._server.shutdown, daemon=True).start(),
        )
        log.info("listening url=%s (%s:%d)", orchestrator.url, args.host, orchestrator.port)
        try:
            orchestrator.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            orchestrator._server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
