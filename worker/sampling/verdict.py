"""A GPU's health verdict (ok / warning / critical) from its readings, XIDs and loss.

Every rule is one row of RULES: id, level, plain-words description, the check, and for
XID rules the code and NVIDIA's catalogue entry (meaning and recommended action). A
reading that is None (unsupported on this GPU) never fires a rule. docs/gpu-health.md
carries the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # types only: this module loads no NVML binding
    from worker.sampling.gpu_health import GpuHealth
    from worker.sampling.xid_watch import XidStats

Level = Literal["ok", "warning", "critical"]

TEMPERATURE_MARGIN_C = 5  # warn when the GPU is this close (degrees C) to its slowdown point
XID_CATALOGUE = "https://docs.nvidia.com/deploy/xid-errors/"


@dataclass(frozen=True)
class Inputs:
    """What the rules look at; health None = no readings (e.g. the GPU is lost)."""

    health: GpuHealth | None
    xids: XidStats | None
    lost: bool
    temperature_margin_c: int
    lost_reason: str | None = None


@dataclass(frozen=True)
class Rule:
    """One verdict rule: `check` returns a detail in plain words when the rule fires."""

    id: str
    level: Literal["warning", "critical"]
    description: str
    check: Callable[[Inputs], str | None]
    xid: int | None = None
    citation: str | None = None


@dataclass(frozen=True)
class Verdict:
    level: Level
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons)}


def _reading(name: str) -> Callable[[Inputs], Any]:
    return lambda i: None if i.health is None else getattr(i.health, name)


def _positive(name: str, what: str) -> Callable[[Inputs], str | None]:
    read = _reading(name)

    def check(i: Inputs) -> str | None:
        value = read(i)
        return f"{what}: {value}" if value else None

    return check


def _flag(name: str, what: str) -> Callable[[Inputs], str | None]:
    read = _reading(name)
    return lambda i: what if read(i) else None


def _throttle(*names: str) -> Callable[[Inputs], str | None]:
    def check(i: Inputs) -> str | None:
        reasons = None if i.health is None else i.health.throttle_reasons
        hit = [name for name in names if reasons and name in reasons]
        return "clock-event reasons " + ", ".join(hit) if hit else None

    return check


def _below_max(name: str, what: str, *, skip_when_idle: bool) -> Callable[[Inputs], str | None]:
    def check(i: Inputs) -> str | None:
        h = i.health
        if h is None:
            return None
        now, top = getattr(h, name), getattr(h, name + "_max")
        if now is None or top is None or now >= top:
            return None
        if skip_when_idle and "idle" in (h.throttle_reasons or ()):
            return None  # GPUs lower the link generation to save power when idle
        return f"{what} {now}, capable of {top}"

    return check


def _near_slowdown(i: Inputs) -> str | None:
    margin = None if i.health is None else i.health.temperature_margin_c
    if margin is None or margin > i.temperature_margin_c:
        return None
    return f"{margin} C below the slowdown temperature (warning at {i.temperature_margin_c} C)"


def _xid_since_start(code: int) -> Callable[[Inputs], str | None]:
    def check(i: Inputs) -> str | None:
        if i.xids is None or code not in i.xids.codes_since_start:
            return None
        return f"XID {code} seen since the worker started"

    return check


def _xid_last_hour(code: int) -> Callable[[Inputs], str | None]:
    def check(i: Inputs) -> str | None:
        if i.xids is None or code not in i.xids.codes_last_hour:
            return None
        return f"XID {code} in the last hour"

    return check


def _cite(code: int, meaning: str, action: str) -> str:
    return f"{XID_CATALOGUE} - Xid {code}: {meaning}. NVIDIA's recommended action: {action}."


# XID codes with their own rule; any other code in the last hour is `xid_recent`.
_CRITICAL_XIDS: tuple[tuple[int, str, str], ...] = (
    (
        48,
        "Double Bit ECC Error (DBE), an uncorrectable memory error",
        "reset the GPU or reboot; if followed by Xid 63/64, drain the node and reset",
    ),
    (
        64,
        "ECC page retirement or row remapper recording failure",
        "drain and triage; for a row-remapper recording failure, reboot the node",
    ),
    (
        74,
        "NVLink error, a hardware fault on the link between GPUs or to an NVSwitch",
        "drain, reset the GPU and inspect the NVLink hardware",
    ),
    (
        79,
        "GPU has fallen off the bus (no longer reachable over PCIe)",
        "drain the node and reboot; inspect the PCIe/power hardware if it recurs",
    ),
    (
        95,
        "Uncontained ECC error: an uncorrectable error reached other applications",
        "reset the GPU (with MIG disabled, reboot the system immediately)",
    ),
    (
        119,
        "GSP RPC timeout: the GPU System Processor stopped answering",
        "reset the GPU or reboot; inspect the hardware if it recurs",
    ),
    (
        120,
        "GSP error in the GPU System Processor firmware",
        "reset the GPU or reboot; inspect the hardware if it recurs",
    ),
)
_WARNING_XIDS: tuple[tuple[int, str, str], ...] = (
    (
        92,
        "High single-bit ECC error rate (errors were corrected)",
        "none immediately; an excessive rate may qualify the board for RMA",
    ),
    (
        94,
        "Contained ECC error: an uncorrectable error was confined to one application",
        "restart the application that hit it; reset the GPU when convenient so the "
        "row remap takes effect",
    ),
)
_OWN_RULE_XIDS = frozenset(code for code, _, _ in _CRITICAL_XIDS + _WARNING_XIDS)


def _other_xids(i: Inputs) -> str | None:
    if i.xids is None:
        return None
    others = [code for code in i.xids.codes_last_hour if code not in _OWN_RULE_XIDS]
    if not others:
        return None
    return f"XID {', '.join(map(str, others))} in the last hour ({i.xids.count_last_hour} XIDs)"


def _xid_rules(
    level: Level,
    window: str,
    test: Callable[[int], Callable[[Inputs], str | None]],
    table: tuple[tuple[int, str, str], ...],
) -> tuple[Rule, ...]:
    """One rule per XID code of `table` (code, meaning, action), each citing the catalogue."""
    return tuple(
        Rule(
            f"xid_{code}",
            level,
            f"XID {code} {window}: {meaning}",
            test(code),
            xid=code,
            citation=_cite(code, meaning, action),
        )
        for code, meaning, action in table
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "gpu_lost",
        "critical",
        "NVML cannot read the GPU: lost (fallen off the bus), not responding or failing",
        lambda i: (i.lost_reason or "NVML_ERROR_GPU_IS_LOST") if i.lost else None,
    ),
    Rule(
        "ecc_uncorrectable",
        "critical",
        "uncorrectable ECC errors since the driver loaded (volatile counter)",
        _positive("ecc_uncorrected_volatile", "uncorrectable volatile ECC errors"),
    ),
    Rule(
        "row_remap_failure",
        "critical",
        "a memory row could not be remapped (out of spare rows): the board needs service",
        _flag("remapped_rows_failure", "row remapping failed"),
    ),
    Rule(
        "row_remap_pending",
        "critical",
        "a memory row remap is pending: it takes effect only after a GPU reset",
        _flag("remapped_rows_pending", "row remap pending"),
    ),
    *_xid_rules("critical", "since start", _xid_since_start, _CRITICAL_XIDS),
    Rule(
        "thermal_throttle",
        "warning",
        "clocks slowed for temperature (software or hardware thermal slowdown)",
        _throttle("sw_thermal_slowdown", "hw_thermal_slowdown"),
    ),
    Rule(
        "power_brake",
        "warning",
        "clocks slowed by the hardware power brake (external power-brake signal)",
        _throttle("hw_power_brake"),
    ),
    Rule(
        "hw_slowdown",
        "warning",
        "clocks slowed by a hardware slowdown (temperature, power or external signal)",
        _throttle("hw_slowdown"),
    ),
    Rule(
        "pcie_gen_degraded",
        "warning",
        "PCIe link generation below what the link supports (ignored while the GPU is idle)",
        _below_max("pcie_link_gen", "PCIe gen", skip_when_idle=True),
    ),
    Rule(
        "pcie_width_degraded",
        "warning",
        "PCIe link width below what the link supports",
        _below_max("pcie_link_width", "PCIe width", skip_when_idle=False),
    ),
    Rule(
        "temperature_near_slowdown",
        "warning",
        f"temperature within {TEMPERATURE_MARGIN_C} C (by default) of the slowdown threshold",
        _near_slowdown,
    ),
    Rule(
        "retired_pages_pending",
        "warning",
        "memory pages are waiting to be retired: takes effect after a GPU reset or reboot",
        _flag("retired_pages_pending", "page retirement pending"),
    ),
    *_xid_rules("warning", "in the last hour", _xid_last_hour, _WARNING_XIDS),
    Rule(
        "xid_recent",
        "warning",
        "other XIDs in the last hour (often application faults; see NVIDIA's XID catalogue)",
        _other_xids,
        citation=XID_CATALOGUE,
    ),
)


def verdict(
    health: GpuHealth | None,
    xid_stats: XidStats | None,
    lost: bool,
    *,
    temperature_margin_c: int = TEMPERATURE_MARGIN_C,
    lost_reason: str | None = None,
) -> Verdict:
    """Apply every rule; the level is the worst that fired, reasons in RULES order.

    `lost_reason` is NVML's own words for a lost GPU (the `gpu_lost` rule's detail).
    """
    inputs = Inputs(health, xid_stats, lost, temperature_margin_c, lost_reason)
    fired = [(rule, detail) for rule in RULES if (detail := rule.check(inputs)) is not None]
    reasons = tuple(f"{rule.id}: {rule.description} ({detail})" for rule, detail in fired)
    if any(rule.level == "critical" for rule, _ in fired):
        return Verdict("critical", reasons)
    return Verdict("warning" if fired else "ok", reasons)
