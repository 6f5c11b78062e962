"""The per-orchestrator keeper and the registrar's body, in-process against the stand-in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.processes import free_port, wait_for
from tests.registration.support import Blackhole, HealthServer, read_state, state_of
from tests.standins.orchestrator import StandinOrchestrator, make_self_signed_cert
from worker.config import load_settings
from worker.registration.byoc import Capability, OrchestratorClient
from worker.registration.keeper import Keeper, backoff_delay, jittered
from worker.registration.process import run
from worker.registration.state import OrchestratorState, StateFile

SECRET = "orch-secret"
Standin = Callable[..., StandinOrchestrator]


def keeper_for(
    url: str,
    tmp_path: Path,
    *,
    secret: str = SECRET,
    interval: float = 1.0,
    verify: bool | str = False,
) -> tuple[Keeper, threading.Event]:
    stopping = threading.Event()
    state = StateFile(tmp_path, [OrchestratorState(url, "agent-net")])
    capability = Capability("agent-net", "d", "http://127.0.0.1:9876", 4, 0, 1, "wei", "tok")
    keeper = Keeper(
        0,
        OrchestratorClient(url, secret, verify=verify),
        capability,
        state,
        stopping,
        interval=interval,
    )
    return keeper, stopping


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    lows = [backoff_delay(n, cap=30, rand=lambda: 0.0) for n in range(1, 9)]
    highs = [backoff_delay(n, cap=30, rand=lambda: 1.0) for n in range(1, 9)]
    assert highs == [1, 2, 4, 8, 16, 30, 30, 30]
    assert lows == [high / 2 for high in highs]
    assert backoff_delay(10_000, cap=5) <= 5
    spread = {round(backoff_delay(4, cap=30), 6) for _ in range(50)}
    assert len(spread) > 40 and all(4 <= delay <= 8 for delay in spread)


def test_the_refresh_interval_only_ever_shortens() -> None:
    assert jittered(30, rand=lambda: 0.0) == pytest.approx(27)
    assert jittered(30, rand=lambda: 1.0) == pytest.approx(30)


def test_success_is_recorded_and_the_next_refresh_is_within_the_interval(
    standin: Standin, tmp_path: Path
) -> None:
    orch = standin()
    keeper, _ = keeper_for(orch.url, tmp_path, interval=7)
    before = time.time()
    delay = keeper.attempt()
    assert 6.3 <= delay <= 7
    [state] = read_state(tmp_path)
    assert state["registered"] is True and state["last_error"] is None
    assert state["last_success"] >= before
    [entry] = orch.store.view()["capabilities"]
    assert (entry["name"], entry["capacity"], entry["has_token"]) == ("agent-net", 4, True)


def test_an_unreachable_orchestrator_backs_off_and_is_reported(tmp_path: Path) -> None:
    keeper, _ = keeper_for(f"http://127.0.0.1:{free_port()}", tmp_path, interval=30)
    delays = [keeper.attempt() for _ in range(4)]
    assert [
        0.5 <= delays[0] <= 1,
        1 <= delays[1] <= 2,
        2 <= delays[2] <= 4,
        4 <= delays[3] <= 8,
    ] == [True] * 4
    [state] = read_state(tmp_path)
    assert state["registered"] is False and state["consecutive_failures"] == 4
    assert state["last_error"].startswith("ConnectionError: [Errno 111]")


def test_a_rejected_secret_is_logged_clearly_and_retried_slowly(
    standin: Standin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    orch = standin()
    keeper, _ = keeper_for(orch.url, tmp_path, secret="not-the-secret", interval=1)
    with caplog.at_level(logging.INFO, logger="agent_net.registration"):
        delay = keeper.attempt()
    assert delay >= 54  # SLOW_RETRY_SECONDS (60) less jitter, though the interval is 1 s
    [record] = [r for r in caplog.records if r.getMessage().startswith("registration_")]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("registration_auth_rejected orchestrator=")
    assert "ORCH_SECRET does not match" in record.getMessage()
    [state] = read_state(tmp_path)
    assert "invalid authorization" in state["last_error"]
    assert "not-the-secret" not in caplog.text + str(state)


def test_a_forgotten_capability_is_registered_again_within_the_interval(
    standin: Standin, tmp_path: Path
) -> None:
    orch = standin()
    keeper, stopping = keeper_for(orch.url, tmp_path, interval=1)
    keeper.thread.start()
    try:
        wait_for(lambda: orch.store.get("agent-net"), 3, what="first registration")
        orch.store.remove("agent-net", "job_connection_error")
        forgotten = time.monotonic()
        wait_for(lambda: orch.store.get("agent-net"), 3, what="registration again")
        assert time.monotonic() - forgotten <= 1.3
    finally:
        stopping.set()
        keeper.thread.join(5)


def test_tls_verification_follows_the_setting(
    standin: Standin, tmp_path: Path, tls_pair: tuple[Path, Path]
) -> None:
    orch = standin(tls=True)
    (tmp_path / "strict").mkdir()
    strict, _ = keeper_for(orch.url, tmp_path / "strict", verify=True)
    strict.attempt()
    assert "CERTIFICATE_VERIFY_FAILED" in read_state(tmp_path / "strict")[0]["last_error"]
    for name, verify in (("bundle", str(tls_pair[0])), ("off", False)):
        (tmp_path / name).mkdir()
        keeper, _ = keeper_for(orch.url, tmp_path / name, verify=verify)
        keeper.attempt()
        assert read_state(tmp_path / name)[0]["registered"] is True, name


def test_a_ca_bundle_is_reread_when_the_orchestrator_makes_a_new_certificate(
    tmp_path: Path,
) -> None:
    """go-livepeer writes a new self-signed cert.pem at every start: a mounted copy works."""
    first = make_self_signed_cert(tmp_path / "first")
    bundle = tmp_path / "orchestrator-cert.pem"
    bundle.write_bytes(first[0].read_bytes())
    orch = StandinOrchestrator(SECRET, tls=first).start()
    port = orch.port
    keeper, _ = keeper_for(orch.url, tmp_path, verify=str(bundle))
    try:
        keeper.attempt()
        assert read_state(tmp_path)[0]["registered"] is True
        orch.stop()
        second = make_self_signed_cert(tmp_path / "second")
        orch = StandinOrchestrator(SECRET, port=port, tls=second).start()
        keeper.attempt()
        assert "CERTIFICATE_VERIFY_FAILED" in read_state(tmp_path)[0]["last_error"]
        bundle.write_bytes(second[0].read_bytes())  # the mounted file follows the restart
        keeper.attempt()
        assert read_state(tmp_path)[0]["registered"] is True
    finally:
        orch.stop()


def test_a_hung_orchestrator_delays_neither_another_nor_shutdown(
    standin: Standin, tmp_path: Path
) -> None:
    live, hung = standin(), Blackhole()
    health = HealthServer()
    settings = load_settings(
        {
            "WORKER_PORT": str(health.port),
            "ORCH_URL": f"{hung.url},{live.url}",
            "ORCH_SECRET": SECRET,
            "CAPABILITY_NAME": "agent-net-nyc,agent-net-tokyo",
            "CAPABILITY_URL": "http://127.0.0.1:9876",
            "REGISTER_INTERVAL_SECONDS": "1",
        }
    )
    stopping = threading.Event()
    body = threading.Thread(target=run, args=(settings, tmp_path, stopping, lambda: True))
    try:
        started = time.monotonic()
        body.start()
        wait_for(lambda: live.store.get("agent-net-tokyo"), 3, what="live registration")
        assert time.monotonic() - started < 1.5  # not held up by the hung one's 5 s timeout
        assert state_of(tmp_path, hung.url)["registered"] is False
        stopping.set()
        stopping_at = time.monotonic()
        body.join(10)
        assert not body.is_alive()
        assert time.monotonic() - stopping_at < 4.0
        assert live.store.get("agent-net-tokyo") is None
        assert live.store.get("agent-net-llm") is None  # the default agent, beside it
        assert live.store.view()["counts"]["unregister"] == 2  # one per capability
    finally:
        stopping.set()
        hung.close()
        health.stop()
