"""Keeping one live runner registered with one orchestrator, in its own thread.

Bootstrap with the orchestrator secret and a fresh runner id; heartbeat with the returned
secret every returned `heartbeat_interval`, and at once when the GPU's readiness changes;
on 404 or 401 to a heartbeat (restart, TTL expiry, sweep) bootstrap again at once with a
fresh id; an orchestrator without live runners is said once and retried slowly; network
failures back off; on stop, unregister (204).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.registration.keeper import backoff_delay, log_value
from worker.registration.live_runner import (
    Forgotten,
    HeartbeatAnswer,
    Invalid,
    LiveRunnerClient,
    LiveRunnerError,
    NotSupported,
    Refused,
    Unauthorized,
    new_runner_id,
)
from worker.registration.readiness import Readiness
from worker.registration.state import StateFile

log = logging.getLogger("agent_net.registration")

SLOW_RETRY_SECONDS = 60.0  # no live runners there, or a refused secret/body: an operator acts
FIRST_INTERVAL_SECONDS = 5.0  # go-livepeer's constant, until an answer names the interval
BACKOFF_CAP_SECONDS = 5.0  # a network failure is retried within one default interval
READINESS_POLL_SECONDS = 0.25  # how often a change of readiness is looked for
UNSUPPORTED_HINT = (
    "this orchestrator has no live runners: run go-livepeer v0.9.0 or later with"
    " -useLiveRunners (and -orchSecret); BYOC registration is unaffected"
)
AUTH_HINT = "ORCH_SECRET does not match the orchestrator's -orchSecret"


class OnceFlag:
    """Shared by the keepers of one orchestrator: its 'no live runners' warning once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said = False

    def first(self) -> bool:
        with self._lock:
            first, self._said = not self._said, True
            return first

    def reset(self) -> None:
        with self._lock:
            self._said = False


@dataclass(frozen=True)
class Beat:
    """One heartbeat's content: the body without runner_id, and the readiness it reports."""

    body: dict[str, Any]
    readiness: Readiness


class RunnerKeeper:
    """Keeps one live runner registered with one orchestrator."""

    def __init__(
        self,
        index: int,
        client: LiveRunnerClient,
        capability: str,
        build: Callable[[], Beat],
        readiness: Callable[[], Readiness],
        state: StateFile,
        stopping: threading.Event,
        *,
        unsupported_notice: OnceFlag | None = None,
        slow_retry: float = SLOW_RETRY_SECONDS,
        poll: float = READINESS_POLL_SECONDS,
        shown_runner_url: str = "",
    ) -> None:
        self.index = index
        self.client = client
        self.capability = capability
        self.build = build
        self.readiness = readiness
        self.state = state
        self.stopping = stopping
        self.notice = unsupported_notice or OnceFlag()
        self.slow_retry = slow_retry
        self.poll = poll
        self.shown_runner_url = shown_runner_url
        self.runner_id: str | None = None
        self._secret: str | None = None
        self.interval = FIRST_INTERVAL_SECONDS
        self.failures = 0
        self.status_sent: str | None = None
        self._busy = threading.Lock()  # held while a heartbeat is in flight
        self._fields = f"orchestrator={log_value(client.url)} capability={log_value(capability)}"
        self.thread = threading.Thread(target=self.run, name=f"runner-keeper-{index}", daemon=True)

    def __repr__(self) -> str:
        return f"RunnerKeeper({self._fields}, runner_id={self.runner_id!r})"

    # --- loop -------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                delay = self.attempt()
            except Exception as exc:  # a bug must not end the keeper: report and retry
                log.error("live_runner_keeper_error %s error=%s", self._fields, type(exc).__name__)
                delay = self.interval
            if self._wait(delay):
                return

    def _wait(self, delay: float) -> bool:
        """Wait `delay` s, or less when a registered runner's readiness changes; True if
        told to stop."""
        deadline = time.monotonic() + delay
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self.stopping.is_set()
            if self.stopping.wait(min(left, self.poll)):
                return True
            if self._secret is not None and self._readiness_changed():
                return self.stopping.is_set()

    def _readiness_changed(self) -> bool:
        try:
            return self.readiness().status != self.status_sent
        except Exception:  # a reading that cannot be judged waits for the regular beat
            return False

    def attempt(self) -> float:
        """Bootstrap or heartbeat once; the seconds to wait before the next one."""
        with self._busy:
            if self.stopping.is_set():
                return 0.0
            self.state.update_runner(self.index, last_attempt=time.time())
            if self._secret is None:
                return self._bootstrap()
            return self._heartbeat()

    # --- steps ------------------------------------------------------------------------
    def _bootstrap(self) -> float:
        beat = self.build()
        runner_id = new_runner_id(self.capability)
        try:
            answer = self.client.bootstrap({"runner_id": runner_id, **beat.body})
        except LiveRunnerError as exc:
            return self._failed(exc, bootstrap=True)
        self._secret = answer.heartbeat_secret
        self.runner_id = answer.runner_id
        self.notice.reset()
        log.info(
            "live_runner_registered %s runner_id=%s app=%s runner_url=%s status=%s interval=%s",
            self._fields,
            log_value(answer.runner_id),
            log_value(beat.body.get("app")),
            log_value(self.shown_runner_url),
            beat.readiness.status,
            f"{answer.interval:g}s",
        )
        return self._succeeded(answer, beat)

    def _heartbeat(self) -> float:
        assert self._secret is not None and self.runner_id is not None
        beat = self.build()
        try:
            answer = self.client.heartbeat({"runner_id": self.runner_id, **beat.body}, self._secret)
        except Forgotten as exc:
            log.info(
                "live_runner_forgotten %s runner_id=%s error=%s action=bootstrap",
                self._fields,
                log_value(self.runner_id),
                log_value(str(exc)),
            )
            self._forget(str(exc))
            return 0.0
        except LiveRunnerError as exc:
            return self._failed(exc, bootstrap=False)
        if beat.readiness.status != self.status_sent:
            log.info(
                "live_runner_status %s runner_id=%s status=%s reason=%s",
                self._fields,
                log_value(self.runner_id),
                beat.readiness.status,
                log_value(beat.readiness.reason or "-"),
            )
        return self._succeeded(answer, beat)

    def _succeeded(self, answer: HeartbeatAnswer, beat: Beat) -> float:
        if self.failures:
            log.info("live_runner_heartbeat_ok %s after_failures=%d", self._fields, self.failures)
        self.failures = 0
        self.interval = answer.interval
        self.status_sent = beat.readiness.status
        self.state.update_runner(
            self.index,
            runner_id=self.runner_id,
            registered=True,
            supported=True,
            status_sent=beat.readiness.status,
            status_reason=beat.readiness.reason,
            last_heartbeat=time.time(),
            heartbeat_interval_seconds=answer.interval,
            heartbeat_ttl_seconds=answer.ttl,
            last_error=None,
            consecutive_failures=0,
        )
        return self.interval * 0.95  # a beat a little early: the TTL counts from the last

    def _forget(self, error: str | None) -> None:
        self._secret, self.runner_id, self.status_sent = None, None, None
        self.state.update_runner(
            self.index, runner_id=None, registered=False, status_sent=None, last_error=error
        )

    def _failed(self, exc: LiveRunnerError, *, bootstrap: bool) -> float:
        self.failures += 1
        error = str(exc)
        known: dict[str, bool] = {"supported": True} if isinstance(exc, Refused) else {}
        if isinstance(exc, NotSupported):
            known = {"supported": False}
            self._secret, self.runner_id, self.status_sent = None, None, None
            delay = self.slow_retry
            error = f"{error} ({UNSUPPORTED_HINT})"
            level = logging.WARNING if self.notice.first() else logging.DEBUG
            log.log(
                level,
                "live_runner_unsupported %s hint=%s retry_in=%.0f",
                self._fields,
                log_value(UNSUPPORTED_HINT),
                delay,
            )
        elif isinstance(exc, Unauthorized):
            delay = self.slow_retry
            error = f"{error} ({AUTH_HINT})"
            log.error(
                "live_runner_auth_rejected %s hint=%s retry_in=%.0f",
                self._fields,
                log_value(AUTH_HINT),
                delay,
            )
        elif isinstance(exc, Invalid) or (isinstance(exc, Forgotten) and bootstrap):
            # 400: the body is refused; 404 to a fresh id cannot last: retry, slowly for 400.
            delay = self.slow_retry if isinstance(exc, Invalid) else self.interval
            log.error(
                "live_runner_rejected %s error=%s retry_in=%.0f",
                self._fields,
                log_value(error),
                delay,
            )
        else:
            delay = min(backoff_delay(self.failures, BACKOFF_CAP_SECONDS), self.interval)
            log.warning(
                "live_runner_heartbeat_failed %s error=%s failures=%d retry_in=%.1f",
                self._fields,
                log_value(error),
                self.failures,
                delay,
            )
        registered = self._secret is not None
        self.state.update_runner(
            self.index,
            registered=registered,
            runner_id=self.runner_id,
            last_error=error,
            consecutive_failures=self.failures,
            **known,
        )
        return delay

    # --- stop -------------------------------------------------------------------------
    def unregister(self, deadline: float, timeout: tuple[float, float]) -> None:
        """Remove the runner (204), after any heartbeat in flight (bounded by `deadline`)."""
        self._busy.acquire(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        secret, runner_id = self._secret, self.runner_id
        if secret is None or runner_id is None:
            return
        left = max(0.1, deadline - time.monotonic())
        try:
            self.client.unregister(
                runner_id, secret, timeout=(min(timeout[0], left), min(timeout[1], left))
            )
        except LiveRunnerError as exc:
            log.warning(
                "live_runner_unregister_failed %s runner_id=%s error=%s",
                self._fields,
                log_value(runner_id),
                log_value(str(exc)),
            )
            self.state.update_runner(self.index, last_error=f"unregister failed: {exc}")
            return
        self._forget(None)
        log.info("live_runner_unregistered %s runner_id=%s", self._fields, log_value(runner_id))
