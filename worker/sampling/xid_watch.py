"""XID critical-error events from NVML, and per-GPU XID statistics.

`XidWatcher` owns one event set with every GPU that supports XID events registered on
it, and keeps per-GPU stats from what `poll` returns. By default it initialises NVML
itself (reference-counted) and shuts it down on `close()`; the sampler passes
`owns_nvml=False` so that its GPU reader's one initialisation serves both. `start()`
runs the poll loop in its own thread (the sampler process is plain threads, no gevent);
`close()` stops it and frees the set. A device, or a driver, without event support is
skipped, never an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pynvml

log = logging.getLogger("agent_net.sampler")

HOUR_S = 3600.0
XID_EVENT = pynvml.nvmlEventTypeXidCriticalError  # 0x8


@dataclass(frozen=True)
class XidEvent:
    """One XID: which GPU (NVML index), the XID code, and when we saw it (wall clock)."""

    gpu_index: int
    xid: int
    wall_time: float


@dataclass(frozen=True)
class XidStats:
    """One GPU's XIDs since the watcher started. Codes are sorted, distinct."""

    count: int = 0
    last_xid: int | None = None
    last_time: float | None = None
    count_last_hour: int = 0
    codes_since_start: tuple[int, ...] = ()
    codes_last_hour: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "xid_count": self.count,
            "xid_last": self.last_xid,
            "xid_last_time_unix": self.last_time,
            "xid_count_last_hour": self.count_last_hour,
            "xid_codes_since_start": list(self.codes_since_start),
            "xid_codes_last_hour": list(self.codes_last_hour),
        }


def _address(pointer: Any) -> int | None:
    return ctypes.cast(pointer, ctypes.c_void_p).value


class XidWatcher:
    """One NVML event set for all GPUs, and XID stats per GPU index."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        owns_nvml: bool = True,
        on_event: Callable[[XidEvent], None] | None = None,
    ) -> None:
        """Register XID events where supported; `on_event` is called with each XID (in
        the polling thread, after the stats have it).

        With `owns_nvml` (the default) it initialises NVML first (raises if that fails)
        and shuts it down on close; without, the caller has initialised NVML and keeps
        it initialised until after `close()`.
        """
        self._clock = clock
        self._owns_nvml = owns_nvml
        self._on_event = on_event
        self._lock = threading.Lock()  # guards stats
        self._nvml_lock = threading.Lock()  # one NVML caller on the set at a time
        self._stats: dict[int, _GpuXids] = {}
        self._stop = threading.Event()
        self._stopped: threading.Event | None = None
        self._closed = False
        self._wait_error: str | None = None  # logged once until the wait works again
        if owns_nvml:
            pynvml.nvmlInit()
        self._handles: dict[int, int] = {}  # handle address -> index
        self.registered: tuple[int, ...] = ()
        self.event_set: Any = None
        try:
            self._register_all()
        except BaseException:
            self.close()
            raise

    def _register_all(self) -> None:
        try:
            count = pynvml.nvmlDeviceGetCount()
            self.event_set = pynvml.nvmlEventSetCreate()
        except pynvml.NVMLError as error:
            log.warning("XID events unavailable: %s", error)
            return
        registered = []
        for index in range(count):
            self._stats[index] = _GpuXids()
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                address = _address(handle)
                if address is not None:
                    self._handles[address] = index
                if not pynvml.nvmlDeviceGetSupportedEventTypes(handle) & XID_EVENT:
                    continue
                pynvml.nvmlDeviceRegisterEvents(handle, XID_EVENT, self.event_set)
            except pynvml.NVMLError as error:
                log.info("GPU %d: no XID events (%s)", index, error)
                continue
            registered.append(index)
        self.registered = tuple(registered)

    def poll(self, timeout_ms: int) -> list[XidEvent]:
        """Wait up to timeout_ms for XIDs; return them (all already queued, in order).

        Without an event set (no support, or closed) it sleeps timeout_ms and returns
        []. An NVML error other than a timeout is logged when it first occurs and the
        rest of timeout_ms is slept, so a driver gone away never makes a busy loop.
        """
        started = time.monotonic()
        failed = False
        with self._nvml_lock:
            if self.event_set is None or not self.registered or self._closed:
                self._stop.wait(timeout_ms / 1000)
                return []
            events: list[XidEvent] = []
            wait_ms = timeout_ms
            while True:
                try:
                    data = pynvml.nvmlEventSetWait_v2(self.event_set, wait_ms)
                except pynvml.NVMLError as error:
                    if error.value != pynvml.NVML_ERROR_TIMEOUT:
                        failed = True
                        self._note_wait_error(str(error))
                    break
                wait_ms = 0  # drain what is already queued, then return
                if not data.eventType & XID_EVENT:
                    continue
                event = XidEvent(self._index_of(data.device), int(data.eventData), self._clock())
                self._record(event)
                events.append(event)
        if failed:
            self._stop.wait(max(0.0, timeout_ms / 1000 - (time.monotonic() - started)))
        elif self._wait_error is not None:
            log.info("XID event wait works again")
            self._wait_error = None
        return events

    def _note_wait_error(self, error: str) -> None:
        if error != self._wait_error:
            log.warning("XID event wait failed: %s", error)
            self._wait_error = error

    def _index_of(self, device: Any) -> int:
        index = self._handles.get(_address(device) or 0)
        if index is not None:
            return index
        try:
            return int(pynvml.nvmlDeviceGetIndex(device))
        except pynvml.NVMLError:
            return -1

    def _record(self, event: XidEvent) -> None:
        with self._lock:
            self._stats.setdefault(event.gpu_index, _GpuXids()).add(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception as error:  # a failing listener never stops the watcher
                log.warning("xid_listener_failed error=%s", type(error).__name__)

    def stats(self, gpu_index: int) -> XidStats:
        """XID stats of one GPU (all zero for a GPU that never had one)."""
        with self._lock:
            gpu = self._stats.get(gpu_index)
            return XidStats() if gpu is None else gpu.snapshot(self._clock())

    def all_stats(self) -> dict[int, XidStats]:
        """XID stats of every GPU seen at start or in an event, by index."""
        now = self._clock()
        with self._lock:
            return {index: gpu.snapshot(now) for index, gpu in sorted(self._stats.items())}

    def start(self, interval_ms: int = 1000) -> None:
        """Keep the stats up to date from a daemon thread until close()."""
        if self._stopped is not None or self._closed:
            raise RuntimeError("XidWatcher already started or closed")
        stopped = self._stopped = threading.Event()

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    self.poll(interval_ms)
            except Exception:
                log.exception("XID watcher thread died")
            finally:
                stopped.set()

        threading.Thread(target=loop, name="xid-watcher", daemon=True).start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread, free the event set and, if it owns NVML, shut NVML down.

        Waits up to timeout_s for the thread; if a wedged driver keeps it in NVML
        longer, the set is left to the process's exit rather than waited on forever.
        """
        if self._closed:
            return
        self._stop.set()
        if self._stopped is not None:
            self._stopped.wait(timeout_s)
        if not self._nvml_lock.acquire(timeout=timeout_s):
            log.warning("XID watcher still inside NVML after %g s: not freeing its set", timeout_s)
            return
        try:
            self._closed = True
            if self.event_set is not None:
                with contextlib.suppress(pynvml.NVMLError):
                    pynvml.nvmlEventSetFree(self.event_set)
                self.event_set = None
            if self._owns_nvml:
                with contextlib.suppress(pynvml.NVMLError):
                    pynvml.nvmlShutdown()
        finally:
            self._nvml_lock.release()

    def __enter__(self) -> XidWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _GpuXids:
    """Mutable per-GPU record behind XidStats (guarded by the watcher's lock)."""

    def __init__(self) -> None:
        self.count = 0
        self.last: XidEvent | None = None
        self.codes: set[int] = set()
        self.recent: deque[XidEvent] = deque()

    def add(self, event: XidEvent) -> None:
        self.count += 1
        self.last = event
        self.codes.add(event.xid)
        self.recent.append(event)

    def snapshot(self, now: float) -> XidStats:
        while self.recent and self.recent[0].wall_time < now - HOUR_S:
            self.recent.popleft()
        return XidStats(
            count=self.count,
            last_xid=None if self.last is None else self.last.xid,
            last_time=None if self.last is None else self.last.wall_time,
            count_last_hour=len(self.recent),
            codes_since_start=tuple(sorted(self.codes)),
            codes_last_hour=tuple(sorted({e.xid for e in self.recent})),
        )
