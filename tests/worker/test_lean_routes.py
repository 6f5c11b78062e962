"""The lean routes (worker/http/lean.py): a sized POST to a job route or an agent skips
Flask's request machinery, and answers exactly as the Flask route does: the same
documents, the same JSON errors and headers, the same metrics."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import flask
import pytest
from werkzeug.test import EnvironBuilder

from tests.helpers.openai_errors import error_code
from tests.metrics.scrape import parse
from worker.config import load_settings
from worker.http.app import create_app

TOKEN = "lean-token"
BODY = b'{"agent_id": "lean"}'
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(tmp_path: Path) -> flask.Flask:
    settings = load_settings(
        {"OLLAMA_HOST": "http://127.0.0.1:9", "WORKER_TOKEN": TOKEN, "MAX_BODY_BYTES": "1024"}
    )
    return create_app(settings, tmp_path)


def call(app: flask.Flask, path: str, body: bytes, chunked: bool = False, **headers: str):
    """(status, headers, body) of one request; `chunked` sends the body without a length
    (so Flask answers it: the lean routes take only sized bodies)."""
    builder = EnvironBuilder(path=path, method="POST", headers=headers)
    environ = builder.get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    if chunked:
        environ.pop("CONTENT_LENGTH", None)
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    answer: dict[str, object] = {}

    def start_response(status: str, response_headers: list, exc_info=None) -> None:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    iterable = app(environ, start_response)
    try:
        data = b"".join(iterable)
    finally:
        getattr(iterable, "close", lambda: None)()
    return answer["status"], answer["headers"], data


def flask_requests(app: flask.Flask) -> list[str]:
    """Paths Flask starts a request context for, from now on."""
    seen: list[str] = []
    flask.request_started.connect(
        lambda sender, **_: seen.append(flask.request.path), app, weak=False
    )
    return seen


def test_a_sized_job_post_skips_flask_and_a_chunked_one_gets_the_same_answer(app) -> None:
    seen = flask_requests(app)
    lean = call(app, "/gpu-check", BODY, **AUTH)
    assert lean[0] == 200 and seen == []
    through_flask = call(app, "/gpu-check", BODY, chunked=True, **AUTH)
    assert seen == ["/gpu-check"]
    lean_doc, flask_doc = json.loads(lean[2]), json.loads(through_flask[2])
    for document in (lean_doc, flask_doc):
        document.pop("timestamp")
        for source in document["sources"].values():
            source.pop("age_seconds")
    assert lean_doc == flask_doc and lean_doc["agent_id"] == "lean"
    assert lean[1]["Content-Type"] == through_flask[1]["Content-Type"] == "application/json"
    app.test_client().get("/healthz")  # every other route is Flask's
    assert seen == ["/gpu-check", "/healthz"]


HI = b'"messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/gpu-check", BODY, {}, 401, "unauthorized"),
        ("/gpu-check", b"[1]", AUTH, 400, "invalid_json"),
        ("/gpu-check", b"x" * 2000, AUTH, 413, "body_too_large"),
        ("/gpu-check", b'{"agent_id": 5}', AUTH, 400, "invalid_agent_id"),
        ("/agent-net-llm", b'{"messages": []}', AUTH, 400, "invalid_messages"),
        ("/agent-net-llm", b"{" + HI + b"}", {}, 401, "unauthorized"),
        ("/v1/chat/completions", b'{"model": "nobody", ' + HI + b"}", AUTH, 404, "unknown_agent"),
        ("/agent-net-llm", b"{" + HI + b"}", AUTH, 503, None),  # no sampler: not admitted
    ],
)
def test_errors_are_the_same_json_status_and_headers_either_way(
    app, path: str, body: bytes, headers: dict[str, str], status: int, code: str | None
) -> None:
    lean = call(app, path, body, **headers)
    through_flask = call(app, path, body, chunked=True, **headers)
    assert lean[0] == through_flask[0] == status
    assert json.loads(lean[2]) == json.loads(through_flask[2])
    if code is not None and path == "/gpu-check":
        assert json.loads(lean[2])["error"] == code
    elif code is not None:  # the agent routes answer in OpenAI's shape
        assert error_code(lean[2]) == code
    for name in ("Content-Type", "WWW-Authenticate", "Retry-After"):
        assert lean[1].get(name) == through_flask[1].get(name)


def test_an_unexpected_failure_is_a_json_500_naming_only_the_exception_type(
    app, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import worker.http.document as document

    def broken(self, agent_id: str) -> str:
        raise RuntimeError("secret detail /etc/shadow")

    monkeypatch.setattr(document.ReportBuilder, "render", broken)
    with caplog.at_level(logging.INFO):
        status, _, body = call(app, "/gpu-check", BODY, Authorization=f"Bearer {TOKEN}")
    assert status == 500 and json.loads(body)["error"] == "internal_error"
    assert "secret detail" not in body.decode() + caplog.text
    assert "request_failed method=POST path=/gpu-check error=RuntimeError" in caplog.text
    assert "Traceback" not in caplog.text


def test_lean_answers_are_counted_and_timed_under_their_route(app) -> None:
    labels = {"route": "/gpu-check", "method": "POST"}

    def counts() -> tuple[float, float, float]:
        samples = parse(app.test_client().get("/metrics").get_data(as_text=True))
        ok, denied = (frozenset((labels | {"status": s}).items()) for s in ("200", "401"))
        return (
            samples.get(("agent_net_http_requests_total", ok), 0.0),
            samples.get(("agent_net_http_requests_total", denied), 0.0),
            samples.get(("agent_net_http_request_duration_seconds_count", ok), 0.0),
        )

    before = counts()
    for _ in range(3):
        call(app, "/gpu-check", BODY, **AUTH)
    call(app, "/gpu-check", BODY)  # 401
    after = counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 3]
