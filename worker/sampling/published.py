"""The sampler's latest readings, shared through one file in the runtime directory.

The sampler process (the only one that talks to NVML and Ollama) replaces
`<runtime_dir>/readings.json` atomically whenever a source starts or finishes a read.
Every HTTP worker process reads that one file, so all of them answer the same reading.
A worker re-reads it only when it changed (one `stat` per request) and computes each
source's status from the published times when the request arrives: a read that has hung
past its timeout, or a sampler that stopped publishing or died, shows as `stale` at once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from worker.residency.report import ResidencyReport
from worker.runtime import write_json_atomically
from worker.sampling.readings import Catalogue, GpuReport

READINGS_FILE = "readings.json"
FORMAT_VERSION = 1
T = TypeVar("T")
Status = Literal["ok", "stale", "unavailable", "pending"]
SOURCE_NAMES = ("nvml", "ollama")
_DECODERS: Mapping[str, Callable[[dict[str, Any]], Any]] = {
    "nvml": GpuReport.from_json,
    "ollama": Catalogue.from_json,
}
log = logging.getLogger("agent_net.sampler")


# --- In the sampler process ------------------------------------------------------------------
class Publisher:
    """Writes the whole readings document on each change (serialised: one writer at a time)."""

    def __init__(self, runtime_dir: Path, build: Callable[[], dict[str, Any]]) -> None:
        self.path = Path(runtime_dir) / READINGS_FILE
        self._build = build
        self._lock = threading.Lock()

    def publish(self) -> None:
        with self._lock:
            document = {
                "format": FORMAT_VERSION,
                "sampler_pid": os.getpid(),
                "published_at": time.monotonic(),
                **self._build(),
            }
            try:
                write_json_atomically(self.path, document)
            except OSError as error:  # a full disk must not end sampling
                log.warning(
                    "readings_write_failed path=%s error=%s", self.path, type(error).__name__
                )


# --- In each HTTP worker process --------------------------------------------------------------
@dataclass(frozen=True)
class SourceView(Generic[T]):
    """A source as a request sees it: status, reason, the data to show and its age."""

    name: str
    status: Status
    reason: str | None
    data: T | None
    age_seconds: float | None
    read_at: float | None  # wall-clock Unix time of the reading shown

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "read_at": self.read_at,
        }


@dataclass(frozen=True)
class _Source(Generic[T]):
    """One source of a loaded document, decoded once."""

    data: T | None
    ok_at: float | None
    ok_at_wall: float | None
    error: str | None
    attempts: int
    in_flight_since: float | None
    timeout: float


@dataclass(frozen=True)
class _Loaded:
    sampler_pid: int | None
    sources: Mapping[str, _Source[Any]]
    residency: ResidencyReport | None = None


_NOTHING = _Loaded(None, {})


class Readings:
    """Every worker's view of the published readings: `views()` is cheap and never blocks."""

    def __init__(
        self,
        runtime_dir: Path,
        *,
        stale_after: float,
        clock: Callable[[], float] = time.monotonic,
        pid_alive: Callable[[int], bool] | None = None,
    ) -> None:
        self.path = Path(runtime_dir) / READINGS_FILE
        self._stale_after = stale_after
        self._clock = clock
        self._pid_alive = pid_alive or _pid_alive
        self._loaded = _NOTHING
        self._signature: tuple[int, int, int] | None = None

    def views(self) -> tuple[SourceView[GpuReport], SourceView[Catalogue]]:
        """(nvml, ollama) as of now."""
        loaded = self._refresh()
        now = self._clock()
        alive = loaded.sampler_pid is not None and self._pid_alive(loaded.sampler_pid)
        return (
            self._view("nvml", loaded, now, alive),  # type: ignore[return-value]
            self._view("ollama", loaded, now, alive),
        )

    @property
    def sampler_pid(self) -> int | None:
        return self._refresh().sampler_pid

    def residency(self, refresh: bool = True) -> ResidencyReport | None:
        """The residency loop's last published run (None before the first, or if absent);
        `refresh=False` skips the file check (right after `views()`, which made it)."""
        return (self._refresh() if refresh else self._loaded).residency

    def sampler_running(self) -> bool:
        """True while the process that published the readings is alive."""
        pid = self._refresh().sampler_pid
        return pid is not None and self._pid_alive(pid)

    def ready(self) -> bool:
        """True once the sampler runs and every source has finished its first read."""
        loaded = self._refresh()
        return (
            self.sampler_running()
            and all(name in loaded.sources for name in SOURCE_NAMES)
            and all(loaded.sources[name].attempts > 0 for name in SOURCE_NAMES)
        )

    def _refresh(self) -> _Loaded:
        try:
            stat = os.stat(self.path)
        except OSError:
            self._signature, self._loaded = None, _NOTHING
            return _NOTHING
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature != self._signature:
            loaded = _load(self.path)
            if loaded is not None:
                self._signature, self._loaded = signature, loaded
        return self._loaded

    def _view(self, name: str, loaded: _Loaded, now: float, alive: bool) -> SourceView[Any]:
        source = loaded.sources.get(name)
        if source is None or (source.attempts == 0 and source.in_flight_since is None):
            reason = "no reading yet" if alive else "the sampler process has not started yet"
            return SourceView(name, "pending", reason, None, None, None)
        age = None if source.ok_at is None else max(0.0, now - source.ok_at)
        if not alive:
            reason = "the sampler process is not running (it is restarted automatically)"
            return SourceView(name, "stale", reason, source.data, age, source.ok_at_wall)
        if source.in_flight_since is not None and now - source.in_flight_since > source.timeout:
            waited = now - source.in_flight_since
            reason = f"{name} has not answered for {waited:.1f} s (timeout {source.timeout:g} s)"
            return SourceView(name, "stale", reason, source.data, age, source.ok_at_wall)
        if source.attempts == 0:
            return SourceView(name, "pending", "no reading yet", None, None, None)
        if source.error is not None:
            return SourceView(name, "unavailable", source.error, None, age, None)
        if age is not None and age > self._stale_after:
            reason = f"last reading is {age:.1f} s old"
            return SourceView(name, "stale", reason, source.data, age, source.ok_at_wall)
        return SourceView(name, "ok", None, source.data, age, source.ok_at_wall)


def _load(path: Path) -> _Loaded | None:
    """The document decoded, or None if it cannot be read (kept: the last good one)."""
    try:
        document = json.loads(path.read_bytes())
        sources = {}
        for name, decode in _DECODERS.items():
            raw = document["sources"].get(name)
            if raw is None:
                continue
            data = raw.get("data")
            sources[name] = _Source(
                data=None if data is None else decode(data),
                ok_at=raw.get("ok_at"),
                ok_at_wall=raw.get("ok_at_wall"),
                error=raw.get("error"),
                attempts=int(raw.get("attempts") or 0),
                in_flight_since=raw.get("in_flight_since"),
                timeout=float(raw["timeout"]),
            )
        raw_residency = document.get("residency")
        residency = None if raw_residency is None else ResidencyReport.from_json(raw_residency)
        return _Loaded(int(document["sampler_pid"]), sources, residency)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
