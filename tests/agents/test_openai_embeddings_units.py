"""The embeddings and models translation as pure functions: OpenAI's request in, Ollama's
out; Ollama's answer in, OpenAI's out (no HTTP)."""

from __future__ import annotations

import base64
import struct
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.agents import Agent
from worker.openai.embeddings import (
    MAX_INPUTS,
    EmbeddingsRequest,
    InvalidRequest,
    UnexpectedAnswer,
    embeddings_answer,
    float32_bytes,
    ollama_embed_body,
    parse_embeddings_request,
)
from worker.openai.models import model_list, model_object
from worker.sampling.readings import ModelEntry, embeds_only


def test_a_string_or_strings_become_ollamas_input_list() -> None:
    one = parse_embeddings_request({"model": "e", "input": "hello"})
    assert one == EmbeddingsRequest(("hello",), "float", None)
    many = parse_embeddings_request(
        {"input": ["a", "b"], "encoding_format": "base64", "dimensions": 256, "user": "u-1"}
    )
    assert many == EmbeddingsRequest(("a", "b"), "base64", 256)
    assert ollama_embed_body(many, "nomic-embed-text", 8192) == {
        "model": "nomic-embed-text",
        "input": ["a", "b"],
        "dimensions": 256,
        "options": {"num_ctx": 8192},
    }
    assert ollama_embed_body(one, "m") == {"model": "m", "input": ["hello"]}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({}, "missing_input", "input"),
        ({"input": None}, "missing_input", "input"),
        ({"input": ""}, "invalid_input", "input"),
        ({"input": []}, "invalid_input", "input"),
        ({"input": ["a", ""]}, "invalid_input", "input"),
        ({"input": ["a", None]}, "invalid_input", "input"),
        ({"input": 7}, "invalid_input", "input"),
        ({"input": [1, 2]}, "token_input_unsupported", "input"),
        ({"input": [[1, 2], [3]]}, "token_input_unsupported", "input"),
        ({"input": ["a"] * (MAX_INPUTS + 1)}, "invalid_input", "input"),
        ({"input": "a", "encoding_format": "FLOAT"}, "invalid_encoding_format", "encoding_format"),
        ({"input": "a", "encoding_format": 1}, "invalid_encoding_format", "encoding_format"),
        ({"input": "a", "dimensions": 0}, "invalid_dimensions", "dimensions"),
        ({"input": "a", "dimensions": True}, "invalid_dimensions", "dimensions"),
        ({"input": "a", "dimensions": 2.5}, "invalid_dimensions", "dimensions"),
        ({"input": "a", "options": {}}, "unknown_field", "options"),
    ],
)
def test_what_cannot_be_served_is_refused_naming_the_field(
    body: dict, code: str, param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_embeddings_request(body)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert refused.value.message


def test_the_messages_name_what_is_wrong() -> None:
    with pytest.raises(InvalidRequest, match=r"input\[1\] must not be an empty string"):
        parse_embeddings_request({"input": ["a", ""]})
    with pytest.raises(InvalidRequest, match=r"input\[0\] must be a string, not an object"):
        parse_embeddings_request({"input": [{"text": "a"}]})
    with pytest.raises(InvalidRequest, match="token arrays is not supported"):
        parse_embeddings_request({"input": [101, 102]})
    with pytest.raises(InvalidRequest, match="unknown field 'truncate'"):
        parse_embeddings_request({"input": "a", "truncate": True})


OLLAMA = {"model": "nomic", "embeddings": [[0.5, -0.25], [0.125, 1.0]], "prompt_eval_count": 9}


def test_ollamas_answer_becomes_openais_list_with_usage() -> None:
    request = EmbeddingsRequest(("a", "b"))
    assert embeddings_answer(OLLAMA, request, "embedder") == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [0.125, 1.0]},
        ],
        "model": "embedder",
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }


def test_base64_is_little_endian_float32_as_openai_python_decodes_it() -> None:
    answer = embeddings_answer(OLLAMA, EmbeddingsRequest(("a", "b"), "base64"), "embedder")
    first = answer["data"][0]["embedding"]
    assert first == base64.b64encode(struct.pack("<2f", 0.5, -0.25)).decode()
    # openai-python without numpy: array("f", base64.b64decode(data)).tolist()
    assert array("f", base64.b64decode(first)).tolist() == [0.5, -0.25]


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=64))
def test_float32_values_survive_base64_exactly(values: list[float]) -> None:
    raw = float32_bytes(values)
    assert list(struct.unpack(f"<{len(values)}f", raw)) == values


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"embeddings": None},
        {"embeddings": [[0.1]]},  # one vector for two inputs
        {"embeddings": [[0.1], "x"]},
        {"embeddings": [[0.1], [None]]},
        {"embeddings": [[0.1], {"a": 1}]},
    ],
)
@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_an_answer_that_does_not_fit_is_unexpected(answer: object, encoding: str) -> None:
    with pytest.raises(UnexpectedAnswer):
        embeddings_answer(answer, EmbeddingsRequest(("a", "b"), encoding), "embedder")  # type: ignore[arg-type]


def test_a_missing_token_count_is_zero_as_go_leaves_it_out() -> None:
    answer = {"model": "m", "embeddings": [[1.0]]}
    assert embeddings_answer(answer, EmbeddingsRequest(("a",)), "e")["usage"] == {
        "prompt_tokens": 0,
        "total_tokens": 0,
    }


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        (("embedding",), True),
        (("embedding", "completion"), False),
        (("completion", "tools"), False),
        ((), False),
        (None, False),
    ],
)
def test_an_embedding_model_embeds_and_cannot_complete(
    capabilities: tuple[str, ...] | None, expected: bool
) -> None:
    assert embeds_only(capabilities) is expected


def test_each_agent_is_a_model_object_with_its_capabilities() -> None:
    agent = Agent(name="embedder", model="nomic-embed-text")
    entry = ModelEntry(
        name="nomic-embed-text:latest",
        modified_at="2026-11-18T09:30:00+00:00",
        capabilities=("embedding",),
    )
    assert model_object(agent, entry) == {
        "id": "embedder",
        "object": "model",
        "created": 1794994200,  # 2026-11-18T09:30:00Z
        "owned_by": "agent-net",
        "capabilities": ["embedding"],
        "ollama_model": "nomic-embed-text",
    }
    not_on_disk = model_object(agent, None)
    assert (not_on_disk["created"], not_on_disk["capabilities"]) == (0, None)
    assert model_list([not_on_disk]) == {"object": "list", "data": [not_on_disk]}
