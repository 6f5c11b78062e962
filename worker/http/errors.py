"""JSON errors: every rejection is `{"error": code, "detail": detail}` with a stable code,
or, on the OpenAI-compatible routes (`/v1/...` and the agents'), OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` with the same stable code in `code`.

`ApiError` is raised by handlers; `install_error_handlers` (Flask) and `answer_error`
(the lean routes, worker/http/lean.py) turn it, werkzeug's HTTP errors and anything
unexpected into JSON (never a traceback) and one log line, and `read_body` turns a body
the client could not send properly into a 400 instead of a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

# Read and dropped after a too-large body before answering 413: closing a socket with
# unread input makes the kernel send a reset, which can destroy the answer in flight.
DRAIN_LIMIT_BYTES = 1024 * 1024
# A route that must not show its path (the live-runner routes' secret prefix) puts the
# path to log here, in the WSGI environ.
LOGGED_PATH_KEY = "agent_net.logged_path"
# A route whose clients are OpenAI SDKs sets this in the WSGI environ (every `/v1/...`
# path has it implied): its errors then take OpenAI's shape.
OPENAI_ERRORS_KEY = "agent_net.openai_errors"
OPENAI_PREFIX = "/v1/"
# OpenAI's error `type` by HTTP status (openai-python maps the status to its exception
# class; `type` is what its message and logs show).
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
log = logging.getLogger("agent_net.http")


class BodyTooLarge(RequestEntityTooLarge):
    """A request body over `limit` bytes (each kind of route has its own limit)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit


class ApiError(Exception):
    """An error answered as `{"error": code, "detail": detail}` with an HTTP status;
    `param` names the request field at fault (OpenAI's shape shows it)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        *,
        param: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.param = param


def logged_path() -> str:
    """The request path as log lines may show it."""
    return str(request.environ.get(LOGGED_PATH_KEY, request.path))


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """The JSON error answer (what Flask's jsonify gives, without needing its context)."""
    body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")) + "\n"
    return Response(body, status=status, headers=headers, mimetype="application/json")


def openai_error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> Response:
    """The error answer in OpenAI's shape; `code` is the project's stable code."""
    error = {
        "message": message,
        "type": _OPENAI_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        ),
        "param": param,
        "code": code,
    }
    body = json.dumps({"error": error}, separators=(",", ":")) + "\n"
    return Response(body, status=status, headers=headers, mimetype="application/json")


def wants_openai_errors(environ: dict[str, Any]) -> bool:
    """Whether errors of the request in `environ` take OpenAI's shape."""
    return bool(environ.get(OPENAI_ERRORS_KEY)) or str(environ.get("PATH_INFO", "")).startswith(
        OPENAI_PREFIX
    )


def content_length(environ: dict[str, Any]) -> int | None:
    """The request's Content-Length, None when absent or not a number (as werkzeug)."""
    try:
        return max(0, int(environ["CONTENT_LENGTH"]))
    except (KeyError, ValueError, TypeError):
        return None


def sized_body(environ: dict[str, Any]) -> bool:
    """Whether the body's size is known up front: a Content-Length, not chunked."""
    return (
        content_length(environ) is not None
        and "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def read_sized_body(environ: dict[str, Any], limit: int) -> bytes:
    """A body with a Content-Length, read from the server's input stream (werkzeug's
    wrapping of it costs as much as the rest of a /gpu-check answer): over `limit`
    bytes is a 413, a body that ends early or cannot be read a 400."""
    expected = content_length(environ) or 0
    if expected > limit:  # `limit` is the route's limit plus one (see read_request_body)
        raise BodyTooLarge(limit - 1)
    try:
        body = environ["wsgi.input"].read(expected) if expected else b""
    except Exception:
        raise ApiError(400, "unreadable_body", "the request body could not be read") from None
    if len(body) < expected:  # the client hung up mid-body
        raise ApiError(
            400,
            "unreadable_body",
            f"the request body ended after {len(body)} of {expected} bytes",
        )
    return body


def read_body() -> bytes:
    """The request body (Flask's routes); a body the client could not send properly is
    a 400, not a 500. A chunked body goes through werkzeug, which enforces the limit."""
    environ = request.environ
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if sized_body(environ):
        return read_sized_body(environ, limit)
    try:
        return request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception:
        raise ApiError(400, "unreadable_body", "the request body could not be read") from None


def read_request_body(environ: dict[str, Any], limit: int) -> bytes:
    """The body of the request in `environ`, from a lean route or a Flask one (a chunked
    body reaches only Flask's, which reads it through werkzeug)."""
    return read_sized_body(environ, limit) if sized_body(environ) else read_body()


def drain_body(environ: dict[str, Any] | None = None, limit: int = DRAIN_LIMIT_BYTES) -> None:
    """Discard what is left of the request body, up to `limit` bytes (best effort)."""
    stream = (request.environ if environ is None else environ).get("wsgi.input")
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

    for kind in (ApiError, HTTPException, Exception):

        @app.errorhandler(kind)
        def _answer(error: Exception) -> Response:
            return answer_error(error, request.environ, logged_path(), max_body_bytes)


def answer_error(
    error: Exception, environ: dict[str, Any], path: str, max_body_bytes: int
) -> Response:
    """The JSON answer to `error` raised while answering the request in `environ`, logged
    in one line: an ApiError as it says, werkzeug's HTTP errors with stable codes, and
    anything else as a 500 that names only the exception's type."""
    method = environ.get("REQUEST_METHOD", "")
    answer = openai_error_response if wants_openai_errors(environ) else _project_error
    param = None
    if isinstance(error, ApiError):
        status, code, detail, headers = error.status, error.code, error.detail, error.headers
        param = error.param
    elif isinstance(error, HTTPException):
        status = error.code or 500
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(status, (error.name or "error").lower().replace(" ", "_"))
        detail = {
            404: f"no route {path}",
            405: f"{method} is not allowed on {path}",
            413: f"request body is larger than {getattr(error, 'limit', max_body_bytes)} bytes",
        }.get(status, error.description or error.name)
        valid = getattr(error, "valid_methods", None)
        headers = {"Allow": ", ".join(valid)} if status == 405 and valid else {}
        if status == 413:
            drain_body(environ)
    else:
        log.error("request_failed method=%s path=%s error=%s", method, path, type(error).__name__)
        return answer(500, "internal_error", "the worker failed to answer this request")
    log.info("request_rejected method=%s path=%s status=%d error=%s", method, path, status, code)
    return answer(status, code, detail, headers, param)


def _project_error(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> Response:
    return error_response(status, code, detail, headers)
