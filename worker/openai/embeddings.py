"""`POST /v1/embeddings` onto Ollama's `/api/embed`, and back: pure functions, no HTTP.

OpenAI's request (`model`, `input`, `encoding_format`, `dimensions`, `user`) becomes
Ollama's (`model`, `input` as a list of strings, `dimensions`, `options.num_ctx`); Ollama's
answer (`embeddings`, `prompt_eval_count`) becomes OpenAI's list of `embedding` objects
with `usage`. `base64` is the vector's little-endian float32 bytes, as openai-python
decodes it (it asks for base64 unless told otherwise). What Ollama cannot do is refused,
never dropped: token arrays as `input`, an unknown field.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

# OpenAI's limit on inputs per request.
MAX_INPUTS = 2048
ENCODINGS = ("float", "base64")
# Fields read; `user` (an end-user id for OpenAI's abuse monitoring) is accepted and unused.
FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
MAX_DIMENSIONS = 1 << 20

Encoding = Literal["float", "base64"]


class InvalidRequest(ValueError):
    """The request cannot be served: a stable `code`, a message, the field at fault."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class UnexpectedAnswer(ValueError):
    """Ollama's answer is not what `/api/embed` answers (safe text, no data)."""


@dataclass(frozen=True)
class EmbeddingsRequest:
    """A validated embeddings request."""

    inputs: tuple[str, ...]
    encoding_format: Encoding = "float"
    dimensions: int | None = None


def parse_embeddings_request(body: dict[str, Any]) -> EmbeddingsRequest:
    """The embeddings request in `body` (a JSON object); InvalidRequest when it is bad."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(
            "unknown_field",
            f"unknown field {unknown[0]!r}: embeddings take {', '.join(sorted(FIELDS))}",
            unknown[0],
        )
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ENCODINGS:
        raise InvalidRequest(
            "invalid_encoding_format",
            f"encoding_format must be 'float' or 'base64', not {_shown(encoding)}",
            "encoding_format",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise InvalidRequest(
            "invalid_dimensions",
            f"dimensions must be an integer from 1 to {MAX_DIMENSIONS}",
            "dimensions",
        )
    return EmbeddingsRequest(_inputs(body.get("input")), encoding, dimensions)


def _inputs(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: Sequence[object] = (value,)
    elif isinstance(value, list) and value:
        items = value
    elif isinstance(value, list):
        raise InvalidRequest("invalid_input", "input must not be an empty array", "input")
    elif value is None:
        raise InvalidRequest("missing_input", "input is required: a string or strings", "input")
    else:
        raise InvalidRequest(
            "invalid_input", "input must be a string or an array of strings", "input"
        )
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(
            "invalid_input", f"input must hold at most {MAX_INPUTS} strings", "input"
        )
    for index, item in enumerate(items):
        if isinstance(item, int | list) and not isinstance(item, bool):
            raise InvalidRequest(
                "token_input_unsupported",
                "input as token arrays is not supported (Ollama embeds text): send strings"
                " (LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)",
                "input",
            )
        if not isinstance(item, str):
            raise InvalidRequest(
                "invalid_input", f"input[{index}] must be a string, not {_kind(item)}", "input"
            )
        if not item:
            where = "input" if isinstance(value, str) else f"input[{index}]"
            raise InvalidRequest("invalid_input", f"{where} must not be an empty string", "input")
    return tuple(items)  # type: ignore[arg-type]


def ollama_embed_body(
    request: EmbeddingsRequest, model: str, num_ctx: int | None = None
) -> dict[str, Any]:
    """Ollama's `/api/embed` body for `request` on `model` (the agent's context size)."""
    body: dict[str, Any] = {"model": model, "input": list(request.inputs)}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if num_ctx is not None:
        body["options"] = {"num_ctx": num_ctx}
    return body


def embeddings_answer(answer: object, request: EmbeddingsRequest, model: str) -> dict[str, Any]:
    """OpenAI's embeddings list from Ollama's `/api/embed` answer, named `model` (the
    agent); UnexpectedAnswer when Ollama's answer does not fit the request."""
    if not isinstance(answer, dict):
        raise UnexpectedAnswer("Ollama's embed answer is not a JSON object")
    vectors = answer.get("embeddings")
    if not isinstance(vectors, list) or len(vectors) != len(request.inputs):
        raise UnexpectedAnswer(
            f"Ollama answered {len(vectors) if isinstance(vectors, list) else 'no'} embeddings"
            f" for {len(request.inputs)} inputs"
        )
    encode = _base64 if request.encoding_format == "base64" else _checked
    data = [
        {"object": "embedding", "index": index, "embedding": encode(vector)}
        for index, vector in enumerate(vectors)
    ]
    tokens = answer.get("prompt_eval_count")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        tokens = 0  # Go leaves out a zero count
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def float32_bytes(vector: object) -> bytes:
    """The vector as little-endian float32 bytes (what base64 encodes)."""
    values = _numbers(vector, "f")
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def _base64(vector: object) -> str:
    return base64.b64encode(float32_bytes(vector)).decode("ascii")


def _checked(vector: object) -> object:
    """The vector as Ollama sent it, once known to be a list of numbers."""
    _numbers(vector, "d")
    return vector


def _numbers(vector: object, typecode: str) -> array[float]:
    """`vector` as a C array of `typecode` numbers; UnexpectedAnswer if it is not a list
    of numbers (array() checks each item in C: no Python loop over the vector)."""
    if isinstance(vector, list):
        try:
            return array(typecode, vector)
        except TypeError:
            pass
    raise UnexpectedAnswer("Ollama sent an embedding that is not a list of numbers")


def _kind(value: object) -> str:
    return {dict: "an object", type(None): "null", bool: "a boolean", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
