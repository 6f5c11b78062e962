"""What a model can do, as the sampler published it (Ollama's `/api/show` capabilities).

`model_capabilities` is the one lookup: the agent routes ask it before calling Ollama, and
so can any other route (models, embeddings). None means not known (not read yet, or an
Ollama too old to say): then nothing is refused here and Ollama's own answer decides.
"""

from __future__ import annotations

from collections.abc import Collection

from worker.sampling.admission import catalogue_entry
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue

COMPLETION, TOOLS, VISION, THINKING, EMBEDDING = (
    "completion",
    "tools",
    "vision",
    "thinking",
    "embedding",
)


def model_capabilities(catalogue: Catalogue | None, model: str) -> frozenset[str] | None:
    """`model`'s capabilities in `catalogue` (a name without a tag means `:latest`); None
    when the model is not there or its capabilities are not known."""
    entry = catalogue_entry(catalogue, model)
    if entry is None or entry.capabilities is None:
        return None
    return frozenset(entry.capabilities)


def published_capabilities(ollama: SourceView[Catalogue], model: str) -> frozenset[str] | None:
    """`model_capabilities` from the Ollama source as a request sees it (`views()[1]`)."""
    return model_capabilities(ollama.data, model)


def first_missing(needs: Collection[str], capabilities: Collection[str] | None) -> str | None:
    """The first capability of `needs` that `capabilities` lacks; None if none is missing
    or the capabilities are unknown."""
    if capabilities is None:
        return None
    return next((need for need in needs if need not in capabilities), None)


def lacking_message(agent: str, model: str, capability: str, capabilities: Collection[str]) -> str:
    """Why a request is refused: the agent, its model and the capability it lacks."""
    has = ", ".join(sorted(capabilities)) or "none"
    message = (
        f"agent {agent!r} runs model {model!r}, which lacks the {capability!r} capability"
        f" this request needs (it has: {has})"
    )
    if capability == COMPLETION and EMBEDDING in capabilities:
        message += "; it is an embedding agent: use POST /v1/embeddings"
    return message
