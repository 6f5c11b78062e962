"""GPU health, XIDs and verdicts through the real worker (gunicorn, its sampler process) and
the NVML stand-in, changed while the worker runs: /gpu-check, /metrics and gpu_fitness."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.helpers.processes import WorkerProcess, wait_for, worker_runtime_dir
from tests.metrics.scrape import Samples, scrape, series, value
from tests.standins.nvml.build import UNSUPPORTED, FakeNvml, build_fake_nvml
from tests.standins.nvml.values import H100, L4
from tests.standins.ollama_api import OllamaStandIn
from worker.sampling.fitness import gpu_fitness
from worker.sampling.published import Readings

H100_LABELS = {"gpu": "0", "uuid": H100.uuid, "name": H100.name}
L4_LABELS = {"gpu": "1", "uuid": L4.uuid, "name": L4.name}


def settled(worker: WorkerProcess, predicate: Any, what: str) -> dict[str, Any]:
    """The document once six answers in a row (from any gunicorn process) satisfy it."""

    def check() -> dict[str, Any] | None:
        bodies = [worker.check()[1] for _ in range(6)]
        return bodies[-1] if all(predicate(body) for body in bodies) else None

    return wait_for(check, 20, what=what)


def scraped(worker: WorkerProcess, predicate: Any, what: str) -> Samples:
    return wait_for(lambda: (s := scrape(worker.url)) and predicate(s) and s, 20, what=what)


def fitness(worker: WorkerProcess) -> tuple[bool, str | None]:
    """gpu_fitness as an HTTP worker computes it, from the worker's own readings file."""
    return gpu_fitness(Readings(worker_runtime_dir(worker), stale_after=10).views())


def test_an_xid_while_running_shows_in_the_document_metrics_and_fitness(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    body = settled(worker, lambda doc: doc["status"] == "success", "success at start")
    assert [gpu["xid"]["xid_count"] for gpu in body["gpus"]] == [0, 0]
    assert fitness(worker) == (True, None)

    before = time.time()
    fake_nvml.inject_xid(1, 79)
    body = settled(worker, lambda doc: doc["gpus"][1]["xid"]["xid_count"] == 1, "XID 79 seen")
    after = time.time()
    l4 = body["gpus"][1]
    assert l4["xid"]["xid_last"] == 79 and l4["xid"]["xid_count_last_hour"] == 1
    assert before <= l4["xid"]["xid_last_time_unix"] <= after
    assert l4["xid"]["xid_codes_since_start"] == [79]
    assert l4["verdict"] == "critical"
    assert [r.split(":")[0] for r in l4["verdict_reasons"]] == ["xid_79"]
    assert "fallen off the bus" in l4["verdict_reasons"][0]
    assert body["gpus"][0]["verdict"] == "ok" and body["gpus"][0]["xid"]["xid_count"] == 0
    assert body["status"] == "degraded"
    assert body["reasons"] == [f"nvml: GPU 1: critical: {l4['verdict_reasons'][0]}"]
    assert body["reasons"][0].startswith("nvml: GPU 1: critical: xid_79: XID 79 since start")
    assert (l4["action"], l4["action_rule"]) == ("reboot", "xid_79")
    assert l4["action_reason"] == "XID 79: GPU has fallen off the bus (RESTART_BM)"
    assert (body["gpus"][0]["action"], body["gpus"][0]["action_rule"]) == ("none", "none")

    samples = scraped(
        worker,
        lambda s: value(s, "agent_net_gpu_xid_errors_total", **L4_LABELS) == 1,
        "XID counter in /metrics",
    )
    assert value(samples, "agent_net_gpu_xid_last", **L4_LABELS) == 79
    assert value(samples, "agent_net_gpu_xid_seen", xid="79", **L4_LABELS) == 1
    assert value(samples, "agent_net_gpu_xid_errors_total", **H100_LABELS) == 0
    assert value(samples, "agent_net_gpu_health_level", **L4_LABELS) == 2
    assert value(samples, "agent_net_gpu_health", level="critical", **L4_LABELS) == 1
    assert value(samples, "agent_net_gpu_health", level="ok", **L4_LABELS) == 0
    assert value(samples, "agent_net_gpu_health", level="ok", **H100_LABELS) == 1
    assert value(samples, "agent_net_gpu_health_rule", rule="xid_79", **L4_LABELS) == 1
    actions = series(samples, "agent_net_gpu_recovery_action")
    assert actions == {
        frozenset({**H100_LABELS, "action": "none", "rule": "none"}.items()): 1,
        frozenset({**L4_LABELS, "action": "reboot", "rule": "xid_79"}.items()): 1,
    }

    fit, reason = fitness(worker)
    assert not fit and reason is not None
    assert reason.startswith("nvml: GPU 1: critical: xid_79:")
    # A non-critical XID on GPU 0 warns; the critical one on GPU 1 stays (since start).
    fake_nvml.inject_xid(0, 13)
    body = settled(worker, lambda doc: doc["gpus"][0]["verdict"] == "warning", "XID 13 warns")
    assert body["gpus"][0]["verdict_reasons"][0].startswith("xid_recent:")
    assert body["gpus"][1]["verdict"] == "critical"
    assert body["gpus"][0]["action"] == "restart_app"  # XID 13: RESTART_APP
    assert "gpu_verdict gpu=1 level=critical action=reboot reasons=['xid_79:" in worker.logs()


def test_ecc_and_row_remap_counters_changed_live_decide_the_verdict(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    settled(worker, lambda doc: doc["status"] == "success", "success at start")

    fake_nvml.set_health(0, ecc_uncorrected_volatile=2, ecc_corrected_volatile=40)
    body = settled(worker, lambda doc: doc["gpus"][0]["verdict"] == "critical", "ECC critical")
    h100 = body["gpus"][0]
    assert h100["health"]["ecc_uncorrected_volatile_count"] == 2
    assert h100["health"]["ecc_corrected_volatile_count"] == 40
    assert [r.split(":")[0] for r in h100["verdict_reasons"]] == ["ecc_uncorrectable"]
    assert "nvml: GPU 0: critical: ecc_uncorrectable:" in " ".join(body["reasons"])
    samples = scraped(
        worker,
        lambda s: (
            value(
                s,
                "agent_net_gpu_ecc_errors",
                error="uncorrected",
                counter="volatile",
                **H100_LABELS,
            )
            == 2
        ),
        "ECC counter in /metrics",
    )
    assert (
        value(
            samples,
            "agent_net_gpu_ecc_errors",
            error="corrected",
            counter="aggregate",
            **H100_LABELS,
        )
        == 12
    )

    fake_nvml.reset_health()
    fake_nvml.set_health(1, remap_pending=1, remap_unc=1)
    body = settled(
        worker,
        lambda doc: doc["gpus"][1]["verdict"] == "critical" and doc["gpus"][0]["verdict"] == "ok",
        "remap pending critical, ECC cleared",
    )
    assert [r.split(":")[0] for r in body["gpus"][1]["verdict_reasons"]] == ["row_remap_pending"]
    assert body["gpus"][1]["health"]["remapped_rows_uncorrectable_count"] == 1

    fake_nvml.reset_health()
    fake_nvml.set_health(1, remap_failure=1)
    body = settled(
        worker,
        lambda doc: (
            [r.split(":")[0] for r in doc["gpus"][1]["verdict_reasons"]] == ["row_remap_failure"]
        ),
        "row remap failure",
    )
    assert value(scrape(worker.url), "agent_net_gpu_row_remap_failure", **L4_LABELS) == 1

    fake_nvml.reset_health()
    fake_nvml.set_health(0, clocks_event_reasons=0x40, pcie_width=8)
    body = settled(worker, lambda doc: doc["gpus"][0]["verdict"] == "warning", "warning")
    assert [r.split(":")[0] for r in body["gpus"][0]["verdict_reasons"]] == [
        "thermal_throttle",
        "pcie_width_degraded",
    ]
    assert body["status"] == "degraded"
    assert "nvml: GPU 0: warning: thermal_throttle:" in " ".join(body["reasons"])
    assert fitness(worker) == (True, None)  # a warning still takes work

    fake_nvml.reset_health()
    body = settled(worker, lambda doc: doc["status"] == "success", "healthy again")
    assert body["reasons"] == []


def test_a_gpu_lost_and_found_again(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    settled(worker, lambda doc: doc["status"] == "success", "success at start")

    fake_nvml.set_health(1, lost=1)
    body = settled(worker, lambda doc: doc["gpus"][1]["status"] == "error", "GPU 1 lost")
    l4 = body["gpus"][1]
    assert l4["verdict"] == "critical" and l4["health"] is None
    assert [r.split(":")[0] for r in l4["verdict_reasons"]] == ["gpu_lost"]
    assert "GPU is lost" in l4["verdict_reasons"][0]
    assert l4["xid"]["xid_count"] == 0  # still watched: the set was registered before
    assert body["gpus"][0]["verdict"] == "ok"
    assert "nvml: GPU 1: critical: gpu_lost:" in " ".join(body["reasons"])
    fit, reason = fitness(worker)
    assert not fit and reason is not None and reason.startswith("nvml: GPU 1: critical: gpu_lost")
    lost = {"gpu": "1", "uuid": "", "name": ""}
    samples = scraped(
        worker, lambda s: value(s, "agent_net_gpu_health_level", **lost) == 2, "lost in /metrics"
    )
    assert value(samples, "agent_net_gpu_health_rule", rule="gpu_lost", **lost) == 1
    assert [dict(k)["gpu"] for k in series(samples, "agent_net_gpu_sm_clock_hertz")] == ["0"]

    fake_nvml.set_health(1, lost=0)
    body = settled(worker, lambda doc: doc["status"] == "success", "GPU 1 found again")
    assert body["gpus"][1]["verdict"] == "ok" and body["gpus"][1]["health"] is not None
    assert fitness(worker) == (True, None)
    logs = worker.logs()
    assert logs.count("gpu_verdict gpu=1 level=critical") == 1  # once, not once per read
    assert "gpu_verdict gpu=1 level=ok action=none reasons=[]" in logs


def test_throttle_reasons_one_series_each_and_unsupported_readings_null_and_absent(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    fake_nvml.set_health(0, clocks_event_reasons=0x04 | 0x40)
    fake_nvml.set_health(1, clock_sm=UNSUPPORTED, pcie_replay=UNSUPPORTED)

    def throttled(s: Samples) -> bool:
        return value(s, "agent_net_gpu_throttle_reason", reason="power_cap", **H100_LABELS) == 1

    samples = scraped(worker, throttled, "throttle reasons in /metrics")
    reasons = series(samples, "agent_net_gpu_throttle_reason")
    assert sorted((dict(k)["gpu"], dict(k)["reason"]) for k in reasons) == [
        ("0", "hw_thermal_slowdown"),
        ("0", "power_cap"),
        ("1", "idle"),
    ]
    assert set(reasons.values()) == {1.0}
    assert value(samples, "agent_net_gpu_throttle_reasons_mask", **H100_LABELS) == 0x44
    assert value(samples, "agent_net_gpu_sm_clock_hertz", **H100_LABELS) == 1980e6
    assert value(samples, "agent_net_gpu_sm_clock_hertz", **L4_LABELS) is None
    assert value(samples, "agent_net_gpu_sm_clock_max_hertz", **L4_LABELS) == 2040e6
    assert value(samples, "agent_net_gpu_pcie_replay_count", **L4_LABELS) is None
    assert value(samples, "agent_net_gpu_pcie_replay_count", **H100_LABELS) == 0
    # The H100 is passively cooled (no fan reading); the L4 has one.
    assert [dict(k)["gpu"] for k in series(samples, "agent_net_gpu_fan_speed_ratio")] == ["1"]
    assert value(samples, "agent_net_gpu_fan_speed_ratio", **L4_LABELS) == 0.3

    body = settled(
        worker, lambda doc: doc["gpus"][1]["health"]["clock_sm_mhz"] is None, "null in JSON"
    )
    h100, l4 = body["gpus"]
    assert h100["health"]["throttle_reasons"] == ["power_cap", "hw_thermal_slowdown"]
    assert h100["health"]["fan_speed_pct"] is None
    assert l4["health"]["pcie_replay_count"] is None and l4["health"]["clock_sm_max_mhz"] == 2040
    assert l4["verdict"] == "ok"  # a missing reading never fires a rule
    assert [r.split(":")[0] for r in h100["verdict_reasons"]] == ["thermal_throttle"]


def test_a_driver_without_the_clock_events_call_falls_back_to_throttle_reasons(
    start_worker, tmp_path: Path, ollama: OllamaStandIn
) -> None:
    lib = build_fake_nvml(tmp_path / "lib", omit=["nvmlDeviceGetCurrentClocksEventReasons"])
    nvml = FakeNvml.create(lib, tmp_path / "nvml")
    nvml.set_health(0, clocks_event_reasons=0x20)
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=nvml)
    body = settled(worker, lambda doc: doc["gpus"][0]["verdict"] == "warning", "fallback read")
    assert body["gpus"][0]["health"]["throttle_reasons"] == ["sw_thermal_slowdown"]
    assert body["gpus"][1]["health"]["throttle_reasons"] == ["idle"]
    calls = set(nvml.calls())
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in calls
    assert "nvmlDeviceGetCurrentClocksEventReasons" not in calls


def test_a_driver_without_xid_events_reports_xid_null_and_still_judges(
    start_worker, tmp_path: Path, ollama: OllamaStandIn
) -> None:
    events = ["nvmlEventSetCreate", "nvmlEventSetWait_v2", "nvmlEventSetFree"]
    nvml = FakeNvml.create(build_fake_nvml(tmp_path / "lib", omit=events), tmp_path / "nvml")
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=nvml)
    body = settled(worker, lambda doc: doc["status"] == "success", "success without events")
    assert [gpu["xid"] for gpu in body["gpus"]] == [None, None]
    assert [gpu["verdict"] for gpu in body["gpus"]] == ["ok", "ok"]
    assert series(scrape(worker.url), "agent_net_gpu_xid_errors_total") == {}
    assert "xid_watch_started gpus=none" in worker.logs()
