"""The worker's live-runner routes: only `/lr/<secret prefix>/<runner>/<route>` answers,
with no bearer token; every other path under /lr/ is the same 404, and no answer, log line
or metric shows the prefix. /readyz and /metrics show each live runner's state."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from tests.metrics.scrape import parse, value
from worker.config import load_settings
from worker.http.app import create_app
from worker.http.metrics import live_runner_metrics
from worker.registration.runners import PREFIX_VARIABLE, new_route_prefix, route_prefix
from worker.registration.state import (
    LiveRunnerState,
    OrchestratorState,
    StateFile,
    read_registration_state,
)

TOKEN = "token-for-routes"
BODY = b'{"agent_id": "lr-test"}'


def app_with_token(tmp_path: Path):
    settings = load_settings({"OLLAMA_HOST": "http://127.0.0.1:9", "WORKER_TOKEN": TOKEN})
    prefix = route_prefix(settings, {})
    assert prefix is not None
    return create_app(settings, tmp_path).test_client(), prefix


def test_the_secret_prefix_serves_the_job_without_the_bearer_token(tmp_path: Path) -> None:
    client, prefix = app_with_token(tmp_path)
    assert client.post("/gpu-check", data=BODY).status_code == 401  # BYOC route: token
    direct = client.post("/gpu-check", data=BODY, headers={"Authorization": f"Bearer {TOKEN}"})
    for route in ("gpu-check", "agent-net"):  # the GPU check's runner serves the job routes
        proxied = client.post(f"/lr/{prefix}/gpu-check/{route}", data=BODY)
        assert proxied.status_code == direct.status_code == 200
        assert proxied.json["agent_id"] == "lr-test"
        assert proxied.json.keys() == direct.json.keys()


@pytest.mark.parametrize(
    "path",
    [
        "/lr",
        "/lr/",
        "/lr/gpu-check",
        "/lr/{wrong}/gpu-check",
        "/lr/{prefix}",
        "/lr/{prefix}/",
        "/lr/{prefix}/nope",
        "/lr/{prefix}//gpu-check",
        "/lr/{prefix}/gpu-check/",
        "/lr/{prefix}/gpu-check",  # a runner, not a route
        "/lr/{prefix}/gpu-check/gpu-check/",
        "/lr/{prefix}/gpu-check/healthz",
        "/lr/{prefix}/gpu-check/v1/models",  # the OpenAI API is an agent runner's
        "/lr/{prefix}/agent-net-llm/gpu-check",
        "/lr/{prefix}/nope/gpu-check",
        "/lr/{prefix}/healthz",
        "/lr/{upper}/gpu-check/gpu-check",
        "/lr/{wrong}/gpu-check/gpu-check",
        "/lr/{wrong}/agent-net-llm/v1/models",
    ],
)
def test_every_other_path_under_lr_is_one_404_that_shows_no_path(
    tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, prefix = app_with_token(tmp_path)
    url = path.format(prefix=prefix, wrong=new_route_prefix(), upper=prefix.upper())
    with caplog.at_level(logging.DEBUG):
        for method in ("POST", "GET", "PUT", "DELETE", "OPTIONS"):
            response = client.open(url, method=method, data=BODY)
            assert response.status_code == 404, (method, url)
            assert response.json == {"error": "not_found", "detail": "no such route"}
            assert "Location" not in response.headers
    metrics = client.get("/metrics").get_data(as_text=True)
    assert prefix not in caplog.text + metrics
    assert 'route="/lr/<path:rest>"' in metrics or url in ("/lr", "/lr/")


def test_only_post_reaches_the_job_and_errors_do_not_echo_the_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, prefix = app_with_token(tmp_path)
    with caplog.at_level(logging.DEBUG):
        got = client.get(f"/lr/{prefix}/gpu-check/gpu-check")
        assert got.status_code == 405 and got.headers["Allow"] == "POST"
        bad = client.post(f"/lr/{prefix}/gpu-check/gpu-check", data=b"{nope")
        assert bad.status_code == 400 and bad.json["error"] == "invalid_json"
        big = client.post(f"/lr/{prefix}/gpu-check/gpu-check", data=b"x" * (70 * 1024))
        assert big.status_code == 413
    shown = caplog.text + got.get_data(as_text=True) + bad.get_data(as_text=True)
    shown += big.get_data(as_text=True)
    assert prefix not in shown and "/lr/***" in caplog.text


def test_without_token_or_prefix_no_live_runner_route_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PREFIX_VARIABLE, raising=False)
    client = create_app(load_settings({}), tmp_path).test_client()
    assert client.post("/lr//gpu-check/gpu-check", data=BODY).status_code == 404
    fresh = new_route_prefix()
    monkeypatch.setenv(PREFIX_VARIABLE, fresh)
    (tmp_path / "x").mkdir()
    client = create_app(load_settings({}), tmp_path / "x").test_client()
    assert client.post(f"/lr/{fresh}/gpu-check/gpu-check", data=BODY).status_code == 200
    wrong = f"/lr/{new_route_prefix()}/gpu-check/gpu-check"
    assert client.post(wrong, data=BODY).status_code == 404


def test_readyz_and_metrics_show_live_runners_beside_byoc(tmp_path: Path) -> None:
    StateFile(
        tmp_path,
        [OrchestratorState("https://o:8935", "agent-net", registered=True)],
        [
            LiveRunnerState(
                "https://o:8935",
                "gpu-check",
                "agent-net/gpu-check",
                runner_id="agent-net-gpu-check-abcdefgh",
                registered=True,
                supported=True,
                status_sent="unhealthy",
                status_reason="GPU 1: GPU is lost",
                last_heartbeat=time.time() - 3,
                heartbeat_interval_seconds=5.0,
            )
        ],
    )
    [byoc] = read_registration_state(tmp_path)
    assert set(byoc) == {
        "orchestrator",
        "capability",
        "registered",
        "last_success",
        "last_attempt",
        "last_error",
        "consecutive_failures",
    }
    client = create_app(
        load_settings({"OLLAMA_HOST": "http://127.0.0.1:9"}), tmp_path
    ).test_client()
    document = json.loads(client.get("/readyz").get_data())
    assert document["registration"] == [{**byoc}]
    [runner] = document["live_runners"]
    assert runner["runner_id"] == "agent-net-gpu-check-abcdefgh"
    assert runner["status_sent"] == "unhealthy" and 2.5 < runner["last_heartbeat_age_seconds"] < 60
    samples = parse(client.get("/metrics").get_data(as_text=True))
    labels = {"orchestrator": "https://o:8935", "capability": "gpu-check"}
    assert value(samples, "agent_net_live_runner_registered", **labels) == 1
    assert value(samples, "agent_net_live_runner_ready", **labels) == 0
    info = {**labels, "runner_id": "agent-net-gpu-check-abcdefgh", "status": "unhealthy"}
    assert value(samples, "agent_net_live_runner_info", **info) == 1
    assert value(samples, "agent_net_live_runner_heartbeat_age_seconds", **labels) > 2.5


def test_live_runner_metrics_take_only_well_typed_fields() -> None:
    families = list(
        live_runner_metrics(
            [
                {"orchestrator": "a", "capability": "c", "registered": "yes"},
                {
                    "orchestrator": "b",
                    "capability": "c",
                    "registered": True,
                    "last_heartbeat": True,
                },
            ],
            now=100.0,
        )
    )
    names = {family.name for family in families}
    assert names == {"agent_net_live_runner_registered", "agent_net_live_runner_ready"}
    [registered] = [f for f in families if f.name == "agent_net_live_runner_registered"]
    assert [s.value for s in registered.samples] == [0.0, 1.0]
