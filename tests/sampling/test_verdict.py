"""verdict(): one test per rule, and the cases that must stay ok."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from worker.sampling import gpu_health, xid_watch
from worker.sampling import verdict as verdict_mod

verdict = verdict_mod.verdict
RULES = verdict_mod.RULES

UNSUPPORTED = gpu_health.GpuHealth(
    **{f.name: None for f in dataclasses.fields(gpu_health.GpuHealth)}
)
HEALTHY = dataclasses.replace(
    UNSUPPORTED,
    throttle_reasons_mask=0,
    temperature_c=50,
    temperature_slowdown_c=87,
    ecc_uncorrected_volatile=0,
    remapped_rows_pending=False,
    remapped_rows_failure=False,
    retired_pages_pending=False,
    pcie_link_gen=5,
    pcie_link_gen_max=5,
    pcie_link_width=16,
    pcie_link_width_max=16,
)
NO_XIDS = xid_watch.XidStats()


def health(**changes: Any):
    return dataclasses.replace(HEALTHY, **changes)


def xids(since_start: tuple[int, ...] = (), last_hour: tuple[int, ...] = ()):
    return xid_watch.XidStats(
        count=len(since_start),
        last_xid=since_start[-1] if since_start else None,
        last_time=1000.0 if since_start else None,
        count_last_hour=len(last_hour),
        codes_since_start=since_start,
        codes_last_hour=last_hour,
    )


# rule id -> (health, xid stats, lost) that fires that rule and no other
FIRING: dict[str, tuple[Any, Any, bool]] = {
    "gpu_lost": (None, None, True),
    "ecc_uncorrectable": (health(ecc_uncorrected_volatile=1), NO_XIDS, False),
    "row_remap_failure": (health(remapped_rows_failure=True), NO_XIDS, False),
    "row_remap_pending": (health(remapped_rows_pending=True), NO_XIDS, False),
    **{
        f"xid_{code}": (HEALTHY, xids(since_start=(code,)), False)
        for code in (48, 64, 74, 79, 95, 119, 120)
    },
    "thermal_throttle": (health(throttle_reasons_mask=0x20), NO_XIDS, False),
    "power_brake": (health(throttle_reasons_mask=0x80), NO_XIDS, False),
    "hw_slowdown": (health(throttle_reasons_mask=0x08), NO_XIDS, False),
    "pcie_gen_degraded": (health(pcie_link_gen=3), NO_XIDS, False),
    "pcie_width_degraded": (health(pcie_link_width=8), NO_XIDS, False),
    "temperature_near_slowdown": (health(temperature_c=82), NO_XIDS, False),
    "retired_pages_pending": (health(retired_pages_pending=True), NO_XIDS, False),
    "xid_92": (HEALTHY, xids((92,), (92,)), False),
    "xid_94": (HEALTHY, xids((94,), (94,)), False),
    "xid_recent": (HEALTHY, xids((13, 31), (13, 31)), False),
}


def test_every_rule_has_a_firing_case() -> None:
    assert set(FIRING) == {rule.id for rule in RULES}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_each_rule_fires_alone(rule) -> None:
    result = verdict(*FIRING[rule.id])
    assert result.level == rule.level
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith(f"{rule.id}: {rule.description} (")


def test_ok_when_everything_is_unsupported() -> None:
    assert verdict(UNSUPPORTED, None, False) == verdict_mod.Verdict("ok", ())
    assert verdict(UNSUPPORTED, NO_XIDS, False).level == "ok"
    assert verdict(None, None, False).level == "ok"
    assert verdict(HEALTHY, NO_XIDS, False).as_dict() == {"level": "ok", "reasons": []}


@pytest.mark.parametrize(
    ("case", "h", "x"),
    [
        ("harmless throttle reasons", health(throttle_reasons_mask=0x1 | 0x2 | 0x4 | 0x10), None),
        ("pcie gen lowered while idle", health(pcie_link_gen=1, throttle_reasons_mask=0x1), None),
        ("pcie gen above max reading", health(pcie_link_gen=5, pcie_link_gen_max=4), None),
        ("just outside the margin", health(temperature_c=81), None),
        ("corrected ECC only", health(ecc_corrected_volatile=500), None),
        ("uncorrected aggregate only", health(ecc_uncorrected_aggregate=3), None),
        ("old non-critical XIDs", HEALTHY, xids(since_start=(13, 92, 94))),
        ("max readings missing", health(pcie_link_gen_max=None, pcie_link_width_max=None), None),
    ],
)
def test_stays_ok(case: str, h, x) -> None:
    assert verdict(h, x, False) == verdict_mod.Verdict("ok", ()), case


def test_temperature_margin_is_inclusive_and_configurable() -> None:
    assert verdict(health(temperature_c=82), None, False).level == "warning"  # 5 C left
    assert verdict(health(temperature_c=90), None, False).level == "warning"  # past it
    assert verdict(health(temperature_c=77), None, False, temperature_margin_c=10).level == (
        "warning"
    )
    assert verdict(health(temperature_c=76), None, False, temperature_margin_c=10).level == "ok"
    assert verdict_mod.TEMPERATURE_MARGIN_C == 5


def test_critical_xid_stays_critical_after_an_hour() -> None:
    result = verdict(HEALTHY, xids(since_start=(79,), last_hour=()), False)
    assert result.level == "critical"
    assert "fallen off the bus" in result.reasons[0]


def test_worst_level_wins_and_reasons_follow_the_table() -> None:
    h = health(throttle_reasons_mask=0x40, remapped_rows_pending=True, pcie_link_width=4)
    result = verdict(h, xids((48, 13), (13,)), True)
    assert result.level == "critical"
    assert [r.split(":")[0] for r in result.reasons] == [
        "gpu_lost",
        "row_remap_pending",
        "xid_48",
        "thermal_throttle",
        "pcie_width_degraded",
        "xid_recent",
    ]
    assert "hw_thermal_slowdown" in result.reasons[3]
    assert "PCIe width 4, capable of 16" in result.reasons[4]
    assert "XID 13 in the last hour" in result.reasons[5]


def test_rules_table_is_well_formed() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert {rule.level for rule in RULES} == {"warning", "critical"}
    xid_rules = {rule.xid: rule for rule in RULES if rule.xid is not None}
    critical = {code for code, rule in xid_rules.items() if rule.level == "critical"}
    assert critical == {48, 64, 74, 79, 95, 119, 120}
    for code, rule in xid_rules.items():
        assert rule.id == f"xid_{code}"
        assert rule.citation.startswith("https://docs.nvidia.com/deploy/xid-errors/")
        assert f"Xid {code}:" in rule.citation
        assert "recommended action" in rule.citation
    # criticals come first, so reasons list the worst first
    levels = [rule.level for rule in RULES]
    assert levels == sorted(levels, key=lambda level: level != "critical")
