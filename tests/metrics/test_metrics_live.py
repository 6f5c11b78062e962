"""`GET /metrics` of the real worker (gunicorn, two processes) against the stand-ins."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

from tests.helpers.processes import WorkerProcess, http, post_json, wait_for
from tests.metrics.scrape import scrape, series, value
from tests.standins.nvml.build import FakeNvml
from tests.standins.nvml.values import H100, L4
from tests.standins.ollama_api import OllamaStandIn
from tests.standins.orchestrator import StandinOrchestrator

H100_LABELS = {"gpu": "0", "uuid": H100.uuid, "name": H100.name}
L4_LABELS = {"gpu": "1", "uuid": L4.uuid, "name": L4.name}
CODELLAMA = "codellama:34b-instruct-q4_k_m"


def _healthz_until_both_processes_answered(worker: WorkerProcess, at_least: int) -> int:
    """GET /healthz (a new connection each) until both gunicorn processes answered; count."""
    pids: Counter[int] = Counter()
    sent = 0
    while len(pids) < 2 or sent < at_least:
        assert sent < 200, f"one process answered every request: {pids}"
        status, _, body = http("GET", f"{worker.url}/healthz")
        assert status == 200
        pids[json.loads(body)["pid"]] += 1
        sent += 1
    return sent


def test_gpu_and_ollama_gauges_carry_the_standins_exact_values(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    samples = scrape(worker.url)

    assert value(samples, "agent_net_gpu_memory_used_bytes", **H100_LABELS) == 21474836480
    assert value(samples, "agent_net_gpu_memory_total_bytes", **H100_LABELS) == 85520809984
    assert value(samples, "agent_net_gpu_temperature_celsius", **H100_LABELS) == 41
    assert value(samples, "agent_net_gpu_power_watts", **H100_LABELS) == 118.5
    assert value(samples, "agent_net_gpu_power_limit_watts", **H100_LABELS) == 700.0
    assert value(samples, "agent_net_gpu_utilization_ratio", **H100_LABELS) == 0.37
    assert value(samples, "agent_net_gpu_memory_utilization_ratio", **H100_LABELS) == 0.12
    assert value(samples, "agent_net_gpu_up", **H100_LABELS) == 1
    assert value(samples, "agent_net_gpu_memory_used_bytes", **L4_LABELS) == 1073741824
    assert value(samples, "agent_net_gpu_temperature_celsius", **L4_LABELS) == 55
    assert value(samples, "agent_net_gpu_power_watts", **L4_LABELS) == 27.25
    assert len(series(samples, "agent_net_gpu_up")) == 2
    assert value(samples, "agent_net_gpu_driver_info", version="560.35.03") == 1

    assert value(samples, "agent_net_ollama_up") == 1
    assert value(samples, "agent_net_ollama_models") == 2
    assert value(samples, "agent_net_ollama_models_loaded") == 1
    assert value(samples, "agent_net_ollama_model_vram_bytes", model=CODELLAMA) == 20219745376
    assert len(series(samples, "agent_net_ollama_model_vram_bytes")) == 1  # loaded ones only
    assert value(samples, "agent_net_ollama_model_size_bytes", model="llama3.2:3b") == 2019393189
    assert value(samples, "agent_net_ollama_info", version="0.12.6") == 1

    for source in ("nvml", "ollama"):
        assert value(samples, "agent_net_source_up", source=source) == 1
        assert value(samples, "agent_net_source_status", source=source, status="ok") == 1
        assert value(samples, "agent_net_source_status", source=source, status="stale") == 0
        age = value(samples, "agent_net_source_age_seconds", source=source)
        assert age is not None and 0 <= age < 10
    # No orchestrator configured: no registration series at all.
    assert not [name for name, _ in samples if name.startswith("agent_net_registration")]


def test_request_counts_add_up_across_both_worker_processes(
    start_worker, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url})
    sent = _healthz_until_both_processes_answered(worker, at_least=30)
    for _ in range(7):
        assert post_json(f"{worker.url}/gpu-check", {"agent_id": "a"})[0] == 200
    for _ in range(3):
        assert post_json(f"{worker.url}/gpu-check", {})[0] == 400

    samples = scrape(worker.url)
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(samples, "agent_net_http_requests_total", **healthz) == sent
    assert value(samples, "agent_net_http_request_duration_seconds_count", **healthz) == sent
    assert (
        value(samples, "agent_net_http_request_duration_seconds_bucket", le="+Inf", **healthz)
        == sent
    )
    duration_sum = value(samples, "agent_net_http_request_duration_seconds_sum", **healthz)
    assert duration_sum is not None and duration_sum > 0
    job = {"route": "/gpu-check", "method": "POST"}
    assert value(samples, "agent_net_http_requests_total", status="200", **job) == 7
    assert value(samples, "agent_net_http_requests_total", status="400", **job) == 3

    # The scrape itself is counted too, by the next scrape.
    again = scrape(worker.url)
    metrics_route = {"route": "/metrics", "method": "GET", "status": "200"}
    assert value(again, "agent_net_http_requests_total", **metrics_route) == 1


def test_route_labels_stay_bounded_for_unknown_paths_and_methods(
    start_worker, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url})
    for index in range(5):
        assert http("GET", f"{worker.url}/scan/{index}/../admin?x={index}")[0] == 404
    assert http("POST", f"{worker.url}/healthz", b"{}")[0] == 405
    assert http("BREW", f"{worker.url}/healthz")[0] == 405
    assert http("GET", f"{worker.url}/gpu-check")[0] == 405

    samples = scrape(worker.url)
    requests = series(samples, "agent_net_http_requests_total")
    routes = {dict(labels)["route"] for labels in requests}
    assert routes == {"unmatched", "/healthz", "/gpu-check", "/readyz"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(samples, "agent_net_http_requests_total", **unmatched) == 5
    assert (
        value(
            samples, "agent_net_http_requests_total", route="/healthz", method="other", status="405"
        )
        == 1
    )
    assert (
        value(
            samples, "agent_net_http_requests_total", route="/gpu-check", method="GET", status="405"
        )
        == 1
    )


def test_counts_survive_a_worker_process_being_killed_and_replaced(
    start_worker, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url})
    sent = _healthz_until_both_processes_answered(worker, at_least=20)
    before = {json.loads(http("GET", f"{worker.url}/healthz")[2])["pid"] for _ in range(20)}
    sent += 20
    victim = next(iter(before))
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        nonlocal sent
        pid = json.loads(http("GET", f"{worker.url}/healthz")[2])["pid"]
        sent += 1
        return pid not in before

    wait_for(replaced, 20, interval=0.05, what="a replacement worker process answering")
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(scrape(worker.url), "agent_net_http_requests_total", **healthz) == sent


def test_metrics_directory_is_emptied_at_startup(
    tmp_path: Path, no_nvml_dir: Path, ollama: OllamaStandIn
) -> None:
    runtime = tmp_path / "runtime"
    env = {"OLLAMA_HOST": ollama.url}
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    for run in range(2):
        worker = WorkerProcess(env, tmp_path / f"worker-{run}.log", no_nvml_dir)
        worker.env["AGENT_NET_RUNTIME_DIR"] = str(runtime)
        try:
            worker.start()
            for _ in range(4):
                assert http("GET", f"{worker.url}/healthz")[0] == 200
            # Each run counts only its own requests, not the last run's leftover files.
            assert value(scrape(worker.url), "agent_net_http_requests_total", **healthz) == 4
        finally:
            worker.stop()
        assert list((runtime / "prometheus").glob("counter_*.db"))


def test_unsupported_and_lost_readings_are_left_out_not_zero(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    fake_nvml.set_scenario("no_power")
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    samples = scrape(worker.url)
    rtx = {"gpu": "0", "uuid": H100.uuid, "name": "NVIDIA GeForce RTX 4090"}
    assert value(samples, "agent_net_gpu_temperature_celsius", **rtx) == 41
    assert value(samples, "agent_net_gpu_up", **rtx) == 1
    assert series(samples, "agent_net_gpu_power_watts") == {}
    assert series(samples, "agent_net_gpu_power_limit_watts") == {}

    fake_nvml.set_scenario("gpu_lost")
    lost = {"gpu": "1", "uuid": "", "name": ""}
    samples = wait_for(
        lambda: (s := scrape(worker.url)) and value(s, "agent_net_gpu_up", **lost) == 0 and s,
        10,
        what="GPU 1 lost in /metrics",
    )
    assert value(samples, "agent_net_gpu_up", **H100_LABELS) == 1
    assert value(samples, "agent_net_gpu_memory_used_bytes", **H100_LABELS) == 21474836480
    used = series(samples, "agent_net_gpu_memory_used_bytes")
    assert [dict(labels)["gpu"] for labels in used] == ["0"]


def test_unreachable_sources_report_down_without_readings(start_worker) -> None:
    # No NVIDIA library and nothing on Ollama's port: both sources unavailable, never read.
    worker = start_worker({"OLLAMA_HOST": "http://127.0.0.1:9"})
    samples = scrape(worker.url)
    assert value(samples, "agent_net_ollama_up") == 0
    for source in ("nvml", "ollama"):
        assert value(samples, "agent_net_source_up", source=source) == 0
        assert value(samples, "agent_net_source_status", source=source, status="unavailable") == 1
        assert value(samples, "agent_net_source_age_seconds", source=source) is None
    assert not [
        name for name, _ in samples if name.startswith(("agent_net_gpu", "agent_net_ollama_model"))
    ]


def test_registration_state_per_orchestrator(start_worker, ollama: OllamaStandIn) -> None:
    with StandinOrchestrator("orch-secret") as good:
        dead = "http://127.0.0.1:9"
        worker = start_worker(
            {
                "OLLAMA_HOST": ollama.url,
                "ORCH_URL": f"{good.url},{dead}",
                "ORCH_SECRET": "orch-secret",
                "CAPABILITY_NAME": "agent-net,agent-net-b",
                "CAPABILITY_URL": "http://127.0.0.1:9876",
            }
        )
        ok = {"orchestrator": good.url, "capability": "agent-net"}
        failing = {"orchestrator": dead, "capability": "agent-net-b"}

        def both_attempted():
            samples = scrape(worker.url)
            registered = value(samples, "agent_net_registration_registered", **ok)
            failures = value(samples, "agent_net_registration_consecutive_failures", **failing)
            return registered == 1 and failures and samples

        samples = wait_for(both_attempted, 20, what="registration state in /metrics")
        success = value(samples, "agent_net_registration_last_success_timestamp_seconds", **ok)
        assert success is not None and success > 1.7e9
        assert value(samples, "agent_net_registration_consecutive_failures", **ok) == 0
        assert value(samples, "agent_net_registration_registered", **failing) == 0
        assert (
            value(samples, "agent_net_registration_last_success_timestamp_seconds", **failing)
            is None
        )
        attempt = value(samples, "agent_net_registration_last_attempt_timestamp_seconds", **failing)
        assert attempt is not None and attempt > 1.7e9
        text = http("GET", f"{worker.url}/metrics")[2].decode()
        assert "orch-secret" not in text
        worker.stop()


def test_openmetrics_is_served_when_asked_for(start_worker, ollama: OllamaStandIn) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url})

    def scrape_openmetrics() -> tuple[int, dict[str, str], bytes]:
        return http(
            "GET",
            f"{worker.url}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        )

    # On a loaded machine a reading can be briefly stale: wait for Ollama to show as up.
    _status, headers, body = wait_for(
        lambda: (
            (answer := scrape_openmetrics())[0] == 200
            and "agent_net_ollama_up 1.0" in answer[2].decode()
            and answer
        ),
        15,
        what="Ollama up in the OpenMetrics scrape",
    )
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.decode().endswith("# EOF\n")
