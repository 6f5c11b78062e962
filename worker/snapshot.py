"""Background sampling: each source is read in its own thread; requests read the result.

The request path never calls NVML or Ollama. Each source thread (a real OS thread, also
under gevent: see worker/realthreads.py) loops: read, publish,
sleep. A read that runs past the source's timeout is visible at once as `stale` (with the
last good reading), because the view is computed from timestamps when a request asks,
not when the stuck call returns. One thread per source means a hung call never piles up
more threads behind it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from worker.realthreads import RealEvent, start_real_thread
from worker.sources import SourceUnavailable

T = TypeVar("T")
Status = Literal["ok", "stale", "unavailable", "pending"]
log = logging.getLogger("agent_net.sampler")


@dataclass(frozen=True)
class Sample(Generic[T]):
    """What a source thread last published. Times are `time.monotonic()` unless named wall."""

    data: T | None = None
    ok_at: float | None = None
    ok_at_wall: float | None = None
    error: str | None = None
    attempts: int = 0


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


class SourceSampler(Generic[T]):
    """Reads one source on an interval in a daemon thread and publishes immutable samples."""

    def __init__(
        self,
        name: str,
        read: Callable[[], T],
        *,
        interval: float,
        timeout: float,
        stale_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._read = read
        self._interval = interval
        self._timeout = timeout
        self._stale_after = stale_after
        self._clock = clock
        self._sample: Sample[T] = Sample()
        self._in_flight_since: float | None = None
        # Real OS thread and locks even under gevent: a read may block in C (NVML).
        self._stop = RealEvent()
        self._logged_error: str | None = None
        self._first_answer = RealEvent()

    def start(self) -> None:
        start_real_thread(self._run, f"sampler-{self.name}")

    def stop(self) -> None:
        self._stop.set()

    def sample_once(self) -> None:
        """Read the source once and publish the result (the thread's loop body)."""
        started = self._clock()
        self._in_flight_since = started
        previous = self._sample
        try:
            data = self._read()
        except SourceUnavailable as failure:
            self._publish_failure(previous, failure.reason)
        except Exception as unexpected:  # a bug or an API change must not kill the thread
            self._publish_failure(previous, f"unexpected {type(unexpected).__name__}")
        else:
            self._sample = Sample(data, self._clock(), time.time(), None, previous.attempts + 1)
            if self._logged_error is not None:
                log.info("source_recovered source=%s", self.name)
                self._logged_error = None
        finally:
            self._in_flight_since = None
            self._first_answer.set()

    def wait_first_answer(self, timeout: float) -> bool:
        """Block until the first read has finished (or `timeout`); True if it has."""
        return self._first_answer.wait(timeout)

    def view(self) -> SourceView[T]:
        """The source as of now: O(1), no locks, never blocks on the source."""
        sample, in_flight_since, now = self._sample, self._in_flight_since, self._clock()
        age = None if sample.ok_at is None else max(0.0, now - sample.ok_at)
        if in_flight_since is not None and now - in_flight_since > self._timeout:
            waited = now - in_flight_since
            reason = (
                f"{self.name} has not answered for {waited:.1f} s (timeout {self._timeout:g} s)"
            )
            return SourceView(self.name, "stale", reason, sample.data, age, sample.ok_at_wall)
        if sample.attempts == 0:
            return SourceView(self.name, "pending", "no reading yet", None, None, None)
        if sample.error is not None:
            return SourceView(self.name, "unavailable", sample.error, None, age, None)
        if age is not None and age > self._stale_after:
            reason = f"last reading is {age:.1f} s old"
            return SourceView(self.name, "stale", reason, sample.data, age, sample.ok_at_wall)
        return SourceView(self.name, "ok", None, sample.data, age, sample.ok_at_wall)

    @property
    def has_answered(self) -> bool:
        """True once the first read has finished, successfully or not."""
        return self._sample.attempts > 0

    def _publish_failure(self, previous: Sample[T], reason: str) -> None:
        self._sample = Sample(
            previous.data, previous.ok_at, previous.ok_at_wall, reason, previous.attempts + 1
        )
        if reason != self._logged_error:
            log.warning("source_unavailable source=%s reason=%r", self.name, reason)
            self._logged_error = reason

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.sample_once()
            elapsed = self._clock() - started
            self._stop.wait(max(0.0, self._interval - elapsed))
