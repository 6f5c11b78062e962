"""create_app(): the worker's HTTP routes, request validation and JSON errors."""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from worker.capacity import SlotLimiter
from worker.config import Settings
from worker.metrics import instrument
from worker.registration_state import read_registration_state
from worker.report import ReportBuilder
from worker.sampling import Sampler

MAX_AGENT_ID_CHARS = 128
# Read and dropped after a too-large body before answering 413: closing a socket with
# unread input makes the kernel send a reset, which can destroy the answer in flight.
DRAIN_LIMIT_BYTES = 1024 * 1024
log = logging.getLogger("agent_net.http")


class ApiError(Exception):
    """An error answered as `{"error": code, "detail": detail}` with an HTTP status."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}


def error_response(status: int, code: str, detail: str) -> Response:
    response = jsonify(error=code, detail=detail)
    response.status_code = status
    return response


def parse_job_body(raw: bytes) -> str:
    """Return the validated `agent_id` from a request body, or raise ApiError (400)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object") from None
    agent_id = body.get("agent_id")
    if agent_id is None or agent_id == "":
        raise ApiError(400, "missing_agent_id", "agent_id is required (a non-empty string)")
    if not isinstance(agent_id, str):
        raise ApiError(400, "invalid_agent_id", "agent_id must be a string")
    if len(agent_id) > MAX_AGENT_ID_CHARS:
        raise ApiError(
            400, "invalid_agent_id", f"agent_id must be at most {MAX_AGENT_ID_CHARS} characters"
        )
    if any(ord(char) < 32 or 127 <= ord(char) < 160 for char in agent_id):
        raise ApiError(400, "invalid_agent_id", "agent_id must not contain control characters")
    return agent_id


def _read_body() -> bytes:
    """The request body; a body the client could not send properly is a 400, not a 500."""
    try:
        body = request.get_data(cache=False)
    except HTTPException:
        raise
    except Exception:
        raise ApiError(400, "unreadable_body", "the request body could not be read") from None
    expected = request.content_length
    if expected is not None and len(body) < expected:  # the client hung up mid-body
        raise ApiError(
            400,
            "unreadable_body",
            f"the request body ended after {len(body)} of {expected} bytes",
        )
    return body


def _drain_body(limit: int = DRAIN_LIMIT_BYTES) -> None:
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


def _bearer_matches(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def create_app(settings: Settings, sampler: Sampler, runtime_dir: Path) -> Flask:
    """Build the Flask app. `sampler` must already be running (or be a test's sampler)."""
    app = Flask("agent_net")
    # One byte over the limit, so a chunked body (no Content-Length) that is too large
    # shows as len > limit instead of being cut silently at the limit by werkzeug.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    reports = ReportBuilder(settings, sampler)
    limiter = SlotLimiter(runtime_dir / "capacity.slots", settings.capability_capacity)
    secret_token = settings.job_token
    token = None if secret_token is None else secret_token.get_secret_value()

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        log.info(
            "request_rejected method=%s path=%s status=%d error=%s",
            request.method,
            request.path,
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
            404: f"no route {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"request body is larger than {settings.max_body_bytes} bytes",
        }.get(status, error.description or error.name)
        log.info(
            "request_rejected method=%s path=%s status=%d error=%s",
            request.method,
            request.path,
            status,
            code,
        )
        response = error_response(status, code, detail)
        if status == 413:
            _drain_body()
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.error(
            "request_failed method=%s path=%s error=%s",
            request.method,
            request.path,
            type(error).__name__,
        )
        return error_response(500, "internal_error", "the worker failed to answer this request")

    def job() -> Response:
        if token is not None and not _bearer_matches(request.headers.get("Authorization"), token):
            raise ApiError(
                401,
                "unauthorized",
                "a valid Authorization: Bearer token is required",
                {"WWW-Authenticate": 'Bearer realm="agent-net"'},
            )
        # The body first: a client still sending one (slowly, maybe on purpose) holds a
        # connection, not one of the capacity slots that running jobs are counted in.
        body = _read_body()
        if len(body) > settings.max_body_bytes:
            raise RequestEntityTooLarge()
        with limiter.acquire() as slot:
            if slot is None:
                raise ApiError(
                    503,
                    "at_capacity",
                    f"the worker is running {limiter.capacity} jobs, its capacity; retry shortly",
                    {"Retry-After": "1"},
                )
            agent_id = parse_job_body(body)
            return Response(reports.render(agent_id), mimetype="application/json")

    for route in settings.job_routes:
        app.add_url_rule(f"/{route}", endpoint=f"job:{route}", view_func=job, methods=["POST"])

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="alive", pid=os.getpid(), timestamp=time.time())

    @app.get("/readyz")
    def readyz() -> Response:
        ready = sampler.ready
        response = jsonify(
            status="ready" if ready else "starting",
            sources={view.name: view.as_dict() for view in sampler.views()},
            registration=read_registration_state(runtime_dir),
        )
        response.status_code = 200 if ready else 503
        return response

    instrument(app, sampler, runtime_dir)
    return app
