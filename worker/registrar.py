"""The registrar: one process per container that keeps the capability registered.

The gunicorn master calls `start()` once the server listens and `stop()` on exit. `start()`
spawns `python -m worker.registrar`, which waits until the worker answers `/healthz`,
then keeps one thread per orchestrator: register, re-register every
REGISTER_INTERVAL_SECONDS (an orchestrator forgets capabilities when it restarts, when a
job cannot reach the worker and on a 401), retry failures forever with capped
exponential backoff and jitter, and retry a rejected secret slowly. On SIGTERM or SIGINT,
or when its parent dies, it unregisters from every orchestrator in parallel and exits.
Each orchestrator's state goes to `<runtime_dir>/registration.json` for `/readyz`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

import worker
from worker.config import ConfigError, Settings, load_settings
from worker.registration import (
    AuthRejected,
    Capability,
    OrchestratorClient,
    RegistrationError,
    capability_for,
)
from worker.registration_state import OrchestratorState, StateFile

log = logging.getLogger("agent_net.registration")

RUNTIME_DIR_VARIABLE = "AGENT_NET_RUNTIME_DIR"
PARENT_VARIABLE = "AGENT_NET_REGISTRAR_PARENT"
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0  # never above the interval either
SLOW_RETRY_SECONDS = 60.0  # after a rejected secret or capability: the operator must act
# Shutdown: wait briefly for an in-flight registration, then unregister (all in parallel).
# The whole stays under 3.5 s, inside the master's stop() timeout.
SHUTDOWN_LOCK_WAIT_SECONDS = 0.5
UNREGISTER_TIMEOUT = (1.0, 2.0)
PARENT_POLL_SECONDS = 0.5
AUTH_HINT = "ORCH_SECRET does not match the orchestrator's -orchSecret"

_child: subprocess.Popen[bytes] | None = None


# --- In the gunicorn master ------------------------------------------------------------------
def start(settings: Settings, runtime_dir: Path) -> None:
    """Spawn the registrar process, or log once that registration is off; returns at once."""
    global _child
    if not settings.orchestrators:
        log.info('registration_disabled reason="ORCH_URL is not set; the worker runs unregistered"')
        return
    if _child is not None and _child.poll() is None:
        return
    package_root = str(Path(worker.__file__).resolve().parent.parent)
    python_path = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        RUNTIME_DIR_VARIABLE: str(runtime_dir),
        PARENT_VARIABLE: str(os.getpid()),
        "PYTHONPATH": package_root + (os.pathsep + python_path if python_path else ""),
    }
    _child = subprocess.Popen(
        [sys.executable, "-m", "worker.registrar"], env=env, stdin=subprocess.DEVNULL
    )
    log.info("registrar_started pid=%d orchestrators=%d", _child.pid, len(settings.orchestrators))


def stop(timeout: float = 4.0) -> None:
    """SIGTERM the registrar (it unregisters everywhere) and wait `timeout` s, then kill it."""
    global _child
    child, _child = _child, None
    if child is None:
        return
    if child.poll() is not None:
        # It never exits by itself while the master lives. (Under gunicorn the master may
        # have reaped it already, and then the code reads 0.)
        log.error("registrar_exited_early pid=%d code=%d", child.pid, child.returncode)
        return
    try:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning('registrar_killed pid=%d reason="no exit within %.1f s"', child.pid, timeout)
        child.kill()
        child.wait(2)
    except ProcessLookupError:
        pass


# --- Timing ------------------------------------------------------------------------------
def backoff_delay(failures: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with equal jitter: a delay in [d/2, d],
    d = min(cap, base * 2**(failures - 1))."""
    ceiling = min(cap, BACKOFF_BASE_SECONDS * 2 ** min(failures - 1, 32))
    return ceiling / 2 + rand() * ceiling / 2


def jittered(seconds: float, rand: Callable[[], float] = random.random) -> float:
    """`seconds` minus up to 10 %, so many workers do not beat in step."""
    return seconds * (0.9 + 0.1 * rand())


def _q(value: object) -> str:
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
        self._fields = f"orchestrator={_q(client.url)} capability={_q(capability.name)}"
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
                _q(self.capability.url),
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
                _q(AUTH_HINT),
                self.failures,
                delay,
            )
        elif exc.permanent:
            delay = jittered(self.slow_retry)
            log.error(
                "registration_rejected %s error=%s failures=%d retry_in=%.1f",
                self._fields,
                _q(error),
                self.failures,
                delay,
            )
        else:
            delay = backoff_delay(self.failures, self.cap)
            log.warning(
                "registration_failed %s error=%s failures=%d retry_in=%.1f",
                self._fields,
                _q(error),
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
            log.warning("unregister_failed %s error=%s", self._fields, _q(str(exc)))
            self.state.update(self.index, last_error=f"unregister failed: {exc}")
            return
        self.registered = False
        log.info("unregistered %s", self._fields)
        self.state.update(self.index, registered=False, last_error=None)


# --- The registrar process -------------------------------------------------------------------
def worker_health_url(settings: Settings) -> str:
    host = settings.worker_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.worker_port}/healthz"


def wait_for_worker(url: str, stopping: threading.Event) -> bool:
    """Poll `url` until it answers 200; False if told to stop first."""
    log.info("waiting_for_worker url=%s", _q(url))
    session = requests.Session()
    session.trust_env = False
    delay = 0.1
    while not stopping.is_set():
        try:
            if session.get(url, timeout=(1.0, 2.0)).status_code == 200:
                log.info("worker_answering url=%s", _q(url))
                return True
        except requests.RequestException:
            pass
        stopping.wait(delay)
        delay = min(delay * 2, 1.0)
    return False


def run(
    settings: Settings,
    runtime_dir: Path,
    stopping: threading.Event,
    parent_alive: Callable[[], bool],
) -> int:
    """The registrar's whole life; returns when `stopping` is set or the parent is gone."""
    targets = settings.orchestrators
    secret = settings.orchestrator_secret
    if not targets or secret is None:
        log.info('registration_disabled reason="ORCH_URL is not set; the worker runs unregistered"')
        return 0
    state = StateFile(
        runtime_dir,
        [
            OrchestratorState(orchestrator=target.url, capability=target.capability_name)
            for target in targets
        ],
    )
    verify = settings.tls_verify
    insecure = [target.url for target in targets if target.url.startswith("https:")]
    if verify is False and insecure:
        log.warning(
            "tls_verification_off orchestrators=%s hint=%s",
            _q(",".join(insecure)),
            _q(
                "the orchestrators' certificates are not checked; set ORCH_CA_BUNDLE"
                " to their certificate (or CA) to verify them"
            ),
        )
    keepers = [
        Keeper(
            index,
            OrchestratorClient(target.url, secret.get_secret_value(), verify=verify),
            capability_for(settings, target),
            state,
            stopping,
            interval=settings.register_interval_seconds,
        )
        for index, target in enumerate(targets)
    ]
    watcher = threading.Thread(target=_watch_parent, args=(stopping, parent_alive), daemon=True)
    watcher.start()
    if wait_for_worker(worker_health_url(settings), stopping):
        for keeper in keepers:
            keeper.thread.start()
    stopping.wait()
    deadline = time.monotonic() + SHUTDOWN_LOCK_WAIT_SECONDS + sum(UNREGISTER_TIMEOUT)
    closers = [
        threading.Thread(target=keeper.unregister, args=(deadline,), daemon=True)
        for keeper in keepers
    ]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(max(0.0, deadline - time.monotonic()) + 0.2)
    log.info("registrar_stopped orchestrators=%d", len(keepers))
    return 0


def _watch_parent(stopping: threading.Event, parent_alive: Callable[[], bool]) -> None:
    while not stopping.wait(PARENT_POLL_SECONDS):
        if not parent_alive():
            log.warning("registrar_parent_gone action=unregister")
            stopping.set()


def main() -> int:
    """`python -m worker.registrar`: the child the gunicorn master spawns."""
    from worker.logs import setup_logging

    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        print(f"agent-net registrar: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    runtime_dir = Path(os.environ.get(RUNTIME_DIR_VARIABLE) or ".")
    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())
    stopping = threading.Event()
    signalled: list[int] = []
    # The handler only records the signal: it must take no lock the main thread may hold.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: signalled.append(number))
    result: list[int] = []
    body = threading.Thread(
        target=lambda: result.append(
            run(settings, runtime_dir, stopping, lambda: os.getppid() == parent)
        ),
        name="registrar",
    )
    body.start()
    while body.is_alive():
        body.join(0.1)
        if signalled and not stopping.is_set():
            log.info("registrar_stopping signal=%s", signal.Signals(signalled[0]).name)
            stopping.set()
    return result[0] if result else 1


if __name__ == "__main__":
    sys.exit(main())
