"""Job routes by capability name, the bearer token, and the capacity limit, on the real worker."""

from __future__ import annotations

import json

from tests.helpers.processes import hold_every_slot, http, post_json
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


def test_capacity_overflow_answers_503_at_once_and_frees_up(start_worker, ollama) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "CAPABILITY_CAPACITY": "2", "WORKER_THREADS": "8"}
    )
    holders = hold_every_slot(worker, 2)
    status, document = worker.check()
    assert status == 503
    assert document["error"] == "at_capacity"
    assert "capacity" in document["detail"]
    _, headers, _ = http("POST", f"{worker.url}/agent-net", b'{"agent_id": "x"}')
    assert headers["Retry-After"] == "1"
    assert http("GET", f"{worker.url}/healthz")[0] == 200  # health is not a job
    for holder in holders:
        status, body = holder.release()
        assert status == 200 and json.loads(body)["agent_id"] == "slow"
    assert worker.check()[0] == 200
    assert "status=503 error=at_capacity" in worker.logs()
