"""The Ollama stand-in's /api/chat as upstream answers agents' requests: tool calls,
thinking, format, images, and the 400s of a model without a capability."""

from __future__ import annotations

import base64
import json
from typing import Any

import ollama as ollama_client
import pytest
import requests

from tests.agents.support import DEFAULT_MODEL, model_entry
from tests.standins.ollama_api import OllamaStandIn, default_models

TOOLS_MODEL = "llama3.2:3b"  # completion, tools
THINKER = "qwen3:8b"  # completion, tools, thinking
USER = [{"role": "user", "content": "weather in Paris?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


@pytest.fixture
def standin() -> Any:
    server = OllamaStandIn().start()
    server.set_models([*default_models(), model_entry(THINKER), model_entry("llava:7b")])
    yield server
    server.stop()


def chat(standin: OllamaStandIn, **body: Any) -> requests.Response:
    body = {"messages": USER, **body}
    return requests.post(f"{standin.url}/api/chat", json=body, timeout=10)


def lines(response: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.iter_lines() if line]


def test_tool_calls_stream_as_one_chunk_then_done_with_stop(standin: OllamaStandIn) -> None:
    standin.configure(reply="", tool_calls=(CALL,))
    response = chat(standin, model=TOOLS_MODEL, tools=[WEATHER])
    assert response.status_code == 200
    *chunks, done = lines(response)
    [chunk] = chunks
    [call] = chunk["message"]["tool_calls"]
    assert chunk["done"] is False and chunk["message"]["content"] == ""
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert call["id"].startswith("call_") and len(call["id"]) == len("call_") + 8
    assert done["done"] is True and done["done_reason"] == "stop"
    # Without tools in the request the model answers in words.
    standin.configure(reply="It is sunny.", tool_calls=(CALL,))
    *chunks, _ = lines(chat(standin, model=TOOLS_MODEL))
    assert all("tool_calls" not in c["message"] for c in chunks)


def test_the_official_client_reads_tool_calls_and_thinking(standin: OllamaStandIn) -> None:
    standin.configure(reply="", tool_calls=(CALL,), thinking="I should call the tool")
    client = ollama_client.Client(host=standin.url)
    answer = client.chat(model=THINKER, messages=USER, tools=[WEATHER], stream=False)
    assert answer.message.thinking == "I should call the tool"
    [call] = answer.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}


def test_a_thinking_model_thinks_unless_told_not_to(standin: OllamaStandIn) -> None:
    standin.configure(reply="Yes.", thinking="Let me think")
    *chunks, _ = lines(chat(standin, model=THINKER))
    assert "".join(c["message"].get("thinking", "") for c in chunks) == "Let me think"
    assert "".join(c["message"]["content"] for c in chunks) == "Yes."
    *chunks, _ = lines(chat(standin, model=THINKER, think=False))
    assert all("thinking" not in c["message"] for c in chunks)
    # A model without thinking never thinks (and with think: false is fine).
    *chunks, _ = lines(chat(standin, model=TOOLS_MODEL, think=False))
    assert all("thinking" not in c["message"] for c in chunks)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (
            {"model": DEFAULT_MODEL, "tools": [WEATHER]},
            400,
            f"{DEFAULT_MODEL} does not support tools",
        ),
        ({"model": TOOLS_MODEL, "think": True}, 400, f'"{TOOLS_MODEL}" does not support thinking'),
        ({"model": TOOLS_MODEL, "think": "high"}, 400, "does not support thinking"),
        ({"model": TOOLS_MODEL, "format": "yaml"}, 500, "invalid format"),
        (
            {"model": "llava:7b", "messages": [{"role": "user", "content": "x", "images": ["%%"]}]},
            400,
            "illegal base64",
        ),
    ],
)
def test_requests_upstream_refuses_before_generating(
    standin: OllamaStandIn, body: dict, status: int, error: str
) -> None:
    response = chat(standin, **body)
    assert response.status_code == status and error in response.json()["error"]
    assert standin.generations() == []


def test_format_and_images_are_taken_and_recorded(standin: OllamaStandIn) -> None:
    image = base64.b64encode(b"\x89PNG fake").decode()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    standin.configure(reply='{"a": 1}')
    messages = [{"role": "user", "content": "what is it?", "images": [image]}]
    response = chat(standin, model="llava:7b", messages=messages, format=schema, stream=False)
    assert response.status_code == 200 and response.json()["message"]["content"] == '{"a": 1}'
    [generation] = standin.generations()
    assert generation.body["format"] == schema
    assert generation.body["messages"][0]["images"] == [image]
