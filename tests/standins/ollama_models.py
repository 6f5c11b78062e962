"""What the Ollama stand-in's models can do: `/api/show`'s capabilities, `/api/embed`'s vectors.

Upstream (ollama/ollama `server/images.go` Capabilities): a GGUF model with a
`pooling_type` key is an `embedding` model, any other is a `completion` one; its chat
template adds `tools` (and `thinking`), a vision projector `vision`. `CAPABILITIES` is that
answer for the models the suite uses (a catalogue entry's own `capabilities` wins; any
other model is `completion` alone). `/api/embed` (`server/routes.go` EmbedHandler) answers
unit-length float32 vectors, one per input, encoded as Go's encoding/json writes a float32
(the shortest decimal that reads back as the same float32); here they are a function of
the model and the text, so a test can compute the vectors it expects.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from typing import Any

# --- The capability table (what /api/show answers per model) ---------------------------
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "codellama:34b-instruct-q4_k_m": ("completion",),
    "llama3.2:3b": ("completion", "tools"),
    "llama3.1:8b": ("completion", "tools"),
    "qwen2.5:7b": ("completion", "tools"),
    "qwen3:8b": ("completion", "tools", "thinking"),
    "llava:7b": ("completion", "vision"),
    "llama3.2-vision:11b": ("completion", "vision"),
    "nomic-embed-text:latest": ("embedding",),
    "all-minilm:latest": ("embedding",),
    "mxbai-embed-large:latest": ("embedding",),
}
DEFAULT_CAPABILITIES = ("completion",)
DEFAULT_EMBEDDING_LENGTH = 768
# llama-server started without --embeddings (a completion model), as Ollama relays it.
NO_EMBEDDINGS = "This server does not support embeddings. Start it with `--embeddings`"


def capabilities_of(model: dict[str, Any]) -> tuple[str, ...]:
    """The capabilities `/api/show` answers for a catalogue entry."""
    own = model.get("capabilities")
    if own is not None:
        return tuple(own)
    return CAPABILITIES.get(model["name"], DEFAULT_CAPABILITIES)


def catalogue_entry(
    name: str,
    *,
    size: int,
    family: str,
    parameter_size: str,
    quantization: str,
    modified_at: str,
    loaded: bool,
) -> dict[str, Any]:
    """A catalogue entry (for `OllamaStandIn.set_models`) as `/api/tags` lists it, with
    the stand-in's own `loaded` and `size_vram` (0: the whole size once loaded)."""
    return {
        "name": name,
        "model": name,
        "modified_at": modified_at,
        "size": size,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": parameter_size,
            "quantization_level": quantization,
        },
        "loaded": loaded,
        "size_vram": 0,
    }


def embedding_model(
    name: str = "nomic-embed-text:latest",
    *,
    size: int = 274302450,
    parameter_size: str = "137M",
    family: str = "nomic-bert",
    embedding_length: int = DEFAULT_EMBEDDING_LENGTH,
    loaded: bool = False,
) -> dict[str, Any]:
    """A catalogue entry (for `OllamaStandIn.set_models`) of an embedding model; the
    defaults are nomic-embed-text's (`ollama show nomic-embed-text`)."""
    entry = catalogue_entry(
        name,
        size=size,
        family=family,
        parameter_size=parameter_size,
        quantization="F16",
        modified_at="2026-11-18T09:30:00Z",
        loaded=loaded,
    )
    return {**entry, "embedding_length": embedding_length, "context_length": 2048}


def show_answer(model: dict[str, Any], public: dict[str, Any]) -> dict[str, Any]:
    """Upstream's ShowResponse for a catalogue entry (`public`: the entry as /api/tags
    shows it): details, model_info with the architecture's lengths, capabilities."""
    family = model.get("details", {}).get("family") or "llama"
    info: dict[str, Any] = {
        "general.architecture": family,
        f"{family}.context_length": int(model.get("context_length") or 4096),
    }
    if "embedding" in capabilities_of(model):
        info[f"{family}.embedding_length"] = embedding_length(model)
    return {
        "license": "",
        "modelfile": f"FROM {model['name']}",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": public.get("details", {}),
        "model_info": info,
        "capabilities": list(capabilities_of(model)),
        "modified_at": model.get("modified_at"),
    }


def embedding_length(model: dict[str, Any]) -> int:
    return int(model.get("embedding_length") or DEFAULT_EMBEDDING_LENGTH)


def embed_inputs(value: Any) -> list[str] | None:
    """EmbedHandler's `input`: a string (empty: none), strings, or absent; None when it is
    anything else (upstream: 400 `invalid input type`)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def float32_vector(model: str, text: str, length: int, dimensions: int = 0) -> list[float]:
    """The float32 vector the stand-in embeds `text` as on `model`: unit length, cut to
    `dimensions` when that is shorter (and normalised again), as upstream does."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    vector = _normalised([rng.gauss(0.0, 1.0) for _ in range(length)])
    if 0 < dimensions < len(vector):
        vector = _normalised(vector[:dimensions])
    return vector


def embedding(model: str, text: str, length: int, dimensions: int = 0) -> list[float]:
    """The vector the stand-in answers for `text` on `model`, as a JSON reader gets it."""
    return [float(go_float32(value)) for value in float32_vector(model, text, length, dimensions)]


def token_count(text: str) -> int:
    """The prompt tokens the stand-in counts for one input: its words, plus BOS and EOS."""
    return len(text.split()) + 2


def go_float32(value: float) -> str:
    """`value` as float32, written as Go's encoding/json writes a float32: the shortest
    decimal that reads back as the same float32."""
    single = _float32(value)
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if _float32(float(text)) == single:
            return text
    return repr(single)


def vectors_json(vectors: list[list[float]]) -> str:
    """The `embeddings` array as Ollama's JSON writes it (float32 values)."""
    return "[" + ",".join("[" + ",".join(map(go_float32, v)) + "]" for v in vectors) + "]"


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [_float32(v / norm) for v in vector]
