"""worker/http/errors.py: the project's `{"error", "detail"}` shape, and OpenAI's
`{"error": {message, type, param, code}}` on `/v1/...` and on requests marked for it."""

from __future__ import annotations

import json
import logging

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge

from tests.helpers.openai_errors import openai_error
from worker.http.errors import (
    OPENAI_ERRORS_KEY,
    ApiError,
    answer_error,
    openai_error_response,
    wants_openai_errors,
)

LIMIT = 1024


def environ(path: str, openai: bool = False) -> dict:
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": path}
    if openai:
        env[OPENAI_ERRORS_KEY] = True
    return env


@pytest.mark.parametrize(
    ("path", "marked", "wanted"),
    [
        ("/v1/chat/completions", False, True),
        ("/v1/models/x", False, True),
        ("/v1", False, False),  # not under /v1/
        ("/gpu-check", False, False),
        ("/my-agent", True, True),  # an agent route marks its requests
        ("/v1x/chat", False, False),
    ],
)
def test_which_requests_get_openai_errors(path: str, marked: bool, wanted: bool) -> None:
    assert wants_openai_errors(environ(path, marked)) is wanted


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "invalid_request_error"),
        (413, "invalid_request_error"),
        (429, "rate_limit_error"),
        (418, "invalid_request_error"),  # any other 4xx
        (500, "server_error"),
        (503, "server_error"),
        (504, "server_error"),
    ],
)
def test_the_openai_type_follows_the_status(status: int, kind: str) -> None:
    response = openai_error_response(status, "some_code", "what went wrong", param="tools")
    error = openai_error(response.get_data())
    assert response.status_code == status and response.mimetype == "application/json"
    assert error == {
        "message": "what went wrong",
        "type": kind,
        "param": "tools",
        "code": "some_code",
    }


def test_an_api_error_keeps_its_code_param_and_headers_in_either_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ApiError(
        400, "invalid_tools", "tools[3].function.name is missing", {"X-A": "1"}, param="tools"
    )
    with caplog.at_level(logging.INFO, logger="agent_net.http"):
        openai = answer_error(error, environ("/v1/chat/completions"), "/v1/chat/completions", LIMIT)
        project = answer_error(error, environ("/gpu-check"), "/gpu-check", LIMIT)
    assert openai.status_code == project.status_code == 400
    assert openai.headers["X-A"] == project.headers["X-A"] == "1"
    assert openai_error(openai.get_data()) == {
        "message": "tools[3].function.name is missing",
        "type": "invalid_request_error",
        "param": "tools",
        "code": "invalid_tools",
    }
    assert json.loads(project.get_data()) == {
        "error": "invalid_tools",
        "detail": "tools[3].function.name is missing",
    }
    assert caplog.text.count("status=400 error=invalid_tools") == 2


@pytest.mark.parametrize(
    ("error", "status", "code", "named"),
    [
        (NotFound(), 404, "not_found", "no route /v1/nope"),
        (MethodNotAllowed(["POST"]), 405, "method_not_allowed", "GET is not allowed"),
        (RequestEntityTooLarge(), 413, "body_too_large", f"larger than {LIMIT} bytes"),
    ],
)
def test_werkzeug_errors_take_openai_shape_on_v1(
    error: Exception, status: int, code: str, named: str
) -> None:
    env = environ("/v1/nope")
    env["REQUEST_METHOD"] = "GET"
    response = answer_error(error, env, "/v1/nope", LIMIT)
    got = openai_error(response.get_data())
    assert (response.status_code, got["code"], got["param"]) == (status, code, None)
    assert named in got["message"]
    if status == 405:
        assert response.headers["Allow"] == "POST"


def test_an_unexpected_failure_is_a_500_server_error_naming_nothing_inside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="agent_net.http"):
        response = answer_error(
            RuntimeError("secret /etc/shadow"), environ("/agent", openai=True), "/agent", LIMIT
        )
    error = openai_error(response.get_data())
    assert response.status_code == 500
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert "secret" not in response.get_data(as_text=True) + caplog.text
    assert "error=RuntimeError" in caplog.text
