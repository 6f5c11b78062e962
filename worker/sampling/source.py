"""One source (NVML or Ollama) read on an interval in its own thread of the sampler process.

Each source thread loops: mark the read as started, read, record the result, sleep. It
reports every change to a callback (the publisher), so a read that has started and not
returned is visible to the HTTP workers at once: they compute `stale` from the time the
read started, never by waiting for it. One thread per source means a hung call never
piles up more threads behind it, and never delays the other source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from worker.sampling.readings import SourceUnavailable

T = TypeVar("T")
log = logging.getLogger("agent_net.sampler")


@dataclass(frozen=True)
class SourceState(Generic[T]):
    """What a source has published. Times are `time.monotonic()` unless named `_wall`.

    CLOCK_MONOTONIC is one clock for the whole machine, so another process can compare
    these times with its own `time.monotonic()`.
    """

    data: T | None = None
    ok_at: float | None = None
    ok_at_wall: float | None = None
    error: str | None = None
    attempts: int = 0
    in_flight_since: float | None = None
    read_started_at: float | None = None  # when the read that gave `data` began


class SourceSampler(Generic[T]):
    """Reads one source on an interval in a daemon thread; publishes through `on_change`."""

    def __init__(
        self,
        name: str,
        read: Callable[[], T],
        *,
        interval: float,
        timeout: float,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._read = read
        self._interval = interval
        self._on_change = on_change
        self._clock = clock
        self.state: SourceState[T] = SourceState()
        self._stop = threading.Event()
        self._logged_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"sampler-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 0.0) -> bool:
        """Ask the thread to stop, waiting up to `wait` s for a read in flight to end.

        True once the thread has ended (or never ran): only then may the caller close what
        the read uses. Closing it under a running read fails that read (a RuntimeError
        from a closed client), which would be reported as the source failing.
        """
        self._stop.set()
        if self._thread.is_alive() and wait > 0:
            self._thread.join(wait)
        return not self._thread.is_alive()

    def sample_once(self) -> None:
        """Read the source once and publish the result (the thread's loop body)."""
        previous = self.state
        self.state = _replace(previous, in_flight_since=self._clock())
        self._on_change()
        try:
            data = self._read()
        except SourceUnavailable as failure:
            self._publish_failure(previous, failure.reason)
        except Exception as unexpected:  # a bug or an API change must not kill the thread
            self._publish_failure(previous, f"unexpected {type(unexpected).__name__}")
        else:
            self.state = SourceState(
                data,
                self._clock(),
                time.time(),
                None,
                previous.attempts + 1,
                read_started_at=self.state.in_flight_since,
            )
            if self._logged_error is not None:
                log.info("source_recovered source=%s", self.name)
                self._logged_error = None
        self._on_change()

    def _publish_failure(self, previous: SourceState[T], reason: str) -> None:
        self.state = SourceState(
            previous.data,
            previous.ok_at,
            previous.ok_at_wall,
            reason,
            previous.attempts + 1,
            read_started_at=previous.read_started_at,
        )
        # One WARNING per outage; a new reason during the same outage (a reset, then a
        # refused connection as the server goes down) is an INFO line.
        if self._logged_error is None:
            log.warning("source_unavailable source=%s reason=%r", self.name, reason)
        elif reason != self._logged_error:
            log.info("source_reason_changed source=%s reason=%r", self.name, reason)
        self._logged_error = reason

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.sample_once()
            self._stop.wait(max(0.0, self._interval - (self._clock() - started)))

    def as_json(self, encode: Callable[[T], Any]) -> dict[str, Any]:
        """The state as the published document holds it (`encode` turns data into JSON)."""
        state = self.state
        return {
            "data": None if state.data is None else encode(state.data),
            "ok_at": state.ok_at,
            "ok_at_wall": state.ok_at_wall,
            "error": state.error,
            "attempts": state.attempts,
            "in_flight_since": state.in_flight_since,
            "timeout": self.timeout,
        }


def _replace(state: SourceState[T], **changes: Any) -> SourceState[T]:
    values = {**state.__dict__, **changes}
    return SourceState(**values)
