"""create_app(): the worker's HTTP routes over the sampler's published readings."""

from __future__ import annotations

import hmac
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request

from worker.agents import Agent, load_agents
from worker.config import Settings
from worker.http import usage_hook
from worker.http.capacity import SlotLimiter
from worker.http.capacity_metrics import PoolsCollector, refusals
from worker.http.chat import register_chat_routes
from worker.http.document import ReportBuilder
from worker.http.embeddings import EMBEDDINGS_ROUTE, EmbeddingRoutes
from worker.http.errors import (
    LOGGED_PATH_KEY,
    OPENAI_ERRORS_KEY,
    ApiError,
    BodyTooLarge,
    install_error_handlers,
    read_request_body,
)
from worker.http.lean import LeanRoutes
from worker.http.metrics import instrument
from worker.http.models import MODELS_ROUTE, ModelRoutes
from worker.http.runner_routes import RunnerRoutes
from worker.registration.runners import ROUTE_ROOT, route_prefix
from worker.registration.state import read_live_runner_state, read_registration_state
from worker.sampling.published import Readings

MAX_AGENT_ID_CHARS = 128
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


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
    if _CONTROL_CHARACTERS.search(agent_id):
        raise ApiError(400, "invalid_agent_id", "agent_id must not contain control characters")
    return agent_id


def _bearer_matches(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def _with_age(entry: dict[str, object]) -> dict[str, object]:
    """A live runner's state with the age of its last accepted heartbeat, as of now."""
    last = entry.get("last_heartbeat")
    age = None
    if isinstance(last, int | float) and not isinstance(last, bool):
        age = round(max(0.0, time.time() - last), 3)
    return {**entry, "last_heartbeat_age_seconds": age}


def create_app(
    settings: Settings,
    runtime_dir: Path,
    readings: Readings | None = None,
    agents: tuple[Agent, ...] | None = None,
) -> Flask:
    """Build the Flask app over the readings the sampler publishes in `runtime_dir`.

    `agents` defaults to those of the agents file (or the default agent).
    """
    if readings is None:
        readings = Readings(runtime_dir, stale_after=settings.stale_after_seconds)
    if agents is None:
        agents = load_agents(settings)
    app = Flask("agent_net")
    agent_body_bytes = settings.agent_max_body_bytes
    # One byte over the limit, so a chunked body (no Content-Length) that is too large
    # shows as len > limit instead of being cut silently at the limit by werkzeug; each
    # route then holds its body to its own limit (the agents' is larger: images).
    body_limit = settings.max_body_bytes + 1
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_body_bytes, agent_body_bytes) + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    usage_hook.configure(settings.usage_db_path)  # opened on first use, in each process
    limiter = SlotLimiter(runtime_dir / "capacity.slots", settings.capability_capacity)
    jobs_refused = refusals("jobs")
    secret_token = settings.job_token
    token = None if secret_token is None else secret_token.get_secret_value()

    install_error_handlers(app, settings.max_body_bytes)

    def authorise(environ: dict[str, Any]) -> None:
        if token is not None and not _bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            raise ApiError(
                401,
                "unauthorized",
                "a valid Authorization: Bearer token is required",
                {"WWW-Authenticate": 'Bearer realm="agent-net"'},
            )

    embeddings = EmbeddingRoutes(
        agents,
        readings=readings,
        ollama_url=settings.ollama_host,
        max_body_bytes=agent_body_bytes,
        authorise=authorise,
    )
    chat_routes = register_chat_routes(
        app,
        agents,
        readings=readings,
        ollama_url=settings.ollama_host,
        runtime_dir=runtime_dir,
        max_body_bytes=agent_body_bytes,
        authorise=authorise,
        route_agent=embeddings.route_agent,  # an embedding agent's own route
    )
    models = ModelRoutes(agents, readings, authorise)
    reports = ReportBuilder(settings, readings, agents, chat_routes.limiters)

    def job(environ: dict[str, Any]) -> Response:
        authorise(environ)
        return run_job(environ)

    def run_job(environ: dict[str, Any]) -> Response:
        # The body first: a client still sending one (slowly, maybe on purpose) holds a
        # connection, not one of the capacity slots that running jobs are counted in.
        body = read_request_body(environ, body_limit)
        if len(body) > settings.max_body_bytes:
            raise BodyTooLarge(settings.max_body_bytes)
        slot = limiter.take()
        if slot is None:
            jobs_refused.inc()
            raise ApiError(
                503,
                "at_capacity",
                f"the worker is running {limiter.capacity} jobs, its capacity; retry shortly",
                {"Retry-After": "1"},
            )
        try:
            agent_id = parse_job_body(body)
            return Response(reports.render(agent_id), mimetype="application/json")
        finally:
            limiter.give(slot)

    lean_routes: dict[str, Callable[[dict[str, Any]], Response]] = {}
    for route in settings.job_routes:
        app.add_url_rule(
            f"/{route}",
            endpoint=f"job:{route}",
            view_func=lambda: job(request.environ),
            methods=["POST"],
        )
        lean_routes[f"/{route}"] = job

    def embeddings_route(environ: dict[str, Any]) -> Response:
        return embeddings.answer(environ, None)

    app.add_url_rule(
        EMBEDDINGS_ROUTE,
        endpoint="embeddings",
        view_func=lambda: embeddings_route(request.environ),
        methods=["POST"],
    )
    lean_routes[EMBEDDINGS_ROUTE] = embeddings_route
    app.add_url_rule(
        MODELS_ROUTE,
        endpoint="models",
        view_func=lambda: models.listing(request.environ),
        methods=["GET"],
    )
    app.add_url_rule(
        f"{MODELS_ROUTE}/<model_id>",
        endpoint="model",
        view_func=lambda model_id: models.one(request.environ, model_id),
        methods=["GET"],
    )

    # Live runners: go-livepeer proxies /apps/<id>/app/<path> to <runner_url>/<path>
    # without a bearer token; runner_url ends in /lr/<prefix>/<runner>, and the secret
    # prefix is the credential. Every path under /lr/ is answered here, so a wrong prefix
    # or path gets the same 404 and no answer or log line ever shows a path under /lr/.
    prefix = route_prefix(settings)
    runner_routes = RunnerRoutes(
        job_routes=settings.job_routes,
        run_job=run_job,
        agents=agents,
        agent_routes=chat_routes.proxied,
        embeddings=embeddings,
        models=models,
        max_body_bytes=agent_body_bytes,
    )

    def live_runner(rest: str = "") -> Response:
        given, _, after = rest.partition("/")
        runner, _, path = after.partition("/")
        request.environ[LOGGED_PATH_KEY] = f"/{ROUTE_ROOT}/***"
        known = prefix is not None and hmac.compare_digest(given.encode(), prefix.encode())
        found = runner_routes.find(runner, path) if known else None
        if found is None:
            raise ApiError(404, "not_found", "no such route")
        method, view = found
        if path.startswith("v1/"):
            request.environ[OPENAI_ERRORS_KEY] = True
        if request.method != method:
            raise ApiError(405, "method_not_allowed", f"use {method}", {"Allow": method})
        return view(request.environ)

    for rule in (f"/{ROUTE_ROOT}", f"/{ROUTE_ROOT}/", f"/{ROUTE_ROOT}/<path:rest>"):
        app.add_url_rule(
            rule,
            endpoint=f"live_runner:{rule}",
            view_func=live_runner,
            methods=ALL_METHODS,
            provide_automatic_options=False,
            strict_slashes=False,
            merge_slashes=False,
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="alive", pid=os.getpid(), timestamp=time.time())

    @app.get("/readyz")
    def readyz() -> Response:
        ready, running, pid = readings.ready(), readings.sampler_running(), readings.sampler_pid
        status = "ready" if ready else "starting" if running or pid is None else "sampler_down"
        response = jsonify(
            status=status,
            worker_pid=os.getpid(),
            sampler={"running": running, "pid": pid},
            sources={view.name: view.as_dict() for view in readings.views()},
            registration=read_registration_state(runtime_dir),
            live_runners=[_with_age(entry) for entry in read_live_runner_state(runtime_dir)],
        )
        response.status_code = 200 if ready else 503
        return response

    pools = PoolsCollector(limiter, agents, chat_routes.limiters, readings)
    recorder = instrument(app, readings, runtime_dir, pools)
    lean_routes |= chat_routes.lean
    app.wsgi_app = LeanRoutes(  # type: ignore[method-assign]
        app.wsgi_app, lean_routes, recorder, settings.max_body_bytes
    )
    return app
