"""worker/openai/chunks.py and completion.py: Ollama's streamed messages as OpenAI chunks
and as one chat.completion, with every SSE line under the BYOC relay's 64 KiB (no HTTP)."""

from __future__ import annotations

import json
import random

import pytest

from worker.openai.chunks import DONE_LINE, ChunkEncoder, split_text
from worker.openai.completion import CompletionBuilder
from worker.openai.limits import MAX_EVENT_LINE_BYTES

GO_SCANNER_LIMIT = 64 * 1024  # bufio.MaxScanTokenSize
USAGE = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def events(data: bytes) -> list[dict]:
    """The JSON of each `data:` event in `data` (asserting the SSE framing)."""
    assert data.endswith(b"\n\n")
    out = []
    for event in data.split(b"\n\n")[:-1]:
        assert event.startswith(b"data: ") and b"\n" not in event
        out.append(json.loads(event[6:]))
    return out


def lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def deltas(data: bytes) -> list[dict]:
    return [e["choices"][0]["delta"] for e in events(data) if e.get("choices")]


def encoder(**kwargs) -> ChunkEncoder:
    return ChunkEncoder("chatcmpl-1", 1700000000, "helper", **kwargs)


def weather_call(call_id: str | None = "call_abc", arguments: object = None) -> dict:
    call: dict = {
        "function": {
            "index": 0,
            "name": "get_weather",
            "arguments": {"city": "Paris"} if arguments is None else arguments,
        }
    }
    if call_id is not None:
        call["id"] = call_id
    return call


def test_role_then_content_pieces_then_finish_with_usage() -> None:
    chunks = encoder()
    data = chunks.role() + chunks.message({"role": "assistant", "content": "Hi"})
    data += chunks.message({"role": "assistant", "content": ' "there"\n'})
    data += chunks.finish("stop", USAGE) + DONE_LINE
    parsed = events(data.removesuffix(DONE_LINE))
    assert all(
        e["id"] == "chatcmpl-1"
        and e["object"] == "chat.completion.chunk"
        and e["created"] == 1700000000
        and e["model"] == "helper"
        for e in parsed
    )
    assert [e["choices"][0]["delta"] for e in parsed] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"content": ' "there"\n'},
        {},
    ]
    assert [e["choices"][0]["finish_reason"] for e in parsed] == [None, None, None, "stop"]
    assert parsed[-1]["usage"] == USAGE


def test_include_usage_adds_a_last_chunk_with_no_choices() -> None:
    data = encoder(include_usage=True).finish("length", USAGE)
    finish, usage = events(data)
    assert finish["choices"][0]["finish_reason"] == "length" and "usage" not in finish
    assert usage["choices"] == [] and usage["usage"] == USAGE


def test_thinking_streams_as_reasoning_never_as_content() -> None:
    chunks = encoder()
    data = chunks.message({"role": "assistant", "content": "", "thinking": "Let me see"})
    data += chunks.message({"role": "assistant", "content": "Yes", "thinking": " hmm"})
    assert deltas(data) == [{"reasoning": "Let me see"}, {"reasoning": " hmm"}, {"content": "Yes"}]


def test_a_tool_call_streams_as_id_type_name_then_arguments_then_finish_tool_calls() -> None:
    chunks = encoder()
    data = chunks.message({"role": "assistant", "content": "", "tool_calls": [weather_call()]})
    assert deltas(data) == [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Paris"}'}}]},
    ]
    # Ollama's own done_reason stays "stop" after a tool call; the OpenAI side relabels it.
    assert events(chunks.finish("stop", USAGE))[0]["choices"][0]["finish_reason"] == "tool_calls"
    assert events(chunks.finish("length", USAGE))[0]["choices"][0]["finish_reason"] == "length"


def test_several_tool_calls_get_increasing_indexes_and_ids_when_ollama_sends_none() -> None:
    chunks = encoder()
    data = chunks.message({"role": "assistant", "content": "", "tool_calls": [weather_call(None)]})
    data += chunks.message(
        {"role": "assistant", "content": "", "tool_calls": [weather_call(None, {"city": "Oslo"})]}
    )
    calls = [d["tool_calls"][0] for d in deltas(data)]
    assert [c["index"] for c in calls] == [0, 0, 1, 1]
    assert calls[0]["id"].startswith("call_") and calls[2]["id"].startswith("call_")
    assert calls[0]["id"] != calls[2]["id"]
    assert chunks.tool_calls == 2


def test_parallel_tool_calls_false_keeps_the_first_call_only() -> None:
    chunks = encoder(single_tool_call=True)
    two = [weather_call("a"), weather_call("b", {"city": "Oslo"})]
    calls = deltas(chunks.message({"role": "assistant", "content": "", "tool_calls": two}))
    assert {c["tool_calls"][0]["index"] for c in calls} == {0}
    assert calls[0]["tool_calls"][0]["id"] == "a"
    builder = CompletionBuilder(single_tool_call=True)
    builder.add({"role": "assistant", "content": "", "tool_calls": two})
    assert [c["id"] for c in builder.message()["tool_calls"]] == ["a"]


def test_a_forced_tool_turns_the_json_answer_into_that_functions_call() -> None:
    chunks = encoder(forced_tool="get_weather")
    data = b"".join(
        chunks.message({"role": "assistant", "content": piece})
        for piece in ('{"city"', ': "Paris"', "}")
    )
    parsed = deltas(data)
    header = parsed[0]["tool_calls"][0]
    assert header["function"] == {"name": "get_weather", "arguments": ""}
    assert header["type"] == "function" and header["id"].startswith("call_")
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in parsed[1:])
    assert json.loads(arguments) == {"city": "Paris"}
    assert all("content" not in d for d in parsed)
    assert events(chunks.finish("stop", USAGE))[0]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    "text",
    [
        "x" * 100_000,  # ASCII
        "é" * 60_000,  # two bytes each
        "\u0001" * 30_000,  # six bytes each once escaped
        "".join(random.Random(7).choice('a"\\\n€😀\u0002') for _ in range(80_000)),
    ],
)
def test_long_content_is_split_into_lines_under_the_limit_and_reassembles(text: str) -> None:
    chunks = encoder()
    data = chunks.message({"role": "assistant", "content": text})
    assert max(len(line) + 1 for line in lines(data)) <= MAX_EVENT_LINE_BYTES < GO_SCANNER_LIMIT
    parsed = deltas(data)
    assert len(parsed) > 1 and "".join(d["content"] for d in parsed) == text


def test_a_100_kb_tool_argument_streams_in_short_lines_and_reassembles() -> None:
    arguments = {"path": "big.txt", "content": "".join(f"line {i}\n" for i in range(12_000))}
    assert len(json.dumps(arguments)) > 100_000
    chunks = encoder()
    data = chunks.message(
        {"role": "assistant", "content": "", "tool_calls": [weather_call("c", arguments)]}
    )
    assert max(len(line) + 1 for line in lines(data)) <= MAX_EVENT_LINE_BYTES
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas(data)[1:]]
    assert len(pieces) >= 4
    assert json.loads("".join(pieces)) == arguments


def test_long_reasoning_is_split_too() -> None:
    data = encoder().message({"role": "assistant", "content": "", "thinking": "why " * 20_000})
    assert max(len(line) + 1 for line in lines(data)) <= MAX_EVENT_LINE_BYTES
    assert "".join(d["reasoning"] for d in deltas(data)) == "why " * 20_000


def test_split_text_fits_each_piece_and_keeps_short_text_whole() -> None:
    assert list(split_text("short", 100)) == ["short"]
    pieces = list(split_text('"' * 1000, 101))  # each quote takes two bytes escaped
    assert "".join(pieces) == '"' * 1000
    assert all(len(json.dumps(p)) <= 101 for p in pieces)


def test_an_error_event_is_in_openais_shape() -> None:
    [event] = events(ChunkEncoder.error("model runner has unexpectedly stopped", "upstream_error"))
    assert event == {
        "error": {
            "message": "model runner has unexpectedly stopped",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
    }


def test_an_agent_named_like_a_json_word_frames_correctly() -> None:
    chunks = ChunkEncoder("chatcmpl-null", 1, "null")
    assert deltas(chunks.message({"role": "assistant", "content": "null"})) == [{"content": "null"}]


# --- the whole answer ---------------------------------------------------------------------------
def test_a_plain_answer_is_content_only() -> None:
    builder = CompletionBuilder()
    for piece in ("Rayleigh", " scattering."):
        builder.add({"role": "assistant", "content": piece})
    document = builder.document("chatcmpl-1", 5, "helper", "stop", USAGE)
    assert document == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 5,
        "model": "helper",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Rayleigh scattering."},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


def test_a_tool_call_answer_has_null_content_and_finish_reason_tool_calls() -> None:
    builder = CompletionBuilder()
    builder.add({"role": "assistant", "content": "", "thinking": "need weather"})
    builder.add({"role": "assistant", "content": "", "tool_calls": [weather_call()]})
    choice = builder.document("c", 1, "helper", "stop", USAGE)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning": "need weather",
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }


def test_a_forced_tool_answer_is_that_functions_call() -> None:
    builder = CompletionBuilder(forced_tool="get_weather")
    builder.add({"role": "assistant", "content": '{"city": "Paris"}'})
    choice = builder.document("c", 1, "helper", "stop", USAGE)["choices"][0]
    [call] = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert choice["message"]["content"] is None and choice["finish_reason"] == "tool_calls"


def test_the_written_out_frames_are_the_generic_chunks() -> None:
    chunks = encoder()

    def generic(delta: dict) -> bytes:
        return chunks.chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})

    assert chunks.role() == generic({"role": "assistant", "content": ""})
    assert chunks.content('a "b"') == generic({"content": 'a "b"'})
    assert chunks.message({"role": "assistant", "content": "é"}) == generic({"content": "é"})
