"""Faults under load, against the real worker (gunicorn, two processes), loopback only.

Each test is bounded (at most 200 load requests, about 20 s) and proves the same three
things: the worker keeps answering, never answers 500, and recovers when the fault ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

from tests.faults.support import (
    Load,
    OllamaProcess,
    SilentOrchestrator,
    SlowBodyClient,
    get,
    gpu_check,
)
from tests.helpers.processes import WorkerProcess, free_port, http, wait_for
from tests.metrics.scrape import scrape, series, value
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn
from tests.standins.orchestrator import StandinOrchestrator

SECRET = "fault-suite-orch-secret"


def _document(worker: WorkerProcess) -> dict:
    status, body = worker.check()
    assert status == 200
    return body


def _settled(check, what: str) -> None:
    """Wait until `check` holds for 8 requests in a row (new connections, either process)."""
    wait_for(lambda: all(check() for _ in range(8)), 10, what=what)


def _no_500_anywhere(worker: WorkerProcess) -> None:
    """The worker's own request counters (every process) hold no 5xx, and no failure logged."""
    requests = series(scrape(worker.url), "agent_net_http_requests_total")
    assert requests, "no requests counted"
    assert not [dict(labels) for labels in requests if dict(labels)["status"].startswith("5")]
    logs = worker.logs()
    assert "request_failed" not in logs
    assert "Traceback" not in logs


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ollama_restarting_during_load(start_worker, fake_nvml: FakeNvml, tmp_path: Path) -> None:
    ollama = OllamaProcess(free_port(), tmp_path / "ollama.log").start()
    try:
        worker = start_worker(
            {"OLLAMA_HOST": ollama.url, "OLLAMA_TIMEOUT_SECONDS": "0.5"}, nvml=fake_nvml
        )
        assert _document(worker)["status"] == "success"
        with Load(gpu_check(worker.url), threads=2, pause=0.03, limit=200) as load:
            load.wait_requests("before", 10)
            ollama.kill()
            load.phase = "down"
            wait_for(
                lambda: _document(worker)["sources"]["ollama"]["status"] == "unavailable",
                10,
                what="Ollama reported unavailable",
            )
            load.wait_requests("down", 20)
            ollama = OllamaProcess(ollama.port, tmp_path / "ollama-2.log").start()
            load.phase = "restarted"
            _settled(lambda: _document(worker)["status"] == "success", "Ollama back as ok")
            load.wait_requests("restarted", 10)
        assert load.errors == []
        assert load.status_set() == {200}
        assert load.count("down") >= 20
        _no_500_anywhere(worker)
        _settled(lambda: value(scrape(worker.url), "agent_net_ollama_up") == 1, "ollama up")
        assert _document(worker)["total_models"] == 2
        logs = worker.logs()
        # Logged when it changes, once per container (one sampler), not once per sample.
        assert logs.count("source_unavailable source=ollama") == 1
        assert logs.count("source_recovered source=ollama") == 1
    finally:
        ollama.kill()


def test_nvml_reporting_a_lost_gpu_during_load(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    with Load(gpu_check(worker.url), threads=2, pause=0.03, limit=200) as load:
        load.wait_requests("before", 10)
        fake_nvml.set_scenario("gpu_lost")
        load.phase = "gpu_lost"
        body = wait_for(
            lambda: (doc := _document(worker))["gpus"][1]["status"] == "error" and doc,
            10,
            what="GPU 1 reported lost",
        )
        assert body["status"] == "degraded" and body["gpus"][0]["status"] == "ok"
        load.wait_requests("gpu_lost", 10)
        fake_nvml.set_scenario("all_lost")
        load.phase = "all_lost"

        def all_lost_in_metrics() -> bool:
            samples = scrape(worker.url)
            up = series(samples, "agent_net_gpu_up")
            used = series(samples, "agent_net_gpu_memory_used_bytes")
            return len(up) == 2 and set(up.values()) == {0.0} and used == {}

        _settled(all_lost_in_metrics, "every GPU lost, in /metrics")
        load.wait_requests("all_lost", 10)
        fake_nvml.set_scenario("two_gpus")
        load.phase = "recovered"
        _settled(lambda: _document(worker)["status"] == "success", "GPUs back")
        load.wait_requests("recovered", 10)
    assert load.errors == []
    assert load.status_set() == {200}
    _no_500_anywhere(worker)
    samples = scrape(worker.url)
    assert (
        value(
            samples,
            "agent_net_gpu_memory_used_bytes",
            gpu="0",
            uuid=("GPU-00000000-1111-2222-3333-444444444444"),
            name="NVIDIA H100 80GB HBM3",
        )
        == 21474836480
    )


def _orchestrated_worker(start_worker, ollama: OllamaStandIn, orchestrator_url: str):
    port = free_port()
    return start_worker(
        {
            "OLLAMA_HOST": ollama.url,
            "WORKER_PORT": str(port),
            "ORCH_URL": orchestrator_url,
            "ORCH_SECRET": SECRET,
            "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        }
    )


def _registration(worker: WorkerProcess, capability: str = "agent-net") -> dict:
    """The GPU-check capability's entry (the default agent has its own beside it)."""
    entries = json.loads(http("GET", f"{worker.url}/readyz")[2])["registration"]
    (entry,) = [entry for entry in entries if entry["capability"] == capability]
    return entry


def test_orchestrator_that_accepts_but_never_answers_then_recovers(
    start_worker, ollama: OllamaStandIn
) -> None:
    silent = SilentOrchestrator().__enter__()
    try:
        worker = _orchestrated_worker(start_worker, ollama, silent.url)
        wait_for(lambda: silent.accepted >= 1, 10, what="a registration attempt in flight")
        readyz = Load(get(f"{worker.url}/readyz"), threads=1, pause=0.05).__enter__()
        jobs = Load(gpu_check(worker.url), threads=2, pause=0.05).__enter__()
        # The registrar's read timeout (5 s) ends the attempt; the failure is recorded.
        failed = wait_for(
            lambda: (entry := _registration(worker))["last_error"] and entry,
            15,
            what="the silent orchestrator's attempt to fail",
        )
        jobs.phase = readyz.phase = "answering"
        silent.close()
        with StandinOrchestrator(SECRET, port=silent.port) as orchestrator:
            wait_for(
                lambda: orchestrator.store.get("agent-net") is not None,
                15,
                what="registration once the orchestrator answers",
            )
            labels = {"orchestrator": silent.url, "capability": "agent-net"}
            wait_for(
                lambda: (
                    value(scrape(worker.url), "agent_net_registration_registered", **labels) == 1
                ),
                10,
                what="registered in /metrics",
            )
            readyz.stop()
            jobs.stop()
            _no_500_anywhere(worker)
            assert worker.stop() == 0  # unregisters from the orchestrator that now answers
        assert failed["registered"] is False and "Timeout" in failed["last_error"]
        for clients in (readyz, jobs):
            assert clients.errors == []
            assert clients.status_set() == {200}
            assert clients.count("before") >= 10
        logs = worker.logs()
        assert re.search(
            r"registration_failed orchestrator=\S+ capability=agent-net .*Timeout", logs
        )
        assert "registration_ok" in logs and "unregistered" in logs
        assert SECRET not in logs
    finally:
        silent.close()


def test_shutdown_is_prompt_while_a_registration_hangs(start_worker, ollama: OllamaStandIn) -> None:
    with SilentOrchestrator() as silent:
        worker = _orchestrated_worker(start_worker, ollama, silent.url)
        wait_for(lambda: silent.accepted >= 1, 10, what="a registration attempt in flight")
        with Load(gpu_check(worker.url), threads=2, pause=0.02, limit=100) as load:
            load.wait_requests("before", 20)
        assert load.errors == [] and load.status_set() == {200}
        _no_500_anywhere(worker)
        registrar_pid = int(re.search(r"registrar_started pid=(\d+)", worker.logs()).group(1))
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        # Inside Docker's 10 s stop grace period, unregistering included.
        assert worker.process.wait(9) == 0
        assert _process_gone(registrar_pid)
        assert "registrar_stopped" in worker.logs()


def test_a_client_sending_its_body_slowly(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    slow_valid = SlowBodyClient(worker.port, "/gpu-check", b'{"agent_id": "slow-agent"}').start()
    slow_invalid = SlowBodyClient(worker.port, "/gpu-check", b'{"agent_id": "x",,}').start()
    abandoned = SlowBodyClient(
        worker.port, "/gpu-check", b'{"agent_id": "gone-agent"}', send_bytes=10
    ).start()
    with Load(gpu_check(worker.url), threads=2, pause=0.05, limit=200) as load:
        load.wait_requests("before", 30)
        assert slow_valid.in_flight and slow_invalid.in_flight  # answered meanwhile
        slow_valid.join()
        slow_invalid.join()
        abandoned.join()
        load.phase = "after"
        load.wait_requests("after", 10)
    assert load.errors == []
    assert load.status_set() == {200}
    assert slow_valid.error is None and slow_valid.status == 200
    assert slow_valid.document["agent_id"] == "slow-agent"
    assert slow_valid.document["status"] == "success"
    assert slow_invalid.status == 400 and slow_invalid.document["error"] == "invalid_json"
    assert abandoned.error is None and abandoned.status is None
    _no_500_anywhere(worker)
    # Each rejected request (the invalid body, the abandoned one) is logged exactly once.
    assert worker.logs().count("request_rejected method=POST path=/gpu-check status=400") == 2
