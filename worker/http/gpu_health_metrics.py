"""The GPU health series of `/metrics`: readings, throttle reasons, XIDs, verdict, action.

Built at scrape time from the published readings (`GpuReading.health`, `.xid`,
`.verdict`), labelled `gpu`, `uuid`, `name` like the other GPU series (and like NVIDIA's
DCGM exporter). Prometheus base units: clocks in hertz, shares as 0-1 ratios, booleans as
0/1. A reading that is None (unsupported, or the GPU is lost) has no series, never 0.
docs/gpu-health.md lists every series with its unit and DCGM field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from worker.sampling.readings import GpuReading

GPU_LABELS = ("gpu", "uuid", "name")
VERDICT_LEVELS = ("ok", "warning", "critical")  # agent_net_gpu_health_level is the index
MHZ = 1_000_000.0


@dataclass(frozen=True)
class Reading:
    """One series from one `health` field: `extra` labels, value * `scale` / `divisor`."""

    metric: str
    field: str
    extra: tuple[tuple[str, str], ...] = ()
    scale: float = 1.0
    divisor: float = 1.0  # percent / 100 is exact where percent * 0.01 is not


@dataclass(frozen=True)
class Family:
    """One gauge family and the health fields behind its series."""

    metric: str
    documentation: str
    readings: tuple[Reading, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return GPU_LABELS + tuple(name for name, _ in self.readings[0].extra)


def _one(
    metric: str, documentation: str, field: str, scale: float = 1.0, divisor: float = 1.0
) -> Family:
    return Family(metric, documentation, (Reading(metric, field, (), scale, divisor),))


HEALTH_FAMILIES: tuple[Family, ...] = (
    _one(
        "agent_net_gpu_throttle_reasons_mask",
        "Clock-event (throttle) reasons as NVML's bitmask (nvmlClocksEventReason*).",
        "throttle_reasons_mask",
    ),
    _one("agent_net_gpu_sm_clock_hertz", "SM clock now.", "clock_sm_mhz", MHZ),
    _one("agent_net_gpu_sm_clock_max_hertz", "Maximum SM clock.", "clock_sm_max_mhz", MHZ),
    _one("agent_net_gpu_memory_clock_hertz", "Memory clock now.", "clock_mem_mhz", MHZ),
    _one("agent_net_gpu_memory_clock_max_hertz", "Maximum memory clock.", "clock_mem_max_mhz", MHZ),
    _one("agent_net_gpu_pstate", "Performance state: 0 (maximum) to 15 (minimum).", "pstate"),
    _one(
        "agent_net_gpu_fan_speed_ratio",
        "Fan speed, share of its maximum (0-1).",
        "fan_speed_pct",
        divisor=100,
    ),
    _one(
        "agent_net_gpu_slowdown_temperature_celsius",
        "Temperature at which the GPU slows its clocks.",
        "temperature_slowdown_c",
    ),
    _one(
        "agent_net_gpu_shutdown_temperature_celsius",
        "Temperature at which the GPU shuts down.",
        "temperature_shutdown_c",
    ),
    _one(
        "agent_net_gpu_temperature_margin_celsius",
        "Degrees left before the slowdown temperature (negative: past it).",
        "temperature_margin_c",
    ),
    _one("agent_net_gpu_ecc_enabled", "1 when ECC is on now.", "ecc_enabled"),
    _one(
        "agent_net_gpu_ecc_enabled_pending",
        "1 when ECC will be on after the next reboot.",
        "ecc_enabled_pending",
    ),
    Family(
        "agent_net_gpu_ecc_errors",
        "ECC errors: volatile since the driver loaded, aggregate over the board's life.",
        tuple(
            Reading(
                "agent_net_gpu_ecc_errors",
                f"ecc_{kind}_{counter}_count",
                (("error", kind), ("counter", counter)),
            )
            for kind in ("corrected", "uncorrected")
            for counter in ("volatile", "aggregate")
        ),
    ),
    Family(
        "agent_net_gpu_retired_pages",
        "Memory pages retired, by cause (sbe: multiple single-bit errors, dbe: double-bit).",
        tuple(
            Reading(
                "agent_net_gpu_retired_pages", f"retired_pages_{cause}_count", (("cause", cause),)
            )
            for cause in ("sbe", "dbe")
        ),
    ),
    _one(
        "agent_net_gpu_retired_pages_pending",
        "1 when pages wait to be retired (after a GPU reset or reboot).",
        "retired_pages_pending",
    ),
    Family(
        "agent_net_gpu_remapped_rows",
        "Memory rows remapped, by the kind of error that caused it.",
        tuple(
            Reading(
                "agent_net_gpu_remapped_rows",
                f"remapped_rows_{kind}_count",
                (("kind", kind),),
            )
            for kind in ("correctable", "uncorrectable")
        ),
    ),
    _one(
        "agent_net_gpu_row_remap_pending",
        "1 when a row remap waits for a GPU reset.",
        "remapped_rows_pending",
    ),
    _one(
        "agent_net_gpu_row_remap_failure",
        "1 when a row could not be remapped (out of spare rows).",
        "remapped_rows_failure",
    ),
    _one("agent_net_gpu_pcie_link_gen", "PCIe link generation now.", "pcie_link_gen"),
    _one(
        "agent_net_gpu_pcie_link_gen_max",
        "Highest PCIe generation of the link.",
        "pcie_link_gen_max",
    ),
    _one("agent_net_gpu_pcie_link_width", "PCIe link width now (lanes).", "pcie_link_width"),
    _one("agent_net_gpu_pcie_link_width_max", "Widest PCIe link (lanes).", "pcie_link_width_max"),
    _one(
        "agent_net_gpu_pcie_replay_count",
        "PCIe replays since the driver loaded.",
        "pcie_replay_count",
    ),
    _one("agent_net_gpu_mig_enabled", "1 when MIG mode is on now.", "mig_enabled"),
    _one(
        "agent_net_gpu_mig_enabled_pending",
        "1 when MIG mode will be on after the next GPU reset.",
        "mig_enabled_pending",
    ),
)

# Series built from something other than one health field each (docs/gpu-health.md).
OTHER_METRICS = (
    "agent_net_gpu_throttle_reason",
    "agent_net_gpu_compute_processes",
    "agent_net_gpu_process_memory_used_bytes",
    "agent_net_gpu_xid_errors_total",
    "agent_net_gpu_xid_errors_last_hour",
    "agent_net_gpu_xid_last",
    "agent_net_gpu_xid_last_timestamp_seconds",
    "agent_net_gpu_xid_seen",
    "agent_net_gpu_health",
    "agent_net_gpu_health_level",
    "agent_net_gpu_health_rule",
    "agent_net_gpu_recovery_action",
)


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _number(value: Any) -> float | None:
    """A reading as a sample value: bools 0/1, numbers as they are, anything else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def health_metrics(gpus: Sequence[GpuReading], labels_of: Any) -> Iterator[Metric]:
    """Every health, XID and verdict series of `gpus`; `labels_of(gpu)` gives GPU_LABELS."""
    families = [
        (family, _gauge(family.metric, family.documentation, family.labels))
        for family in HEALTH_FAMILIES
    ]
    throttle = _gauge(
        "agent_net_gpu_throttle_reason",
        "1 for each clock-event (throttle) reason active now; inactive reasons have no series.",
        (*GPU_LABELS, "reason"),
    )
    processes = _gauge(
        "agent_net_gpu_compute_processes", "Compute processes on the GPU.", GPU_LABELS
    )
    process_memory = _gauge(
        "agent_net_gpu_process_memory_used_bytes",
        "GPU memory used by each compute process (pid in the host's PID namespace).",
        (*GPU_LABELS, "pid", "process"),
    )
    xid_total = CounterMetricFamily(
        "agent_net_gpu_xid_errors",
        "XID critical errors since the sampler started.",
        labels=list(GPU_LABELS),
    )
    xid_hour = _gauge(
        "agent_net_gpu_xid_errors_last_hour", "XID critical errors in the last hour.", GPU_LABELS
    )
    xid_last = _gauge("agent_net_gpu_xid_last", "Code of the last XID seen.", GPU_LABELS)
    xid_time = _gauge(
        "agent_net_gpu_xid_last_timestamp_seconds", "Unix time of the last XID seen.", GPU_LABELS
    )
    xid_seen = _gauge(
        "agent_net_gpu_xid_seen",
        "1 for each distinct XID code seen since the sampler started.",
        (*GPU_LABELS, "xid"),
    )
    health = _gauge(
        "agent_net_gpu_health",
        "1 for the GPU's verdict (ok, warning, critical), 0 for the other levels.",
        (*GPU_LABELS, "level"),
    )
    level = _gauge(
        "agent_net_gpu_health_level", "The GPU's verdict: 0 ok, 1 warning, 2 critical.", GPU_LABELS
    )
    rule = _gauge(
        "agent_net_gpu_health_rule",
        "1 for each verdict rule firing now (docs/gpu-health.md); none when ok.",
        (*GPU_LABELS, "rule"),
    )
    action = _gauge(
        "agent_net_gpu_recovery_action",
        "1 for the GPU's recovery action (none, restart_app, reset_gpu, drain_and_reset,"
        " reboot, contact_support) and the rule that chose it (docs/gpu-health.md).",
        (*GPU_LABELS, "action", "rule"),
    )
    for gpu in gpus:
        labels = labels_of(gpu)
        if gpu.action is not None:
            action.add_metric([*labels, gpu.action, gpu.action_rule or ""], 1.0)
        if gpu.health is not None:
            _add_health(gpu.health, labels, families, throttle, processes, process_memory)
        if gpu.xid is not None:
            _add_xids(gpu.xid, labels, xid_total, xid_hour, xid_last, xid_time, xid_seen)
        if gpu.verdict in VERDICT_LEVELS:
            for name in VERDICT_LEVELS:
                health.add_metric([*labels, name], 1.0 if gpu.verdict == name else 0.0)
            level.add_metric(labels, float(VERDICT_LEVELS.index(gpu.verdict)))
            for reason in gpu.verdict_reasons:
                rule.add_metric([*labels, reason.split(":", 1)[0]], 1.0)
    every = [family for _, family in families]
    every += [throttle, processes, process_memory, xid_total, xid_hour, xid_last, xid_time]
    every += [xid_seen, health, level, rule, action]
    yield from (family for family in every if family.samples)


def _add_health(
    health: dict[str, Any],
    labels: list[str],
    families: list[tuple[Family, GaugeMetricFamily]],
    throttle: GaugeMetricFamily,
    processes: GaugeMetricFamily,
    process_memory: GaugeMetricFamily,
) -> None:
    for family, gauge in families:
        for reading in family.readings:
            value = _number(health.get(reading.field))
            if value is not None:
                extra = [label_value for _, label_value in reading.extra]
                gauge.add_metric([*labels, *extra], value * reading.scale / reading.divisor)
    for reason in health.get("throttle_reasons") or ():
        throttle.add_metric([*labels, str(reason)], 1.0)
    listed = health.get("processes")
    if isinstance(listed, list):
        processes.add_metric(labels, float(len(listed)))
        for process in listed:
            used = _number(process.get("used_memory_bytes"))
            if used is not None:
                pid, name = str(process.get("pid")), process.get("name") or ""
                process_memory.add_metric([*labels, pid, name], used)


def _add_xids(
    xid: dict[str, Any],
    labels: list[str],
    total: CounterMetricFamily,
    hour: GaugeMetricFamily,
    last: GaugeMetricFamily,
    when: GaugeMetricFamily,
    seen: GaugeMetricFamily,
) -> None:
    keys = (
        (total, "xid_count"),
        (hour, "xid_count_last_hour"),
        (last, "xid_last"),
        (when, "xid_last_time_unix"),
    )
    for family, key in keys:
        value = _number(xid.get(key))
        if value is not None:
            family.add_metric(labels, value)
    for code in xid.get("xid_codes_since_start") or ():
        seen.add_metric([*labels, str(code)], 1.0)
