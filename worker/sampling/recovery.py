"""What to do about a GPU: one recovery action per GPU, and the rule that chose it.

Actions, mildest first: `none`, `restart_app`, `reset_gpu`, `drain_and_reset`, `reboot`,
`contact_support`. Every rule that applies proposes one; the most severe wins (the first
in rule order on a tie). The rules (docs/gpu-health.md#recovery-action has the table and
its sources):

- `gpu_lost`: NVML cannot read the GPU (NVML_ERROR_GPU_IS_LOST, XID 79): `reboot`.
- `row_remap_failure`: a row could not be remapped: `contact_support`.
- `xid_recurring`: the same XID whose action is a reset or a reboot seen
  RECURRENCE_COUNT times within RECURRENCE_WINDOW_S on one GPU: `contact_support`.
- `driver`: the driver's own answer, NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, where it gives
  one. It replaces the XID rules: the driver knows whether the reset an XID asked for has
  happened, our XID counts cannot.
- `row_remap_pending`: a remap waits for a GPU reset: `reset_gpu`.
- `xid_<code>`: NVIDIA's XID catalog, immediate action (resolution bucket) per code; a
  code not in XID_ACTIONS is `restart_app` (`xid_unlisted`).

Pure functions over plain values: no NVML here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["none", "restart_app", "reset_gpu", "drain_and_reset", "reboot", "contact_support"]
ACTIONS: tuple[Action, ...] = (
    "none",
    "restart_app",
    "reset_gpu",
    "drain_and_reset",
    "reboot",
    "contact_support",
)

XID_CATALOG = "https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html"
RECOVERY_FLAGS = (
    "https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/error-recovery-and-response-flags.html"
)

# The same reset- or reboot-class XID this many times in this long means the reset or
# reboot did not cure it: the board needs service (see docs/gpu-health.md).
RECURRENCE_COUNT = 3
RECURRENCE_WINDOW_S = 24 * 3600.0

# nvmlDeviceGpuRecoveryAction_t (nvml.h; nvidia-ml-py NVML_GPU_RECOVERY_ACTION_*).
DRIVER_ACTIONS: dict[int, tuple[str, Action]] = {
    0: ("NONE", "none"),
    1: ("GPU_RESET", "reset_gpu"),
    2: ("NODE_REBOOT", "reboot"),
    # quiesce peer-to-peer traffic, then the driver names the next step: drain first
    3: ("DRAIN_P2P", "drain_and_reset"),
    4: ("DRAIN_AND_RESET", "drain_and_reset"),
    5: ("RECOVER_IMEX_DOMAIN", "contact_support"),  # multi-node NVLink fabric: not ours
    6: ("BUS_RESET", "reset_gpu"),
    7: ("SYSTEM_REBOOT", "reboot"),
}

# NVIDIA's XID catalog (Ampere and newer), "Resolution Bucket (Immediate Action)", mapped:
# IGNORE -> none, RESTART_APP -> restart_app, RESET_GPU -> reset_gpu,
# RESTART_BM / RESTART_VM -> reboot, CONTACT_SUPPORT -> contact_support. Codes with a
# workflow instead of a bucket (45, 48, 74) are handled in xid_action below.
XID_ACTIONS: dict[int, tuple[Action, str]] = {
    8: ("restart_app", "GPU stopped processing (RESTART_APP)"),
    11: ("restart_app", "invalid or corrupted push buffer stream (RESTART_APP)"),
    13: ("restart_app", "graphics engine exception (RESTART_APP)"),
    31: ("restart_app", "GPU memory page fault (RESTART_APP)"),
    43: ("none", "GPU stopped processing a channel; follows another error (IGNORE)"),
    46: ("reset_gpu", "GPU stopped processing (RESET_GPU)"),
    62: ("reset_gpu", "internal micro-controller halt (RESET_GPU)"),
    63: ("none", "row remapping recorded (IGNORE)"),
    64: ("reset_gpu", "row remapper or page retirement recording failure (RESET_GPU)"),
    79: ("reboot", "GPU has fallen off the bus (RESTART_BM)"),
    92: ("none", "high single-bit ECC error rate, corrected (IGNORE)"),
    94: ("restart_app", "contained ECC error (RESTART_APP)"),
    95: ("reset_gpu", "uncontained ECC error (RESET_GPU)"),
    109: ("reset_gpu", "context switch timeout (RESET_GPU)"),
    119: ("reset_gpu", "GSP RPC timeout (RESET_GPU)"),
    120: ("reset_gpu", "GSP error (RESET_GPU)"),
    136: ("reset_gpu", "NVLink link training failed (RESET_GPU)"),
    140: ("reset_gpu", "unrecovered ECC error (RESET_GPU)"),
    143: ("reset_gpu", "GPU initialization error (RESET_GPU)"),
    154: ("none", "the driver's recovery action changed: it is read from NVML (IGNORE)"),
    158: ("reset_gpu", "GPU fatal timeout (RESET_GPU)"),
}
WORKFLOW_XIDS = (45, 48, 74)
SEVERITY = {action: rank for rank, action in enumerate(ACTIONS)}


@dataclass(frozen=True)
class Recovery:
    """The action for one GPU, the id of the rule that chose it and why, in words."""

    action: Action
    rule: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "action_rule": self.rule, "action_reason": self.reason}


NO_ACTION = Recovery("none", "none", "no rule asks for an action")


def xid_action(code: int, others: Collection[int]) -> tuple[Action, str]:
    """The catalog's immediate action for XID `code`; `others` are the GPU's other XIDs
    in the same window (the workflows of 45 and 48 depend on them)."""
    if code == 48:  # WORKFLOW_XID_48: alone RESET_GPU; with 63 or 64 drain and reset
        if {63, 64} & set(others):
            return "drain_and_reset", "double-bit ECC error with a row remap event (XID 63/64)"
        return "reset_gpu", "double-bit ECC error (WORKFLOW_XID_48, alone: RESET_GPU)"
    if code == 45:  # WORKFLOW_XID_45: alone restart (Fabric Manager); else it follows another
        if set(others) - {45}:
            return "none", "preemptive cleanup after another XID (follow that one)"
        return "restart_app", "preemptive cleanup with no other XID (WORKFLOW_XID_45)"
    if code == 74:  # WORKFLOW_NVLINK_ERR: reset the GPU (or reboot), then inspect NVLink
        return "reset_gpu", "NVLink error (WORKFLOW_NVLINK_ERR: reset the GPU)"
    return XID_ACTIONS.get(code, ("restart_app", "not in the catalog table here (restart_app)"))


def escalates(code: int) -> bool:
    """Whether XID `code` counts towards `xid_recurring` (its action is a reset or reboot)."""
    action, _ = xid_action(code, ())
    return SEVERITY[action] >= SEVERITY["reset_gpu"]


@dataclass(frozen=True)
class RecoveryInputs:
    """What the rules look at. XID codes: `xids_since_start` count for reset- and
    reboot-class codes (their action cannot be seen done), `xids_last_hour` for the rest;
    `recurrences` is XID code -> times seen in the last RECURRENCE_WINDOW_S (kept across
    restarts); `driver_action` the NVML field's raw value, None when not reported."""

    lost: bool = False
    lost_reason: str | None = None
    driver_action: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    xids_since_start: tuple[int, ...] = ()
    xids_last_hour: tuple[int, ...] = ()
    recurrences: Mapping[int, int] | None = None


def _xid_candidates(inputs: RecoveryInputs) -> list[Recovery]:
    found = []
    codes = sorted(set(inputs.xids_since_start) | set(inputs.xids_last_hour))
    for code in codes:
        recent = code in inputs.xids_last_hour
        others = [c for c in (*inputs.xids_since_start, *inputs.xids_last_hour) if c != code]
        action, why = xid_action(code, others)
        if not recent and not escalates(code):
            continue  # app-level and informational XIDs count for an hour
        found.append(Recovery(action, f"xid_{code}", f"XID {code}: {why}"))
    return found


def recovery(inputs: RecoveryInputs) -> Recovery:
    """The most severe action any rule proposes (rule order breaks ties); NO_ACTION if none."""
    candidates: list[Recovery] = []
    if inputs.lost:
        why = inputs.lost_reason or "NVML_ERROR_GPU_IS_LOST"
        candidates.append(Recovery("reboot", "gpu_lost", f"NVML cannot read the GPU ({why})"))
    if inputs.remap_failure:
        candidates.append(
            Recovery("contact_support", "row_remap_failure", "a memory row could not be remapped")
        )
    for code, count in sorted((inputs.recurrences or {}).items()):
        if count >= RECURRENCE_COUNT and escalates(code):
            hours = RECURRENCE_WINDOW_S / 3600
            candidates.append(
                Recovery(
                    "contact_support",
                    "xid_recurring",
                    f"XID {code} {count} times in {hours:g} h: the reset or reboot it asks"
                    " for did not cure it",
                )
            )
    if inputs.driver_action is not None:
        name, action = DRIVER_ACTIONS.get(inputs.driver_action, ("UNKNOWN", "contact_support"))
        candidates.append(
            Recovery(
                action,
                "driver",
                f"the driver reports NVML_GPU_RECOVERY_ACTION_{name} ({inputs.driver_action})",
            )
        )
    if inputs.remap_pending:
        candidates.append(
            Recovery("reset_gpu", "row_remap_pending", "a row remap takes effect at a GPU reset")
        )
    if inputs.driver_action is None:
        candidates.extend(_xid_candidates(inputs))
    if not candidates:
        return NO_ACTION
    return max(candidates, key=lambda c: (SEVERITY[c.action], -candidates.index(c)))
