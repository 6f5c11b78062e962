"""`/v1/models` and embeddings on the real worker (gunicorn, gevent) over the Ollama and
NVML stand-ins, driven by the official `openai` SDK as a client."""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime
from pathlib import Path

import openai
import pytest
import requests

from tests.agents.support import DEFAULT_MODEL, HELLO, agents_file
from tests.helpers.processes import WorkerProcess, wait_for
from tests.metrics.scrape import scrape, value
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, default_models
from tests.standins.ollama_models import embedding, embedding_model, token_count
from worker.residency.usage import UsageStore

NOMIC = "nomic-embed-text:latest"
TOKEN = "worker-token-openai"
AGENTS = (
    {"name": "coder", "model": DEFAULT_MODEL},
    {"name": "tools", "model": "llama3.2:3b"},
    {"name": "embedder", "model": NOMIC, "capacity": 2},
)


@pytest.fixture
def worker(start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path):
    """A worker with two chat agents and an embedding agent, behind a bearer token."""
    ollama.set_models([*default_models(), embedding_model()])
    env = {
        "OLLAMA_HOST": ollama.url,
        "AGENTS_FILE": str(agents_file(tmp_path, *AGENTS)),
        "WORKER_TOKEN": TOKEN,
    }
    return start_worker(env, nvml=fake_nvml)


def as_float32(vector: list[float]) -> list[float]:
    """Each value as the float32 nearest to it (what base64 carries)."""
    return list(struct.unpack(f"<{len(vector)}f", struct.pack(f"<{len(vector)}f", *vector)))


def gpu_check(worker: WorkerProcess, agent_id: str = "x") -> dict:
    answer = requests.post(
        f"{worker.url}/gpu-check",
        json={"agent_id": agent_id},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200
    return answer.json()


def client(worker: WorkerProcess, api_key: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{worker.url}/v1", api_key=api_key, max_retries=0)


def test_models_list_and_retrieve_show_each_agent_with_its_capabilities(
    worker: WorkerProcess,
) -> None:
    sdk = client(worker)
    listed = sdk.models.list()
    assert [model.id for model in listed.data] == ["coder", "tools", "embedder"]
    assert all(m.object == "model" and m.owned_by == "agent-net" for m in listed.data)
    by_id = {model.id: model.model_dump() for model in listed.data}
    assert by_id["coder"]["capabilities"] == ["completion"]
    assert by_id["tools"]["capabilities"] == ["completion", "tools"]
    assert by_id["embedder"]["capabilities"] == ["embedding"]
    assert by_id["embedder"]["ollama_model"] == NOMIC
    created = datetime.fromisoformat(embedding_model()["modified_at"]).timestamp()
    assert by_id["embedder"]["created"] == int(created)  # the model's modified_at

    one = sdk.models.retrieve("tools")
    assert one.id == "tools" and one.model_dump()["capabilities"] == ["completion", "tools"]
    with pytest.raises(openai.NotFoundError) as refused:
        sdk.models.retrieve("gpt-4o")
    assert refused.value.status_code == 404
    # openai-python shows the status and the error; `body` is the error object.
    assert refused.value.body == {
        "message": "no agent named 'gpt-4o'",
        "type": "invalid_request_error",
        "param": "model",
        "code": "unknown_agent",
    }
    assert "no agent named 'gpt-4o'" in str(refused.value)
    with pytest.raises(openai.AuthenticationError):
        client(worker, api_key="wrong").models.list()


def test_embeddings_in_the_sdks_default_encoding_and_in_float(
    worker: WorkerProcess, ollama: OllamaStandIn
) -> None:
    sdk = client(worker)
    texts = ["the sky is blue", "grass is green"]
    expected = [embedding(NOMIC, text, 768) for text in texts]

    default = sdk.embeddings.create(model="embedder", input=texts)  # base64 on the wire
    assert ollama.bodies("/api/embed")[-1] == {"model": NOMIC, "input": texts}
    assert [item.index for item in default.data] == [0, 1]
    # base64 carries float32: exactly the float32 values Ollama wrote as decimals.
    assert [item.embedding for item in default.data] == [as_float32(v) for v in expected]
    assert default.model == "embedder" and default.object == "list"
    tokens = sum(token_count(text) for text in texts)
    assert default.usage.prompt_tokens == default.usage.total_tokens == tokens

    floats = sdk.embeddings.create(
        model="embedder", input="the sky is blue", encoding_format="float"
    )
    assert [item.embedding for item in floats.data] == expected[:1]  # Ollama's numbers as sent

    cut = sdk.embeddings.create(model="embedder", input="the sky is blue", dimensions=64)
    assert cut.data[0].embedding == as_float32(embedding(NOMIC, "the sky is blue", 768, 64))
    assert ollama.bodies("/api/embed")[-1]["dimensions"] == 64


def test_the_wire_answer_is_openais_shape_and_base64_is_little_endian_float32(
    worker: WorkerProcess,
) -> None:
    answer = requests.post(
        f"{worker.url}/v1/embeddings",
        json={"model": "embedder", "input": "hi", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    assert set(document) == {"object", "data", "model", "usage"}
    [item] = document["data"]
    assert set(item) == {"object", "index", "embedding"} and isinstance(item["embedding"], str)
    raw = base64.b64decode(item["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == as_float32(embedding(NOMIC, "hi", 768))


def test_the_embedding_agents_own_route_takes_the_same_body(
    worker: WorkerProcess, ollama: OllamaStandIn
) -> None:
    """`POST /<embedding agent>` is the route orchestrators call (BYOC): same body, same answer."""
    body = {"input": ["a", "b"], "encoding_format": "float"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    own = requests.post(f"{worker.url}/embedder", json=body, headers=headers, timeout=10)
    via_v1 = requests.post(
        f"{worker.url}/v1/embeddings",
        json={**body, "model": "embedder"},
        headers=headers,
        timeout=10,
    )
    assert own.status_code == via_v1.status_code == 200
    assert own.json() == via_v1.json()
    assert [d["embedding"] for d in own.json()["data"]] == [
        embedding(NOMIC, "a", 768),
        embedding(NOMIC, "b", 768),
    ]
    # A chunked body (no Content-Length) goes through Flask's route: the same answer.
    chunks = iter([json.dumps(body).encode()[:5], json.dumps(body).encode()[5:]])
    chunked = requests.post(f"{worker.url}/embedder", data=chunks, headers=headers, timeout=10)
    assert chunked.request.headers["Transfer-Encoding"] == "chunked"
    assert chunked.status_code == 200 and chunked.json() == own.json()
    # A chat body to the embedding agent: 400 naming the agent, Ollama never asked.
    before = len(ollama.bodies("/api/embed"))
    chat = requests.post(
        f"{worker.url}/embedder", json={"messages": HELLO}, headers=headers, timeout=10
    )
    assert chat.status_code == 400
    error = chat.json()["error"]
    assert error["code"] == "not_a_chat_agent" and "'embedder'" in error["message"]
    assert len(ollama.bodies("/api/embed")) == before


def test_embeddings_from_a_chat_agent_are_refused_before_ollama(
    worker: WorkerProcess, ollama: OllamaStandIn
) -> None:
    sdk = client(worker)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model="coder", input="hello")
    message = refused.value.body["message"]  # type: ignore[index]
    assert "agent 'coder' is a chat agent" in message and DEFAULT_MODEL in message
    assert "embedding" in message and refused.value.code == "not_an_embedding_agent"
    with pytest.raises(openai.NotFoundError, match="no agent named 'nobody'"):
        sdk.embeddings.create(model="nobody", input="hello")
    assert ollama.bodies("/api/embed") == []


BAD_BODIES = [
    ({"input": ""}, "invalid_input", "input"),
    ({"input": []}, "invalid_input", "input"),
    ({"input": ["ok", ""]}, "invalid_input", "input"),
    ({"input": [1, 2, 3]}, "token_input_unsupported", "input"),
    ({"input": [[1, 2]]}, "token_input_unsupported", "input"),
    ({"input": {"text": "x"}}, "invalid_input", "input"),
    ({}, "missing_input", "input"),
    ({"input": "x", "encoding_format": "int8"}, "invalid_encoding_format", "encoding_format"),
    ({"input": "x", "dimensions": 0}, "invalid_dimensions", "dimensions"),
    ({"input": "x", "dimensions": "8"}, "invalid_dimensions", "dimensions"),
    ({"input": "x", "truncate": False}, "unknown_field", "truncate"),
    ({"input": ["x"] * 2049}, "invalid_input", "input"),
]


def test_bad_input_is_a_400_in_openais_shape_never_a_500(
    worker: WorkerProcess, ollama: OllamaStandIn
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for body, code, param in BAD_BODIES:
        answer = requests.post(
            f"{worker.url}/v1/embeddings",
            json={"model": "embedder", **body},
            headers=headers,
            timeout=10,
        )
        assert answer.status_code == 400, body
        error = answer.json()["error"]
        assert (error["code"], error["param"], error["type"]) == (
            code,
            param,
            "invalid_request_error",
        ), body
        assert error["message"]
    for raw in (b"{nope", b"[1]", b"[" * 20_000, b'"x"'):
        answer = requests.post(
            f"{worker.url}/v1/embeddings",
            data=raw,
            headers={**headers, "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    answer = requests.post(
        f"{worker.url}/v1/embeddings", json={"input": "x"}, headers=headers, timeout=10
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "missing_model"
    assert ollama.bodies("/api/embed") == []


def test_embedding_jobs_are_admitted_metered_and_recorded_like_chat(
    worker: WorkerProcess, ollama: OllamaStandIn, fake_nvml: FakeNvml
) -> None:
    sdk = client(worker)
    for _ in range(3):
        sdk.embeddings.create(model="embedder", input="one two three")
    samples = scrape(worker.url)
    completed = value(
        samples, "agent_net_agent_requests_total", agent="embedder", outcome="completed"
    )
    assert completed == 3
    assert value(samples, "agent_net_agent_prompt_tokens_total", agent="embedder") == 3 * 5
    assert value(samples, "agent_net_agent_jobs_running", agent="embedder") == 0
    # Usage (what residency decides by) counts them, on the agent's model.
    store = UsageStore(worker.log_path.with_suffix(".data") / "usage.sqlite3")
    try:
        assert store.requests(NOMIC, 3600) == 3
        assert store.tokens(NOMIC, 3600).prompt == 15
    finally:
        store.close()
    report = gpu_check(worker, "embedder")
    [first, *_] = report["agents"]
    assert first["name"] == "embedder" and first["capabilities"] == ["embedding"]
    assert first["jobs_running"] == 0
    shown = {model["name"]: model for model in report["models"]}
    assert shown[NOMIC]["capabilities"] == ["embedding"]
    wait_for(
        lambda: (
            {m["name"]: m for m in gpu_check(worker)["models"]}[NOMIC]["requests_last_hour"] == 3
        ),
        10,
        what="the residency loop counting the embedding jobs",
    )

    # The GPU unfit: refused 503 before Ollama, with Retry-After.
    calls = len(ollama.bodies("/api/embed"))
    fake_nvml.set_scenario("gpu_lost")
    wait_for(lambda: gpu_check(worker)["status"] == "degraded", 10)
    with pytest.raises(openai.InternalServerError) as refused:
        sdk.embeddings.create(model="embedder", input="x")
    assert refused.value.status_code == 503 and refused.value.code == "gpu_unfit"
    assert refused.value.response.headers["Retry-After"] == "5"
    assert len(ollama.bodies("/api/embed")) == calls
    samples = scrape(worker.url)
    assert (
        value(samples, "agent_net_agent_requests_total", agent="embedder", outcome="refused") == 1
    )
