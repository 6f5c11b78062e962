"""The agent routes read the models' capabilities from the published readings: a request
that needs one the model lacks is a 400 before Ollama is called; one it has goes through.
(The app in-process, over readings with capabilities, and the Ollama stand-in.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flask
import pytest

from tests.helpers.openai_errors import openai_error
from tests.standins.ollama_api import OllamaStandIn
from tests.worker.test_lean_routes import call
from worker.agents import Agent
from worker.config import load_settings
from worker.http.app import create_app
from worker.sampling.published import Readings, SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry

GPUS = GpuReport("560", (GpuReading(0, "H100", verdict="ok"),))
CATALOGUE = Catalogue(
    "0.12.6",
    (
        ModelEntry("codellama:34b-instruct-q4_k_m", capabilities=("completion",)),
        ModelEntry("llama3.2:3b", capabilities=("completion", "tools")),
        ModelEntry("nomic-embed-text:latest", capabilities=("embedding",)),
    ),
)
AGENTS = (
    Agent(name="coder", model="codellama:34b-instruct-q4_k_m"),
    Agent(name="helper", model="llama3.2:3b"),
    Agent(name="embedder", model="nomic-embed-text"),
)
TOOL = {"type": "function", "function": {"name": "get_weather"}}
PNG = "iVBORw0KGgo="
IMAGE = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]


class PublishedReadings(Readings):
    """Readings as a sampler published them: the GPU fit, Ollama's catalogue with the
    models' capabilities."""

    def views(self) -> tuple[SourceView[GpuReport], SourceView[Catalogue]]:
        return (
            SourceView("nvml", "ok", None, GPUS, 0.1, 1.0),
            SourceView("ollama", "ok", None, CATALOGUE, 0.1, 1.0),
        )


@pytest.fixture
def app(tmp_path: Path, ollama: OllamaStandIn) -> flask.Flask:
    settings = load_settings({"OLLAMA_HOST": ollama.url})
    readings = PublishedReadings(tmp_path, stale_after=5)
    return create_app(settings, tmp_path, readings=readings, agents=AGENTS)


def post(app: flask.Flask, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    status, _, data = call(app, path, json.dumps(body).encode())
    return status, data


@pytest.mark.parametrize(
    ("agent", "fields", "capability", "param"),
    [
        ("coder", {"tools": [TOOL]}, "tools", "tools"),
        ("helper", {"reasoning_effort": "medium"}, "thinking", "reasoning_effort"),
        ("helper", {"messages": [{"role": "user", "content": IMAGE}]}, "vision", "messages"),
        ("embedder", {}, "completion", None),
    ],
)
def test_a_missing_capability_is_refused_before_ollama_is_called(
    app: flask.Flask,
    ollama: OllamaStandIn,
    agent: str,
    fields: dict[str, Any],
    capability: str,
    param: str | None,
) -> None:
    model = next(a.model for a in AGENTS if a.name == agent)
    # An embedding agent's own route takes an embeddings body (test_openai_models_
    # embeddings_live.py): a chat reaches it through the OpenAI route.
    path = "/v1/chat/completions" if agent == "embedder" else f"/{agent}"
    for stream in (False, True):
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream, **fields}
        status, data = post(app, path, {"model": agent, **body})
        error = openai_error(data)
        assert (status, error["code"], error["param"]) == (400, "model_lacks_capability", param)
        assert f"agent {agent!r} runs model {model!r}" in error["message"]
        assert f"lacks the {capability!r} capability" in error["message"]
    if agent == "embedder":
        assert "embedding agent: use POST /v1/embeddings" in error["message"]
    assert ollama.bodies("/api/chat") == []  # Ollama never saw it


def test_a_request_the_model_can_take_goes_through_to_ollama(
    app: flask.Flask, ollama: OllamaStandIn
) -> None:
    ollama.configure(reply="", tool_calls=({"function": {"name": "get_weather", "arguments": {}}},))
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [TOOL]}
    status, data = post(app, "/helper", body)
    choice = json.loads(data)["choices"][0]
    assert status == 200 and choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": "{}",
    }
    assert ollama.bodies("/api/chat")[-1]["tools"][0]["function"]["name"] == "get_weather"
