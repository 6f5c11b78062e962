"""The worker's streamed Ollama client (worker/http/ollama_stream.py) against the stand-in.

Plain threads here (no gevent): the client is the same code under both worker classes.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.standins.ollama_api import OllamaStandIn
from worker.http.ollama_stream import OllamaChat, UpstreamError, chat_request_bytes

MODEL = "codellama:34b-instruct-q4_k_m"  # loaded in the stand-in from the start


def chat(ollama: OllamaStandIn, on_idle=None) -> tuple[list[str], OllamaChat]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    call = OllamaChat(ollama.url, body, time.monotonic() + 10)
    call.on_idle = on_idle
    call.open()
    pieces = [m["message"]["content"] for m in call if not m.get("done")]
    call.close()
    return pieces, call


def test_the_request_is_what_http_client_would_send() -> None:
    raw = chat_request_bytes("::1", 11434, "/ollama", b'{"a": 1}')
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /ollama/api/chat HTTP/1.1",
        b"Host: [::1]:11434",
        b"Accept-Encoding: identity",
        b"Content-Type: application/json",
        b"Accept: application/x-ndjson",
        b"Content-Length: 8",
    ]
    assert body == b'{"a": 1}'
    assert chat_request_bytes("ollama", None, "", b"").startswith(b"POST /api/chat HTTP/1.1\r\n")
    assert b"/a%20b/api/chat " in chat_request_bytes("h", 1, "/a b", b"")


def test_each_call_sends_that_request_for_its_own_body() -> None:
    """The head is worked out once per Ollama address; each call's bytes are still the
    whole request for its body (its own Content-Length)."""
    for base, host, port, prefix in (
        ("http://[::1]:11434/ollama/", "::1", 11434, "/ollama"),
        ("http://ollama", "ollama", None, ""),
    ):
        for body in ({"a": 1}, {"messages": [{"role": "user", "content": "é" * 300}]}):
            call = OllamaChat(base, body, time.monotonic() + 5)
            payload = json.dumps(body).encode()
            assert call._request_bytes == chat_request_bytes(host, port, prefix, payload)


def test_generations_one_after_another_ride_one_kept_alive_connection(
    ollama: OllamaStandIn,
) -> None:
    ollama.configure(reply="one two three")
    for _ in range(3):
        pieces, _ = chat(ollama)
        assert "".join(pieces).split() == ["one", "two", "three"]
    chats = [r for r in ollama.state.recorded if r.path == "/api/chat"]
    assert len(chats) == 3 and len({r.connection for r in chats}) == 1
    assert chats[0].body["messages"] == [{"role": "user", "content": "hi"}]


def test_a_kept_connection_the_server_closed_is_replaced_once(ollama: OllamaStandIn) -> None:
    ollama.configure(reply="again")
    chat(ollama)
    ollama.restart()  # cuts the idle connection the client kept
    pieces, _ = chat(ollama)
    assert pieces == ["again"]
    chats = [r for r in ollama.state.recorded if r.path == "/api/chat"]
    assert len({r.connection for r in chats}) == 2


def test_on_idle_runs_once_when_a_read_would_first_wait(ollama: OllamaStandIn) -> None:
    """A slow first token: the callback runs while the client waits for it, once."""
    ollama.configure(reply="a b c", first_token_delay=0.3, token_interval=0.05)
    calls: list[float] = []
    started = time.monotonic()
    pieces, _ = chat(ollama, on_idle=lambda: calls.append(time.monotonic() - started))
    assert "".join(pieces).split() == ["a", "b", "c"]
    assert len(calls) == 1 and calls[0] < 0.25  # before the first token, not after


def test_an_error_status_is_an_upstream_error_with_ollamas_text(ollama: OllamaStandIn) -> None:
    body = {"model": "no-such:model", "messages": [{"role": "user", "content": "hi"}]}
    call = OllamaChat(ollama.url, body, time.monotonic() + 10)
    with pytest.raises(UpstreamError) as raised:
        call.open()
    call.close()
    assert raised.value.status == 404 and "not found" in raised.value.message
