"""The registrar: one process per container that keeps the capabilities registered.

The gunicorn master spawns `python -m worker.registration` once the server listens
(worker/supervisor.py) and restarts it if it dies. It waits until the worker answers
`/healthz`, then runs, per REGISTRATION_PROTOCOL, one BYOC `Keeper` thread per
(orchestrator, capability): the GPU-check capability and every agent (worker/agents.py),
and one live-runner `RunnerKeeper` thread per (orchestrator, runner capability). On
SIGTERM or SIGINT, or when its parent dies, it unregisters everything in parallel and
exits. The state goes to `<runtime_dir>/registration.json` for `/readyz` and `/metrics`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

from worker.agents import Agent, load_agents
from worker.config import ConfigError, Settings, load_settings
from worker.registration.byoc import OrchestratorClient, capabilities_for
from worker.registration.keeper import (
    SHUTDOWN_LOCK_WAIT_SECONDS,
    UNREGISTER_TIMEOUT,
    Keeper,
    log_value,
)
from worker.registration.live_runner import LiveRunnerClient
from worker.registration.runner_beat import BeatBuilder
from worker.registration.runner_keeper import OnceFlag, RunnerKeeper
from worker.registration.runners import (
    route_prefix,
    runner_capabilities,
    runner_url,
    shown_runner_url,
)
from worker.registration.state import LiveRunnerState, OrchestratorState, StateFile
from worker.runtime import PARENT_VARIABLE, runtime_dir_from_env
from worker.sampling.published import Readings

log = logging.getLogger("agent_net.registration")
PARENT_POLL_SECONDS = 0.5


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
    log.info("waiting_for_worker url=%s", log_value(url))
    session = requests.Session()
    session.trust_env = False
    delay = 0.1
    while not stopping.is_set():
        try:
            if session.get(url, timeout=(1.0, 2.0)).status_code == 200:
                log.info("worker_answering url=%s", log_value(url))
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
    agents: tuple[Agent, ...] | None = None,
) -> int:
    """The registrar's whole life; returns when `stopping` is set or the parent is gone."""
    targets = settings.orchestrators
    secret = settings.orchestrator_secret
    if not targets or secret is None:
        log.info('registration_disabled reason="ORCH_URL is not set; the worker runs unregistered"')
        return 0
    if agents is None:
        agents = load_agents(settings)
    byoc_pairs = [
        (target, capability)
        for target in (targets if settings.uses_byoc else [])
        for capability in capabilities_for(settings, target, agents)
    ]
    runner_specs = runner_capabilities(settings, agents) if settings.uses_live_runners else []
    prefix = route_prefix(settings) if runner_specs else None
    if runner_specs and prefix is None:
        log.error(
            "live_runners_disabled reason=%s",
            log_value(
                "no runner route prefix: set WORKER_TOKEN, or start the registrar through"
                " `python -m worker`, which makes one"
            ),
        )
        runner_specs = []
    pairs = [(target, spec) for target in targets for spec in runner_specs]
    state = StateFile(
        runtime_dir,
        [
            OrchestratorState(orchestrator=target.url, capability=capability.name)
            for target, capability in byoc_pairs
        ],
        [
            LiveRunnerState(orchestrator=target.url, capability=spec.name, app=spec.app)
            for target, spec in pairs
        ],
    )
    verify = settings.tls_verify
    insecure = [target.url for target in targets if target.url.startswith("https:")]
    if verify is False and insecure:
        log.warning(
            "tls_verification_off orchestrators=%s hint=%s",
            log_value(",".join(insecure)),
            log_value(
                "the orchestrators' certificates are not checked; set ORCH_CA_BUNDLE"
                " to their certificate (or CA) to verify them"
            ),
        )
    keepers: list[Keeper | RunnerKeeper] = [
        Keeper(
            index,
            OrchestratorClient(target.url, secret.get_secret_value(), verify=verify),
            capability,
            state,
            stopping,
            interval=settings.register_interval_seconds,
        )
        for index, (target, capability) in enumerate(byoc_pairs)
    ]
    if pairs and prefix is not None:
        notices = {target.url: OnceFlag() for target in targets}
        for index, (target, spec) in enumerate(pairs):
            readings = Readings(runtime_dir, stale_after=settings.stale_after_seconds)
            build = BeatBuilder(settings, spec, readings, runner_url(settings, prefix, spec.name))
            keepers.append(
                RunnerKeeper(
                    index,
                    LiveRunnerClient(target.url, secret.get_secret_value(), verify=verify),
                    spec.name,
                    build,
                    build.readiness,
                    state,
                    stopping,
                    unsupported_notice=notices[target.url],
                    shown_runner_url=shown_runner_url(settings, spec.name),
                )
            )
    watcher = threading.Thread(target=_watch_parent, args=(stopping, parent_alive), daemon=True)
    watcher.start()
    if wait_for_worker(worker_health_url(settings), stopping):
        for keeper in keepers:
            keeper.thread.start()
    stopping.wait()
    deadline = time.monotonic() + SHUTDOWN_LOCK_WAIT_SECONDS + sum(UNREGISTER_TIMEOUT)
    closers = [
        threading.Thread(target=_unregister, args=(keeper, deadline), daemon=True)
        for keeper in keepers
    ]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(max(0.0, deadline - time.monotonic()) + 0.2)
    log.info("registrar_stopped orchestrators=%d capabilities=%d", len(targets), len(keepers))
    return 0


def _unregister(keeper: Keeper | RunnerKeeper, deadline: float) -> None:
    if isinstance(keeper, RunnerKeeper):
        keeper.unregister(deadline, UNREGISTER_TIMEOUT)
    else:
        keeper.unregister(deadline)


def _watch_parent(stopping: threading.Event, parent_alive: Callable[[], bool]) -> None:
    while not stopping.wait(PARENT_POLL_SECONDS):
        if not parent_alive():
            log.warning("registrar_parent_gone action=unregister")
            stopping.set()


def main() -> int:
    """`python -m worker.registration`: the child the gunicorn master spawns."""
    from worker.logs import setup_logging

    try:
        settings = load_settings(os.environ)
        agents = load_agents(settings)
    except ConfigError as error:
        print(f"agent-net registrar: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    runtime_dir = runtime_dir_from_env()
    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())
    stopping = threading.Event()
    signalled: list[int] = []
    # The handler only records the signal: it must take no lock the main thread may hold.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: signalled.append(number))
    result: list[int] = []
    body = threading.Thread(
        target=lambda: result.append(
            run(settings, runtime_dir, stopping, lambda: os.getppid() == parent, agents)
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
