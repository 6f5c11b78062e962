"""GPU readings through NVML (nvidia-ml-py's `pynvml`), one choke point for every call.

A reading the board does not support (power on many cards, utilisation under MIG) becomes
None for that field; a lost GPU is reported on that GPU alone; a machine without the
driver library raises SourceUnavailable with a reason an operator can act on. Each read
takes every GPU's health (worker/sampling/gpu_health.py), its XID statistics and its
verdict (worker/sampling/verdict.py). The reader initialises NVML once for the process
and, once it has, starts the XID watcher on that same initialisation. Only the sampler
process imports this module.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pynvml

from worker.sampling.gpu_health import GpuHealth, GpuLostError, read_health
from worker.sampling.readings import GpuReading, GpuReport, SourceUnavailable
from worker.sampling.recovery import Recovery, RecoveryInputs, escalates, recovery
from worker.sampling.verdict import TEMPERATURE_MARGIN_C, verdict
from worker.sampling.xid_history import XidHistory
from worker.sampling.xid_watch import XidEvent, XidStats, XidWatcher
from worker.units import milliwatts_to_watts

T = TypeVar("T")
log = logging.getLogger("agent_net.sampler")

# NVML answers that mean "this reading does not exist here", not "the GPU is broken".
_MISSING_READING = (
    pynvml.NVML_ERROR_NOT_SUPPORTED,
    pynvml.NVML_ERROR_NO_PERMISSION,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
)


class GpuLost(Exception):
    """A per-device NVML call failed in a way that makes the whole GPU unreadable."""


def _describe(error: pynvml.NVMLError) -> str:
    reasons = {
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
            "NVIDIA driver library not found (libnvidia-ml.so.1): no GPU driver on this host,"
            " or the container was started without GPU access"
        ),
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "NVIDIA driver not loaded",
        pynvml.NVML_ERROR_NO_PERMISSION: "no permission to read NVML",
        pynvml.NVML_ERROR_GPU_IS_LOST: "GPU is lost (fell off the bus or is not responding)",
        pynvml.NVML_ERROR_UNINITIALIZED: "NVML is not initialised",
    }
    return reasons.get(error.value, f"NVML error {error.value}: {error}")


XID_POLL_MS = 250  # how long the XID thread waits in NVML at a time (bounds its stop)


class GpuReader:
    """Reads every GPU through NVML. NVML is initialised lazily, in the calling process.

    After the first successful initialisation it registers for XID events and polls
    them in a thread of its own (`XidWatcher`, sharing this initialisation);
    `watch_xids=False` leaves that out (no XID statistics: `xid` is None). Reset- and
    reboot-class XIDs also go to `xid_history` (kept across restarts when it has a file),
    which the recovery rule `xid_recurring` counts.
    """

    def __init__(
        self,
        *,
        watch_xids: bool = True,
        temperature_margin_c: int = TEMPERATURE_MARGIN_C,
        proc_root: Path = Path("/proc"),
        xid_history: XidHistory | None = None,
    ) -> None:
        self._lock = threading.Lock()  # held across each whole read
        self._initialised = False
        self._gpu_errors: dict[int, str] = {}
        self._verdicts: dict[int, tuple[str | None, tuple[str, ...], str | None]] = {}
        self._watch_xids = watch_xids
        self._temperature_margin_c = temperature_margin_c
        self._proc_root = proc_root
        self._history = xid_history if xid_history is not None else XidHistory(None)
        self._uuids: dict[int, str] = {}  # the last UUID each index answered with
        self.xids: XidWatcher | None = None

    def read(self) -> GpuReport:
        """Return one report, or raise SourceUnavailable with the reason."""
        with self._lock:
            self._ensure_initialised()
            try:
                count = pynvml.nvmlDeviceGetCount()
                driver = self._optional(pynvml.nvmlSystemGetDriverVersion)
            except pynvml.NVMLError as error:
                raise SourceUnavailable(_describe(error)) from None
            except GpuLost as lost:
                raise SourceUnavailable(str(lost)) from None
            gpus = tuple(self._read_gpu(index) for index in range(count))
            self._log_gpu_errors(gpus)
            self._log_verdicts(gpus)
            return GpuReport(driver, gpus)

    def _log_gpu_errors(self, gpus: tuple[GpuReading, ...]) -> None:
        """Log a GPU's failure once when it starts or changes, and once when it ends."""
        errors = {gpu.index: gpu.error for gpu in gpus if gpu.error is not None}
        for index, error in errors.items():
            if self._gpu_errors.get(index) != error:
                log.warning("gpu_error gpu=%d reason=%r", index, error)
        for index in self._gpu_errors.keys() - errors.keys():
            log.info("gpu_recovered gpu=%d", index)
        self._gpu_errors = errors

    def _log_verdicts(self, gpus: tuple[GpuReading, ...]) -> None:
        """Log a GPU's verdict and action when they change, never once per read."""
        verdicts = {gpu.index: (gpu.verdict, gpu.verdict_reasons, gpu.action) for gpu in gpus}
        for index, (level, reasons, action) in verdicts.items():
            previous = self._verdicts.get(index)
            if previous == (level, reasons, action) or (
                previous is None and level == "ok" and action == "none"
            ):
                continue
            emit = log.info if level == "ok" and action == "none" else log.warning
            emit(
                "gpu_verdict gpu=%d level=%s action=%s reasons=%r",
                index,
                level,
                action,
                list(reasons),
            )
        self._verdicts = verdicts

    def close(self) -> None:
        """Stop the XID watcher and shut NVML down, if this reader initialised it."""
        with self._lock:
            if self.xids is not None:
                self.xids.close(timeout_s=2.0)
                self.xids = None
            if self._initialised:
                self._initialised = False
                with contextlib.suppress(pynvml.NVMLError):
                    pynvml.nvmlShutdown()

    def _ensure_initialised(self) -> None:
        if self._initialised:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise SourceUnavailable(_describe(error)) from None
        self._initialised = True
        if self._watch_xids and self.xids is None:
            self._start_xid_watch()

    def _start_xid_watch(self) -> None:
        """Register XID events on this process's NVML initialisation and poll them."""
        try:
            watcher = XidWatcher(owns_nvml=False, on_event=self._remember_xid)
        except Exception as error:  # no events is a missing reading, never a failed read
            log.warning("xid_watch_unavailable error=%s", type(error).__name__)
            return
        log.info("xid_watch_started gpus=%s", ",".join(map(str, watcher.registered)) or "none")
        watcher.start(interval_ms=XID_POLL_MS)
        self.xids = watcher

    def _history_key(self, index: int) -> str:
        return self._uuids.get(index) or f"index-{index}"

    def _remember_xid(self, event: XidEvent) -> None:
        """XidWatcher's listener: keep reset- and reboot-class XIDs for `xid_recurring`."""
        if escalates(event.xid):
            self._history.record(self._history_key(event.gpu_index), event.xid, event.wall_time)

    def _recovery(
        self,
        index: int,
        health: GpuHealth | None,
        xids: XidStats | None,
        lost_reason: str | None = None,
    ) -> Recovery:
        return recovery(
            RecoveryInputs(
                lost=health is None,
                lost_reason=lost_reason,
                driver_action=None if health is None else health.recovery_action_driver,
                remap_pending=None if health is None else health.remapped_rows_pending,
                remap_failure=None if health is None else health.remapped_rows_failure,
                xids_since_start=() if xids is None else xids.codes_since_start,
                xids_last_hour=() if xids is None else xids.codes_last_hour,
                recurrences=self._history.counts(self._history_key(index)),
            )
        )

    def _xid_stats(self, index: int) -> XidStats | None:
        watcher = self.xids
        if watcher is None or index not in watcher.registered:
            return None
        return watcher.stats(index)

    def _read_gpu(self, index: int) -> GpuReading:
        try:
            handle = self._device(pynvml.nvmlDeviceGetHandleByIndex, index)
            name = self._optional(pynvml.nvmlDeviceGetName, handle)
            uuid = self._optional(pynvml.nvmlDeviceGetUUID, handle)
            memory = self._optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
            temperature = self._optional(
                pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU
            )
            power = self._optional(pynvml.nvmlDeviceGetPowerUsage, handle)
            limit = self._optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            utilization = self._optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
            health = read_health(handle, proc_root=self._proc_root)
        except (GpuLost, GpuLostError, pynvml.NVMLError) as failure:
            return self._unreadable(index, failure)
        if uuid:
            self._uuids[index] = uuid
        xids = self._xid_stats(index)
        judged = verdict(health, xids, False, temperature_margin_c=self._temperature_margin_c)
        action = self._recovery(index, health, xids)
        return GpuReading(
            index=index,
            name=name,
            uuid=uuid,
            memory_used_bytes=None if memory is None else int(memory.used),
            memory_total_bytes=None if memory is None else int(memory.total),
            temperature_c=temperature,
            power_draw_w=milliwatts_to_watts(power),
            power_limit_w=milliwatts_to_watts(limit),
            utilization_gpu_pct=None if utilization is None else int(utilization.gpu),
            utilization_memory_pct=None if utilization is None else int(utilization.memory),
            health=health.as_dict(),
            xid=None if xids is None else xids.as_dict(),
            verdict=judged.level,
            verdict_reasons=judged.reasons,
            action=action.action,
            action_rule=action.rule,
            action_reason=action.reason,
        )

    def _unreadable(self, index: int, failure: Exception) -> GpuReading:
        """A GPU NVML cannot read (lost, or failing): critical, with its XIDs if any."""
        if isinstance(failure, GpuLostError):
            reason = _describe(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST))
        elif isinstance(failure, pynvml.NVMLError):
            reason = _describe(failure)
        else:
            reason = str(failure)
        xids = self._xid_stats(index)
        judged = verdict(None, xids, True, lost_reason=reason)
        action = self._recovery(index, None, xids, lost_reason=reason)
        return GpuReading(
            index,
            error=reason,
            xid=None if xids is None else xids.as_dict(),
            verdict=judged.level,
            verdict_reasons=judged.reasons,
            action=action.action,
            action_rule=action.rule,
            action_reason=action.reason,
        )

    @staticmethod
    def _device(call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except pynvml.NVMLError as error:
            raise GpuLost(_describe(error)) from None

    @staticmethod
    def _optional(call: Callable[..., T], *args: Any) -> T | None:
        """Call NVML; an unsupported reading is None, anything else fails the GPU."""
        try:
            return call(*args)
        except pynvml.NVMLError as error:
            if error.value in _MISSING_READING:
                return None
            raise GpuLost(_describe(error)) from None
