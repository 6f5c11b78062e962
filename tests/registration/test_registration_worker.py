"""The real worker (`python -m worker`) behind stand-in orchestrator processes, end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.helpers.processes import (
    WorkerProcess,
    capacity_slots_held,
    free_port,
    http,
    wait_for,
)
from tests.registration.support import (
    ORCH_SECRET,
    StandinProcess,
    insecure,
    leaked,
    submit_job,
)

TOKEN = "worker-token-abc"
StartStandin = Callable[..., StandinProcess]
StartWorker = Callable[..., WorkerProcess]


def worker_env(orchestrators: list[StandinProcess], **extra: str) -> dict[str, str]:
    port = free_port()
    return {
        "WORKER_PORT": str(port),
        "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        "ORCH_URL": ",".join(orch.url for orch in orchestrators),
        "ORCH_SECRET": ORCH_SECRET,
        "WORKER_TOKEN": TOKEN,
        "REGISTER_INTERVAL_SECONDS": "1",
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nothing listens: Ollama is down
        **extra,
    }


def registered(orch: StandinProcess, name: str = "agent-net") -> dict[str, Any] | None:
    return orch.capabilities().get(name)


def readyz_registration(worker: WorkerProcess) -> list[dict[str, Any]]:
    _, _, body = http("GET", f"{worker.url}/readyz")
    return json.loads(body)["registration"]


def test_register_restart_reregister_stop_unregister(
    standin_process: StartStandin, start_worker: StartWorker
) -> None:
    """The README story: watch it register, restart the orchestrator, stop the worker."""
    orch = standin_process(tls=True)
    worker = start_worker(worker_env([orch]))
    entry = wait_for(lambda: registered(orch), 10, what="registration")
    assert entry["url"] == worker.url and entry["has_token"] is True
    states = wait_for(
        lambda: (lambda s: s if len(s) == 2 else None)(
            [s for s in readyz_registration(worker) if s["registered"]]
        ),
        5,
    )
    # The GPU-check capability, then the default agent, each its own (orchestrator, capability).
    assert [(s["orchestrator"], s["capability"]) for s in states] == [
        (orch.url, "agent-net"),
        (orch.url, "agent-net-llm"),
    ]

    stopped_at = time.time()
    orch.restart()
    restarted = time.monotonic()
    entry = wait_for(lambda: registered(orch), 5, what="registration after the restart")
    assert entry["registered_at"] > stopped_at
    assert time.monotonic() - restarted <= 2.5  # the interval is 1 s

    assert worker.stop() == 0
    assert orch.capabilities() == {}
    assert orch.counts()["unregister"] == 2  # agent-net and agent-net-llm
    logs = worker.logs()
    assert logs.count("registrar_started") == 1  # one registrar for the two gunicorn workers
    assert "unregistered orchestrator=" in logs
    assert leaked(logs, {"secret": ORCH_SECRET, "token": TOKEN}) == []


def test_jobs_through_two_orchestrators_reach_the_worker_with_the_token(
    standin_process: StartStandin, start_worker: StartWorker
) -> None:
    nyc, tokyo = standin_process(tls=True), standin_process()
    worker = start_worker(worker_env([nyc, tokyo], CAPABILITY_NAME="agent-net-nyc,agent-net-tokyo"))
    wait_for(
        lambda: registered(nyc, "agent-net-nyc") and registered(tokyo, "agent-net-tokyo"),
        10,
        what="both registrations",
    )

    response = submit_job(
        nyc.url, "gpu-check", {"agent_id": "via-route"}, capability="agent-net-nyc"
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    document = response.json()
    assert document["agent_id"] == "via-route" and "gpu_count" in document
    # The SDK uses the capability name as the route: the worker serves it as /gpu-check.
    response = submit_job(tokyo.url, "agent-net-tokyo", {"agent_id": "via-name"})
    assert response.status_code == 200 and response.json()["agent_id"] == "via-name"

    # Without the orchestrator's Bearer token, the worker refuses the job itself.
    status, _, body = http(
        "POST",
        f"{worker.url}/gpu-check",
        b'{"agent_id": "x"}',
        {"Content-Type": "application/json"},
    )
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    _, _, readyz = http("GET", f"{worker.url}/readyz")
    assert leaked(readyz.decode() + worker.logs(), {"secret": ORCH_SECRET, "token": TOKEN}) == []


def test_a_stale_token_makes_the_orchestrator_forget_and_registration_heals(
    standin_process: StartStandin, start_worker: StartWorker
) -> None:
    orch = standin_process()
    worker = start_worker(worker_env([orch]))
    entry = wait_for(lambda: registered(orch), 10, what="registration")

    def stale_job_refused() -> bool:
        # Someone registered the name with another token: the worker answers 401 and the
        # orchestrator drops the capability (the registrar may refresh in between: retry).
        insecure(
            "POST",
            f"{orch.url}/capability/register",
            headers={"Authorization": ORCH_SECRET},
            data=json.dumps({**entry, "token": "stale"}),
        )
        response = submit_job(orch.url, "gpu-check", {"agent_id": "x"}, capability="agent-net")
        return response.status_code == 500 and "worker auth token failed" in response.text

    wait_for(stale_job_refused, 10, interval=0.1, what="a 401 from the worker")
    assert any(r["reason"] == "worker_401" for r in orch.view()["removed"])
    wait_for(lambda: registered(orch), 3, what="registration again after the 401")
    response = submit_job(orch.url, "gpu-check", {"agent_id": "healed"}, capability="agent-net")
    assert response.status_code == 200 and response.json()["agent_id"] == "healed"
    assert "request_rejected method=POST path=/gpu-check status=401" in worker.logs()


SLOW_BODY = b'{"agent_id": "slow"}'


def test_capacity_overflow_is_a_503_through_the_orchestrator(
    standin_process: StartStandin, start_worker: StartWorker
) -> None:
    orch = standin_process()
    worker = start_worker(worker_env([orch], CAPABILITY_CAPACITY="1"))
    wait_for(lambda: registered(orch), 10, what="registration")
    assert registered(orch)["capacity"] == 1
    with capacity_slots_held(worker, 1):  # the only slot: a job running elsewhere

        def overflow() -> list[Any]:
            response = submit_job(orch.url, "gpu-check", {"agent_id": "x"}, capability="agent-net")
            return [response] if response.status_code == 503 else []

        started = time.monotonic()
        [response] = wait_for(overflow, 10, what="a 503 while the only slot is held")
        assert time.monotonic() - started < 5
        # go-livepeer passes the status and body on through http.Error (text/plain).
        assert json.loads(response.text)["error"] == "at_capacity"
        assert registered(orch) is not None  # a 503 does not make the orchestrator forget

    response = submit_job(orch.url, "gpu-check", {"agent_id": "after"}, capability="agent-net")
    assert response.status_code == 200 and response.json()["agent_id"] == "after"
