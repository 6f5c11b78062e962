"""The stand-in's live runners follow go-livepeer v0.9.1 (ai/runner/live_runner.go and
server/ai_http.go), over real HTTP on loopback."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.helpers.processes import free_port, wait_for
from tests.registration.support import ORCH_SECRET, Reply, ScriptedServer, read_lines
from tests.standins.orchestrator import (
    StandinOrchestrator,
    format_go_duration,
    parse_go_duration,
)

Standin = Callable[..., StandinOrchestrator]
Scripted = Callable[[], ScriptedServer]
BASE32 = "[a-z2-7]"


def runner(**overrides: Any) -> dict[str, Any]:
    return {"runner_url": "http://127.0.0.1:9", "app": "agent-net/llm", **overrides}


def beat(
    orch: StandinOrchestrator, body: Any, auth: str | None = ORCH_SECRET, raw: bytes | None = None
) -> requests.Response:
    headers = {} if auth is None else {"Authorization": auth}
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(f"{orch.url}/runners/heartbeat", data=data, headers=headers, timeout=5)


def bootstrap(orch: StandinOrchestrator, **fields: Any) -> dict[str, Any]:
    response = beat(orch, runner(**fields))
    assert response.status_code == 200, response.text
    return response.json()


def live(standin: Standin, **options: Any) -> StandinOrchestrator:
    return standin(live_runners=True, **options)


# --- Go durations ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "nanoseconds", "shown"),
    [
        ("5s", 5 * 10**9, "5s"),
        ("20s", 20 * 10**9, "20s"),
        ("200ms", 200 * 10**6, "200ms"),
        ("1.5s", 1_500_000_000, "1.5s"),
        ("90s", 90 * 10**9, "1m30s"),
        ("1h", 3600 * 10**9, "1h0m0s"),
        ("1500us", 1_500_000, "1.5ms"),
        ("0", 0, "0s"),
    ],
)
def test_durations_parse_and_print_like_go(text: str, nanoseconds: int, shown: str) -> None:
    assert parse_go_duration(text) == nanoseconds
    assert format_go_duration(nanoseconds) == shown


@pytest.mark.parametrize("text", ["", "5", "s", "1.s.", "5 s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="time: invalid duration"):
        parse_go_duration(text)


# --- Bootstrap and heartbeats -------------------------------------------------------------
def test_bootstrap_generates_an_id_and_returns_a_heartbeat_secret(standin: Standin) -> None:
    orch = live(standin, heartbeat_interval="200ms", heartbeat_ttl="1s")
    response = beat(orch, runner())
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    assert list(answer) == [
        "runner_id",
        "orchestrator",
        "heartbeat_interval",
        "heartbeat_ttl",
        "heartbeat_secret",
        "o2r",
        "session_ids",
    ]
    assert re.fullmatch(f"runner_{BASE32}{{8}}", answer["runner_id"])
    assert re.fullmatch(f"{BASE32}{{52}}", answer["heartbeat_secret"])  # base32 HMAC-SHA256
    assert (answer["heartbeat_interval"], answer["heartbeat_ttl"]) == ("200ms", "1s")
    assert answer["orchestrator"] == orch.url
    assert answer["session_ids"] == []
    o2r = answer["o2r"]
    assert (o2r["name"], o2r["mime_type"]) == ("o2r", "application/json")
    assert re.fullmatch(f"{answer['runner_id']}-{BASE32}{{16}}-o2r", o2r["channel_name"])
    assert o2r["url"] == f"{orch.url}/ai/trickle/{o2r['channel_name']}"
    # Another bootstrap gets another id and secret.
    other = bootstrap(orch)
    assert other["runner_id"] != answer["runner_id"]
    assert other["heartbeat_secret"] != answer["heartbeat_secret"]


def test_default_durations_are_upstreams(standin: Standin) -> None:
    answer = bootstrap(live(standin))
    assert (answer["heartbeat_interval"], answer["heartbeat_ttl"]) == ("5s", "20s")


def test_a_proposed_runner_id_is_trimmed_and_kept(standin: Standin) -> None:
    orch = live(standin)
    assert bootstrap(orch, runner_id="  agent-net-1 ")["runner_id"] == "agent-net-1"
    assert [r["runner_id"] for r in orch.runners()] == ["agent-net-1"]


def test_heartbeats_use_the_heartbeat_secret_and_get_no_new_secret(standin: Standin) -> None:
    orch = live(standin)
    first = bootstrap(orch, runner_id="r1")
    response = beat(orch, runner(runner_id="r1", capacity=3), auth=first["heartbeat_secret"])
    assert response.status_code == 200
    assert list(response.json()) == [
        "runner_id",
        "orchestrator",
        "heartbeat_interval",
        "heartbeat_ttl",
        "session_ids",
    ]
    [state] = orch.runners()
    assert (state["capacity"], state["heartbeat_count"]) == (3, 2)
    records = orch.heartbeats()
    assert [(r["secret"], r["status"], r["runner_id"]) for r in records] == [
        ("orch", 200, "r1"),
        ("heartbeat", 200, "r1"),
    ]
    assert records[1]["body"] == runner(runner_id="r1", capacity=3)
    assert records[0]["secret_returned"] and not records[1]["secret_returned"]
    assert records[0]["at"] <= records[1]["at"]
    assert first["heartbeat_secret"] not in json.dumps(orch.live.view())


def test_the_orch_secret_cannot_bootstrap_an_id_still_held(standin: Standin) -> None:
    orch = live(standin)
    bootstrap(orch, runner_id="r1")
    response = beat(orch, runner(runner_id="r1"))
    assert (response.status_code, response.text) == (401, "invalid heartbeat authorization\n")
    assert beat(orch, runner(runner_id="r1"), auth="wrong").status_code == 401


@pytest.mark.parametrize("auth", [None, "", "wrong", f"Bearer {ORCH_SECRET}"])
def test_a_bootstrap_needs_the_raw_orch_secret(standin: Standin, auth: str | None) -> None:
    orch = live(standin)
    response = beat(orch, runner(), auth=auth)
    assert (response.status_code, response.text) == (401, "invalid registration authorization\n")
    assert orch.runners() == []
    kind = {None: "none", "": "none"}.get(auth, "unknown")
    assert [(r["secret"], r["status"]) for r in orch.heartbeats()] == [(kind, 401)]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"runner_url": ""}, "invalid runner_url"),
        ({"runner_url": "ftp://127.0.0.1/x"}, "invalid runner_url"),
        ({"runner_url": "localhost:8080"}, "invalid runner_url"),
        ({"runner_url": "/relative"}, "invalid runner_url"),
        ({"runner_url": "http://"}, "invalid runner_url"),
        ({"runner_url": "http://host:port"}, "invalid runner_url"),
        ({"app": ""}, "app must be trimmed"),
        ({"app": " agent-net"}, "app must be trimmed"),
        ({"metadata": "x" * 1025}, "metadata must be at most 1024 bytes"),
        ({"metadata": "é" * 513}, "metadata must be at most 1024 bytes"),
        (
            {"metadata": "a\ufffdb"},
            "metadata must not contain Unicode replacement character U+FFFD",
        ),
        ({"status": "Ready"}, "status must be lowercase and trimmed"),
        ({"status": "ready "}, "status must be lowercase and trimmed"),
        ({"mode": "batch"}, 'mode must be "persistent" or "single-shot"'),
        ({"mode": "Single-Shot"}, 'mode must be "persistent" or "single-shot"'),
        ({"capacity": -1}, "capacity must be >= 0"),
        (
            {"capacity": "2"},
            "json: cannot unmarshal string into Go struct field"
            " LiveRunnerHeartbeatRequest.capacity of type int",
        ),
        (
            {"proxy": "yes"},
            "json: cannot unmarshal string into Go struct field"
            " LiveRunnerHeartbeatRequest.proxy of type bool",
        ),
        (
            {"price_info": {"price": True}},
            "json: cannot unmarshal bool into Go struct field"
            " LiveRunnerPriceInfo.price_info.price of type json.Number",
        ),
        (
            {"price_info": {"price": "cheap"}},
            'json: invalid number literal, trying to unmarshal "\\"cheap\\"" into Number',
        ),
        (
            {"gpu": "H100"},
            "json: cannot unmarshal string into Go struct field"
            " LiveRunnerHeartbeatRequest.gpu of type runner.gpuAlias",
        ),
        (
            {"gpu": {"vram_mb": "80"}},
            "json: cannot unmarshal string into Go struct field"
            " LiveRunnerHeartbeatRequest.gpu.vram_mb of type int",
        ),
        (
            {"session_ids": [1]},
            "json: cannot unmarshal number into Go struct field"
            " LiveRunnerHeartbeatRequest.session_ids of type string",
        ),
    ],
)
def test_bad_heartbeats_are_400_before_any_authorization(
    standin: Standin, fields: dict[str, Any], error: str
) -> None:
    orch = live(standin)
    for auth in (ORCH_SECRET, "wrong"):
        response = beat(orch, runner(**fields), auth=auth)
        assert (response.status_code, response.text) == (400, error + "\n")
    assert orch.runners() == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "EOF"),
        (b"  ", "EOF"),
        (b'{"app": "x"', "unexpected EOF"),
        (b"[1]", "json: cannot unmarshal array into Go value of type"),
        (b"{nope}", "invalid character"),
    ],
)
def test_undecodable_bodies_are_400(standin: Standin, raw: bytes, error: str) -> None:
    response = beat(live(standin), None, raw=raw)
    assert response.status_code == 400 and response.text.startswith(error)


def test_only_the_first_json_value_is_read(standin: Standin) -> None:
    orch = live(standin)
    response = beat(orch, None, raw=json.dumps(runner(runner_id="r1")).encode() + b" trailing")
    assert response.status_code == 200


def test_a_lone_surrogate_in_metadata_is_u_fffd_to_go(standin: Standin) -> None:
    response = beat(
        live(standin), None, raw=b'{"runner_url":"http://h","app":"a","metadata":"\\ud800"}'
    )
    assert response.status_code == 400 and "U+FFFD" in response.text


def test_metadata_of_exactly_1024_bytes_is_accepted(standin: Standin) -> None:
    orch = live(standin)
    bootstrap(orch, metadata="é" * 512)
    assert orch.discovery()[0]["runners"][0]["metadata"] == "é" * 512


def test_defaults_capacity_mode_and_unknown_fields(standin: Standin) -> None:
    orch = live(standin)
    bootstrap(orch, runner_id="a", capacity=0, unknown={"x": 1}, RUNNER_URL="http://10.0.0.1:1")
    bootstrap(orch, runner_id="b", mode="single_shot", capacity=4)
    states = {state["runner_id"]: state for state in orch.runners()}
    assert (states["a"]["capacity"], states["a"]["mode"]) == (1, "persistent")
    assert states["a"]["runner_url"] == "http://10.0.0.1:1"  # keys match case-insensitively
    assert (states["b"]["capacity"], states["b"]["mode"]) == (4, "single-shot")


# --- Expiry, restart, unregister ----------------------------------------------------------
def test_an_expired_runner_is_404_until_the_expiry_loop_then_unknown(standin: Standin) -> None:
    # A long interval keeps the expiry loop from running: the TTL alone decides.
    orch = live(standin, heartbeat_interval="1h", heartbeat_ttl="300ms")
    first = bootstrap(orch, runner_id="r1")
    time.sleep(0.5)
    assert orch.discovery() == [{"address": orch.url}]  # hidden at once
    for auth in (first["heartbeat_secret"], ORCH_SECRET):
        response = beat(orch, runner(runner_id="r1"), auth=auth)
        assert (response.status_code, response.text) == (404, "runner not found\n")
    assert [state["expired"] for state in orch.runners()] == [True]
    orch.live.remove_expired()  # what the expiry loop does every heartbeat interval
    assert orch.runners() == []
    # Now the id is unknown: a heartbeat is a bootstrap, and the old secret is refused.
    response = beat(orch, runner(runner_id="r1"), auth=first["heartbeat_secret"])
    assert (response.status_code, response.text) == (401, "invalid registration authorization\n")
    again = bootstrap(orch, runner_id="r1")
    assert again["heartbeat_secret"] != first["heartbeat_secret"]
    assert [e["reason"] for e in orch.live.view()["events"] if e["event"] == "removed"] == [
        "heartbeat timeout"
    ]


def test_heartbeats_within_the_ttl_keep_a_runner_and_silence_removes_it(standin: Standin) -> None:
    orch = live(standin, heartbeat_interval="100ms", heartbeat_ttl="1s")
    secret = bootstrap(orch, runner_id="r1")["heartbeat_secret"]
    for _ in range(8):  # 1.6 s: longer than the TTL
        time.sleep(0.2)
        assert beat(orch, runner(runner_id="r1"), auth=secret).status_code == 200
    assert len(orch.discovery()[0]["runners"]) == 1
    silent_since = time.monotonic()
    wait_for(lambda: orch.runners() == [], 5, what="the expiry loop")
    assert time.monotonic() - silent_since > 0.9  # not before the TTL
    assert [r["secret"] for r in orch.heartbeats()] == ["orch"] + ["heartbeat"] * 8


def test_restart_forgets_runners_and_the_old_secret_is_refused(standin: Standin) -> None:
    orch = live(standin)
    secret = bootstrap(orch, runner_id="r1")["heartbeat_secret"]
    orch.restart()
    assert orch.runners() == [] and orch.discovery() == [{"address": orch.url}]
    response = beat(orch, runner(runner_id="r1"), auth=secret)
    assert (response.status_code, response.text) == (401, "invalid registration authorization\n")
    assert bootstrap(orch, runner_id="r1")["runner_id"] == "r1"


def test_unregister_is_204_with_the_heartbeat_secret_only(standin: Standin) -> None:
    orch = live(standin)
    secret = bootstrap(orch, runner_id="r1")["heartbeat_secret"]
    url = f"{orch.url}/runners/r1/unregister"
    for auth in ("wrong", ORCH_SECRET, ""):
        response = requests.post(url, headers={"Authorization": auth}, timeout=5)
        assert (response.status_code, response.text) == (401, "invalid authorization\n")
    response = requests.post(url, headers={"Authorization": secret}, timeout=5)
    assert (response.status_code, response.content) == (204, b"")
    assert orch.runners() == []
    response = requests.post(url, headers={"Authorization": secret}, timeout=5)
    assert (response.status_code, response.text) == (404, "runner not found\n")
    response = beat(orch, runner(runner_id="r1"), auth=secret)
    assert response.status_code == 401  # unknown id: a bootstrap needs the orch secret


def test_without_live_runners_everything_is_404(standin: Standin) -> None:
    orch = standin()  # as go-livepeer without -useLiveRunners
    for method, path in (
        ("POST", "/runners/heartbeat"),
        ("POST", "/runners/r1/unregister"),
        ("GET", "/discovery"),
        ("POST", "/apps/r1/app/x"),
    ):
        response = requests.request(method, orch.url + path, json=runner(), timeout=5)
        assert (response.status_code, response.text) == (404, "live runners are not supported\n")
    orch.set_live_runners_enabled(True)
    bootstrap(orch, runner_id="r1")
    orch.set_live_runners_enabled(False)
    assert beat(orch, runner(runner_id="r1")).status_code == 404
    orch.set_live_runners_enabled(True)
    assert orch.runners() == []


def test_other_methods_are_405_as_go_servemux_answers(standin: Standin) -> None:
    orch = live(standin)
    response = requests.get(f"{orch.url}/runners/heartbeat", timeout=5)
    assert (response.status_code, response.text) == (405, "Method Not Allowed\n")
    assert response.headers["Allow"] == "POST"
    response = requests.post(f"{orch.url}/discovery", timeout=5)
    assert (response.status_code, response.headers["Allow"]) == (405, "GET, HEAD")


# --- Discovery --------------------------------------------------------------------------
def test_discovery_lists_ready_runners_with_orchestrator_urls_only(standin: Standin) -> None:
    orch = live(standin)
    bootstrap(
        orch,
        runner_id="persist",
        runner_url="http://10.1.2.3:7000/private",
        version="1.2.0",
        metadata='{"models":["llama3"]}',
        gpu={"id": "GPU-1", "name": "NVIDIA H100", "vram_mb": 81559},
        capacity=2,
        price_info={"price": 3.5},  # off-chain: accepted, never advertised
    )
    bootstrap(orch, runner_id="single", mode="single-shot", status="ready", gpu=0)
    bootstrap(orch, runner_id="proxied", mode="single-shot", proxy=True, gpu=None)
    bootstrap(orch, runner_id="warming", status="starting")
    answer = requests.get(f"{orch.url}/discovery", timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    [entry] = answer.json()
    assert entry["address"] == orch.url
    runners = {r["url"]: r for r in entry["runners"]}
    assert list(runners) == [
        f"{orch.url}/apps/persist/session",
        f"{orch.url}/apps/single/app",
        f"{orch.url}/run/proxied",
    ]
    assert list(runners[f"{orch.url}/apps/persist/session"].items()) == [
        ("url", f"{orch.url}/apps/persist/session"),
        ("gpu", {"id": "GPU-1", "name": "NVIDIA H100", "vram_mb": 81559}),
        ("app", "agent-net/llm"),
        ("version", "1.2.0"),
        ("metadata", '{"models":["llama3"]}'),
        ("mode", "persistent"),
        ("capacity", 2),
        ("capacity_used", 0),
        ("capacity_available", 2),
    ]
    assert runners[f"{orch.url}/apps/single/app"]["gpu"] == {"id": "0"}  # a device index
    assert "gpu" not in runners[f"{orch.url}/run/proxied"]
    assert "10.1.2.3" not in answer.text and "runner_url" not in answer.text
    assert orch.discovery() == answer.json()


def test_discovery_and_heartbeats_use_the_configured_addresses(standin: Standin) -> None:
    orch = live(
        standin,
        service_uri="https://orch.example.com:8935",
        live_runner_addr="http://go-livepeer:8935",
    )
    answer = bootstrap(orch, runner_id="r1")
    assert answer["orchestrator"] == "http://go-livepeer:8935"
    assert answer["o2r"]["url"].startswith("http://go-livepeer:8935/ai/trickle/r1-")
    [entry] = orch.discovery()
    assert entry["address"] == "https://orch.example.com:8935"
    assert entry["runners"][0]["url"] == "https://orch.example.com:8935/apps/r1/session"


def test_on_chain_a_price_is_required_and_validated(standin: Standin) -> None:
    orch = live(standin, onchain=True)
    for price_info, error in (
        ({}, "price_info.price is required"),
        ({"price": None}, "price_info.price is required"),
        # A string must be a JSON number literal to decode into json.Number at all.
        ({"price": " "}, 'json: invalid number literal, trying to unmarshal "\\" \\"" into Number'),
        ({"price": 0}, "price_info.price must be a positive decimal"),
        ({"price": "-1"}, "price_info.price must be a positive decimal"),
        ({"price": 1, "currency": "eur"}, "price_info.currency must be usd"),
        ({"price": 1, "unit": "minute"}, "price_info.unit must be hour, 720p, or fixed"),
    ):
        response = beat(orch, runner(price_info=price_info))
        assert (response.status_code, response.text) == (400, error + "\n"), price_info
    bootstrap(orch, runner_id="r1", price_info={"price": "3.5", "currency": " USD "})
    [state] = orch.runners()
    assert state["price_info"] == {"price": "3.5", "currency": "usd", "unit": "hour"}
    assert "price_info" not in orch.discovery()[0]["runners"][0]  # no price feed


def test_on_chain_discovery_shows_the_wei_price_the_feed_gives(standin: Standin) -> None:
    orch = live(standin, onchain=True, usd_per_eth=3500)
    bootstrap(orch, runner_id="hourly", price_info={"price": 3.5})
    bootstrap(orch, runner_id="fixed", price_info={"price": 0.01, "unit": "fixed"})
    prices = {r["url"].split("/")[-2]: r["price_info"] for r in orch.discovery()[0]["runners"]}
    # 3.5 USD/h / 3600 / 3500 USD/ETH * 1e18, truncated.
    assert prices["hourly"] == {"price": 277777777777, "currency": "wei", "unit": "seconds"}
    assert prices["fixed"] == {"price": 2857142857142, "currency": "wei", "unit": "fixed"}


# --- The single-shot proxy ----------------------------------------------------------------
def test_the_proxy_keeps_the_request_and_injects_the_session_headers(
    standin: Standin, scripted: Scripted
) -> None:
    orch, app = live(standin), scripted()
    app.script = lambda reply: reply.whole(
        201, b'{"ok":true}', {"Content-Type": "application/json", "X-App": "yes"}
    )
    bootstrap(orch, runner_id="r1", mode="single-shot", runner_url=f"{app.url}/base")
    response = requests.put(
        f"{orch.url}/apps/r1/app/v1/run?x=1&y=two",
        data=b"payload",
        headers={
            "X-Custom": "kept",
            "Authorization": "Bearer client",
            "Livepeer-Session-Token": "forged",
            "X-Forwarded-For": "1.2.3.4",
        },
        timeout=5,
    )
    assert (response.status_code, response.content) == (201, b'{"ok":true}')
    assert response.headers["X-App"] == "yes"
    [seen] = app.requests
    assert (seen["method"], seen["path"], seen["query"]) == ("PUT", "/base/v1/run", "x=1&y=two")
    assert seen["body"] == b"payload"
    headers = seen["headers"]
    assert (headers["X-Custom"], headers["Authorization"]) == ("kept", "Bearer client")
    assert headers["Host"] == f"127.0.0.1:{app.port}"
    assert "X-Forwarded-For" not in headers
    assert headers["Livepeer-Runner-Route"] == "r1"
    session_id = headers["Livepeer-Session-Id"]
    assert re.fullmatch(f"session_{BASE32}{{8}}", session_id)
    assert re.fullmatch(f"{BASE32}{{52}}", headers["Livepeer-Session-Token"])
    assert headers["Livepeer-Session-Control"] == f"{orch.url}/runner/r1/session/{session_id}"
    assert orch.live.view()["proxied"][0]["path"] == "/base/v1/run"
    # Released once the proxied request is over (deferred: just after the client has it).
    wait_for(lambda: orch.discovery()[0]["runners"][0]["capacity_used"] == 0, 2)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_the_proxy_keeps_every_method(standin: Standin, scripted: Scripted, method: str) -> None:
    orch, app = live(standin), scripted()
    bootstrap(orch, runner_id="r1", mode="single-shot", runner_url=app.url)
    response = requests.request(method, f"{orch.url}/apps/r1/app/", timeout=5)
    assert response.status_code == 200
    assert (app.requests[0]["method"], app.requests[0]["path"]) == (method, "/")


def test_the_proxy_streams_sse_as_it_arrives(standin: Standin, scripted: Scripted) -> None:
    orch, app = live(standin), scripted()

    def events(reply: Reply) -> None:
        reply.start(200, {"Content-Type": "text/event-stream"})
        for number in range(3):
            reply.write(b"data: %d\n\n" % number)
            time.sleep(0.3)
        reply.write(b"data: [DONE]\n\n")
        reply.end()

    app.script = events
    bootstrap(orch, runner_id="r1", mode="single-shot", runner_url=app.url)
    started = time.monotonic()
    response, lines = read_lines(f"{orch.url}/apps/r1/app/stream", body=b"{}")
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    data = [(at, line) for at, line in lines if line != b"\n"]
    assert [line for _, line in data] == [
        b"data: 0\n",
        b"data: 1\n",
        b"data: 2\n",
        b"data: [DONE]\n",
    ]
    assert data[0][0] - started < 0.5  # not held until the end
    assert data[-1][0] - data[0][0] > 0.6
    # No balance line: that is BYOC's /process/request, not the live-runner proxy.


def test_capacity_counts_single_shot_requests_in_flight(
    standin: Standin, scripted: Scripted
) -> None:
    orch, app = live(standin), scripted()
    release = threading.Event()

    def slow(reply: Reply) -> None:
        release.wait(5)
        reply.whole(200, b"done")

    app.script = slow
    secret = bootstrap(orch, runner_id="r1", mode="single-shot", runner_url=app.url)[
        "heartbeat_secret"
    ]
    results: list[requests.Response] = []
    first = threading.Thread(
        target=lambda: results.append(requests.get(f"{orch.url}/apps/r1/app/a", timeout=10))
    )
    first.start()
    wait_for(lambda: app.requests, 5, what="the first request at the runner")
    [entry] = orch.discovery()[0]["runners"]
    assert (entry["capacity_used"], entry["capacity_available"]) == (1, 0)
    session_id = app.requests[0]["headers"]["Livepeer-Session-Id"]
    beat_answer = beat(orch, runner(runner_id="r1", mode="single-shot", runner_url=app.url), secret)
    assert beat_answer.json()["session_ids"] == [session_id]
    busy = requests.get(f"{orch.url}/apps/r1/app/b", timeout=5)
    assert (busy.status_code, busy.text) == (503, "no capacity available for runner\n")
    release.set()
    first.join(10)
    assert results[0].text == "done"
    wait_for(lambda: orch.discovery()[0]["runners"][0]["capacity_used"] == 0, 2)


def test_the_proxy_refuses_what_upstream_refuses(standin: Standin, scripted: Scripted) -> None:
    orch = live(standin, heartbeat_interval="1h", heartbeat_ttl="300ms")
    bootstrap(orch, runner_id="persistent")
    bootstrap(orch, runner_id="starting", mode="single-shot", status="starting")
    bootstrap(
        orch, runner_id="down", mode="single-shot", runner_url=f"http://127.0.0.1:{free_port()}"
    )
    cases = {
        "/apps/nobody/app/x": (404, "runner not found\n"),
        "/apps/starting/app/x": (404, "runner not found\n"),
        "/apps/persistent/app/x": (400, "runner is not single-shot\n"),
    }
    for path, expected in cases.items():
        response = requests.post(orch.url + path, timeout=5)
        assert (response.status_code, response.text) == expected, path
    response = requests.get(f"{orch.url}/apps/down/app/x", timeout=5)
    assert response.status_code == 502 and "connection refused" in response.text
    time.sleep(0.5)  # past the TTL: expired runners are not proxied to
    response = requests.get(f"{orch.url}/apps/down/app/x", timeout=5)
    assert (response.status_code, response.text) == (404, "runner not found\n")


def test_the_app_root_without_a_slash_is_redirected(standin: Standin) -> None:
    orch = live(standin)
    response = requests.get(f"{orch.url}/apps/r1/app?q=1", allow_redirects=False, timeout=5)
    assert (response.status_code, response.headers["Location"]) == (301, "/apps/r1/app/?q=1")


def test_a_proxy_true_single_shot_runner_is_served_under_run(
    standin: Standin, scripted: Scripted
) -> None:
    orch, app = live(standin), scripted()
    bootstrap(orch, runner_id="r1", mode="single-shot", proxy=True, runner_url=app.url)
    response = requests.get(f"{orch.url}/run/r1/health", timeout=5)
    assert response.status_code == 200
    assert (app.requests[0]["path"], app.requests[0]["headers"]["Livepeer-Runner-Route"]) == (
        "/health",
        "r1",
    )


def test_the_stand_in_shows_live_runners_over_http(standin: Standin) -> None:
    orch = live(standin)
    secret = bootstrap(orch, runner_id="r1")["heartbeat_secret"]
    view = requests.get(f"{orch.url}/_standin/live-runners", timeout=5).json()
    assert [r["runner_id"] for r in view["runners"]] == ["r1"]
    assert view["heartbeats"][0]["secret"] == "orch"
    assert secret not in json.dumps(view)
