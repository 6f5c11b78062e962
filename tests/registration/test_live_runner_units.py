"""Live-runner pieces one by one: durations, ids, prefixes, readiness, metadata, settings,
the protocol client and the keeper against the in-process orchestrator stand-in."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import wait_for
from tests.registration.support import ORCH_SECRET
from tests.standins.orchestrator import StandinOrchestrator
from worker.config import ConfigError, load_settings
from worker.registration.live_runner import (
    Forgotten,
    LiveRunnerClient,
    NotSupported,
    Unauthorized,
    new_runner_id,
    parse_go_duration,
    price_literal,
)
from worker.registration.readiness import (
    MAX_METADATA_BYTES,
    Readiness,
    runner_gpu,
    runner_metadata,
    runner_readiness,
)
from worker.registration.runner_keeper import Beat, OnceFlag, RunnerKeeper
from worker.registration.runners import (
    PREFIX_VARIABLE,
    new_route_prefix,
    route_prefix,
    runner_capabilities,
)
from worker.registration.state import LiveRunnerState, StateFile, read_live_runner_state
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry

Standin = Callable[..., StandinOrchestrator]
MIB = 1024 * 1024


def settings(**env: str):
    return load_settings({"OLLAMA_HOST": "http://127.0.0.1:9", **env})


# --- Go durations ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("20s", 20.0),
        ("200ms", 0.2),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("1h0m0s", 3600.0),
        ("1500us", 0.0015),
        ("750µs", 0.00075),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1.s.", "5 s", "5d", ".s", 5])
def test_bad_go_durations_are_refused(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


# --- Ids, prices, prefixes -----------------------------------------------------------------
def test_runner_ids_are_fresh_per_bootstrap_and_path_safe() -> None:
    ids = {new_runner_id("gpu-check") for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"agent-net-gpu-check-[a-z2-7]{8}", i) for i in ids)
    assert re.fullmatch(r"agent-net-my-agent-[a-z2-7]{8}", new_runner_id("My_Agent"))


def test_prices_are_json_number_literals() -> None:
    assert price_literal(Decimal("0.50")) == "0.5"
    assert price_literal(Decimal("0")) == "0"
    assert price_literal(Decimal("1E+2")) == "100"
    assert json.loads(price_literal(Decimal("0.000001"))) == pytest.approx(1e-6)


def test_the_route_prefix_comes_from_the_token_else_the_environment() -> None:
    one = route_prefix(settings(WORKER_TOKEN="token-one"), {})
    assert one == route_prefix(settings(WORKER_TOKEN="token-one"), {PREFIX_VARIABLE: "x" * 32})
    assert one is not None and re.fullmatch(r"[a-z2-7]{32}", one)
    assert one != route_prefix(settings(WORKER_TOKEN="token-two"), {})
    assert "token" not in one
    fresh = new_route_prefix()
    assert fresh != new_route_prefix()
    assert route_prefix(settings(), {PREFIX_VARIABLE: fresh}) == fresh
    assert route_prefix(settings(), {PREFIX_VARIABLE: "short"}) is None
    assert route_prefix(settings(), {}) is None


# --- Settings ----------------------------------------------------------------------------
def test_registration_protocol_defaults_to_both_and_is_checked() -> None:
    assert settings().registration_protocol == "both"
    assert settings().uses_byoc and settings().uses_live_runners
    byoc = settings(REGISTRATION_PROTOCOL=" BYOC ")
    assert byoc.uses_byoc and not byoc.uses_live_runners
    live = settings(REGISTRATION_PROTOCOL="live-runner")
    assert live.uses_live_runners and not live.uses_byoc
    with pytest.raises(ConfigError, match="REGISTRATION_PROTOCOL"):
        settings(REGISTRATION_PROTOCOL="grpc")


def test_live_runner_prices_per_capability_and_on_chain() -> None:
    [spec] = runner_capabilities(settings(LIVE_RUNNER_PRICE_USD_PER_HOUR="0.25"))
    assert (spec.name, spec.app, spec.mode, spec.price) == (
        "gpu-check",
        "agent-net/gpu-check",
        "single-shot",
        Decimal("0.25"),
    )
    [spec] = runner_capabilities(
        settings(LIVE_RUNNER_PRICE_USD_PER_HOUR="0.25", LIVE_RUNNER_PRICES="gpu-check=1.5")
    )
    assert spec.price == Decimal("1.5")
    with pytest.raises(ConfigError, match="LIVE_RUNNER_PRICES: nope is not"):
        settings(LIVE_RUNNER_PRICES="nope=1")
    with pytest.raises(ConfigError, match="LIVE_RUNNER_PRICES"):
        settings(LIVE_RUNNER_PRICES="gpu-check=cheap")
    with pytest.raises(ConfigError, match=r"LIVE_RUNNER_ONCHAIN.*gpu-check"):
        settings(LIVE_RUNNER_ONCHAIN="true")
    assert settings(LIVE_RUNNER_ONCHAIN="true", LIVE_RUNNER_PRICE_USD_PER_HOUR="2")
    assert settings(LIVE_RUNNER_ONCHAIN="true", REGISTRATION_PROTOCOL="byoc")
    with pytest.raises(ConfigError, match="LIVE_RUNNER_PRICE_UNIT"):
        settings(LIVE_RUNNER_PRICE_UNIT="720p")


# --- Readiness, gpu, metadata ----------------------------------------------------------------
def _gpu(index: int = 0, **overrides: Any) -> GpuReading:
    fields: dict[str, Any] = {
        "index": index,
        "name": "NVIDIA L4",
        "memory_used_bytes": 1000 * MIB,
        "memory_total_bytes": 23034 * MIB + 12345,
        "temperature_c": 51,
        "power_draw_w": 30.5,
        "power_limit_w": 72.0,
    }
    return GpuReading(**{**fields, **overrides})


def _views(
    *gpus: GpuReading, status: str = "ok", models: tuple[ModelEntry, ...] = ()
) -> tuple[SourceView[GpuReport], SourceView[Catalogue]]:
    data = GpuReport("550.54", gpus) if status in ("ok", "stale") else None
    reason = None if status == "ok" else f"reading {status}"
    return (
        SourceView("nvml", status, reason, data, 0.1, 1.0),  # type: ignore[arg-type]
        SourceView("ollama", "ok", None, Catalogue("0.5", models), 0.1, 1.0),
    )


def test_ready_only_with_a_fresh_reading_of_fit_gpus() -> None:
    assert runner_readiness(_views(_gpu(0), _gpu(1)), 0) == Readiness("ready", None)
    assert runner_readiness(_views(status="pending"), 0).status == "starting"
    stale = runner_readiness(_views(_gpu(0), status="stale"), 0)
    assert stale == Readiness("unhealthy", "nvml stale: reading stale")
    assert runner_readiness(_views(status="unavailable"), 0).status == "unhealthy"
    lost = runner_readiness(_views(_gpu(0), GpuReading(1, error="GPU is lost")), 0)
    assert lost == Readiness("unhealthy", "nvml: GPU 1: GPU is lost")
    assert runner_readiness(_views(), 0).reason == "nvml: no GPU visible"
    missing = runner_readiness(_views(_gpu(0)), 3)
    assert missing.status == "unhealthy" and "LIVE_RUNNER_GPU_INDEX=3" in (missing.reason or "")
    reasons = ("xid_79: XID 79 since start",)
    critical = _views(replace(_gpu(0), verdict="critical", verdict_reasons=reasons))
    assert runner_readiness(critical, 0) == Readiness(
        "unhealthy", "nvml: GPU 0: critical: xid_79: XID 79 since start"
    )
    warning = _views(replace(_gpu(0), verdict="warning"))
    assert runner_readiness(warning, 0) == Readiness("ready", None)


def test_the_declared_gpu_is_the_configured_one_in_mib() -> None:
    report = GpuReport(None, (_gpu(0), _gpu(1, name="NVIDIA H100")))
    assert runner_gpu(report, 0) == {"id": "0", "name": "NVIDIA L4", "vram_mb": 23034}
    assert runner_gpu(report, 1) == {"id": "1", "name": "NVIDIA H100", "vram_mb": 23034}
    assert runner_gpu(report, 2) is None
    assert runner_gpu(GpuReport(None, (GpuReading(0, error="lost"),)), 0) is None


def test_metadata_is_compact_json_within_1024_bytes_with_models_cut_to_fit() -> None:
    views = _views(_gpu(0), models=(ModelEntry("llama3:8b", loaded=True),))
    text = runner_metadata(views, 0, Readiness("ready", None))
    assert json.loads(text) == {
        "status": "ready",
        "temperature_c": 51,
        "vram_used_mb": 1000,
        "vram_total_mb": 23034,
        "power_w": 30.5,
        "power_limit_w": 72.0,
        "models_loaded": ["llama3:8b"],
    }
    assert ", " not in text and ": " not in text
    reboot = replace(_gpu(0), error="GPU is lost", action="reboot", action_rule="gpu_lost")
    lost = json.loads(runner_metadata(_views(reboot), 0, Readiness("unhealthy", "lost")))
    assert lost == {
        "status": "unhealthy",
        "reason": "lost",
        "action": "reboot",
        "models_loaded": [],
    }
    fine = json.loads(
        runner_metadata(_views(replace(_gpu(0), action="none")), 0, Readiness("ready", None))
    )
    assert fine["action"] == "none"
    many = tuple(ModelEntry(f"model-é-{i:03d}:" + "x" * 40, loaded=True) for i in range(60))
    odd = (ModelEntry("bad-\ud800-name", loaded=True), ModelEntry("on-disk", loaded=False))
    text = runner_metadata(_views(_gpu(0), models=odd + many), 0, Readiness("ready", None))
    document = json.loads(text)
    assert len(text.encode()) <= MAX_METADATA_BYTES
    assert document["models_truncated"] is True and document["models_loaded"][0] == "bad-?-name"
    assert "on-disk" not in document["models_loaded"] and len(document["models_loaded"]) > 5
    assert "\ufffd" not in text


# --- Client against the stand-in ----------------------------------------------------------
def _body(runner_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "runner_id": runner_id,
        "runner_url": "http://127.0.0.1:9/lr/" + "a" * 32,
        "app": "agent-net/gpu-check",
        "version": "0.1.0",
        "metadata": "{}",
        "status": "ready",
        "mode": "single-shot",
        "gpu": {"id": "0", "name": "NVIDIA L4", "vram_mb": 23034},
        "capacity": 4,
        "price_info": {"price": "0.5", "currency": "usd", "unit": "hour"},
        "session_ids": [],
        **overrides,
    }


def test_client_bootstraps_heartbeats_and_unregisters(standin: Standin) -> None:
    orch = standin(live_runners=True, heartbeat_interval="300ms", heartbeat_ttl="2s")
    client = LiveRunnerClient(orch.url, ORCH_SECRET)
    runner_id = new_runner_id("gpu-check")
    first = client.bootstrap(_body(runner_id))
    assert first.runner_id == runner_id and first.interval == pytest.approx(0.3)
    assert first.ttl == pytest.approx(2.0) and first.heartbeat_secret
    assert "heartbeat_secret" not in repr(first) and first.heartbeat_secret not in repr(first)
    again = client.heartbeat(_body(runner_id, status="unhealthy"), first.heartbeat_secret)
    assert again.heartbeat_secret is None and again.interval == pytest.approx(0.3)
    assert orch.runners()[0]["status"] == "unhealthy"
    with pytest.raises(Forgotten, match="401"):  # the orch secret cannot heartbeat a held id
        client.heartbeat(_body(runner_id), ORCH_SECRET)
    client.unregister(runner_id, first.heartbeat_secret)
    assert orch.runners() == []
    with pytest.raises(Forgotten, match="404: runner not found"):
        client.unregister(runner_id, first.heartbeat_secret)


def test_client_tells_restart_wrong_secret_and_no_live_runners_apart(standin: Standin) -> None:
    orch = standin(live_runners=True, heartbeat_interval="300ms", heartbeat_ttl="2s")
    client = LiveRunnerClient(orch.url, ORCH_SECRET)
    runner_id = new_runner_id("gpu-check")
    secret = client.bootstrap(_body(runner_id)).heartbeat_secret
    assert secret is not None
    orch.restart()
    with pytest.raises(Forgotten, match="401: invalid registration authorization"):
        client.heartbeat(_body(runner_id), secret)
    with pytest.raises(Unauthorized) as refused:
        LiveRunnerClient(orch.url, "not-the-secret").bootstrap(_body(new_runner_id("x")))
    assert "not-the-secret" not in str(refused.value)
    plain = standin()
    with pytest.raises(NotSupported, match="live runners are not supported"):
        LiveRunnerClient(plain.url, ORCH_SECRET).bootstrap(_body(new_runner_id("x")))


def test_on_chain_the_price_string_is_accepted_and_converted(standin: Standin) -> None:
    orch = standin(live_runners=True, onchain=True, usd_per_eth=3600)
    client = LiveRunnerClient(orch.url, ORCH_SECRET)
    client.bootstrap(_body(new_runner_id("gpu-check")))
    [entry] = orch.discovery()[0]["runners"]
    assert entry["price_info"] == {
        "price": 38580246913,  # 0.5 USD/h / 3600 s / 3600 USD/ETH, in wei per second
        "currency": "wei",
        "unit": "seconds",
    }
    with pytest.raises(Exception, match=r"price_info\.price must be a positive decimal"):
        client.bootstrap(_body(new_runner_id("gpu-check"), price_info={"price": "0"}))


# --- Keeper -------------------------------------------------------------------------------
class Fixture:
    """A RunnerKeeper over a stand-in, with readiness the test sets."""

    def __init__(self, orch: StandinOrchestrator, tmp_path: Path, **options: Any) -> None:
        self.status = "ready"
        self.stopping = threading.Event()
        self.state = StateFile(
            tmp_path, [], [LiveRunnerState(orch.url, "gpu-check", "agent-net/gpu-check")]
        )
        self.keeper = RunnerKeeper(
            0,
            LiveRunnerClient(orch.url, options.pop("secret", ORCH_SECRET)),
            "gpu-check",
            self.beat,
            lambda: Readiness(self.status, None),
            self.state,
            self.stopping,
            **options,
        )

    def beat(self) -> Beat:
        body = _body("")
        del body["runner_id"]
        return Beat({**body, "status": self.status}, Readiness(self.status, None))

    def __enter__(self) -> Fixture:
        self.keeper.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.keeper.thread.join(5)


def test_no_live_runners_is_said_once_and_retried_slowly(
    standin: Standin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    orch = standin(heartbeat_interval="300ms")
    notice = OnceFlag()
    fixture = Fixture(orch, tmp_path, unsupported_notice=notice, slow_retry=45.0)
    with caplog.at_level(logging.DEBUG, logger="agent_net.registration"):
        delays = [fixture.keeper.attempt() for _ in range(3)]
        (tmp_path / "x").mkdir()
        other = Fixture(orch, tmp_path / "x", unsupported_notice=notice)  # same orchestrator
        other.keeper.attempt()
    assert delays == [45.0, 45.0, 45.0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "-useLiveRunners" in warnings[0].getMessage()
    assert orch.url in warnings[0].getMessage()
    [state] = read_live_runner_state(tmp_path)
    assert state["supported"] is False and state["registered"] is False
    orch.set_live_runners_enabled(True)
    fixture.keeper.attempt()
    [state] = read_live_runner_state(tmp_path)
    assert state["supported"] is True and state["registered"] is True
    assert state["runner_id"] == orch.runners()[0]["runner_id"]


def test_a_readiness_change_is_sent_at_once_not_at_the_next_interval(
    standin: Standin, tmp_path: Path
) -> None:
    orch = standin(live_runners=True, heartbeat_interval="1h", heartbeat_ttl="2h")
    with Fixture(orch, tmp_path, poll=0.05) as fixture:
        wait_for(lambda: orch.discovery()[0].get("runners"), 10, what="registration")
        fixture.status = "unhealthy"
        # The interval is an hour: only the early heartbeat can take it out of discovery.
        wait_for(lambda: not orch.discovery()[0].get("runners"), 10, what="the runner gone")
        fixture.status = "ready"
        wait_for(lambda: orch.discovery()[0].get("runners"), 10, what="the runner back")
    assert len(orch.heartbeats()) == 3


def test_an_expired_runner_bootstraps_again_with_a_fresh_id(
    standin: Standin, tmp_path: Path
) -> None:
    orch = standin(live_runners=True, heartbeat_interval="200ms", heartbeat_ttl="1s")
    fixture = Fixture(orch, tmp_path)
    fixture.keeper.attempt()
    old = fixture.keeper.runner_id
    # Past the TTL: 404 until the sweep, 401 after it; both mean bootstrap again.
    orch.live._runners[old]["last_heartbeat"] -= 5  # type: ignore[index]
    assert fixture.keeper.attempt() == 0.0  # forgotten: bootstrap at once
    fixture.keeper.attempt()
    assert fixture.keeper.runner_id not in (None, old)
    statuses = [h["status"] for h in orch.heartbeats()]
    assert statuses[:2] == [200, 404] and statuses[-1] == 200


def test_a_wrong_secret_is_an_error_retried_slowly_and_never_shown(
    standin: Standin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    orch = standin(live_runners=True)
    fixture = Fixture(orch, tmp_path, secret="not-the-secret", slow_retry=45.0)
    with caplog.at_level(logging.INFO, logger="agent_net.registration"):
        assert fixture.keeper.attempt() == 45.0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "live_runner_auth_rejected" in record.getMessage()
    assert "ORCH_SECRET" in record.getMessage()
    [state] = read_live_runner_state(tmp_path)
    assert state["supported"] is True and state["registered"] is False
    assert "not-the-secret" not in caplog.text + json.dumps(state)


def test_a_refused_heartbeat_body_is_an_error_retried_slowly(
    standin: Standin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    orch = standin(live_runners=True)
    fixture = Fixture(orch, tmp_path, slow_retry=45.0)
    fixture.keeper.attempt()
    body = {key: value for key, value in _body("").items() if key != "runner_id"}
    fixture.keeper.build = lambda: Beat({**body, "app": " padded "}, Readiness("ready", None))
    with caplog.at_level(logging.INFO, logger="agent_net.registration"):
        assert fixture.keeper.attempt() == 45.0
    assert "live_runner_rejected" in caplog.text and "app must be trimmed" in caplog.text
