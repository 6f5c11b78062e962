"""The Ollama stand-in over real HTTP: chat and generate shapes, pacing, faults, residency."""

from __future__ import annotations

import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import ollama as ollama_client
import pytest
import requests

from tests.standins.ollama_api import RUNNER_STOPPED, OllamaStandIn, parse_keep_alive

CODELLAMA = "codellama:34b-instruct-q4_k_m"  # loaded at start
LLAMA = "llama3.2:3b"  # on disk only
LLAMA_VRAM = 2019393189
USER = [{"role": "user", "content": "why is the sky blue"}]
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def _chat(standin: OllamaStandIn, **body: Any) -> requests.Response:
    body = {"model": CODELLAMA, "messages": USER, **body}
    return requests.post(f"{standin.url}/api/chat", json=body, stream=True, timeout=10)


def _timed_lines(response: requests.Response, sent: float) -> list[tuple[float, dict[str, Any]]]:
    """Each NDJSON line with its arrival time after `sent`."""
    return [(time.monotonic() - sent, json.loads(line)) for line in response.iter_lines() if line]


def _ps(standin: OllamaStandIn) -> dict[str, dict[str, Any]]:
    models = requests.get(f"{standin.url}/api/ps", timeout=5).json()["models"]
    return {m["name"]: m for m in models}


def _wait(condition: Any, timeout: float) -> float:
    """Poll `condition` until true; the seconds it took (fails the test on timeout)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def slow_loader() -> Iterator[OllamaStandIn]:
    """A stand-in whose models take 0.5 s to load, with its loaded-set callbacks kept."""
    changes: list[frozenset[tuple[str, int]]] = []
    server = OllamaStandIn(load_time=0.5, on_loaded_change=changes.append).start()
    server.changes = changes  # type: ignore[attr-defined]
    yield server
    server.stop()


# -- /api/chat shapes ------------------------------------------------------------------


def test_chat_streams_ndjson_chunks_in_upstream_shape(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="Hello there world")
    response = _chat(ollama)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = [body for _, body in _timed_lines(response, time.monotonic())]
    *chunks, final = lines
    assert [c["message"] for c in chunks] == [
        {"role": "assistant", "content": piece} for piece in ("Hello", " there", " world")
    ]
    for chunk in chunks:
        assert set(chunk) == {"model", "created_at", "message", "done"}
        assert chunk["model"] == CODELLAMA and chunk["done"] is False
    assert set(final) == {"model", "created_at", "message", "done", "done_reason", *METRICS}
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == 3
    assert final["prompt_eval_count"] == len(USER[0]["content"].split())
    assert all(isinstance(final[k], int) and final[k] > 0 for k in METRICS)
    assert final["total_duration"] >= final["load_duration"] + final["eval_duration"]


def test_chat_without_stream_answers_one_object(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="Hello there world")
    response = _chat(ollama, stream=False)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["message"] == {"role": "assistant", "content": "Hello there world"}
    assert body["done"] is True and body["done_reason"] == "stop" and body["eval_count"] == 3


def test_the_ollama_client_reads_chat_generate_and_ps() -> None:
    """The PyPI client the worker uses parses every new answer."""
    server = OllamaStandIn().start()
    try:
        server.configure(reply="Hi you")
        client = ollama_client.Client(host=server.url)
        streamed = list(client.chat(model=CODELLAMA, messages=USER, stream=True))
        assert "".join(part.message.content or "" for part in streamed) == "Hi you"
        assert streamed[-1].done and streamed[-1].done_reason == "stop"
        assert client.generate(model=CODELLAMA, prompt="hello").response == "Hi you"
        assert client.generate(model=LLAMA).done_reason == "load"
        running = {m.model: m for m in client.ps().models}
        assert running[LLAMA].size_vram == LLAMA_VRAM
        assert running[LLAMA].context_length == 4096
    finally:
        server.stop()


def test_num_predict_cuts_the_reply_with_done_reason_length(ollama: OllamaStandIn) -> None:
    ollama.configure(tokens=10)
    body = _chat(ollama, stream=False, options={"num_predict": 3, "seed": 1}).json()
    assert body["done_reason"] == "length" and body["eval_count"] == 3
    assert len(body["message"]["content"].split()) == 3


def test_a_stop_sequence_ends_the_reply_before_it(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="one two three four")
    body = _chat(ollama, stream=False, options={"stop": ["three"]}).json()
    assert body["message"]["content"] == "one two "
    assert body["done_reason"] == "stop"


def test_the_same_seed_gives_the_same_reply(ollama: OllamaStandIn) -> None:
    def reply(seed: int) -> str:
        body = _chat(ollama, stream=False, options={"seed": seed}).json()
        return str(body["message"]["content"])

    assert reply(42) == reply(42)
    assert reply(42) != reply(43)


def test_every_body_and_option_is_recorded(ollama: OllamaStandIn) -> None:
    options = {"temperature": 0.2, "top_p": 0.9, "num_ctx": 8192, "seed": 7}
    _chat(ollama, stream=False, options=options, keep_alive="10m").json()
    (body,) = ollama.bodies("/api/chat")
    assert body["options"] == options and body["keep_alive"] == "10m"
    (generation,) = ollama.generations()
    assert generation.options == options and generation.keep_alive == 600.0
    assert generation.outcome == "done" and generation.tokens_sent == 8
    assert _ps(ollama)[CODELLAMA]["context_length"] == 8192  # num_ctx reloads the model


def test_an_unknown_model_is_404_with_upstreams_message(ollama: OllamaStandIn) -> None:
    response = _chat(ollama, model="nope:1b")
    assert response.status_code == 404
    assert response.json() == {"error": "model 'nope:1b' not found"}
    assert ollama.generations() == []


def test_the_fault_modes_apply_to_chat(ollama: OllamaStandIn) -> None:
    ollama.set_mode("error")
    assert _chat(ollama).status_code == 500


# -- pace, failures, disconnects ------------------------------------------------------


def test_chunks_arrive_spread_at_the_set_pace(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="a b c d e f", token_interval=0.2, first_token_delay=0.3)
    sent = time.monotonic()
    lines = _timed_lines(_chat(ollama), sent)
    arrivals = [at for at, body in lines if not body["done"]]
    assert len(arrivals) == 6
    assert 0.3 <= arrivals[0] < 0.8
    assert 0.95 <= arrivals[-1] - arrivals[0] < 1.5  # five gaps of 0.2 s
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.1
    final = lines[-1][1]
    assert 0.95e9 <= final["eval_duration"] < 1.5e9
    assert final["prompt_eval_duration"] >= 0.3e9


def test_fail_after_n_tokens_resets_the_connection(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="a b c d e", fail_after=2)
    seen: list[dict[str, Any]] = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for line in _chat(ollama).iter_lines():
            seen.append(json.loads(line))
    assert [s["message"]["content"] for s in seen] == ["a", " b"]
    (generation,) = ollama.generations()
    assert generation.outcome == "failed" and generation.tokens_sent == 2


def test_fail_after_n_tokens_with_an_error_line_like_upstream(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="a b c d e", fail_after=3, fail_mode="error")
    lines = [json.loads(line) for line in _chat(ollama).iter_lines()]  # ends cleanly
    assert len(lines) == 4 and lines[-1] == {"error": RUNNER_STOPPED}
    client = ollama_client.Client(host=ollama.url)
    with pytest.raises(ollama_client.ResponseError, match="unexpectedly stopped"):
        list(client.chat(model=CODELLAMA, messages=USER, stream=True))


def test_an_error_before_any_token_is_a_500(ollama: OllamaStandIn) -> None:
    ollama.configure(fail_after=0, fail_mode="error", error_message="boom")
    response = _chat(ollama)
    assert response.status_code == 500 and response.json() == {"error": "boom"}


def test_a_client_disconnect_stops_generation_within_a_second(ollama: OllamaStandIn) -> None:
    ollama.configure(tokens=200, token_interval=0.05)
    response = _chat(ollama)
    lines = response.iter_lines()
    for _ in range(3):
        next(lines)
    assert ollama.active_generations == 1
    closing = time.monotonic()
    response.close()
    assert _wait(lambda: ollama.active_generations == 0, 1.0) < 1.0
    (generation,) = ollama.generations()
    assert generation.outcome == "client_gone"
    assert generation.client_gone_at is not None and 0 <= generation.client_gone_at - closing < 1
    assert generation.tokens_sent < 30


def _raw_chat(standin: OllamaStandIn) -> socket.socket:
    """A chat request sent on a bare socket that the test closes itself."""
    body = json.dumps({"model": CODELLAMA, "messages": USER}).encode()
    sock = socket.create_connection(("127.0.0.1", standin.port), timeout=5)
    head = f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)
    return sock


def test_a_hang_before_the_first_token_notices_the_client_leaving(
    ollama: OllamaStandIn,
) -> None:
    ollama.configure(hang_before_first_token=True)
    sock = _raw_chat(ollama)
    _wait(lambda: ollama.active_generations == 1, 2.0)
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)  # nothing, not even headers
    sock.close()
    assert _wait(lambda: ollama.active_generations == 0, 1.0) < 1.0
    assert ollama.generations()[0].outcome == "client_gone"


def test_a_hanging_generation_does_not_block_stop() -> None:
    server = OllamaStandIn().start()
    server.configure(hang_before_first_token=True)
    sock = _raw_chat(server)
    try:
        _wait(lambda: server.active_generations == 1, 2.0)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        _wait(lambda: server.active_generations == 0, 1.0)
        assert server.generations()[0].outcome == "aborted"
    finally:
        sock.close()


# -- residency -------------------------------------------------------------------------


def test_a_model_not_loaded_waits_the_load_time(slow_loader: OllamaStandIn) -> None:
    slow_loader.configure(reply="hi")
    assert LLAMA not in _ps(slow_loader)
    sent = time.monotonic()
    lines = _timed_lines(_chat(slow_loader, model=LLAMA, keep_alive=60), sent)
    assert lines[0][0] >= 0.5
    assert lines[-1][1]["load_duration"] >= 0.5e9
    assert _ps(slow_loader)[LLAMA]["size_vram"] == LLAMA_VRAM
    (load,) = slow_loader.residency()
    assert (load.kind, load.model, load.keep_alive) == ("load", LLAMA, 60.0)
    assert 0.5 <= load.at - sent < 1.0
    again = _chat(slow_loader, model=LLAMA, stream=False).json()
    assert again["load_duration"] < 0.1e9  # loaded already
    assert slow_loader.loaded_vram_bytes() == LLAMA_VRAM + 20219745376
    assert slow_loader.changes[-1] == {(CODELLAMA, 20219745376), (LLAMA, LLAMA_VRAM)}


def test_generate_with_no_prompt_loads_and_keep_alive_0_unloads(
    slow_loader: OllamaStandIn,
) -> None:
    url = f"{slow_loader.url}/api/generate"
    sent = time.monotonic()
    loaded = requests.post(url, json={"model": LLAMA}, timeout=5).json()
    assert time.monotonic() - sent >= 0.5
    assert set(loaded) == {"model", "created_at", "response", "done", "done_reason"}
    assert (loaded["response"], loaded["done"], loaded["done_reason"]) == ("", True, "load")
    assert LLAMA in _ps(slow_loader)
    unloaded = requests.post(url, json={"model": LLAMA, "keep_alive": 0}, timeout=5).json()
    assert (unloaded["response"], unloaded["done_reason"]) == ("", "unload")
    assert LLAMA not in _ps(slow_loader)
    events = [(e.kind, e.model, e.keep_alive, e.reason) for e in slow_loader.residency()]
    assert events == [("load", LLAMA, None, "request"), ("unload", LLAMA, 0.0, "keep_alive")]
    assert slow_loader.changes == [
        {(CODELLAMA, 20219745376)},
        {(CODELLAMA, 20219745376), (LLAMA, LLAMA_VRAM)},
        {(CODELLAMA, 20219745376)},
    ]


def test_chat_with_no_messages_loads_and_unloads(ollama: OllamaStandIn) -> None:
    url = f"{ollama.url}/api/chat"
    body = {"model": LLAMA, "messages": [], "keep_alive": -1}
    loaded = requests.post(url, json=body, timeout=5)
    loaded = loaded.json()
    assert loaded["message"] == {"role": "assistant", "content": ""}
    assert (loaded["done"], loaded["done_reason"]) == (True, "load")
    assert _ps(ollama)[LLAMA]["expires_at"] > "2200"  # kept forever, like Go's saturated time
    unloaded = requests.post(url, json={**body, "keep_alive": "0"}, timeout=5)
    assert unloaded.json()["done_reason"] == "unload"
    assert LLAMA not in _ps(ollama)
    assert [e.keep_alive for e in ollama.residency()] == [math.inf, 0.0]


def test_ps_expires_at_is_set_when_the_model_goes_idle(ollama: OllamaStandIn) -> None:
    first = _ps(ollama)
    time.sleep(0.01)
    assert _ps(ollama) == first  # idle: the same expires_at on every call, as upstream
    _chat(ollama, model=LLAMA, keep_alive=60, stream=False).json()
    assert ollama.wait_idle(1.0)
    expires = datetime.fromisoformat(_ps(ollama)[LLAMA]["expires_at"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - 60) < 2
    names = [m["name"] for m in requests.get(f"{ollama.url}/api/ps", timeout=5).json()["models"]]
    assert names == [CODELLAMA, LLAMA]  # longest time left first


def test_keep_alive_0_on_a_chat_unloads_after_the_reply(ollama: OllamaStandIn) -> None:
    assert _chat(ollama, keep_alive=0, stream=False).json()["done"] is True
    assert ollama.wait_idle(1.0)  # it unloads as the request ends, just after the reply
    assert CODELLAMA not in _ps(ollama)
    (unload,) = ollama.residency()
    assert (unload.kind, unload.reason) == ("unload", "keep_alive")


def test_an_idle_model_expires_after_its_keep_alive(slow_loader: OllamaStandIn) -> None:
    slow_loader.configure(load_time=0.0)
    _chat(slow_loader, model=LLAMA, keep_alive="300ms", stream=False).json()
    assert slow_loader.wait_idle(1.0)
    assert LLAMA in _ps(slow_loader)
    # The reaper unloads it on time, so the callback (NVML's memory) follows unasked.
    _wait(lambda: slow_loader.changes[-1] == {(CODELLAMA, 20219745376)}, 2.0)
    unload = slow_loader.residency()[-1]
    assert (unload.kind, unload.model, unload.reason) == ("unload", LLAMA, "expired")
    (generation,) = slow_loader.generations()
    assert generation.ended_at is not None
    assert 0.3 <= unload.at - generation.ended_at < 0.8  # 300 ms after its last use
    assert LLAMA not in _ps(slow_loader)


def test_restart_forgets_the_loaded_set_and_refuses_connections_meanwhile(
    ollama: OllamaStandIn,
) -> None:
    assert CODELLAMA in _ps(ollama)
    ollama.configure(tokens=100, token_interval=0.05)
    lines = _chat(ollama).iter_lines()
    next(lines)
    ollama.restart(down_for=0.5, wait=False)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        list(lines)  # the stream in flight is cut
    assert not ollama.is_up
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{ollama.url}/api/ps", timeout=2)
    _wait(lambda: ollama.is_up, 2.0)
    assert _ps(ollama) == {}
    assert ollama.loaded_vram_bytes() == 0
    assert [(e.kind, e.reason) for e in ollama.residency()] == [("unload", "restart")]
    _wait(lambda: ollama.active_generations == 0, 1.0)
    assert ollama.generations()[0].outcome == "aborted"


def test_concurrent_requests_share_one_load(slow_loader: OllamaStandIn) -> None:
    results: list[int] = []

    def chat() -> None:
        results.append(_chat(slow_loader, model=LLAMA, stream=False).json()["eval_count"])

    threads = [threading.Thread(target=chat) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == [8, 8, 8]
    assert [e.kind for e in slow_loader.residency()] == ["load"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (10, 10.0),
        (-1, math.inf),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("0", 0.0),
        ("-1m", math.inf),
        ("250ms", 0.25),
        (0, 0.0),
    ],
)
def test_keep_alive_reads_like_upstreams_duration(value: Any, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize(("value", "message"), [("300", "missing unit"), ("5x", "invalid")])
def test_a_bad_keep_alive_is_a_400(ollama: OllamaStandIn, value: str, message: str) -> None:
    response = _chat(ollama, keep_alive=value)
    assert response.status_code == 400 and message in response.json()["error"]
