"""The recovery action per GPU (worker/sampling/recovery.py): NVIDIA's tables, the driver's
field, the state rules, precedence and escalation; XidHistory; and GpuReader putting it
together through the real pynvml over the NVML stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pynvml
import pytest

from tests.sampling.support import run_child
from tests.standins.nvml.build import FakeNvml
from worker.sampling import recovery as rec
from worker.sampling.xid_history import MAX_EVENTS_PER_GPU, XidHistory

# NVIDIA's Xid catalog (Ampere and newer), "Resolution Bucket (Immediate Action)":
# https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html (Xid-Catalog.xlsx).
# Written out here as the specification the module is checked against.
CATALOG_BUCKET = {
    8: "RESTART_APP",
    11: "RESTART_APP",
    13: "RESTART_APP",
    31: "RESTART_APP",
    43: "IGNORE",
    46: "RESET_GPU",
    62: "RESET_GPU",
    63: "IGNORE",
    64: "RESET_GPU",
    79: "RESTART_BM",
    92: "IGNORE",
    94: "RESTART_APP",
    95: "RESET_GPU",
    109: "RESET_GPU",
    119: "RESET_GPU",
    120: "RESET_GPU",
    136: "RESET_GPU",
    140: "RESET_GPU",
    143: "RESET_GPU",
    154: "IGNORE",
    158: "RESET_GPU",
}
BUCKET_ACTION = {
    "IGNORE": "none",
    "RESTART_APP": "restart_app",
    "RESET_GPU": "reset_gpu",
    "RESTART_BM": "reboot",
}
# nvmlDeviceGpuRecoveryAction_t -> action (NVIDIA's "Error Recovery and Response Flags").
DRIVER = {
    pynvml.NVML_GPU_RECOVERY_ACTION_NONE: "none",
    pynvml.NVML_GPU_RECOVERY_ACTION_GPU_RESET: "reset_gpu",
    pynvml.NVML_GPU_RECOVERY_ACTION_NODE_REBOOT: "reboot",
    pynvml.NVML_GPU_RECOVERY_ACTION_DRAIN_P2P: "drain_and_reset",
    pynvml.NVML_GPU_RECOVERY_ACTION_DRAIN_AND_RESET: "drain_and_reset",
    pynvml.NVML_GPU_RECOVERY_ACTION_RECOVER_IMEX_DOMAIN: "contact_support",
    pynvml.NVML_GPU_RECOVERY_ACTION_BUS_RESET: "reset_gpu",
    pynvml.NVML_GPU_RECOVERY_ACTION_SYSTEM_REBOOT: "reboot",
}
Inputs = rec.RecoveryInputs


def decide(**fields) -> rec.Recovery:
    return rec.recovery(Inputs(**fields))


@pytest.mark.parametrize("code", sorted(CATALOG_BUCKET))
def test_each_xid_gets_the_catalog_bucket(code: int) -> None:
    expected = BUCKET_ACTION[CATALOG_BUCKET[code]]
    assert rec.xid_action(code, ())[0] == expected
    # seen in the last hour, nothing else wrong: that XID's rule decides (and says so,
    # an ignorable one included)
    got = decide(xids_since_start=(code,), xids_last_hour=(code,))
    assert (got.action, got.rule) == (expected, f"xid_{code}")
    assert got.reason.startswith(f"XID {code}: ")


def test_informational_xids_are_no_action_and_not_critical() -> None:
    for code in (43, 63, 92, 154):
        got = decide(xids_since_start=(code,), xids_last_hour=(code,))
        assert (got.action, got.rule) == ("none", f"xid_{code}")
        assert got.reason.endswith("(IGNORE)")
        assert not rec.escalates(code)
        assert decide(xids_since_start=(code,)) == rec.NO_ACTION  # older than an hour


def test_workflows_of_45_48_and_74() -> None:
    # WORKFLOW_XID_48: alone RESET_GPU, with 63 or 64 drain and reset
    assert decide(xids_since_start=(48,)).action == "reset_gpu"
    both = decide(xids_since_start=(48, 63), xids_last_hour=(48, 63))
    assert (both.action, both.rule) == ("drain_and_reset", "xid_48")
    # WORKFLOW_XID_45: alone a restart; after another XID it only follows that one
    assert decide(xids_since_start=(45,), xids_last_hour=(45,)).action == "restart_app"
    after = decide(xids_since_start=(13, 45), xids_last_hour=(13, 45))
    assert (after.action, after.rule) == ("restart_app", "xid_13")
    # WORKFLOW_NVLINK_ERR
    assert decide(xids_since_start=(74,)).action == "reset_gpu"


def test_unlisted_xid_is_restart_app() -> None:
    got = decide(xids_since_start=(999,), xids_last_hour=(999,))
    assert (got.action, got.rule) == ("restart_app", "xid_999")


def test_windows_reset_class_since_start_app_class_for_an_hour() -> None:
    # an XID 13 older than an hour asks nothing more; an XID 95 stays until a reset shows
    assert decide(xids_since_start=(13,), xids_last_hour=()) == rec.NO_ACTION
    assert decide(xids_since_start=(95,), xids_last_hour=()).action == "reset_gpu"


def test_gpu_lost_is_reboot() -> None:
    got = decide(lost=True, lost_reason="GPU is lost (fell off the bus)")
    assert (got.action, got.rule) == ("reboot", "gpu_lost")
    assert "GPU is lost" in got.reason
    assert decide(xids_since_start=(79,)).action == "reboot"


def test_row_remap_pending_and_failure() -> None:
    assert decide(remap_pending=True).as_dict() == {
        "action": "reset_gpu",
        "action_rule": "row_remap_pending",
        "action_reason": "a row remap takes effect at a GPU reset",
    }
    failure = decide(remap_pending=True, remap_failure=True)
    assert (failure.action, failure.rule) == ("contact_support", "row_remap_failure")
    assert decide(remap_pending=False, remap_failure=False) == rec.NO_ACTION


@pytest.mark.parametrize(("value", "action"), sorted(DRIVER.items()))
def test_driver_action_maps_each_value(value: int, action: str) -> None:
    got = decide(driver_action=value)
    assert (got.action, got.rule) == (action, "driver")
    assert f"({value})" in got.reason


def test_driver_action_replaces_the_xid_rules_but_not_the_state_rules() -> None:
    # the driver says nothing is left to do after the XID 95 it had: its word wins
    got = decide(driver_action=0, xids_since_start=(95, 79), xids_last_hour=(95,))
    assert (got.action, got.rule) == ("none", "driver")
    # ...but a pending remap, a remap failure or a lost GPU still count
    assert decide(driver_action=0, remap_pending=True).rule == "row_remap_pending"
    assert decide(driver_action=1, remap_failure=True).action == "contact_support"
    # and the worse of the driver and the state rules wins
    assert decide(driver_action=2, remap_pending=True).action == "reboot"
    unknown = decide(driver_action=42)
    assert (unknown.action, unknown.rule) == ("contact_support", "driver")


def test_most_severe_wins_and_rule_order_breaks_ties() -> None:
    got = decide(xids_since_start=(13, 95), xids_last_hour=(13,))
    assert (got.action, got.rule) == ("reset_gpu", "xid_95")
    tie = decide(remap_pending=True, xids_since_start=(95,))
    assert tie.rule == "row_remap_pending"  # listed before the XID rules


def test_escalation_after_three_of_the_same_reset_class_xid_in_a_day() -> None:
    assert rec.RECURRENCE_COUNT == 3 and rec.RECURRENCE_WINDOW_S == 86400
    twice = decide(xids_since_start=(48,), recurrences={48: 2})
    assert twice.action == "reset_gpu"
    thrice = decide(xids_since_start=(48,), recurrences={48: 3})
    assert (thrice.action, thrice.rule) == ("contact_support", "xid_recurring")
    assert thrice.reason.startswith("XID 48 3 times in 24 h")
    # the driver saying all is well does not hide a pattern
    assert decide(driver_action=0, recurrences={79: 3}).rule == "xid_recurring"
    # different codes do not add up; app-level and informational codes never escalate
    assert decide(recurrences={48: 2, 95: 2}).action == "none"
    assert decide(recurrences={13: 50, 63: 10, 92: 10}) == rec.NO_ACTION  # XIDs long gone
    assert [c for c in (13, 31, 43, 63, 92, 94, 154) if rec.escalates(c)] == []
    assert all(rec.escalates(c) for c in (46, 48, 62, 64, 74, 79, 95, 119, 120, 140))


def test_every_action_name_is_known_and_ordered() -> None:
    assert rec.ACTIONS == (
        "none",
        "restart_app",
        "reset_gpu",
        "drain_and_reset",
        "reboot",
        "contact_support",
    )
    produced = {a for _, a in rec.DRIVER_ACTIONS.values()} | {
        a for a, _ in rec.XID_ACTIONS.values()
    }
    assert produced <= set(rec.ACTIONS)


# ---- XidHistory ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_history_counts_a_day_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "xid_history.json"
    clock = Clock()
    history = XidHistory(path, clock=clock)
    history.record("GPU-a", 48)
    clock.now += 3600
    history.record("GPU-a", 48)
    history.record("GPU-b", 79)
    assert history.counts("GPU-a") == {48: 2}
    restarted = XidHistory(path, clock=clock)  # a new sampler reads the file
    assert restarted.counts("GPU-a") == {48: 2}
    assert restarted.counts("GPU-b") == {79: 1}
    clock.now += 86400 - 1800  # the first one is now older than a day
    assert restarted.counts("GPU-a") == {48: 1}
    restarted.record("GPU-a", 95)
    assert json.loads(path.read_text())["GPU-a"] == [
        [48, 1_000_000.0 + 3600],
        [95, clock.now],
    ]


def test_history_is_bounded_and_tolerates_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "xid_history.json"
    path.write_text("{not json")
    history = XidHistory(path)
    assert history.counts("GPU-a") == {}
    for _ in range(MAX_EVENTS_PER_GPU + 10):
        history.record("GPU-a", 119)
    assert history.counts("GPU-a") == {119: MAX_EVENTS_PER_GPU}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_history_without_a_writable_place_keeps_counting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    history = XidHistory(blocker / "xid_history.json")  # its directory cannot be made
    history.record("GPU-a", 79)
    history.record("GPU-a", 79)
    assert history.counts("GPU-a") == {79: 2}


# ---- GpuReader over the stand-in -------------------------------------------------------------

READER = """
from worker.sampling.nvml import GpuReader
from worker.sampling.xid_history import XidHistory
reader = GpuReader(xid_history=XidHistory(HISTORY))
def actions():
    return [[g.action, g.action_rule] for g in reader.read().gpus]
first = actions()
assert reader.xids is not None and reader.xids.registered == (0, 1)
xid_file = os.environ["FAKE_NVML_EVENTS"]
with open(xid_file, "a") as f:
    f.write("0 95\\n0 95\\n1 13\\n")
deadline = time.monotonic() + 10
while time.monotonic() < deadline and reader.xids.stats(0).count < 2:
    time.sleep(0.02)
after_xids = actions()
with open(os.environ["FAKE_NVML_HEALTH"], "a") as f:
    f.write("1 recovery_action 2\\n")
driver = actions()
reader.close()
emit({"first": first, "after_xids": after_xids, "driver": driver})
"""


def test_reader_gives_each_gpu_its_action_and_keeps_serious_xids(
    fake_nvml: FakeNvml, tmp_path: Path
) -> None:
    history = tmp_path / "data" / "xid_history.json"
    prelude = f"HISTORY = __import__('pathlib').Path({str(history)!r})\n"
    out = run_child(prelude + READER, fake_nvml.env())
    assert out["first"] == [["none", "none"], ["none", "none"]]
    assert out["after_xids"] == [["reset_gpu", "xid_95"], ["restart_app", "xid_13"]]
    assert out["driver"] == [["reset_gpu", "xid_95"], ["reboot", "driver"]]
    kept = json.loads(history.read_text())
    assert [code for code, _ in kept["GPU-00000000-1111-2222-3333-444444444444"]] == [95, 95]
    assert len(kept) == 1  # XID 13 is app-level: not kept
    # more XID 95 after a restart (a reset needs the stack stopped): escalation
    fake_nvml.reset_health()
    out = run_child(prelude + READER, fake_nvml.env())
    assert out["first"] == [["none", "none"], ["none", "none"]]  # two in a day: not yet
    assert out["after_xids"][0] == ["contact_support", "xid_recurring"]


def test_reader_lost_gpu_is_reboot(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    fake_nvml.set_scenario("gpu_lost")
    code = (
        "from worker.sampling.nvml import GpuReader\n"
        "g = GpuReader(watch_xids=False).read().gpus\n"
        "emit([[x.action, x.action_rule, x.action_reason] for x in g])"
    )
    gpu0, gpu1 = run_child(code, fake_nvml.env())
    assert gpu0 == ["none", "none", "no rule asks for an action"]
    assert gpu1[:2] == ["reboot", "gpu_lost"]
    assert "GPU is lost" in gpu1[2]
