"""Job routes by capability name, the bearer token, and the capacity limit, on the real worker."""

from __future__ import annotations

import json
import socket

from tests.helpers.processes import capacity_slots_held, http, post_json
from tests.standins.ollama_api import OllamaStandIn

TOKEN = "job-token-7c1f"


def test_every_capability_name_is_an_alias_of_gpu_check(start_worker, ollama) -> None:
    worker = start_worker(
        {
            "OLLAMA_HOST": ollama.url,
            "CAPABILITY_NAME": "agent-net-nyc,agent-net-tokyo",
            "ORCH_URL": "http://127.0.0.1:9,http://127.0.0.1:10",
            "ORCH_SECRET": "s",
        }
    )
    for route in ("gpu-check", "agent-net", "agent-net-nyc", "agent-net-tokyo"):
        status, body = worker.check("x", route=route)
        assert status == 200 and body["agent_id"] == "x", route
    assert worker.check("x", route="agent-net-paris")[0] == 404


def test_token_is_required_on_job_routes_only(start_worker, ollama: OllamaStandIn) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url, "WORKER_TOKEN": TOKEN})
    body = {"agent_id": "demo"}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        for route in ("gpu-check", "agent-net"):
            status, document = post_json(f"{worker.url}/{route}", body, headers)
            assert status == 401, headers
            assert document == {
                "error": "unauthorized",
                "detail": "a valid Authorization: Bearer token is required",
            }
    status, document = post_json(
        f"{worker.url}/gpu-check", body, {"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200 and document["agent_id"] == "demo"
    assert http("GET", f"{worker.url}/healthz")[0] == 200
    assert http("GET", f"{worker.url}/readyz")[0] == 200
    assert TOKEN not in worker.logs()
    assert "status=401 error=unauthorized" in worker.logs()


def _open_slow_job(port: int) -> socket.socket:
    """A job whose headers arrived and whose body is still on its way."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = b'{"agent_id": "slow"}'
    sock.sendall(
        b"POST /gpu-check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body[:5])
    )
    return sock


def _finish(sock: socket.socket) -> tuple[int, dict]:
    sock.sendall(b'{"agent_id": "slow"}'[5:])
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_capacity_overflow_answers_503_at_once_and_frees_up(start_worker, ollama) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url, "CAPABILITY_CAPACITY": "2"})
    with capacity_slots_held(worker, 2):
        status, document = worker.check()
        assert status == 503
        assert document["error"] == "at_capacity"
        assert "capacity" in document["detail"]
        _, headers, _ = http("POST", f"{worker.url}/agent-net", b'{"agent_id": "x"}')
        assert headers["Retry-After"] == "1"
        assert http("GET", f"{worker.url}/healthz")[0] == 200  # health is not a job
    assert worker.check()[0] == 200
    assert "status=503 error=at_capacity" in worker.logs()


def test_a_body_still_arriving_holds_no_capacity_slot(start_worker, ollama) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url, "CAPABILITY_CAPACITY": "2"})
    holders = [_open_slow_job(worker.port) for _ in range(3)]
    for _ in range(4):
        status, document = worker.check()
        assert status == 200, document
    for sock in holders:
        status, document = _finish(sock)
        assert status == 200 and document["agent_id"] == "slow"
