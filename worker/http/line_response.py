"""A streamed HTTP/1.1 response read line by line, parsed by httptools (llhttp, in C).

Ollama streams `/api/chat` as chunked NDJSON. The standard library's `http.client` parses
the status line and headers through the `email` package and removes the chunk framing
in Python: about 0.1 ms of CPU between Ollama's first piece arriving and the worker
relaying it. httptools does both in C; this class only splits the body into lines.

Bytes come from the `receive` function given (one `recv` of the caller's socket, with
the caller's timeouts: cooperative under gevent); a line already buffered costs none.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable

import httptools


class BadResponse(http.client.HTTPException):
    """The response broke HTTP/1.1, or a line passed the limit (safe text: no data)."""


class LineResponse:
    """The response `receive()` reads (b"" at the end of the stream): `begin()` reads to
    the end of the headers, then `readline()` returns each line of the body."""

    def __init__(self, receive: Callable[[], bytes], max_line: int) -> None:
        self._receive_bytes, self._max_line = receive, max_line
        self._parser = httptools.HttpResponseParser(self)
        self._body = bytearray()
        self.status = 0
        self.headers_done = False
        self.complete = False  # the whole message has been read
        self.keep_alive = False  # ... and the server keeps the connection for another
        self.eof = False
        self._broken: BadResponse | None = None  # raised once the lines before it are read

    # -- httptools' callbacks ------------------------------------------------------------
    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()

    # -- reading --------------------------------------------------------------------------
    def _receive(self) -> None:
        data = self._receive_bytes()
        if not data:
            self.eof = True
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # The body parsed before the fault is kept: its lines are read first.
            self._broken = BadResponse(f"Ollama sent malformed HTTP ({type(exc).__name__})")
            self.eof = True

    def begin(self) -> None:
        """Read the status line and headers; RemoteDisconnected if the server closed first."""
        while not self.headers_done:
            self._receive()
            if self.eof and not self.headers_done:
                if self._broken is not None:
                    raise self._broken
                raise http.client.RemoteDisconnected("closed before the status line")

    def line_buffered(self) -> bool:
        """Whether `readline()` can answer without reading the socket."""
        return b"\n" in self._body or self.complete or self.eof

    def readline(self) -> bytes:
        """The next line of the body with its newline; at the end, what is left, then b""."""
        while True:
            end = self._body.find(b"\n")
            if end >= 0:
                line = bytes(self._body[: end + 1])
                del self._body[: end + 1]
                return line
            if len(self._body) > self._max_line:
                raise BadResponse(f"Ollama sent a line over {self._max_line} bytes")
            if self._broken is not None:
                raise self._broken  # a partial line before the fault is not a line
            if self.complete or self.eof:
                line = bytes(self._body)
                self._body.clear()
                return line
            self._receive()

    def read(self, limit: int) -> bytes:
        """The rest of the body, at most `limit` bytes."""
        while not (self.complete or self.eof) and len(self._body) < limit:
            self._receive()
        return bytes(self._body[:limit])

    def finish(self) -> bool:
        """Read to the end of the message; whether the connection can carry the next one
        (the whole message read, nothing after the last line, and kept by the server)."""
        while not (self.complete or self.eof):
            if len(self._body) > self._max_line:
                return False
            self._receive()
        return self._broken is None and self.complete and self.keep_alive and not self._body.strip()
