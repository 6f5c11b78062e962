"""worker/openai/capabilities.py: a model's capabilities from the published catalogue."""

from __future__ import annotations

from worker.openai.capabilities import (
    first_missing,
    lacking_message,
    model_capabilities,
    published_capabilities,
)
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, ModelEntry

CATALOGUE = Catalogue(
    "0.12.6",
    (
        ModelEntry("llama3.2:3b", capabilities=("completion", "tools")),
        ModelEntry("nomic-embed-text:latest", capabilities=("embedding",)),
        ModelEntry("old:1"),  # capabilities not read (yet)
    ),
)


def test_a_models_capabilities_by_name_with_latest_implied() -> None:
    assert model_capabilities(CATALOGUE, "llama3.2:3b") == {"completion", "tools"}
    assert model_capabilities(CATALOGUE, "nomic-embed-text") == {"embedding"}
    assert model_capabilities(CATALOGUE, "old:1") is None
    assert model_capabilities(CATALOGUE, "absent:7b") is None
    assert model_capabilities(None, "llama3.2:3b") is None


def test_published_capabilities_read_the_ollama_source_view() -> None:
    view = SourceView("ollama", "ok", None, CATALOGUE, 0.1, 1.0)
    assert published_capabilities(view, "llama3.2:3b") == {"completion", "tools"}
    down = SourceView("ollama", "unavailable", "down", None, None, None)
    assert published_capabilities(down, "llama3.2:3b") is None


def test_first_missing_and_the_refusal_message() -> None:
    assert first_missing(("completion", "tools"), {"completion", "tools"}) is None
    assert first_missing(("completion", "tools", "vision"), {"completion"}) == "tools"
    assert first_missing(("completion", "vision"), None) is None  # unknown: refuse nothing
    message = lacking_message("helper", "llama3.2:3b", "vision", {"completion", "tools"})
    assert message == (
        "agent 'helper' runs model 'llama3.2:3b', which lacks the 'vision' capability this"
        " request needs (it has: completion, tools)"
    )
