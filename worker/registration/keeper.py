"""Keeping one capability registered with one orchestrator: timing, retries, state.

A `Keeper` thread registers, re-registers every interval (an orchestrator forgets
capabilities when it restarts, when a job cannot reach the worker and on a 401), retries
failures forever with capped exponential backoff and jitter, retries a rejected secret
slowly (the operator must act), and unregisters on request.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable

from worker.registration.byoc import AuthRejected, Capability, OrchestratorClient, RegistrationError
from worker.registration.state import StateFile

log = logging.getLogger("agent_net.registration")

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0  # never above the interval either
SLOW_RETRY_SECONDS = 60.0  # after a rejected secret or capability: the operator must act
# Shutdown: wait briefly for an in-flight registration, then unregister (all in parallel).
# The whole stays under 3.5 s, inside the master's stop timeout.
SHUTDOWN_LOCK_WAIT_SECONDS = 0.5
UNREGISTER_TIMEOUT = (1.0, 2.0)
AUTH_HINT = "ORCH_SECRET does not match the orchestrator's -orchSecret"


# --- Timing ------------------------------------------------------------------------------
def backoff_delay(failures: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with equal jitter: a delay in [d/2, d],
    d = min(cap, base * 2**(failures - 1))."""
    ceiling = min(cap, BACKOFF_BASE_SECONDS * 2 ** min(failures - 1, 32))
    return ceiling / 2 + rand() * ceiling / 2


def jittered(seconds: float, rand: Callable[[], float] = random.random) -> float:
    """`seconds` minus up to 10 %, so many workers do not beat in step."""
    return seconds * (0.9 + 0.1 * rand())


def log_value(value: object) -> str:
    """A log field value: bare when simple, else a JSON string (shlex-readable)."""
    text = str(value)
    if text and all(ch.isalnum() or ch in "-_.:/@+" for ch in text):
        return text
    return json.dumps(text, ensure_ascii=False)


# --- One orchestrator --------------------------------------------------------------------
class Keeper:
    """Keeps one capability registered with one orchestrator, in its own thread."""

    def __init__(
        self,
        index: int,
        client: OrchestratorClient,
        capability: Capability,
        state: StateFile,
        stopping: threading.Event,
        *,
        interval: float,
        slow_retry: float = SLOW_RETRY_SECONDS,
    ) -> None:
        self.index = index
        self.client = client
        self.capability = capability
        self.state = state
        self.stopping = stopping
        self.interval = interval
        self.cap = min(interval, BACKOFF_CAP_SECONDS)
        self.slow_retry = max(interval, slow_retry)
        self.failures = 0
        self.registered = False
        self.attempted = False
        self._busy = threading.Lock()  # held while a registration is in flight
        self._fields = (
            f"orchestrator={log_value(client.url)} capability={log_value(capability.name)}"
        )
        self.thread = threading.Thread(target=self.run, name=f"keeper-{index}", daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                delay = self.attempt()
            except Exception as exc:  # a bug must not end the keeper: report and retry
                log.error("registration_keeper_error %s error=%s", self._fields, type(exc).__name__)
                delay = self.cap
            if self.stopping.wait(delay):
                return

    def attempt(self) -> float:
        """Register once; return the seconds to wait before the next attempt."""
        with self._busy:
            if self.stopping.is_set():
                return 0.0
            self.attempted = True
            self.state.update(self.index, last_attempt=time.time())
            try:
                self.client.register(self.capability)
            except RegistrationError as exc:
                return self._failed(exc)
            return self._succeeded()

    def _succeeded(self) -> float:
        if not self.registered or self.failures:
            log.info(
                "registration_ok %s url=%s capacity=%d token=%s",
                self._fields,
                log_value(self.capability.url),
                self.capability.capacity,
                "yes" if self.capability.token else "no",
            )
        else:
            log.info("registration_refreshed %s", self._fields)
        self.failures, self.registered = 0, True
        self.state.update(
            self.index,
            registered=True,
            last_success=time.time(),
            last_error=None,
            consecutive_failures=0,
        )
        return jittered(self.interval)

    def _failed(self, exc: RegistrationError) -> float:
        self.failures += 1
        self.registered = False
        error = str(exc)
        if isinstance(exc, AuthRejected):
            error = f"{error} ({AUTH_HINT})"
            delay = jittered(self.slow_retry)
            log.error(
                "registration_auth_rejected %s hint=%s failures=%d retry_in=%.1f",
                self._fields,
                log_value(AUTH_HINT),
                self.failures,
                delay,
            )
        elif exc.permanent:
            delay = jittered(self.slow_retry)
            log.error(
                "registration_rejected %s error=%s failures=%d retry_in=%.1f",
                self._fields,
                log_value(error),
                self.failures,
                delay,
            )
        else:
            delay = backoff_delay(self.failures, self.cap)
            log.warning(
                "registration_failed %s error=%s failures=%d retry_in=%.1f",
                self._fields,
                log_value(error),
                self.failures,
                delay,
            )
        self.state.update(
            self.index, registered=False, last_error=error, consecutive_failures=self.failures
        )
        return delay

    def unregister(self, deadline: float) -> None:
        """Remove the capability, after any registration in flight (bounded by `deadline`)."""
        self._busy.acquire(
            timeout=max(0.0, min(SHUTDOWN_LOCK_WAIT_SECONDS, deadline - time.monotonic()))
        )
        if not self.attempted:
            return
        left = max(0.1, deadline - time.monotonic())
        timeout = (min(UNREGISTER_TIMEOUT[0], left), min(UNREGISTER_TIMEOUT[1], left))
        try:
            self.client.unregister(self.capability.name, timeout=timeout)
        except RegistrationError as exc:
            log.warning("unregister_failed %s error=%s", self._fields, log_value(str(exc)))
            self.state.update(self.index, last_error=f"unregister failed: {exc}")
            return
        self.registered = False
        log.info("unregistered %s", self._fields)
        self.state.update(self.index, registered=False, last_error=None)
