"""One `POST /api/embed` to Ollama: a JSON body out, one JSON answer back.

The connection is kept for the next call of this process, in the same keep-alive pool as
the chat streams' (worker/http/ollama_stream.py: one per process and Ollama address); a
kept connection the server had closed meanwhile is replaced once. Every wait
ends at the call's deadline (TimeLimit). Under gunicorn's gevent worker the socket is
cooperative. `on_idle` runs once, the first time the answer has been awaited
`IDLE_GRACE_SECONDS`: bookkeeping that need not delay a quick answer goes there.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

# One pool with the chat streams: a connection either leaves idle serves the other.
from worker.http.ollama_stream import TimeLimit, UpstreamError, _keep_idle, _take_idle

EMBED_PATH = "/api/embed"
CONNECT_TIMEOUT_SECONDS = 3.0
IDLE_GRACE_SECONDS = 0.005
MAX_ANSWER_BYTES = 512 * 1024 * 1024  # 2,048 inputs of 4,096 dimensions, as JSON text
_ERROR_DETAIL_CHARS = 300
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

_Key = tuple[str, int | None, bool]


class OllamaEmbed:
    """`call()` posts `body` to Ollama's /api/embed and returns its parsed answer; raises
    UpstreamError (with Ollama's status and message when it answered one) or TimeLimit."""

    def __init__(self, base_url: str, body: dict[str, Any], deadline: float) -> None:
        parts = urlsplit(base_url)
        https = parts.scheme == "https"
        self._key: _Key = (parts.hostname or "127.0.0.1", parts.port, https)
        self._path = parts.path.rstrip("/") + EMBED_PATH
        self._payload = json.dumps(body).encode()
        self.deadline = deadline
        self.on_idle: Callable[[], None] | None = None
        self._conn: http.client.HTTPConnection | None = None
        self.aborted = False

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeLimit
        return left

    def call(self) -> Any:
        kept = _take_idle(self._key)
        try:
            if kept is not None:
                try:
                    return self._exchange(kept)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if self.aborted:
                        raise
                    # Closed by Ollama while idle: once more, on a new connection.
            host, port, https = self._key
            kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
            conn = kind(host, port, timeout=min(CONNECT_TIMEOUT_SECONDS, self._left()))
            return self._exchange(conn)
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(self._why(exc)) from None

    def _exchange(self, conn: http.client.HTTPConnection) -> Any:
        self._conn = conn
        try:
            if conn.sock is not None:
                conn.sock.settimeout(self._left())
            conn.request("POST", self._path, self._payload, _HEADERS)
            self._await(conn)
            response = conn.getresponse()
            raw = response.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError:
            conn.close()
            if time.monotonic() < self.deadline:  # the connect timeout, not the deadline
                raise UpstreamError("Ollama did not accept the connection in time") from None
            raise TimeLimit from None
        except BaseException:
            conn.close()
            raise
        finally:
            self._conn = None
        if len(raw) > MAX_ANSWER_BYTES or not response.isclosed():
            conn.close()
            raise UpstreamError("Ollama's embed answer is too large")
        if response.will_close or not _keep_idle(self._key, conn):
            conn.close()
        if response.status != 200:
            raise UpstreamError(_error_text(raw, response.status), response.status)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise UpstreamError("Ollama's embed answer is not JSON") from None

    def _await(self, conn: http.client.HTTPConnection) -> None:
        """Wait for the answer's first bytes: `on_idle` runs if that takes a while."""
        callback, self.on_idle = self.on_idle, None
        sock = conn.sock
        if callback is None or sock is None:
            return
        sock.settimeout(min(IDLE_GRACE_SECONDS, self._left()))
        try:
            sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            callback()
        sock.settimeout(self._left())

    def abort(self) -> None:
        """Cut the connection now (from another greenlet or thread)."""
        self.aborted = True
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _why(self, exc: BaseException) -> str:
        if self.aborted:
            return "aborted"
        return f"Ollama connection failed: {type(exc).__name__}"


def _error_text(raw: bytes, status: int) -> str:
    """Ollama's `{"error": "..."}` text, or the status."""
    try:
        message = json.loads(raw).get("error")
    except (ValueError, AttributeError, RecursionError):
        message = None
    return (str(message) if message else f"HTTP {status}")[:_ERROR_DETAIL_CHARS]
