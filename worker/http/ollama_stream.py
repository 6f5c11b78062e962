"""One streamed Ollama `/api/chat` call: `http.client` connects, httptools parses.

The request leaves in one write, built once; the answer is read by `LineResponse`
(worker/http/line_response.py, httptools' C parser). The HTTP workers run under
gunicorn's gevent worker, which monkey-patches `socket`, so this connection is
cooperative there (and a plain blocking socket under gthread). Every
read waits at most until the generation's deadline; `abort()` (from another greenlet
or thread) shuts the socket down at once, which ends the generation upstream: Ollama
stops a request whose client has gone. A connection whose stream ended cleanly is kept
for the next call of this process (keep-alive); any other is closed. `on_idle` is called
once, the first time a read has waited `IDLE_GRACE_SECONDS` for Ollama: work that need
not delay the first piece is done then, in time the worker would spend waiting (a hot
model's first piece usually comes sooner, and the work follows it instead).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from worker.http.line_response import BadResponse, LineResponse

CHAT_PATH = "/api/chat"
CONNECT_TIMEOUT_SECONDS = 3.0
MAX_LINE_BYTES = 1024 * 1024
RECV_BYTES = 65536  # one read of Ollama's answer
_ERROR_DETAIL_CHARS = 300
MAX_IDLE_CONNECTIONS = 32  # per process and Ollama address
IDLE_GRACE_SECONDS = 0.005  # how long a read waits for Ollama before `on_idle` runs

_idle: dict[tuple[str, int | None, bool], list[http.client.HTTPConnection]] = {}
_idle_lock = threading.Lock()


def _take_idle(key: tuple[str, int | None, bool]) -> http.client.HTTPConnection | None:
    with _idle_lock:
        pool = _idle.get(key)
        return pool.pop() if pool else None


def _keep_idle(key: tuple[str, int | None, bool], conn: http.client.HTTPConnection) -> bool:
    with _idle_lock:
        pool = _idle.setdefault(key, [])
        if len(pool) >= MAX_IDLE_CONNECTIONS:
            return False
        pool.append(conn)
        return True


class UpstreamError(Exception):
    """Ollama failed: refused, reset, an error status or an `{"error"}` line (safe text)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class TimeLimit(Exception):
    """The generation's deadline passed before Ollama finished."""


class OllamaChat:
    """`/api/chat` with `stream: true`; iterate for its NDJSON objects, then `close()`."""

    def __init__(self, base_url: str, body: dict[str, Any], deadline: float) -> None:
        self._https, self._host, self._port, head = _target(base_url)
        payload = json.dumps(body).encode()
        self._request_bytes = b"%s%d\r\n\r\n%s" % (head, len(payload), payload)
        self.deadline = deadline
        self._conn: http.client.HTTPConnection | None = None
        self._response: LineResponse | None = None
        self._key = (self._host, self._port, self._https)
        self._reusable = False
        self._fresh = False  # True once on a new connection (no retry then)
        self.aborted = False
        self.on_idle: Callable[[], None] | None = None  # once, when a read would first wait

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeLimit
        return left

    def send(self) -> None:
        """Send the request now (its answer is read by `open`): Ollama starts at once."""
        if self._conn is not None:
            return
        idle = None if self._fresh else _take_idle(self._key)
        if idle is not None:
            self._conn = idle
            try:
                self._settimeout()
                self._request(idle)
                return
            except (OSError, http.client.HTTPException):
                idle.close()  # closed by the server while idle: once more, on a new one
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = kind(self._host, self._port, timeout=min(CONNECT_TIMEOUT_SECONDS, self._left()))
        self._conn = conn
        self._fresh = True
        try:
            self._request(conn)
        except TimeoutError:
            self._conn = None
            raise TimeLimit from None
        except (OSError, http.client.HTTPException) as exc:
            self._conn = None
            conn.close()
            raise UpstreamError(self._why(exc)) from None

    def _request(self, conn: http.client.HTTPConnection) -> None:
        # http.client connects (TCP_NODELAY, TLS for https) and parses the answer; the
        # request itself leaves in one write, built once (its request() takes two writes
        # and several times the CPU, on the path to the first token).
        if conn.sock is None:
            conn.connect()
        sock, data = conn.sock, self._request_bytes
        sent = sock.send(data)  # not sendall(): under gevent it asks the buffer size first
        while sent < len(data):
            sent += sock.send(memoryview(data)[sent:])

    def open(self) -> None:
        """Send the request if not yet sent, then read the status line (Ollama sends it
        with the first piece); a kept connection the server had closed is retried once.
        Once open, calling it again does nothing."""
        if self._response is not None:
            return
        self.send()
        conn = self._conn
        assert conn is not None
        try:
            response = LineResponse(self._receive, MAX_LINE_BYTES)
            response.begin()
        except TimeoutError:
            raise TimeLimit from None
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            conn.close()
            self._conn = None
            if self._fresh or self.aborted:
                raise UpstreamError(self._why(exc)) from None
            self._fresh = True
            self.send()
            return self.open()
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(self._why(exc)) from None
        self._response = response
        if response.status != 200:
            raise UpstreamError(_error_text(response), response.status)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        response = self._response
        assert response is not None, "open() first"
        while True:
            try:
                line = response.readline()
            except TimeoutError:
                raise TimeLimit from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise UpstreamError(self._why(exc)) from None
            if not line:
                if self.aborted:
                    raise UpstreamError("aborted")
                return
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                raise UpstreamError("Ollama sent a line that is not JSON") from None
            if not isinstance(message, dict):
                raise UpstreamError("Ollama sent a line that is not a JSON object")
            if "error" in message:
                raise UpstreamError(str(message["error"])[:_ERROR_DETAIL_CHARS])
            if message.get("done"):
                # Before the last yield: a caller stops iterating at `done`, so code
                # after it would never run and the connection never be kept.
                self._finish_body(response)
                yield message
                return
            yield message

    def _finish_body(self, response: LineResponse) -> None:
        """Read the end of the body, so the connection can carry the next request."""
        try:
            self._reusable = response.finish()
        except (OSError, http.client.HTTPException, TimeLimit):
            self._reusable = False

    def buffered(self) -> bool:
        """Whether the next message is already here (reading it will not wait)."""
        response = self._response
        return response is not None and response.line_buffered()

    def idle(self) -> None:
        """Run the `on_idle` callback now if it has not run yet."""
        callback, self.on_idle = self.on_idle, None
        if callback is not None:
            callback()

    def _receive(self) -> bytes:
        """One read of the answer, waiting at most until the deadline. While `on_idle`
        has not run, a read that has waited `IDLE_GRACE_SECONDS` runs it, then waits on:
        the socket's own timed wait, with no select() (and its turn of gevent's loop)
        between Ollama's bytes arriving and their read."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is None:
            raise UpstreamError("aborted" if self.aborted else "Ollama connection closed")
        if self.on_idle is not None:
            sock.settimeout(min(IDLE_GRACE_SECONDS, self._left()))
            try:
                return sock.recv(RECV_BYTES)
            except TimeoutError:
                self.idle()
        sock.settimeout(self._left())
        return sock.recv(RECV_BYTES)

    def _settimeout(self) -> None:
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            sock.settimeout(self._left())

    def _why(self, exc: BaseException) -> str:
        if self.aborted:
            return "aborted"
        if isinstance(exc, BadResponse):
            return str(exc)
        return f"Ollama connection failed: {type(exc).__name__}"

    def abort(self) -> None:
        """Cut the connection now (safe from another greenlet or thread): Ollama stops."""
        self.aborted = True
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Keep a cleanly finished connection for the next call, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._reusable and not self.aborted and _keep_idle(self._key, conn):
            return
        with contextlib.suppress(OSError):
            conn.close()


@functools.lru_cache(maxsize=16)
def _target(base_url: str) -> tuple[bool, str, int | None, bytes]:
    """(https, host, port, the request's head up to the Content-Length value) of Ollama
    at `base_url`: worked out once per address, not on each job's path."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    whole = chat_request_bytes(host, port, parts.path.rstrip("/"), b"")
    head = whole[: whole.rindex(b"Content-Length: ") + len(b"Content-Length: ")]
    return parts.scheme == "https", host, port, head


def chat_request_bytes(host: str, port: int | None, prefix: str, body: bytes) -> bytes:
    """The whole `POST /api/chat` request, as http.client would send it."""
    authority = f"[{host}]" if ":" in host else host
    if port is not None:
        authority += f":{port}"
    path = quote(prefix, safe="/:@!$&'()*+,;=-._~%") + CHAT_PATH
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nAccept-Encoding: identity\r\n"
        "Content-Type: application/json\r\nAccept: application/x-ndjson\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _error_text(response: LineResponse) -> str:
    """Ollama's `{"error": "..."}` text of an error answer, or its status."""
    try:
        raw = response.read(64 * 1024)
        message = json.loads(raw).get("error")
    except (OSError, ValueError, AttributeError, http.client.HTTPException, TimeLimit):
        message = None
    text = str(message) if message else f"HTTP {response.status}"
    return text[:_ERROR_DETAIL_CHARS]
