"""Long tool arguments through the real worker, directly and through the orchestrator
stand-in (go-livepeer's BYOC relay reads lines with a 64 KiB bufio.Scanner), and bad
agent input: always a 4xx JSON answer in OpenAI's shape, never a 5xx."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.agents.support import agents_file, start_registered, stream
from tests.helpers.openai_errors import openai_error
from tests.helpers.processes import http, wait_for
from tests.registration.support import (
    StandinProcess,
    insecure,
    livepeer_header,
    read_lines,
)
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn

GO_SCANNER_LIMIT = 64 * 1024  # a line this long or longer ends go-livepeer's relay
TOOL = {
    "type": "function",
    "function": {
        "name": "write_file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        },
    },
}
BIG = {"path": "notes.txt", "content": "".join(f"line {i}: all is well\n" for i in range(5000))}
ASK = [{"role": "user", "content": "Write my notes to a file"}]


def arguments_of(chunks: list[dict[str, Any]]) -> tuple[str, str]:
    """(the name, the joined arguments) of the one tool call in streamed chunks."""
    calls = [
        call
        for chunk in chunks
        if chunk.get("choices")
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert {call["index"] for call in calls} == {0}
    name = calls[0]["function"]["name"]
    return name, "".join(call["function"].get("arguments") or "" for call in calls)


def test_a_100_kb_tool_argument_streams_in_short_lines_directly(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    assert len(json.dumps(BIG)) > 100_000
    ollama.configure(reply="", tool_calls=({"function": {"name": "write_file", "arguments": BIG}},))
    agents = agents_file(tmp_path, {"name": "scribe", "model": "llama3.2:3b"})
    worker = start_worker({"OLLAMA_HOST": ollama.url, "AGENTS_FILE": str(agents)}, nvml=fake_nvml)
    conn_lines: list[bytes] = []
    result = stream(
        worker.url,
        "/scribe",
        {"messages": ASK, "tools": [TOOL]},
        on_event=lambda data: conn_lines.append(data.encode()),
    )
    assert result.payloads[-1] == "[DONE]" and result.other_lines == []
    assert max(len(b"data: " + line + b"\n") for line in conn_lines) < GO_SCANNER_LIMIT
    chunks = result.chunks()
    name, arguments = arguments_of(chunks)
    assert name == "write_file" and json.loads(arguments) == BIG
    assert len([c for c in chunks if c.get("choices")]) > 4  # split across chunks
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_100_kb_tool_argument_crosses_the_byoc_relay_whole(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    ollama.configure(reply="", tool_calls=({"function": {"name": "write_file", "arguments": BIG}},))
    orch = StandinProcess(tmp_path).start()
    try:
        scribe = {"name": "scribe", "model": "llama3.2:3b"}
        start_registered(start_worker, fake_nvml, ollama, orch, tmp_path, scribe)
        wait_for(lambda: "scribe" in orch.capabilities(), 15, what="the agent's registration")
        response, lines = read_lines(
            f"{orch.url}/process/request/scribe",
            body=json.dumps({"messages": ASK, "tools": [TOOL], "stream": True}).encode(),
            headers={
                "Livepeer": livepeer_header("scribe", timeout_seconds=30),
                "Content-Type": "application/json",
            },
            until=b"[DONE]",
            timeout=30,
        )
        assert response.status == 200
        data = [line.strip()[6:] for _, line in lines if line.startswith(b"data: ")]
        assert data[-2:] == [b'{"balance": 0.000}', b"[DONE]"]
        name, arguments = arguments_of([json.loads(d) for d in data[:-2]])
        assert name == "write_file" and json.loads(arguments) == BIG
        [job] = insecure("GET", f"{orch.url}/_standin/jobs").json()
        assert job["scanner_error"] is None and job["done_seen"] is True
        assert max(len(line["line"].encode()) for line in job["lines"]) < GO_SCANNER_LIMIT
    finally:
        orch.stop()


# --- bad input: 4xx JSON, never 5xx ---------------------------------------------------------------
def nested_schema(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"x": node}}
    return node


def image_message(data: str) -> list[dict[str, Any]]:
    url = f"data:image/png;base64,{data}"
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


# Stands for a response_format nesting 1,200 objects, which the request's body holds.
DEEPER_THAN_THE_PARSER = {"deep": True}


def encoded(body: dict[str, Any]) -> bytes:
    """`body` as JSON; DEEPER_THAN_THE_PARSER written out by hand."""
    text = json.dumps(body)
    deep = (
        '{"type": "json_schema", "json_schema": {"name": "x", "schema": '
        + '{"type": "object", "properties": {"x": ' * 600
        + '{"type": "string"}'
        + "}}" * 600
        + "}}"
    )
    return text.replace(json.dumps(DEEPER_THAN_THE_PARSER), deep).encode()


BAD_BODIES: list[tuple[str, dict[str, Any], int, str, str]] = [
    (
        "malformed arguments JSON",
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
                            "function": {"name": "write_file", "arguments": "{'path': 1}"},
                        }
                    ],
                },
            ]
        },
        400,
        "invalid_messages",
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "an unknown part type",
        {"messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {}}]}]},
        400,
        "unsupported_content_part",
        "'video_url'",
    ),
    (
        "1,000 tools",
        {
            "messages": ASK,
            "tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(1000)],
        },
        400,
        "invalid_tools",
        "at most 128",
    ),
    (
        "a deeply nested schema",
        {
            "messages": ASK,
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": nested_schema(200)}}
            ],
        },
        400,
        "invalid_tools",
        "nested deeper than 32",
    ),
    (
        "a schema nested past the JSON parser",  # written by hand: json.dumps cannot
        {"messages": ASK, "response_format": DEEPER_THAN_THE_PARSER},
        400,
        "invalid_json",
        "JSON object",
    ),
    (
        "an image too large for the body",  # AGENT_MAX_BODY_BYTES is 64 KiB here
        {"messages": image_message("A" * 80_000)},
        413,
        "body_too_large",
        "65536 bytes",
    ),
    ("n of 3", {"messages": ASK, "n": 3}, 400, "unsupported_field", "n=3"),
]


@pytest.mark.parametrize(("case", "body", "status", "code", "named"), BAD_BODIES)
def test_bad_input_is_a_4xx_json_error_naming_it(
    start_worker,
    fake_nvml: FakeNvml,
    ollama: OllamaStandIn,
    case: str,
    body: dict[str, Any],
    status: int,
    code: str,
    named: str,
) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "AGENT_MAX_BODY_BYTES": "65536"}, nvml=fake_nvml
    )
    for path in ("/agent-net-llm", "/v1/chat/completions"):
        for streamed in (False, True):
            payload = {**body, "model": "agent-net-llm", "stream": streamed}
            got, headers, raw = http(
                "POST",
                worker.url + path,
                encoded(payload),
                {"Content-Type": "application/json"},
            )
            assert (got, headers["Content-Type"]) == (status, "application/json"), (case, raw)
            error = openai_error(raw)
            assert error["code"] == code and named in error["message"], (case, error)
    assert [g for g in ollama.generations() if g.body.get("messages")] == []
    assert "Traceback" not in worker.logs() and "request_failed" not in worker.logs()


def test_an_oversized_image_under_the_default_body_limit_is_refused_by_its_size(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)  # agents: 16 MiB
    image = base64.b64encode(b"\x89PNG" + bytes(9 * 1024 * 1024)).decode()
    got, _, raw = http(
        "POST",
        f"{worker.url}/agent-net-llm",
        json.dumps({"messages": image_message(image)}).encode(),
        {"Content-Type": "application/json"},
        timeout=30,
    )
    error = openai_error(raw)
    assert (got, error["code"]) == (400, "image_too_large")
    assert error["param"] == "messages[0].content[0].image_url.url"
    assert image[:64] not in worker.logs() and image[:64] not in raw.decode()
