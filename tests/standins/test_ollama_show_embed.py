"""The Ollama stand-in's `/api/show` capabilities and `/api/embed`, over real HTTP and
through the official `ollama` client, as upstream answers them."""

from __future__ import annotations

import json
import math
import re
import struct

import ollama as ollama_client
import pytest
import requests

from tests.standins.ollama_api import OllamaStandIn, default_models
from tests.standins.ollama_models import (
    NO_EMBEDDINGS,
    embedding,
    embedding_model,
    go_float32,
    token_count,
)

CODELLAMA = "codellama:34b-instruct-q4_k_m"
LLAMA = "llama3.2:3b"
NOMIC = "nomic-embed-text:latest"


@pytest.fixture
def with_embedder(ollama: OllamaStandIn) -> OllamaStandIn:
    """The default catalogue plus nomic-embed-text (768 dimensions)."""
    ollama.set_models([*default_models(), embedding_model()])
    return ollama


def _post(standin: OllamaStandIn, path: str, body: object) -> requests.Response:
    return requests.post(f"{standin.url}{path}", json=body, timeout=10)


def test_show_answers_each_models_capabilities(with_embedder: OllamaStandIn) -> None:
    client = ollama_client.Client(host=with_embedder.url)
    assert client.show(CODELLAMA).capabilities == ["completion"]
    assert client.show(LLAMA).capabilities == ["completion", "tools"]
    nomic = client.show("nomic-embed-text")  # no tag: :latest
    assert nomic.capabilities == ["embedding"]
    assert nomic.modelinfo["nomic-bert.embedding_length"] == 768
    assert nomic.details is not None and nomic.details.family == "nomic-bert"


def test_show_of_a_model_not_on_disk_is_404_like_upstream(ollama: OllamaStandIn) -> None:
    answer = _post(ollama, "/api/show", {"model": "nope:1b"})
    assert answer.status_code == 404 and answer.json() == {"error": "model 'nope:1b' not found"}
    assert _post(ollama, "/api/show", {}).status_code == 400


def test_embed_answers_one_unit_float32_vector_per_input(with_embedder: OllamaStandIn) -> None:
    answer = _post(with_embedder, "/api/embed", {"model": NOMIC, "input": ["a cat", "a dog"]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == NOMIC
    assert body["prompt_eval_count"] == token_count("a cat") + token_count("a dog")
    first, second = body["embeddings"]
    assert len(first) == len(second) == 768 and first != second
    assert first == embedding(NOMIC, "a cat", 768) and second == embedding(NOMIC, "a dog", 768)
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, rel_tol=1e-5)
    # Each value is a float32 written as Go writes one: the shortest decimal for it.
    written = re.findall(r"-?[0-9][0-9.e+-]*", answer.text.split('"embeddings":')[1])[:768]
    assert len(written) == 768
    for text in written:
        single = struct.unpack("<f", struct.pack("<f", float(text)))[0]
        assert go_float32(single) == text
        assert len(text.lstrip("-0.").replace(".", "").split("e")[0]) <= 9
    # The official client reads it.
    client = ollama_client.Client(host=with_embedder.url)
    assert client.embed(model=NOMIC, input="a cat").embeddings == [first]


def test_embed_takes_one_string_and_dimensions_renormalise(with_embedder: OllamaStandIn) -> None:
    body = _post(with_embedder, "/api/embed", {"model": NOMIC, "input": "hi", "dimensions": 8})
    [vector] = body.json()["embeddings"]
    assert vector == embedding(NOMIC, "hi", 768, 8) and len(vector) == 8
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("given", [{"input": 3}, {"input": ["a", 1]}, {"input": {"a": 1}}])
def test_a_bad_input_type_is_400_like_upstream(with_embedder: OllamaStandIn, given: dict) -> None:
    answer = _post(with_embedder, "/api/embed", {"model": NOMIC, **given})
    assert answer.status_code == 400 and answer.json() == {"error": "invalid input type"}


def test_no_input_loads_the_model_and_answers_no_vectors(with_embedder: OllamaStandIn) -> None:
    answer = _post(with_embedder, "/api/embed", {"model": NOMIC, "input": ""})
    assert answer.json() == {"model": NOMIC, "embeddings": []}
    assert NOMIC in with_embedder.loaded()


def test_a_completion_model_cannot_embed_and_an_embedder_cannot_chat(
    with_embedder: OllamaStandIn,
) -> None:
    answer = _post(with_embedder, "/api/embed", {"model": CODELLAMA, "input": "x"})
    assert answer.status_code == 501 and answer.json() == {"error": NO_EMBEDDINGS}
    for path, verb in (("/api/chat", "chat"), ("/api/generate", "generate")):
        answer = _post(
            with_embedder,
            path,
            {"model": NOMIC, "messages": [{"role": "user", "content": "x"}], "prompt": "x"},
        )
        assert answer.status_code == 400
        assert answer.json() == {"error": f'"{NOMIC}" does not support {verb}'}
    # Unloading goes first upstream, so keep_alive 0 still unloads an embedding model.
    _post(with_embedder, "/api/embed", {"model": NOMIC, "input": "x"})
    assert NOMIC in with_embedder.loaded()
    answer = _post(with_embedder, "/api/generate", {"model": NOMIC, "keep_alive": 0})
    assert answer.status_code == 200 and json.loads(answer.text)["done_reason"] == "unload"
    assert NOMIC not in with_embedder.loaded()


def test_unknown_model_and_truncate_false_like_upstream(with_embedder: OllamaStandIn) -> None:
    answer = _post(with_embedder, "/api/embed", {"model": "nope", "input": "x"})
    assert answer.status_code == 404 and answer.json() == {"error": "model 'nope' not found"}
    long_text = "word " * 3000  # over nomic's 2048-token context
    answer = _post(
        with_embedder, "/api/embed", {"model": NOMIC, "input": long_text, "truncate": False}
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "the input length exceeds the context length"}
    answer = _post(with_embedder, "/api/embed", {"model": NOMIC, "input": long_text})
    assert answer.status_code == 200 and answer.json()["prompt_eval_count"] == 2048
