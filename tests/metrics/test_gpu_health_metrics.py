"""The GPU health series on hand-made readings: values, units, absences, the verdict."""

from __future__ import annotations

import dataclasses
import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from tests.metrics.scrape import Samples, parse, series, value
from tests.sampling.support import ROOT
from worker.http.gpu_health_metrics import HEALTH_FAMILIES, OTHER_METRICS
from worker.http.metrics import gpu_metrics
from worker.sampling.gpu_health import GpuHealth, GpuProcess
from worker.sampling.published import SourceView
from worker.sampling.readings import GpuReading, GpuReport
from worker.sampling.xid_watch import XidStats

LABELS = {"gpu": "0", "uuid": "GPU-0", "name": "NVIDIA H100"}
NONE = GpuHealth(**{f.name: None for f in dataclasses.fields(GpuHealth)})
FULL = GpuHealth(
    throttle_reasons_mask=0x44,
    clock_sm_mhz=1980,
    clock_sm_max_mhz=1980,
    clock_mem_mhz=2619,
    clock_mem_max_mhz=2619,
    pstate=0,
    fan_speed_pct=33,
    temperature_c=80,
    temperature_slowdown_c=87,
    temperature_shutdown_c=92,
    ecc_enabled=True,
    ecc_enabled_pending=False,
    ecc_corrected_volatile=3,
    ecc_corrected_aggregate=12,
    ecc_uncorrected_volatile=1,
    ecc_uncorrected_aggregate=4,
    retired_pages_sbe=5,
    retired_pages_dbe=6,
    retired_pages_pending=False,
    remapped_rows_correctable=2,
    remapped_rows_uncorrectable=1,
    remapped_rows_pending=True,
    remapped_rows_failure=False,
    pcie_link_gen=4,
    pcie_link_gen_max=5,
    pcie_link_width=16,
    pcie_link_width_max=16,
    pcie_replay_count=7,
    processes=(GpuProcess(4242, 16106127360, "ollama"), GpuProcess(77, None, None)),
    mig_enabled=False,
    mig_enabled_pending=True,
)
XIDS = XidStats(3, 79, 1700000000.5, 2, (13, 79), (79,))


def _scrape(*gpus: GpuReading) -> Samples:
    """gpu_metrics of one NVML view, through prometheus_client's encoder and parser."""
    families: list[Metric] = list(
        gpu_metrics(SourceView("nvml", "ok", None, GpuReport(None, gpus), 0.1, 1.0))
    )

    class Fixed:
        def collect(self) -> list[Metric]:
            return families

    registry = CollectorRegistry()
    registry.register(Fixed())  # type: ignore[arg-type]
    return parse(generate_latest(registry).decode())


def _reading(health: GpuHealth | None, **fields) -> GpuReading:
    base = {"index": 0, "name": "NVIDIA H100", "uuid": "GPU-0", "verdict": "ok"}
    return GpuReading(**{**base, **fields}, health=None if health is None else health.as_dict())


def test_every_reading_with_its_unit() -> None:
    reasons = ("ecc_uncorrectable: x (1)", "row_remap_pending: y (z)", "thermal_throttle: t")
    samples = _scrape(
        _reading(FULL, xid=XIDS.as_dict(), verdict="critical", verdict_reasons=reasons)
    )
    expected = {
        "agent_net_gpu_throttle_reasons_mask": 0x44,
        "agent_net_gpu_sm_clock_hertz": 1980e6,
        "agent_net_gpu_memory_clock_max_hertz": 2619e6,
        "agent_net_gpu_pstate": 0,
        "agent_net_gpu_fan_speed_ratio": 0.33,
        "agent_net_gpu_slowdown_temperature_celsius": 87,
        "agent_net_gpu_shutdown_temperature_celsius": 92,
        "agent_net_gpu_temperature_margin_celsius": 7,
        "agent_net_gpu_ecc_enabled": 1,
        "agent_net_gpu_ecc_enabled_pending": 0,
        "agent_net_gpu_retired_pages_pending": 0,
        "agent_net_gpu_row_remap_pending": 1,
        "agent_net_gpu_row_remap_failure": 0,
        "agent_net_gpu_pcie_link_gen": 4,
        "agent_net_gpu_pcie_link_gen_max": 5,
        "agent_net_gpu_pcie_link_width_max": 16,
        "agent_net_gpu_pcie_replay_count": 7,
        "agent_net_gpu_mig_enabled": 0,
        "agent_net_gpu_mig_enabled_pending": 1,
        "agent_net_gpu_compute_processes": 2,
        "agent_net_gpu_xid_errors_total": 3,
        "agent_net_gpu_xid_errors_last_hour": 2,
        "agent_net_gpu_xid_last": 79,
        "agent_net_gpu_xid_last_timestamp_seconds": 1700000000.5,
        "agent_net_gpu_health_level": 2,
    }
    for metric, number in expected.items():
        assert value(samples, metric, **LABELS) == number, metric
    ecc = {
        (dict(k)["error"], dict(k)["counter"]): v
        for k, v in series(samples, "agent_net_gpu_ecc_errors").items()
    }
    assert ecc == {
        ("corrected", "volatile"): 3,
        ("corrected", "aggregate"): 12,
        ("uncorrected", "volatile"): 1,
        ("uncorrected", "aggregate"): 4,
    }
    assert value(samples, "agent_net_gpu_retired_pages", cause="dbe", **LABELS) == 6
    assert value(samples, "agent_net_gpu_remapped_rows", kind="uncorrectable", **LABELS) == 1
    memory = series(samples, "agent_net_gpu_process_memory_used_bytes")
    assert memory == {
        frozenset({**LABELS, "pid": "4242", "process": "ollama"}.items()): 16106127360
    }
    throttle = series(samples, "agent_net_gpu_throttle_reason")
    assert sorted(dict(k)["reason"] for k in throttle) == ["hw_thermal_slowdown", "power_cap"]
    assert sorted(dict(k)["xid"] for k in series(samples, "agent_net_gpu_xid_seen")) == ["13", "79"]
    levels = {dict(k)["level"]: v for k, v in series(samples, "agent_net_gpu_health").items()}
    assert levels == {"ok": 0, "warning": 0, "critical": 1}
    rules = sorted(dict(k)["rule"] for k in series(samples, "agent_net_gpu_health_rule"))
    assert rules == ["ecc_uncorrectable", "row_remap_pending", "thermal_throttle"]


def test_unsupported_readings_have_no_series_and_ok_has_no_rule() -> None:
    samples = _scrape(_reading(NONE, xid=None))
    health_names = {family.metric for family in HEALTH_FAMILIES}
    present = {name for name, _ in samples}
    assert present & health_names == set()
    assert series(samples, "agent_net_gpu_throttle_reason") == {}
    assert series(samples, "agent_net_gpu_compute_processes") == {}
    assert not [name for name in present if name.startswith("agent_net_gpu_xid")]
    assert series(samples, "agent_net_gpu_health_rule") == {}
    assert value(samples, "agent_net_gpu_health", level="ok", **LABELS) == 1
    assert value(samples, "agent_net_gpu_health_level", **LABELS) == 0


def test_a_lost_gpu_has_its_verdict_and_xids_but_no_readings() -> None:
    lost = GpuReading(
        1,
        error="GPU is lost",
        xid=XidStats().as_dict(),
        verdict="critical",
        verdict_reasons=("gpu_lost: NVML cannot read the GPU (GPU is lost)",),
    )
    samples = _scrape(lost)
    labels = {"gpu": "1", "uuid": "", "name": ""}
    assert value(samples, "agent_net_gpu_health_level", **labels) == 2
    assert value(samples, "agent_net_gpu_health_rule", rule="gpu_lost", **labels) == 1
    assert value(samples, "agent_net_gpu_xid_errors_total", **labels) == 0
    assert value(samples, "agent_net_gpu_xid_last", **labels) is None  # no XID yet: absent
    assert series(samples, "agent_net_gpu_sm_clock_hertz") == {}


def test_a_reading_without_a_verdict_exports_none() -> None:
    samples = _scrape(_reading(None, verdict=None))
    assert series(samples, "agent_net_gpu_health") == {}
    assert series(samples, "agent_net_gpu_health_level") == {}
    assert series(samples, "agent_net_gpu_recovery_action") == {}


def test_one_action_series_per_gpu_labelled_by_action_and_rule() -> None:
    lost = GpuReading(1, error="GPU is lost", verdict="critical", action="reboot")
    lost = dataclasses.replace(lost, action_rule="gpu_lost")
    ok = _reading(FULL, action="none", action_rule="none")
    families = list(gpu_metrics(SourceView("nvml", "ok", None, GpuReport(None, (ok, lost)), 0, 1)))
    action = next(f for f in families if f.name == "agent_net_gpu_recovery_action")
    assert [(s.labels, s.value) for s in action.samples] == [
        ({**LABELS, "action": "none", "rule": "none"}, 1.0),
        ({"gpu": "1", "uuid": "", "name": "", "action": "reboot", "rule": "gpu_lost"}, 1.0),
    ]


def test_every_series_is_documented_and_every_documented_one_exists() -> None:
    doc = (ROOT / "docs" / "gpu-health.md").read_text()
    documented = set(re.findall(r"`(agent_net_gpu_\w+)`", doc.split("## Metrics", 1)[1]))
    names = {family.metric for family in HEALTH_FAMILIES} | set(OTHER_METRICS)
    reasons = ("ecc_uncorrectable: x",)
    full = _scrape(
        _reading(
            FULL,
            xid=XIDS.as_dict(),
            verdict="critical",
            verdict_reasons=reasons,
            action="reset_gpu",
            action_rule="xid_95",
        )
    )
    emitted = {name for name, _ in full if name.startswith("agent_net_gpu_")}
    base = {
        "agent_net_gpu_up",
        "agent_net_gpu_memory_used_bytes",
        "agent_net_gpu_memory_total_bytes",
        "agent_net_gpu_temperature_celsius",
        "agent_net_gpu_power_watts",
        "agent_net_gpu_power_limit_watts",
        "agent_net_gpu_utilization_ratio",
        "agent_net_gpu_memory_utilization_ratio",
    }
    assert emitted - base == names
    assert names - documented == set()
