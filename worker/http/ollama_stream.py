"""One streamed Ollama `/api/chat` call over the standard library's `http.client`.

The HTTP workers run under gunicorn's gevent worker, which monkey-patches `socket`, so
this connection is cooperative there (and a plain blocking socket under gthread). Every
read waits at most until the generation's deadline; `abort()` (from another greenlet
or thread) shuts the socket down at once, which ends the generation upstream: Ollama
stops a request whose client has gone.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

CHAT_PATH = "/api/chat"
CONNECT_TIMEOUT_SECONDS = 3.0
MAX_LINE_BYTES = 1024 * 1024
_ERROR_DETAIL_CHARS = 300


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
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._prefix = parts.path.rstrip("/")
        self._body = json.dumps(body).encode()
        self.deadline = deadline
        self._conn: http.client.HTTPConnection | None = None
        self._response: http.client.HTTPResponse | None = None
        self.aborted = False

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeLimit
        return left

    def open(self) -> None:
        """Send the request and read the status line (Ollama sends it with the first piece)."""
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        timeout = min(CONNECT_TIMEOUT_SECONDS, self._left())
        self._conn = kind(self._host, self._port, timeout=timeout)
        try:
            self._conn.request(
                "POST",
                self._prefix + CHAT_PATH,
                self._body,
                {"Content-Type": "application/json", "Accept": "application/x-ndjson"},
            )
            self._settimeout()
            response = self._conn.getresponse()
        except TimeoutError:
            raise TimeLimit from None
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
                self._settimeout()
                line = response.readline(MAX_LINE_BYTES)
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
            yield message
            if message.get("done"):
                return

    def _settimeout(self) -> None:
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            sock.settimeout(self._left())

    def _why(self, exc: BaseException) -> str:
        if self.aborted:
            return "aborted"
        return f"Ollama connection failed: {type(exc).__name__}"

    def abort(self) -> None:
        """Cut the connection now (safe from another greenlet or thread): Ollama stops."""
        self.aborted = True
        sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()


def _error_text(response: http.client.HTTPResponse) -> str:
    """Ollama's `{"error": "..."}` text of an error answer, or its status."""
    try:
        raw = response.read(64 * 1024)
        message = json.loads(raw).get("error")
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        message = None
    text = str(message) if message else f"HTTP {response.status}"
    return text[:_ERROR_DETAIL_CHARS]
