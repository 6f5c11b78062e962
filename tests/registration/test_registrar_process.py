"""The registrar as a real process against stand-in orchestrator processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT, free_port, wait_for
from tests.registration.support import (
    ORCH_SECRET,
    Blackhole,
    HealthServer,
    RegistrarProcess,
    StandinProcess,
    leaked,
    pid_alive,
    read_state,
    registrar_env,
)
from worker.config import load_settings
from worker.supervisor import Child, stop_children

TOKEN = "worker-token-123"
StartStandin = Callable[..., StandinProcess]
StartRegistrar = Callable[..., RegistrarProcess]
MakeHealth = Callable[..., HealthServer]


def registered(orch: StandinProcess, name: str = "agent-net") -> dict | None:
    return orch.capabilities().get(name)


def test_registers_over_https_only_once_the_worker_answers(
    standin_process: StartStandin, registrar_process: StartRegistrar, health_server: MakeHealth
) -> None:
    orch = standin_process(tls=True)
    health = health_server(fail_first=3)
    reg = registrar_process(health.port, [orch.url], WORKER_TOKEN=TOKEN, CAPABILITY_CAPACITY="7")
    entry = wait_for(lambda: registered(orch), 10, what="registration")
    assert health.first_ok_at is not None and health.requests >= 4
    assert entry["registered_at"] >= health.first_ok_at
    assert (entry["url"], entry["capacity"], entry["currency"], entry["has_token"]) == (
        f"http://127.0.0.1:{health.port}",
        7,
        "wei",
        True,
    )
    state = wait_for(lambda: reg.state(orch.url).get("registered"), 5) and reg.state(orch.url)
    assert state["capability"] == "agent-net" and state["last_error"] is None
    logs = reg.logs()
    assert logs.count("tls_verification_off") == 1
    assert "registration_ok orchestrator=" in logs
    state_text = (reg.runtime_dir / "registration.json").read_text()
    assert leaked(logs + state_text, {"secret": ORCH_SECRET, "token": TOKEN}) == []


def test_an_orchestrator_down_at_start_is_registered_once_it_is_up(
    standin_process: StartStandin, registrar_process: StartRegistrar, health_server: MakeHealth
) -> None:
    orch = standin_process(start=False)
    reg = registrar_process(health_server().port, [orch.url])
    wait_for(
        lambda: reg.state(orch.url).get("consecutive_failures", 0) >= 2,
        10,
        what="failed attempts while the orchestrator is down",
    )
    assert reg.state(orch.url)["last_error"].startswith("ConnectionError")
    orch.start()
    up = time.monotonic()
    wait_for(lambda: registered(orch), 5, what="registration after the orchestrator came up")
    assert time.monotonic() - up < 2.5  # backoff is capped at the 1 s interval
    assert "registration_failed orchestrator=" in reg.logs()


def test_a_restarted_orchestrator_learns_the_capability_again_within_the_interval(
    standin_process: StartStandin, registrar_process: StartRegistrar, health_server: MakeHealth
) -> None:
    orch = standin_process(tls=True)
    registrar_process(health_server().port, [orch.url], REGISTER_INTERVAL_SECONDS="2")
    wait_for(lambda: registered(orch), 10, what="first registration")
    first_pid = orch.view()["pid"]
    stopped_at = time.time()
    orch.restart()
    restarted = time.monotonic()
    assert orch.view()["pid"] != first_pid  # a new process, with an empty memory
    entry = wait_for(lambda: registered(orch), 5, what="registration after the restart")
    assert entry["registered_at"] > stopped_at
    assert time.monotonic() - restarted <= 2.5


def test_a_wrong_secret_is_reported_and_retried_slowly(
    standin_process: StartStandin, registrar_process: StartRegistrar, health_server: MakeHealth
) -> None:
    orch = standin_process()
    reg = registrar_process(health_server().port, [orch.url], ORCH_SECRET="not-the-secret")
    state = wait_for(lambda: reg.state(orch.url).get("last_error"), 10) and reg.state(orch.url)
    assert "invalid authorization" in state["last_error"]
    assert state["registered"] is False and orch.capabilities() == {}
    time.sleep(2.5)  # proving an absence: with a 1 s interval, fast retries would show here
    # One attempt per capability (agent-net and the default agent), none retried yet.
    assert orch.counts().get("auth_rejected") == 2
    logs = reg.logs()
    assert "ERROR agent_net.registration registration_auth_rejected" in logs
    assert "not-the-secret" not in logs


def test_two_orchestrators_one_hung_are_served_independently(
    standin_process: StartStandin,
    registrar_process: StartRegistrar,
    health_server: MakeHealth,
    blackhole: Blackhole,
) -> None:
    tokyo = standin_process()
    reg = registrar_process(
        health_server().port,
        [blackhole.url, tokyo.url],
        CAPABILITY_NAME="agent-net-nyc,agent-net-tokyo",
    )
    wait_for(lambda: registered(tokyo, "agent-net-tokyo"), 10, what="tokyo registration")
    first = reg.state(blackhole.url)
    assert first["capability"] == "agent-net-nyc" and first["registered"] is False
    code, took = reg.terminate()
    assert code == 0 and took < 4.0
    assert tokyo.capabilities() == {} and tokyo.counts()["unregister"] == 2


def test_sigterm_unregisters_from_every_orchestrator(
    standin_process: StartStandin, registrar_process: StartRegistrar, health_server: MakeHealth
) -> None:
    plain, secure = standin_process(), standin_process(tls=True)
    reg = registrar_process(health_server().port, [plain.url, secure.url])
    for orch in (plain, secure):
        wait_for(lambda orch=orch: registered(orch), 10, what=f"registration at {orch.url}")
    code, took = reg.terminate()
    assert code == 0 and took < 4.0
    for orch in (plain, secure):
        assert orch.capabilities() == {}
        assert orch.counts()["unregister"] == 2  # agent-net and the default agent
    assert [entry["registered"] for entry in read_state(reg.runtime_dir)] == [False] * 4
    assert reg.logs().count("unregistered orchestrator=") == 4


def test_start_and_stop_from_the_master(
    standin_process: StartStandin,
    health_server: MakeHealth,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orch = standin_process()
    env = registrar_env(tmp_path, health_server().port, [orch.url])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Child("registrar", "worker.registration", tmp_path)
    began = time.monotonic()
    child.start()
    assert time.monotonic() - began < 0.5  # start() returns at once
    process = child.process
    assert process is not None
    try:
        wait_for(lambda: registered(orch), 10, what="registration")
        stop_children([child], 4.0)
        assert process.returncode == 0 and child.process is None
        assert orch.capabilities() == {} and orch.counts()["unregister"] == 2
    finally:
        if process.poll() is None:
            process.kill()


def test_a_registrar_that_dies_is_an_error_and_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ORCH_URL", "ftp://not-an-orchestrator")  # the child cannot start
    child = Child("registrar", "worker.registration", tmp_path)
    child.start()
    first = child.process
    assert first is not None and first.wait(10) == 2
    with caplog.at_level(logging.INFO, logger="agent_net.server"):

        def restarted() -> bool:
            child.reap()
            child.supervise(stopping=False)
            return child.restarts == 1

        wait_for(restarted, 10, what="the restart")
    assert child.process is not None and child.process.pid != first.pid
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"registrar_exited pid={first.pid} code=2 action=restart restart_in=0.0"
    ]
    child.process.wait(10)
    child.reap()
    child.supervise(stopping=True)  # the master is stopping: no restart, no error
    assert child.restarts == 1 and len(caplog.records) == len(errors) + 1


def test_no_orchestrator_means_no_registrar(tmp_path: Path) -> None:
    from worker.server import WorkerServer

    server = WorkerServer(load_settings({}), tmp_path)
    assert [child.name for child in server.children] == ["sampler"]
    with_orch = load_settings({"ORCH_URL": "http://127.0.0.1:9", "ORCH_SECRET": ORCH_SECRET})
    server = WorkerServer(with_orch, tmp_path)
    assert [child.name for child in server.children] == ["sampler", "registrar"]


def test_the_registrar_unregisters_and_exits_when_its_parent_dies(
    standin_process: StartStandin, health_server: MakeHealth, tmp_path: Path
) -> None:
    orch = standin_process()
    env = registrar_env(tmp_path, health_server().port, [orch.url])
    parent_code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from worker.supervisor import Child\n"
        "runtime = Path(os.environ['AGENT_NET_RUNTIME_DIR'])\n"
        "child = Child('registrar', 'worker.registration', runtime)\n"
        "child.start()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    child_pid = -1
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        wait_for(lambda: registered(orch), 10, what="registration")
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        wait_for(lambda: not pid_alive(child_pid), 6, what="the orphaned registrar to exit")
        assert orch.capabilities() == {} and orch.counts()["unregister"] == 2
    finally:
        parent.kill()
        parent.wait(5)
        if child_pid > 0 and pid_alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_state_lists_every_orchestrator_in_order_without_secrets(
    standin_process: StartStandin, registrar_process: StartRegistrar, health_server: MakeHealth
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    orch = standin_process()
    reg = registrar_process(
        health_server().port,
        [orch.url, down],
        WORKER_TOKEN=TOKEN,
        CAPABILITY_NAME="agent-net-a,agent-net-b",
    )
    wait_for(
        lambda: (
            reg.state(orch.url).get("registered") and reg.state(down).get("consecutive_failures")
        ),
        10,
        what="both attempted",
    )
    entries = read_state(reg.runtime_dir)
    assert [(e["orchestrator"], e["capability"]) for e in entries] == [
        (orch.url, "agent-net-a"),
        (orch.url, "agent-net-llm"),
        (down, "agent-net-b"),
        (down, "agent-net-llm"),
    ]
    assert leaked(json.dumps(entries), {"secret": ORCH_SECRET, "token": TOKEN}) == []
