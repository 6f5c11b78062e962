"""Fixtures for the registration tests: stand-in orchestrators, registrars, certificates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.registration.support import (
    ORCH_SECRET,
    Blackhole,
    HealthServer,
    RegistrarProcess,
    ScriptedServer,
    StandinProcess,
    registrar_env,
)
from tests.standins.orchestrator import StandinOrchestrator, make_self_signed_cert


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1/localhost (made with openssl)."""
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def standin(tls_pair: tuple[Path, Path]) -> Iterator[Callable[..., StandinOrchestrator]]:
    """Start in-process stand-in orchestrators: `standin(secret=..., tls=False, **options)`
    (options: StandinOrchestrator's keyword arguments, e.g. `live_runners=True`)."""
    started: list[StandinOrchestrator] = []

    def start(secret: str = ORCH_SECRET, tls: bool = False, **options: Any) -> StandinOrchestrator:
        orchestrator = StandinOrchestrator(secret, tls=tls_pair if tls else None, **options).start()
        started.append(orchestrator)
        return orchestrator

    yield start
    for orchestrator in started:
        orchestrator.stop()


@pytest.fixture
def standin_process(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., StandinProcess]]:
    """Start stand-in orchestrator subprocesses: `standin_process(tls=True, start=True)`."""
    started: list[StandinProcess] = []

    def make(start: bool = True, **options: Any) -> StandinProcess:
        process = StandinProcess(tmp_path, **options)
        started.append(process)
        return process.start() if start else process

    yield make
    for process in started:
        process.stop()
    _show_logs_on_failure(request, [(p.log_path, p.logs()) for p in started])


@pytest.fixture
def health_server() -> Iterator[Callable[..., HealthServer]]:
    servers: list[HealthServer] = []

    def make(fail_first: int = 0) -> HealthServer:
        server = HealthServer(fail_first)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def scripted() -> Iterator[Callable[[], ScriptedServer]]:
    """Start loopback servers that answer as each test scripts them (workers, runners)."""
    servers: list[ScriptedServer] = []

    def make() -> ScriptedServer:
        servers.append(ScriptedServer())
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def registrar_process(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RegistrarProcess]]:
    """Start `python -m worker.registration`: `registrar_process(worker_port, [urls], **env)`."""
    started: list[RegistrarProcess] = []

    def start(worker_port: int, orch_urls: list[str], **env: str) -> RegistrarProcess:
        runtime_dir = tmp_path / f"runtime-{len(started)}"
        runtime_dir.mkdir()
        process = RegistrarProcess(
            registrar_env(runtime_dir, worker_port, orch_urls, **env),
            tmp_path / f"registrar-{len(started)}.log",
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()
    _show_logs_on_failure(request, [(p.log_path, p.logs()) for p in started])


def _show_logs_on_failure(request: pytest.FixtureRequest, logs: list[tuple[Path, str]]) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for path, text in logs:
            print(f"--- {path} ---\n{text}")
