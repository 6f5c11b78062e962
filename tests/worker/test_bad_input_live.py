"""Bad input against the real worker: JSON 4xx with a stable `error` code, never a traceback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import WorkerProcess, http

TRACEBACK_MARKERS = ("Traceback", 'File "', "Error:")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    empty = tmp_path_factory.mktemp("no-nvml")
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    process = WorkerProcess({"OLLAMA_HOST": "http://127.0.0.1:9"}, log, empty).start()
    yield process
    process.stop()
    assert "Traceback" not in process.logs()


def post(worker: WorkerProcess, body: bytes, path: str = "/gpu-check", **headers: str):
    status, response_headers, raw = http("POST", worker.url + path, body, headers)
    return status, response_headers, raw


def assert_json_error(raw: bytes, headers: dict[str, str], code: str) -> dict:
    assert headers["Content-Type"] == "application/json"
    document = json.loads(raw)
    assert document["error"] == code
    assert isinstance(document["detail"], str) and document["detail"]
    assert not any(marker in document["detail"] for marker in TRACEBACK_MARKERS)
    return document


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'"agent"', "invalid_json"),
        (b"null", "invalid_json"),
        (b"{bad", "invalid_json"),
        (b"\xff\xfe{", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "body_too_large"),
        (b"[" * 30_000 + b"]" * 30_000, "invalid_json"),  # RecursionError in json.loads
        (b"{}", "missing_agent_id"),
        (b'{"agent_id": ""}', "missing_agent_id"),
        (b'{"agent_id": null}', "missing_agent_id"),
        (b'{"agent_id": 42}', "invalid_agent_id"),
        (b'{"agent_id": ["a"]}', "invalid_agent_id"),
        (json.dumps({"agent_id": "a" * 129}).encode(), "invalid_agent_id"),
        (b'{"agent_id": "tab\\there"}', "invalid_agent_id"),
        (b'{"agent_id": "nul\\u0000"}', "invalid_agent_id"),
        (b'{"agent_id": "del\\u007f"}', "invalid_agent_id"),
    ],
)
def test_bad_bodies_get_a_json_400(worker: WorkerProcess, body: bytes, code: str) -> None:
    status, headers, raw = post(worker, body, **{"Content-Type": "application/json"})
    assert status == (413 if code == "body_too_large" else 400)
    assert_json_error(raw, headers, code)


def test_longest_allowed_agent_id_and_unicode_are_accepted(worker: WorkerProcess) -> None:
    for agent_id in ("a" * 128, "agent-ñ-東京"):
        status, _, raw = post(worker, json.dumps({"agent_id": agent_id}).encode())
        assert status == 200
        assert json.loads(raw)["agent_id"] == agent_id


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_json_object_is_accepted_whatever_the_content_type(
    worker: WorkerProcess, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _, raw = post(worker, b'{"agent_id": "demo"}', **headers)
    assert status == 200
    assert json.loads(raw)["agent_id"] == "demo"


def test_body_over_64_kib_is_413(worker: WorkerProcess) -> None:
    body = json.dumps({"agent_id": "demo", "pad": "x" * (64 * 1024)}).encode()
    status, headers, raw = post(worker, body)
    assert status == 413
    document = assert_json_error(raw, headers, "body_too_large")
    assert "65536" in document["detail"]


def test_body_of_exactly_64_kib_is_accepted(worker: WorkerProcess) -> None:
    prefix = b'{"agent_id": "demo", "pad": "'
    body = prefix + b"x" * (64 * 1024 - len(prefix) - 2) + b'"}'
    assert len(body) == 64 * 1024
    assert post(worker, body)[0] == 200


def raw_exchange(worker: WorkerProcess, payload: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_chunked_body_over_the_limit_is_413(worker: WorkerProcess) -> None:
    chunk = b"x" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10))
    request = (
        b"POST /gpu-check HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    status, body = raw_exchange(worker, request)
    assert status == 413
    assert json.loads(body)["error"] == "body_too_large"


def test_malformed_chunked_body_is_a_json_400(worker: WorkerProcess) -> None:
    request = (
        b"POST /gpu-check HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    status, body = raw_exchange(worker, request)
    assert 400 <= status < 500
    if body:  # gunicorn may reject the framing itself before the app runs
        assert b"Traceback" not in body


def test_wrong_method_is_405_with_allow(worker: WorkerProcess) -> None:
    for method in ("GET", "PUT", "DELETE"):
        status, headers, raw = http(method, f"{worker.url}/gpu-check")
        assert status == 405
        assert_json_error(raw, headers, "method_not_allowed")
        assert "POST" in headers["Allow"]


def test_unknown_path_is_404(worker: WorkerProcess) -> None:
    for method, path in (("POST", "/gpu-chek"), ("GET", "/"), ("POST", "/agent-net/extra")):
        status, headers, raw = http(method, worker.url + path, b"{}")
        assert status == 404
        assert_json_error(raw, headers, "not_found")


def test_the_worker_still_answers_after_all_of_that(worker: WorkerProcess) -> None:
    status, _, raw = post(worker, b'{"agent_id": "after"}')
    assert status == 200
    assert json.loads(raw)["status"] == "degraded"


def test_log_has_one_line_per_rejection_and_no_traceback(worker: WorkerProcess) -> None:
    post(worker, b'{"agent_id": 42}', "/agent-net")
    logs = worker.logs()
    assert "request_rejected method=POST path=/agent-net status=400 error=invalid_agent_id" in logs
    assert "Traceback" not in logs
    assert Path(worker.log_path).exists()


def test_a_client_hanging_up_mid_body_is_unreadable_body_not_invalid_json(
    worker: WorkerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as sock:
        sock.sendall(
            b'POST /gpu-check HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n{"agent_id": "cut'
        )
        sock.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert int(head.split()[1]) == 400
    document = json.loads(body)
    assert document == {
        "error": "unreadable_body",
        "detail": "the request body ended after 17 of 40 bytes",
    }
