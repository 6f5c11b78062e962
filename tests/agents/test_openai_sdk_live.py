"""The official `openai` SDK against the real worker (gunicorn) over the Ollama stand-in:
tool calls plain and streamed, an agent loop, structured output, images, usage, and
refusals raised as the SDK's own exceptions with messages that name the problem."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.agents.support import DEFAULT_MODEL, HELLO, WEATHER_TOOL, agents_file, model_entry
from tests.helpers.processes import WorkerProcess
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, default_models

AGENTS = (
    {"name": "helper", "model": "llama3.2:3b", "system": "You help.", "max_tokens": 256},
    {"name": "thinker", "model": "qwen3:8b"},
    {"name": "seer", "model": "llava:7b"},
    {"name": "coder", "model": DEFAULT_MODEL},  # completion only
    {"name": "embedder", "model": "nomic-embed-text:latest"},
)
PARIS = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# A tiny PNG (1x1, red), as a client would send it inline.
PNG_HEX = (
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d7"
    "63f8cfc000000301010018dd8db00000000049454e44ae426082"
)
PNG = base64.b64encode(bytes.fromhex(PNG_HEX)).decode()


@pytest.fixture
def worker(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> WorkerProcess:
    ollama.set_models(
        [
            *default_models(),
            model_entry("qwen3:8b", loaded=False),
            model_entry("llava:7b", loaded=False),
            model_entry("nomic-embed-text:latest", loaded=False, size=274_302_450),
        ]
    )
    env = {
        "OLLAMA_HOST": ollama.url,
        "AGENTS_FILE": str(agents_file(tmp_path, *AGENTS)),
        "LOG_LEVEL": "DEBUG",
    }
    return start_worker(env, nvml=fake_nvml)


@pytest.fixture
def client(worker: WorkerProcess) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=f"{worker.url}/v1", api_key="unused", max_retries=0, timeout=20)
    yield sdk
    sdk.close()


def last_body(ollama: OllamaStandIn) -> dict[str, Any]:
    return chats(ollama)[-1]


def chats(ollama: OllamaStandIn) -> list[dict[str, Any]]:
    """The chat requests Ollama received (not the residency loop's loads, which have no
    messages)."""
    return [b for b in ollama.bodies("/api/chat") if b.get("messages")]


# --- tool calls --------------------------------------------------------------------------------
def test_a_tool_call_plain(client: openai.OpenAI, ollama: OllamaStandIn) -> None:
    ollama.configure(reply="", tool_calls=(PARIS,))
    answer = client.chat.completions.create(model="helper", messages=ASK, tools=[WEATHER_TOOL])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = last_body(ollama)
    assert sent["model"] == "llama3.2:3b"
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][0] == {"role": "system", "content": "You help."}


def test_a_tool_call_streamed_reassembles_in_the_sdk(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    ollama.configure(
        reply="",
        tool_calls=(PARIS, {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}),
    )
    with client.chat.completions.stream(
        model="helper", messages=ASK, tools=[WEATHER_TOOL]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Oslo"},
    ]
    assert len({c.id for c in calls}) == 2


def test_include_usage_ends_with_a_chunk_without_choices(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    ollama.configure(reply="Sunny and mild.")
    chunks = list(
        client.chat.completions.create(
            model="helper",
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-2].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Sunny and mild."


def test_a_two_turn_agent_loop(client: openai.OpenAI, ollama: OllamaStandIn) -> None:
    ollama.configure(reply="", tool_calls=(PARIS,))
    messages: list[Any] = list(ASK)
    first = client.chat.completions.create(model="helper", messages=messages, tools=[WEATHER_TOOL])
    assistant = first.choices[0].message
    messages.append(assistant)  # the SDK's own message object, as agent code appends it
    for call in assistant.tool_calls or []:
        city = json.loads(call.function.arguments)["city"]
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"{city}: 21 C"})
    ollama.configure(reply="It is 21 C in Paris.", tool_calls=())
    second = client.chat.completions.create(model="helper", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is 21 C in Paris."
    assert second.choices[0].finish_reason == "stop"
    call_id = (assistant.tool_calls or [])[0].id
    assert last_body(ollama)["messages"][2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": call_id, "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {
            "role": "tool",
            "content": "Paris: 21 C",
            "tool_call_id": call_id,
            "tool_name": "get_weather",
        },
    ]


def test_a_named_tool_choice_is_honoured_as_that_functions_call(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    ollama.configure(reply='{"city": "Lyon"}')
    answer = client.chat.completions.create(
        model="coder",  # no tools capability needed: the call comes from Ollama's format
        messages=ASK,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    [call] = answer.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lyon"}
    sent = last_body(ollama)
    assert "tools" not in sent
    assert sent["format"] == WEATHER_TOOL["function"]["parameters"]


# --- structured output, images, thinking -----------------------------------------------------
class Weather(BaseModel):
    city: str
    temperature_c: int


def test_parse_with_a_pydantic_model(client: openai.OpenAI, ollama: OllamaStandIn) -> None:
    ollama.configure(reply='{"city": "Paris", "temperature_c": 21}')
    answer = client.chat.completions.parse(model="helper", messages=ASK, response_format=Weather)
    assert answer.choices[0].message.parsed == Weather(city="Paris", temperature_c=21)
    schema = last_body(ollama)["format"]
    assert schema["type"] == "object" and set(schema["required"]) == {"city", "temperature_c"}
    assert schema["properties"]["temperature_c"]["type"] == "integer"


def test_json_object(client: openai.OpenAI, ollama: OllamaStandIn) -> None:
    ollama.configure(reply='{"ok": true}')
    answer = client.chat.completions.create(
        model="helper", messages=ASK, response_format={"type": "json_object"}
    )
    assert json.loads(answer.choices[0].message.content or "") == {"ok": True}
    assert last_body(ollama)["format"] == "json"


def test_an_image_to_a_vision_agent_and_never_in_a_log_line(
    client: openai.OpenAI, ollama: OllamaStandIn, worker: WorkerProcess
) -> None:
    ollama.configure(reply="A red dot.")
    content: Any = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    answer = client.chat.completions.create(
        model="seer", messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content == "A red dot."
    assert last_body(ollama)["messages"] == [
        {"role": "user", "content": "What is in this image?", "images": [PNG]}
    ]
    # A refused image (an http URL; a broken data URL) names the part, never the data.
    for url in ("https://example.com/secret-cat.png", f"data:image/png;base64,{PNG[:-3]}*"):
        bad = [{"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="seer", messages=[{"role": "user", "content": bad}]
            )
        message = message_of(caught.value)
        assert "messages[0].content[0].image_url.url" in message
        assert "secret-cat" not in caught.value.message and PNG[:40] not in caught.value.message
    logs = worker.logs()
    assert "agent_job agent=seer" in logs  # the log was written, at DEBUG
    assert PNG[:40] not in logs and "secret-cat" not in logs


def test_a_photo_sized_image_fits_the_agents_default_body_limit(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    """A 3 MiB image (4 MiB as base64) goes through with the default settings: the agents'
    routes take AGENT_MAX_BODY_BYTES (16 MiB), not the job routes' 64 KiB."""
    photo = base64.b64encode(bytes.fromhex(PNG_HEX) + os.urandom(3 * 1024 * 1024)).decode()
    ollama.configure(reply="A photo.")
    content: Any = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{photo}"}}]
    answer = client.chat.completions.create(
        model="seer", messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content == "A photo."
    assert last_body(ollama)["messages"][0]["images"] == [photo]


def test_thinking_streams_as_reasoning_never_in_content(
    client: openai.OpenAI, ollama: OllamaStandIn
) -> None:
    ollama.configure(reply="Paris.", thinking="The capital of France is Paris")
    chunks = list(
        client.chat.completions.create(
            model="thinker", messages=HELLO, stream=True, reasoning_effort="low"
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas)
    assert reasoning == "The capital of France is Paris"
    assert "".join(d.content or "" for d in deltas) == "Paris."
    assert last_body(ollama)["think"] == "low"
    whole = client.chat.completions.create(model="thinker", messages=HELLO)
    assert (whole.choices[0].message.model_extra or {})["reasoning"] == (
        "The capital of France is Paris"
    )
    assert whole.choices[0].message.content == "Paris."


# --- refusals ---------------------------------------------------------------------------------
def message_of(error: openai.APIStatusError) -> str:
    """The error's own message (the SDK's `message` shows the whole body's repr)."""
    assert isinstance(error.body, dict)
    message = error.body["message"]
    assert isinstance(message, str) and f"Error code: {error.status_code}" in error.message
    return message


def refusal(client: openai.OpenAI, error: type[openai.APIStatusError], **fields: Any) -> str:
    body = {"model": "helper", "messages": ASK, **fields}
    with pytest.raises(error) as caught:
        client.chat.completions.create(**body)
    return message_of(caught.value)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"n": 2}, "n=2"),
        ({"extra_body": {"temprature": 1}}, "unknown field 'temprature'"),
        ({"logprobs": True}, "log probabilities"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].type 'input_audio'",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": '},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "x"},
                ]
            },
            "messages[1].tool_calls[0].function.arguments: is not valid JSON",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(1000)]},
            "tools holds 1000 tools; at most 128",
        ),
        (
            {
                "tool_choice": "required",
                "tools": [WEATHER_TOOL, {**WEATHER_TOOL, "function": {"name": "b"}}],
            },
            "cannot force a tool call",
        ),
    ],
)
def test_bad_requests_raise_bad_request_error_naming_the_problem(
    client: openai.OpenAI, ollama: OllamaStandIn, fields: dict, named: str
) -> None:
    assert named in refusal(client, openai.BadRequestError, **fields)
    assert chats(ollama) == []  # nothing reached the model


def test_an_unknown_agent_raises_not_found(client: openai.OpenAI) -> None:
    message = refusal(client, openai.NotFoundError, model="nobody")
    assert "no agent named 'nobody'" in message


@pytest.mark.parametrize(
    ("agent", "fields", "named", "streams"),
    [
        ("coder", {"tools": [WEATHER_TOOL]}, "does not support tools", (False, True)),
        ("helper", {"reasoning_effort": "high"}, "does not support thinking", (False, True)),
        # Streamed, only once the capabilities are published (else an error chunk).
        ("embedder", {}, "does not support chat", (False,)),
    ],
)
def test_a_capability_the_model_lacks_is_a_400_naming_agent_model_and_capability(
    client: openai.OpenAI,
    ollama: OllamaStandIn,
    agent: str,
    fields: dict,
    named: str,
    streams: tuple[bool, ...],
) -> None:
    """Until the sampler publishes the models' capabilities the worker relays Ollama's
    own refusal as a 400; once it does, the worker refuses first, in its own words. Both
    name the agent, the model and the capability."""
    model = next(a["model"] for a in AGENTS if a["name"] == agent)
    capability = named.rsplit(" ", 1)[1].replace("chat", "completion")
    for stream in streams:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=agent, messages=ASK, stream=stream, **fields)
        message = message_of(caught.value)
        assert f"'{agent}'" in message and f"'{model}'" in message
        assert named in message or f"lacks the '{capability}' capability" in message
        assert caught.value.code == "model_lacks_capability"
    assert [g for g in ollama.generations() if g.body.get("messages")] == []
