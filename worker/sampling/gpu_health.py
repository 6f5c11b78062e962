"""One GPU's health through NVML: throttling, clocks, thermals, ECC, PCIe, processes, MIG.

`read_health(handle)` makes every call itself; a reading the board, the driver or our
permissions do not offer (NOT_SUPPORTED, NO_PERMISSION, FUNCTION_NOT_FOUND) is None,
never an error for the whole GPU. A lost GPU raises `GpuLostError`; any other NVML
error propagates as the `pynvml.NVMLError` it is. The caller initialises NVML.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pynvml

MIB = 1024 * 1024
T = TypeVar("T")

# NVML answers meaning "this reading does not exist here", not "the GPU is broken".
_UNAVAILABLE = (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_NO_PERMISSION)
_MISSING = (*_UNAVAILABLE, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

# nvmlClocksEventReason* bits (same values as the older nvmlClocksThrottleReason*),
# in the order names are reported.
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x04, "power_cap"),  # SwPowerCap
    (0x20, "sw_thermal_slowdown"),  # SwThermalSlowdown
    (0x40, "hw_thermal_slowdown"),  # HwThermalSlowdown
    (0x80, "hw_power_brake"),  # HwPowerBrakeSlowdown
    (0x08, "hw_slowdown"),  # HwSlowdown
    (0x10, "sync_boost"),  # SyncBoost
    (0x01, "idle"),  # GpuIdle
    (0x02, "applications_clocks_setting"),  # ApplicationsClocksSetting
)


class GpuLostError(Exception):
    """NVML reports the GPU lost (fallen off the bus or not responding)."""


def decode_throttle_reasons(mask: int) -> tuple[str, ...]:
    """The known reasons set in an NVML clock-event bitmask, in THROTTLE_REASONS order."""
    return tuple(name for bit, name in THROTTLE_REASONS if mask & bit)


@dataclass(frozen=True)
class GpuProcess:
    """A compute process on the GPU. Memory None: NVML could not tell (e.g. WDDM)."""

    pid: int
    used_memory_bytes: int | None
    name: str | None

    def as_dict(self) -> dict[str, Any]:
        used = self.used_memory_bytes
        return {
            "pid": self.pid,
            "used_memory_bytes": used,
            "used_memory_mb": None if used is None else round(used / MIB, 1),
            "name": self.name,
        }


@dataclass(frozen=True)
class GpuHealth:
    """One GPU's health readings at one moment; None = not available on this GPU."""

    throttle_reasons_mask: int | None
    clock_sm_mhz: int | None
    clock_sm_max_mhz: int | None
    clock_mem_mhz: int | None
    clock_mem_max_mhz: int | None
    pstate: int | None
    fan_speed_pct: int | None
    temperature_c: int | None
    temperature_slowdown_c: int | None
    temperature_shutdown_c: int | None
    ecc_enabled: bool | None
    ecc_enabled_pending: bool | None
    ecc_corrected_volatile: int | None
    ecc_corrected_aggregate: int | None
    ecc_uncorrected_volatile: int | None
    ecc_uncorrected_aggregate: int | None
    retired_pages_sbe: int | None
    retired_pages_dbe: int | None
    retired_pages_pending: bool | None
    remapped_rows_correctable: int | None
    remapped_rows_uncorrectable: int | None
    remapped_rows_pending: bool | None
    remapped_rows_failure: bool | None
    pcie_link_gen: int | None
    pcie_link_gen_max: int | None
    pcie_link_width: int | None
    pcie_link_width_max: int | None
    pcie_replay_count: int | None
    processes: tuple[GpuProcess, ...] | None
    mig_enabled: bool | None
    mig_enabled_pending: bool | None
    # NVML_FI_DEV_GET_GPU_RECOVERY_ACTION (nvmlDeviceGpuRecoveryAction_t); None on drivers
    # that do not report it
    recovery_action_driver: int | None = None

    @property
    def throttle_reasons(self) -> tuple[str, ...] | None:
        mask = self.throttle_reasons_mask
        return None if mask is None else decode_throttle_reasons(mask)

    @property
    def temperature_margin_c(self) -> int | None:
        """Degrees C left before the slowdown threshold (negative: past it)."""
        if self.temperature_c is None or self.temperature_slowdown_c is None:
            return None
        return self.temperature_slowdown_c - self.temperature_c

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, unit-suffixed field names (docs/gpu-health.md lists them)."""
        reasons = self.throttle_reasons
        return {
            "throttle_reasons": None if reasons is None else list(reasons),
            "throttle_reasons_mask": self.throttle_reasons_mask,
            "clock_sm_mhz": self.clock_sm_mhz,
            "clock_sm_max_mhz": self.clock_sm_max_mhz,
            "clock_mem_mhz": self.clock_mem_mhz,
            "clock_mem_max_mhz": self.clock_mem_max_mhz,
            "pstate": self.pstate,
            "fan_speed_pct": self.fan_speed_pct,
            "temperature_c": self.temperature_c,
            "temperature_slowdown_c": self.temperature_slowdown_c,
            "temperature_shutdown_c": self.temperature_shutdown_c,
            "temperature_margin_c": self.temperature_margin_c,
            "ecc_enabled": self.ecc_enabled,
            "ecc_enabled_pending": self.ecc_enabled_pending,
            "ecc_corrected_volatile_count": self.ecc_corrected_volatile,
            "ecc_corrected_aggregate_count": self.ecc_corrected_aggregate,
            "ecc_uncorrected_volatile_count": self.ecc_uncorrected_volatile,
            "ecc_uncorrected_aggregate_count": self.ecc_uncorrected_aggregate,
            "retired_pages_sbe_count": self.retired_pages_sbe,
            "retired_pages_dbe_count": self.retired_pages_dbe,
            "retired_pages_pending": self.retired_pages_pending,
            "remapped_rows_correctable_count": self.remapped_rows_correctable,
            "remapped_rows_uncorrectable_count": self.remapped_rows_uncorrectable,
            "remapped_rows_pending": self.remapped_rows_pending,
            "remapped_rows_failure": self.remapped_rows_failure,
            "pcie_link_gen": self.pcie_link_gen,
            "pcie_link_gen_max": self.pcie_link_gen_max,
            "pcie_link_width": self.pcie_link_width,
            "pcie_link_width_max": self.pcie_link_width_max,
            "pcie_replay_count": self.pcie_replay_count,
            "processes": (
                None if self.processes is None else [p.as_dict() for p in self.processes]
            ),
            "mig_enabled": self.mig_enabled,
            "mig_enabled_pending": self.mig_enabled_pending,
            "recovery_action_driver": self.recovery_action_driver,
        }


def _optional(call: Callable[..., T], *args: Any) -> T | None:
    """Call NVML: a missing reading is None, a lost GPU GpuLostError, else it raises."""
    return _guarded(call, args, _MISSING)


def _guarded(call: Callable[..., T], args: tuple[Any, ...], missing: tuple[int, ...]) -> T | None:
    try:
        return call(*args)
    except pynvml.NVMLError as error:
        if error.value == pynvml.NVML_ERROR_GPU_IS_LOST:
            raise GpuLostError(str(error)) from error
        if error.value in missing:
            return None
        raise
    except pynvml.NVMLLibraryMismatchError:
        # pynvml's unversioned wrappers say this when the versioned symbol is missing
        return None


def _throttle_mask(handle: Any) -> int | None:
    """Current clock-event reasons; the older ThrottleReasons call when that is missing."""
    current = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if current is not None:
        try:
            return _guarded(current, (handle,), _UNAVAILABLE)
        except pynvml.NVMLError as error:
            if error.value != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
                raise
    return _optional(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle)


RECOVERY_ACTION_FIELD = getattr(pynvml, "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION", 230)


def _driver_recovery_action(handle: Any) -> int | None:
    """The driver's recovery action (a field value), None where the driver has no such field.

    The call succeeds for a readable GPU; each field carries its own nvmlReturn.
    """
    values = _optional(pynvml.nvmlDeviceGetFieldValues, handle, [RECOVERY_ACTION_FIELD])
    if not values:
        return None
    value = values[0]
    if value.nvmlReturn == pynvml.NVML_ERROR_GPU_IS_LOST:
        raise GpuLostError(str(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)))
    if value.nvmlReturn != pynvml.NVML_SUCCESS:
        return None
    return int(value.value.uiVal)


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _pair(values: Any) -> tuple[Any, Any]:
    return (None, None) if values is None else (values[0], values[1])


def _process_name(pid: int, proc_root: Path) -> str | None:
    """/proc/<pid>/comm; None when the process is not visible from here."""
    try:
        return (proc_root / str(pid) / "comm").read_text().rstrip("\n") or None
    except (OSError, UnicodeDecodeError):
        return None


def read_health(handle: Any, *, proc_root: Path = Path("/proc")) -> GpuHealth:
    """Read every health reading of the GPU behind an NVML device handle.

    Process names come from ``proc_root/<pid>/comm``: NVML reports PIDs in the host's
    PID namespace, so in a container without ``pid: host`` a name may be None (or, if
    the PID is reused inside the container, another process's name).
    """

    def ecc(error_type: int, counter: int) -> int | None:
        return _optional(pynvml.nvmlDeviceGetTotalEccErrors, handle, error_type, counter)

    def retired(cause: int) -> int | None:
        pages = _optional(pynvml.nvmlDeviceGetRetiredPages, handle, cause)
        return None if pages is None else len(pages)

    pstate = _optional(pynvml.nvmlDeviceGetPerformanceState, handle)
    ecc_now, ecc_pending = _pair(_optional(pynvml.nvmlDeviceGetEccMode, handle))
    rows = _optional(pynvml.nvmlDeviceGetRemappedRows, handle)
    corr, unc, remap_pending, remap_failure = (None,) * 4 if rows is None else rows
    mig_now, mig_pending = _pair(_optional(pynvml.nvmlDeviceGetMigMode, handle))
    raw = _optional(pynvml.nvmlDeviceGetComputeRunningProcesses, handle)
    processes = (
        None
        if raw is None
        else tuple(
            GpuProcess(int(p.pid), p.usedGpuMemory, _process_name(int(p.pid), proc_root))
            for p in raw
        )
    )
    corrected, uncorrected = (
        pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
        pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
    )
    return GpuHealth(
        throttle_reasons_mask=_throttle_mask(handle),
        clock_sm_mhz=_optional(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
        clock_sm_max_mhz=_optional(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM),
        clock_mem_mhz=_optional(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
        clock_mem_max_mhz=_optional(
            pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_MEM
        ),
        pstate=None if pstate in (None, pynvml.NVML_PSTATE_UNKNOWN) else pstate,
        fan_speed_pct=_optional(pynvml.nvmlDeviceGetFanSpeed, handle),
        temperature_c=_optional(
            pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU
        ),
        temperature_slowdown_c=_optional(
            pynvml.nvmlDeviceGetTemperatureThreshold,
            handle,
            pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
        ),
        temperature_shutdown_c=_optional(
            pynvml.nvmlDeviceGetTemperatureThreshold,
            handle,
            pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
        ),
        ecc_enabled=_flag(ecc_now),
        ecc_enabled_pending=_flag(ecc_pending),
        ecc_corrected_volatile=ecc(corrected, pynvml.NVML_VOLATILE_ECC),
        ecc_corrected_aggregate=ecc(corrected, pynvml.NVML_AGGREGATE_ECC),
        ecc_uncorrected_volatile=ecc(uncorrected, pynvml.NVML_VOLATILE_ECC),
        ecc_uncorrected_aggregate=ecc(uncorrected, pynvml.NVML_AGGREGATE_ECC),
        retired_pages_sbe=retired(pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
        retired_pages_dbe=retired(pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
        retired_pages_pending=_flag(
            _optional(pynvml.nvmlDeviceGetRetiredPagesPendingStatus, handle)
        ),
        remapped_rows_correctable=corr,
        remapped_rows_uncorrectable=unc,
        remapped_rows_pending=_flag(remap_pending),
        remapped_rows_failure=_flag(remap_failure),
        pcie_link_gen=_optional(pynvml.nvmlDeviceGetCurrPcieLinkGeneration, handle),
        pcie_link_gen_max=_optional(pynvml.nvmlDeviceGetMaxPcieLinkGeneration, handle),
        pcie_link_width=_optional(pynvml.nvmlDeviceGetCurrPcieLinkWidth, handle),
        pcie_link_width_max=_optional(pynvml.nvmlDeviceGetMaxPcieLinkWidth, handle),
        pcie_replay_count=_optional(pynvml.nvmlDeviceGetPcieReplayCounter, handle),
        processes=processes,
        mig_enabled=_flag(mig_now),
        mig_enabled_pending=_flag(mig_pending),
        recovery_action_driver=_driver_recovery_action(handle),
    )
