"""Model capabilities from Ollama's /api/show: read once per model version, a failure left
unknown and logged once, never a failure of the catalogue (the Ollama stand-in over HTTP,
and the cache with a scripted show)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from tests.standins.ollama_api import OllamaStandIn, default_models
from tests.standins.ollama_models import embedding_model
from worker.sampling.model_capabilities import CapabilityCache, ShowFailed, parse_capabilities
from worker.sampling.ollama_catalogue import OllamaReader
from worker.sampling.readings import Catalogue, ModelEntry

CODELLAMA, LLAMA, NOMIC = "codellama:34b-instruct-q4_k_m", "llama3.2:3b", "nomic-embed-text:latest"


def _capabilities(catalogue: Catalogue) -> dict[str, tuple[str, ...] | None]:
    return {model.name: model.capabilities for model in catalogue.models}


def _shows(ollama: OllamaStandIn) -> list[str]:
    return [body["model"] for body in ollama.bodies("/api/show")]


def test_the_reader_reads_each_models_capabilities_once(ollama: OllamaStandIn) -> None:
    reader = OllamaReader(ollama.url, timeout=2.0)
    try:
        first = reader.read()
        assert _capabilities(first) == {CODELLAMA: ("completion",), LLAMA: ("completion", "tools")}
        for _ in range(3):
            assert _capabilities(reader.read()) == _capabilities(first)
        assert sorted(_shows(ollama)) == [CODELLAMA, LLAMA]  # once each, not every cycle

        # A newly pulled model is read on the next cycle; the others are not asked again.
        ollama.set_models([*default_models(), embedding_model()])
        assert _capabilities(reader.read())[NOMIC] == ("embedding",)
        assert sorted(_shows(ollama)) == [CODELLAMA, LLAMA, NOMIC]

        # Pulled anew (another digest): read again.
        models = default_models()
        models[1]["digest"] = "c" * 64
        ollama.set_models(models)
        assert _capabilities(reader.read())[LLAMA] == ("completion", "tools")
        assert _shows(ollama).count(LLAMA) == 2
    finally:
        reader.close()


def test_a_failed_show_leaves_that_model_unknown_and_is_logged_once(
    ollama: OllamaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    models = default_models()
    models[1]["show_error"] = "failed to open model file"
    ollama.set_models(models)
    reader = OllamaReader(ollama.url, timeout=2.0)
    try:
        with caplog.at_level(logging.INFO, logger="agent_net.sampler"):
            catalogue = reader.read()
            reader.read()
    finally:
        reader.close()
    # The catalogue is whole: the other model has its capabilities, this one None.
    assert _capabilities(catalogue) == {CODELLAMA: ("completion",), LLAMA: None}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"model_capabilities_unread model={LLAMA} reason='HTTP 500: failed to open model file'"
    ]
    assert _shows(ollama).count(LLAMA) == 1  # not retried every cycle


def test_the_catalogue_round_trips_capabilities_as_tuples(ollama: OllamaStandIn) -> None:
    reader = OllamaReader(ollama.url, timeout=2.0)
    try:
        catalogue = reader.read()
    finally:
        reader.close()
    again = Catalogue.from_json(json.loads(json.dumps(catalogue.as_json())))
    assert again == catalogue
    assert again.models[1].capabilities == ("completion", "tools")


# -- the cache, with a scripted show and clock ---------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def scripted(answers: dict[str, object], clock: Clock, cost: float = 0.0) -> Callable:
    """show(name, timeout): the answer for `name` (an exception is raised), taking `cost`."""
    calls: list[tuple[str, float]] = []

    def show(name: str, timeout: float) -> tuple[str, ...] | None:
        calls.append((name, timeout))
        clock.now += cost
        answer = answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    show.calls = calls  # type: ignore[attr-defined]
    return show


def entries(*names: str) -> list[ModelEntry]:
    return [ModelEntry(name=name, digest=f"sha-{name}") for name in names]


def test_a_failure_is_retried_after_the_retry_time() -> None:
    clock = Clock()
    answers: dict[str, object] = {"a": ShowFailed("HTTP 500: busy")}
    show = scripted(answers, clock)
    cache = CapabilityCache(show, retry_seconds=60, clock=clock)
    assert cache.fill(entries("a"), budget=1)[0].capabilities is None
    clock.now = 59
    assert cache.fill(entries("a"), budget=1)[0].capabilities is None
    assert len(show.calls) == 1  # type: ignore[attr-defined]
    answers["a"] = ("completion", "vision")
    clock.now = 61
    assert cache.fill(entries("a"), budget=1)[0].capabilities == ("completion", "vision")


def test_a_cycle_spends_at_most_its_budget_and_the_rest_come_next_cycle() -> None:
    clock = Clock()
    show = scripted({n: ("completion",) for n in "abcde"}, clock, cost=0.4)
    cache = CapabilityCache(show, clock=clock)
    first = cache.fill(entries(*"abcde"), budget=1.0)
    assert [m.capabilities for m in first] == [("completion",)] * 3 + [None] * 2
    # Each call may wait only for what is left of the budget.
    assert [round(t, 2) for _, t in show.calls] == [1.0, 0.6, 0.2]  # type: ignore[attr-defined]
    second = cache.fill(entries(*"abcde"), budget=1.0)
    assert all(m.capabilities == ("completion",) for m in second)
    assert [n for n, _ in show.calls] == list("abcde")  # type: ignore[attr-defined]


def test_an_ollama_that_does_not_say_gives_none_and_is_not_asked_again() -> None:
    clock = Clock()
    show = scripted({"old": None}, clock)
    cache = CapabilityCache(show, clock=clock)
    for _ in range(3):
        clock.now += 100
        assert cache.fill(entries("old"), budget=1)[0].capabilities is None
    assert len(show.calls) == 1  # type: ignore[attr-defined]


def test_models_that_left_the_disk_are_forgotten() -> None:
    clock = Clock()
    show = scripted({"a": ("embedding",), "b": ("completion",)}, clock)
    cache = CapabilityCache(show, clock=clock)
    cache.fill(entries("a", "b"), budget=1)
    cache.fill(entries("b"), budget=1)
    cache.fill(entries("a", "b"), budget=1)  # `a` pulled again: asked again
    assert [n for n, _ in show.calls] == ["a", "b", "a"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"capabilities": ["completion", "tools"]}, ("completion", "tools")),
        ({"details": {}}, None),
        ({"capabilities": None}, None),
    ],
)
def test_parse_capabilities(body: object, expected: object) -> None:
    assert parse_capabilities(body) == expected


@pytest.mark.parametrize("body", [[], "x", {"capabilities": "tools"}, {"capabilities": [1]}])
def test_parse_capabilities_refuses_what_is_not_ollamas(body: object) -> None:
    with pytest.raises(ShowFailed):
        parse_capabilities(body)
