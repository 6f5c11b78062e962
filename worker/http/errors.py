"""JSON errors: every rejection is `{"error": code, "detail": detail}` with a stable code.

`ApiError` is raised by handlers; `install_error_handlers` turns it, werkzeug's HTTP
errors and anything unexpected into JSON (never a traceback), and `read_body` turns a
body the client could not send properly into a 400 instead of a 500.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

# Read and dropped after a too-large body before answering 413: closing a socket with
# unread input makes the kernel send a reset, which can destroy the answer in flight.
DRAIN_LIMIT_BYTES = 1024 * 1024
# A route that must not show its path (the live-runner routes' secret prefix) puts the
# path to log here, in the WSGI environ.
LOGGED_PATH_KEY = "agent_net.logged_path"
log = logging.getLogger("agent_net.http")


class ApiError(Exception):
    """An error answered as `{"error": code, "detail": detail}` with an HTTP status."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}


def logged_path() -> str:
    """The request path as log lines may show it."""
    return str(request.environ.get(LOGGED_PATH_KEY, request.path))


def error_response(status: int, code: str, detail: str) -> Response:
    response = jsonify(error=code, detail=detail)
    response.status_code = status
    return response


def read_body() -> bytes:
    """The request body; a body the client could not send properly is a 400, not a 500.

    A body with a Content-Length within the app's limit is read from the server's input
    stream directly (the common case, and werkzeug's wrapping of it costs as much as the
    rest of a /gpu-check answer); any other body goes through werkzeug, which enforces
    the limit on chunked bodies.
    """
    environ = request.environ
    expected = request.content_length
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    try:
        if expected is not None and not chunked and expected <= limit:
            body = environ["wsgi.input"].read(expected) if expected else b""
        else:
            body = request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception:
        raise ApiError(400, "unreadable_body", "the request body could not be read") from None
    if expected is not None and len(body) < expected:  # the client hung up mid-body
        raise ApiError(
            400,
            "unreadable_body",
            f"the request body ended after {len(body)} of {expected} bytes",
        )
    return body


def drain_body(limit: int = DRAIN_LIMIT_BYTES) -> None:
    """Discard what is left of the request body, up to `limit` bytes (best effort)."""
    stream = request.environ.get("wsgi.input")
    drained = 0
    try:
        while stream is not None and drained < limit:
            chunk = stream.read(min(65536, limit - drained))
            if not chunk:
                break
            drained += len(chunk)
    except Exception:  # a broken body ends the drain, never the answer
        return


def install_error_handlers(app: Flask, max_body_bytes: int) -> None:
    """Answer every error of `app` as JSON with a stable code, and log it in one line."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        log.info(
            "request_rejected method=%s path=%s status=%d error=%s",
            request.method,
            logged_path(),
            error.status,
            error.code,
        )
        response = error_response(error.status, error.code, error.detail)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(status, (error.name or "error").lower().replace(" ", "_"))
        detail = {
            404: f"no route {logged_path()}",
            405: f"{request.method} is not allowed on {logged_path()}",
            413: f"request body is larger than {max_body_bytes} bytes",
        }.get(status, error.description or error.name)
        log.info(
            "request_rejected method=%s path=%s status=%d error=%s",
            request.method,
            logged_path(),
            status,
            code,
        )
        response = error_response(status, code, detail)
        if status == 413:
            drain_body()
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.error(
            "request_failed method=%s path=%s error=%s",
            request.method,
            logged_path(),
            type(error).__name__,
        )
        return error_response(500, "internal_error", "the worker failed to answer this request")
