"""The real worker (python -m worker, gunicorn) against the NVML and Ollama stand-ins."""

from __future__ import annotations

import time

from tests.helpers.processes import post_json, wait_for
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn

SEED_FIELDS = {
    "status",
    "agent_id",
    "model_name",
    "vram_usage_mb",
    "total_models",
    "timestamp",
    "gpu_count",
}
MIB = 1024 * 1024


def settle(worker, predicate, what: str, timeout: float = 10.0) -> None:
    """Wait until several answers in a row satisfy `predicate` (the answers come from
    several gunicorn processes, which read the one sampler's readings file)."""
    wait_for(lambda: all(predicate(worker.check()[1]) for _ in range(6)), timeout, what=what)


def test_two_gpus_and_ollama_ok_is_success_with_every_reading(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    before = time.time()
    status, body = worker.check("demo-agent")

    assert status == 200
    assert body.keys() >= SEED_FIELDS
    assert body["status"] == "success", body["reasons"]
    assert body["agent_id"] == "demo-agent"
    assert body["model_name"] == "codellama:34b-instruct-q4_k_m"
    assert body["gpu_count"] == 2
    assert body["vram_usage_mb"] == (21474836480 + 1073741824) / MIB == 21504.0
    assert body["total_models"] == 2
    assert before <= body["timestamp"] <= time.time()
    assert body["reasons"] == []
    assert body["driver_version"] == "560.35.03"
    h100, l4 = body["gpus"]
    health, xid = h100.pop("health"), h100.pop("xid")
    assert (h100.pop("verdict"), h100.pop("verdict_reasons")) == ("ok", [])
    assert (l4["verdict"], l4["verdict_reasons"]) == ("ok", [])
    action = (h100.pop("action"), h100.pop("action_rule"), h100.pop("action_reason"))
    assert action == ("none", "none", "no rule asks for an action")
    assert (l4["action"], l4["action_rule"]) == ("none", "none")
    assert health["clock_sm_mhz"] == 1980 and health["throttle_reasons"] == []
    assert [(p["pid"], p["used_memory_bytes"]) for p in health["processes"]] == [
        (4242, 16106127360)
    ]
    assert xid["xid_count"] == 0 and xid["xid_last"] is None
    assert l4["health"]["throttle_reasons"] == ["idle"]
    assert h100 == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "GPU-00000000-1111-2222-3333-444444444444",
        "status": "ok",
        "error": None,
        "memory_used_mb": 20480.0,
        "memory_total_mb": 81559.0,
        "memory_used_bytes": 21474836480,
        "memory_total_bytes": 85520809984,
        "temperature_c": 41,
        "power_draw_w": 118.5,
        "power_limit_w": 700.0,
        "utilization_gpu_pct": 37,
        "utilization_memory_pct": 12,
    }
    assert (l4["name"], l4["temperature_c"], l4["power_draw_w"], l4["power_limit_w"]) == (
        "NVIDIA L4",
        55,
        27.25,
        72.0,
    )
    codellama, llama = body["models"]
    assert codellama["name"] == "codellama:34b-instruct-q4_k_m"
    assert (codellama["size_bytes"], codellama["parameter_size"], codellama["quantization"]) == (
        20219745376,
        "34B",
        "Q4_K_M",
    )
    assert codellama["loaded"] is True and codellama["vram_bytes"] == 20219745376
    assert llama["loaded"] is False and llama["vram_bytes"] is None
    assert body["model_present"] is True
    assert body["ollama_version"] == "0.12.6"
    for source in ("nvml", "ollama"):
        assert body["sources"][source]["status"] == "ok"
        assert 0 <= body["sources"][source]["age_seconds"] < 5


def test_agent_net_alias_answers_the_same_document(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    _, gpu_check = worker.check("alias-test", route="gpu-check")
    status, agent_net = worker.check("alias-test", route="agent-net")
    assert status == 200

    def stable(doc: dict) -> dict:
        drop = {"timestamp", "sources"}
        return {key: value for key, value in doc.items() if key not in drop}

    assert stable(agent_net) == stable(gpu_check)
    assert agent_net["status"] == "success"


def test_embedded_defaults_without_gpu_ollama_or_orchestrator(start_worker) -> None:
    # No NVIDIA library on LD_LIBRARY_PATH, nothing on Ollama's default port, no ORCH_URL.
    worker = start_worker({"OLLAMA_HOST": "http://127.0.0.1:9"})
    status, body = worker.check("demo-agent")

    assert status == 200
    assert body["status"] == "degraded"
    assert body["gpu_count"] == 0 and body["gpus"] == []
    assert body["total_models"] == 0 and body["vram_usage_mb"] == 0
    assert body["sources"]["nvml"]["status"] == "unavailable"
    assert body["sources"]["nvml"]["reason"].startswith("NVIDIA driver library not found")
    assert body["sources"]["ollama"]["reason"] == "Ollama unreachable at http://127.0.0.1:9"
    assert any(r.startswith("nvml: NVIDIA driver library not found") for r in body["reasons"])
    assert "ollama: Ollama unreachable at http://127.0.0.1:9" in body["reasons"]
    assert worker.logs().count("registration_disabled") == 1


def test_unsupported_power_is_null_not_an_error(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    fake_nvml.set_scenario("no_power")
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    _, body = worker.check()
    (gpu,) = body["gpus"]
    assert gpu["status"] == "ok"
    assert gpu["power_draw_w"] is None and gpu["power_limit_w"] is None
    assert gpu["temperature_c"] is not None and gpu["memory_total_mb"] > 0
    assert body["status"] == "success"


def test_driver_not_loaded_is_reported(start_worker, fake_nvml: FakeNvml, ollama) -> None:
    fake_nvml.set_scenario("driver_not_loaded")
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    _, body = worker.check()
    assert body["status"] == "degraded"
    assert body["gpu_count"] == 0
    assert body["sources"]["nvml"] == {
        "status": "unavailable",
        "reason": "NVIDIA driver not loaded",
        "age_seconds": None,
        "read_at": None,
    }
    assert body["sources"]["ollama"]["status"] == "ok"


def test_lost_gpu_degrades_that_gpu_only_and_recovers(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    fake_nvml.set_scenario("gpu_lost")
    body = wait_for(
        lambda: (doc := worker.check()[1])["gpus"][1]["status"] == "error" and doc,
        10,
        what="GPU 1 lost",
    )
    assert body["status"] == "degraded"
    assert body["gpus"][0]["status"] == "ok" and body["gpus"][0]["temperature_c"] == 41
    assert body["gpus"][1]["error"].startswith("GPU is lost")
    assert body["gpus"][1]["memory_used_mb"] is None
    assert body["vram_usage_mb"] == 20480.0
    assert "nvml: GPU 1: GPU is lost" in " ".join(body["reasons"])
    lost_line = "gpu_error gpu=1 reason='GPU is lost"
    fake_nvml.set_scenario("two_gpus")
    settle(worker, lambda doc: doc["status"] == "success", what="recovery")
    # Logged once per container (the one sampler), not once per sample or per process.
    wait_for(lambda: worker.logs().count("gpu_recovered gpu=1") == 1, 10, what="recovery line")
    assert worker.logs().count(lost_line) == 1


def test_hanging_nvml_answers_at_once_with_last_reading_marked_stale(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "NVML_TIMEOUT_SECONDS": "0.5"}, nvml=fake_nvml
    )
    assert worker.check()[1]["status"] == "success"
    fake_nvml.set_scenario("hang")
    # Every gunicorn process samples on its own: wait until several answers in a row agree.
    settle(worker, lambda doc: doc["sources"]["nvml"]["status"] == "stale", what="nvml stale")
    started = time.monotonic()
    status, body = worker.check()
    elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed < 2.0  # generous: the point is "not blocked on NVML", not a speed figure
    assert body["status"] == "degraded"
    assert body["gpu_count"] == 2 and body["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert "has not answered for" in body["sources"]["nvml"]["reason"]
    assert body["sources"]["ollama"]["status"] == "ok"

    fake_nvml.set_scenario("two_gpus")
    settle(worker, lambda doc: doc["status"] == "success", what="recovery")


def test_ollama_failures_are_reported_per_mode_and_recover(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "OLLAMA_TIMEOUT_SECONDS": "0.5"}, nvml=fake_nvml
    )
    expectations = {
        "error": ("unavailable", f"Ollama at {ollama.url} answered HTTP 500"),
        "nonjson": ("unavailable", f"Ollama at {ollama.url} answered with something that is not"),
        "slow": ("unavailable", f"Ollama at {ollama.url} did not answer within 0.5 s"),
    }
    for mode, (expected_status, reason_start) in expectations.items():
        ollama.set_mode(mode, delay=1.0)
        body = wait_for(
            lambda r=reason_start: (
                ((doc := worker.check()[1])["sources"]["ollama"]["reason"] or "").startswith(r)
                and doc
            ),
            10,
            what=f"ollama {mode}",
        )
        assert body["status"] == "degraded"
        assert body["sources"]["ollama"]["status"] == expected_status
        assert body["sources"]["nvml"]["status"] == "ok"
        assert body["total_models"] == 0
        ollama.set_mode("ok")
        settle(worker, lambda doc: doc["status"] == "success", what=f"after {mode}")


def test_hanging_ollama_answers_at_once_with_last_catalogue_stale(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker(
        # A long client timeout: the stale view must come from the sampler, not from httpx.
        {"OLLAMA_HOST": ollama.url, "OLLAMA_TIMEOUT_SECONDS": "30"},
        nvml=fake_nvml,
    )
    assert worker.check()[1]["total_models"] == 2
    ollama.set_mode("hang")
    settle(worker, lambda doc: doc["sources"]["ollama"]["status"] == "stale", what="stale")
    body = worker.check()[1]
    assert body["status"] == "degraded"
    assert body["total_models"] == 2  # the last catalogue, marked stale
    assert body["sources"]["ollama"]["age_seconds"] > 0
    ollama.set_mode("ok")
    settle(worker, lambda doc: doc["status"] == "success", what="recovery")


def test_readyz_and_healthz_answer_json(start_worker, ollama: OllamaStandIn) -> None:
    from tests.helpers.processes import http

    worker = start_worker({"OLLAMA_HOST": ollama.url})
    status, headers, _ = http("GET", f"{worker.url}/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    status, body = post_json(f"{worker.url}/healthz", {})
    assert status == 405 and body["error"] == "method_not_allowed"
    import json

    status, _, raw = http("GET", f"{worker.url}/readyz")
    ready = json.loads(raw)
    assert status == 200 and ready["status"] == "ready"
    assert ready["sources"]["ollama"]["status"] == "ok"
    assert ready["sources"]["nvml"]["status"] == "unavailable"
    assert ready["registration"] == []


def test_runtime_dir_survives_a_gunicorn_worker_exiting(start_worker, ollama) -> None:
    import json
    import os
    import signal

    from tests.helpers.processes import http

    # "": no directory given, so the worker makes its own (and must remove it).
    worker = start_worker({"OLLAMA_HOST": ollama.url, "AGENT_NET_RUNTIME_DIR": ""})
    runtime_dir = next(
        line.split("runtime_dir=")[1].split()[0]
        for line in worker.logs().splitlines()
        if "runtime_dir=" in line
    )
    assert os.path.isdir(runtime_dir)
    sampler = json.loads(http("GET", f"{worker.url}/readyz")[2])["sampler"]["pid"]
    pids = wait_for(
        lambda: len(p := [c for c in _children(worker.process.pid) if c != sampler]) == 2 and p,
        10,
        what="pids",
    )
    os.kill(pids[0], signal.SIGTERM)  # gunicorn replaces it; the shared directory must stay
    wait_for(lambda: pids[0] not in _children(worker.process.pid), 10, what="worker replaced")
    assert os.path.isdir(runtime_dir)
    assert worker.check()[0] == 200 and http("GET", f"{worker.url}/readyz")[0] == 200
    worker.stop()
    assert not os.path.exists(runtime_dir)  # the master removes what it created


def _children(pid: int) -> list[int]:
    from pathlib import Path

    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]
