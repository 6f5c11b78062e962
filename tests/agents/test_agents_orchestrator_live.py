"""Agents through a go-livepeer-like orchestrator: registered, priced, streamed, removed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.support import (
    DEFAULT_MODEL,
    HELLO,
    ORCHESTRATED_TOKEN,
    start_registered,
)
from tests.helpers.processes import http, wait_for
from tests.registration.support import StandinProcess, livepeer_header, read_lines
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, default_models
from tests.standins.ollama_models import embedding, embedding_model

TOKEN = ORCHESTRATED_TOKEN


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[StandinProcess]:
    standin = StandinProcess(tmp_path).start()
    yield standin
    standin.stop()


def test_every_agent_is_its_own_priced_capability_and_is_removed_on_stop(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, orch: StandinProcess, tmp_path: Path
) -> None:
    worker = start_registered(
        start_worker,
        fake_nvml,
        ollama,
        orch,
        tmp_path,
        {
            "name": "coder",
            "model": DEFAULT_MODEL,
            "capacity": 3,
            "price_per_unit": 1200,
            "price_scaling": 1000,
            "currency": "wei",
            "description": "Writes code",
        },
        {"name": "small", "model": "llama3.2:3b"},
    )
    caps = wait_for(
        lambda: (lambda c: c if {"agent-net", "coder", "small"} <= set(c) else None)(
            orch.capabilities()
        ),
        15,
        what="all three capabilities",
    )
    coder = caps["coder"]
    assert (coder["capacity"], coder["price_per_unit"], coder["price_scaling"]) == (3, 1200, 1000)
    assert coder["description"] == "Writes code" and coder["url"] == worker.url
    assert coder["has_token"] is True
    assert caps["small"]["capacity"] == 4 and caps["small"]["price_per_unit"] == 0
    _, _, body = http("GET", f"{worker.url}/readyz")
    states = json.loads(body)["registration"]
    assert [(s["orchestrator"], s["capability"]) for s in states] == [
        (orch.url, "agent-net"),
        (orch.url, "coder"),
        (orch.url, "small"),
    ]
    assert worker.stop() == 0
    assert orch.capabilities() == {}
    assert orch.counts()["unregister"] == 3


def test_a_streamed_job_through_the_orchestrator(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, orch: StandinProcess, tmp_path: Path
) -> None:
    ollama.configure(reply="Blue light scatters most.", token_interval=0.1)
    start_registered(
        start_worker, fake_nvml, ollama, orch, tmp_path, {"name": "coder", "model": DEFAULT_MODEL}
    )
    wait_for(lambda: "coder" in orch.capabilities(), 15, what="the agent's registration")
    response, lines = read_lines(
        f"{orch.url}/process/request/coder",
        body=json.dumps({"messages": HELLO, "stream": True}).encode(),
        headers={
            "Livepeer": livepeer_header("coder", timeout_seconds=30),
            "Content-Type": "application/json",
        },
        until=b"[DONE]",
        timeout=30,
    )
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    data = [line.strip()[6:] for _, line in lines if line.startswith(b"data: ")]
    assert data[-1] == b"[DONE]"
    assert data[-2] == b'{"balance": 0.000}'  # go-livepeer's line before [DONE]
    chunks = [json.loads(d) for d in data[:-2]]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert "".join(p for p in pieces if p) == "Blue light scatters most."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    # The pieces were relayed as they came: the first one reached the client long before
    # the last one was even generated (paced at 0.1 s per piece).
    gen = ollama.generations()[-1]
    first_piece_at = next(t for t, line in lines if b'"content":"Blue"' in line)
    assert gen.last_token_at is not None and first_piece_at < gen.last_token_at


def test_an_embedding_job_through_the_orchestrator(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, orch: StandinProcess, tmp_path: Path
) -> None:
    """BYOC: the gateway's `/process/request/<embedding agent>` reaches the agent's own
    route with OpenAI's embeddings body; the answer comes back whole (JSON, not SSE)."""
    ollama.set_models([*default_models(), embedding_model()])
    start_registered(
        start_worker,
        fake_nvml,
        ollama,
        orch,
        tmp_path,
        {"name": "coder", "model": DEFAULT_MODEL},
        {"name": "embedder", "model": "nomic-embed-text:latest", "price_per_unit": 3},
    )
    wait_for(lambda: "embedder" in orch.capabilities(), 15, what="the agent's registration")
    headers = {
        "Livepeer": livepeer_header("embedder", timeout_seconds=30),
        "Content-Type": "application/json",
    }
    body = {"input": ["red", "blue"], "encoding_format": "float"}
    status, _, raw = http(
        "POST", f"{orch.url}/process/request/embedder", json.dumps(body).encode(), headers
    )
    assert status == 200
    answer = json.loads(raw)
    assert answer["model"] == "embedder" and answer["object"] == "list"
    assert [item["embedding"] for item in answer["data"]] == [
        embedding("nomic-embed-text:latest", text, 768) for text in ("red", "blue")
    ]
    assert ollama.bodies("/api/embed")[-1]["input"] == ["red", "blue"]
    # A bad body is relayed with the worker's status (go-livepeer passes > 399 through).
    headers["Livepeer"] = livepeer_header("embedder", timeout_seconds=30)
    status, _, raw = http(
        "POST", f"{orch.url}/process/request/embedder", b'{"input": [1, 2]}', headers
    )
    assert status == 400 and b"token_input_unsupported" in raw
