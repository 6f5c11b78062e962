"""The residency decision as a pure function: inputs in, actions with reasons out."""

from __future__ import annotations

from worker.residency.decide import Action, Inputs, ModelState, decide, is_hot

GIB = 2**30


def model(name: str, **fields: object) -> ModelState:
    values: dict[str, object] = {"managed": True, "size_bytes": 10 * GIB}
    values.update(fields)
    if values.get("loaded") and "vram_bytes" not in fields:
        values["vram_bytes"] = values["size_bytes"]
    return ModelState(name=name, **values)  # type: ignore[arg-type]


def plan(*models: ModelState, used: int | None = None, budget: int | None = None, **kw: object):
    return decide(
        Inputs(
            models=models,
            hot_requests=3,
            vram_used_bytes=used,
            budget_bytes=budget,
            **kw,  # type: ignore[arg-type]
        )
    )


def kinds(result) -> list[tuple[str, str, str]]:
    return [(a.kind, a.model, a.reason) for a in result.actions]


def test_hot_means_pinned_or_enough_requests() -> None:
    assert is_hot(model("a", requests=3), 3)
    assert not is_hot(model("a", requests=2), 3)
    assert is_hot(model("a", pinned=True), 3)


def test_a_hot_model_that_fits_is_loaded_with_its_reason() -> None:
    result = plan(model("a", requests=5), model("b", requests=1), used=20 * GIB, budget=70 * GIB)
    assert kinds(result) == [("load", "a", "hot")]
    assert "5 requests" in result.actions[0].detail


def test_pinned_models_load_first_then_the_busiest() -> None:
    result = plan(
        model("a", requests=4),
        model("b", requests=9),
        model("c", pinned=True),
        used=0,
        budget=100 * GIB,
    )
    assert kinds(result) == [("load", "c", "pinned"), ("load", "b", "hot"), ("load", "a", "hot")]


def test_nothing_happens_for_loaded_or_loading_hot_models_or_ones_not_on_disk() -> None:
    result = plan(
        model("a", requests=5, loaded=True),
        model("b", requests=5, loading=True),
        model("c", requests=5, on_disk=False),
        used=20 * GIB,
        budget=70 * GIB,
    )
    assert result.actions == ()


def test_over_budget_unloads_the_least_recently_used_cold_model_until_it_fits() -> None:
    result = plan(
        model("recent", loaded=True, last_used=300.0),
        model("oldest", loaded=True, last_used=100.0),
        model("middle", loaded=True, last_used=200.0),
        used=75 * GIB,
        budget=60 * GIB,
    )
    assert kinds(result) == [
        ("unload", "oldest", "over_budget"),
        ("unload", "middle", "over_budget"),
    ]
    assert "budget" in result.actions[0].detail


def test_a_never_used_model_goes_before_any_used_one() -> None:
    result = plan(
        model("used", loaded=True, last_used=100.0),
        model("never", loaded=True),
        used=75 * GIB,
        budget=70 * GIB,
    )
    assert kinds(result) == [("unload", "never", "over_budget")]


def test_busy_pinned_hot_and_loading_models_are_never_unloaded() -> None:
    result = plan(
        model("busy", loaded=True, last_used=1.0, running_jobs=1),
        model("pinned", loaded=True, pinned=True),
        model("hot", loaded=True, requests=3, last_used=2.0),
        model("loading", loaded=True, loading=True),
        model("cold", loaded=True, last_used=50.0),
        used=80 * GIB,
        budget=10 * GIB,
    )
    assert kinds(result) == [("unload", "cold", "over_budget")]


def test_unmanaged_models_are_left_alone() -> None:
    result = plan(
        model("operator", managed=False, loaded=True, last_used=1.0),
        model("served", loaded=True, last_used=2.0),
        model("operator-hot", managed=False, requests=10),
        used=75 * GIB,
        budget=70 * GIB,
    )
    assert kinds(result) == [("unload", "served", "over_budget")]


def test_within_budget_cold_models_stay() -> None:
    result = plan(model("cold", loaded=True), used=50 * GIB, budget=70 * GIB)
    assert result.actions == ()


def test_cold_models_make_room_for_a_hot_one() -> None:
    result = plan(
        model("hot", requests=5, size_bytes=30 * GIB),
        model("cold-old", loaded=True, last_used=1.0),
        model("cold-new", loaded=True, last_used=2.0),
        used=50 * GIB,
        budget=70 * GIB,
    )
    # 20 GiB free, 30 GiB needed: one cold model (10 GiB) leaves, the oldest
    assert kinds(result) == [("unload", "cold-old", "make_room"), ("load", "hot", "hot")]


def test_a_hot_model_that_cannot_fit_moves_nothing_and_says_why() -> None:
    result = plan(
        model("huge", requests=5, size_bytes=100 * GIB),
        model("cold", loaded=True),
        used=50 * GIB,
        budget=70 * GIB,
    )
    assert result.actions == ()
    assert "does not fit" in result.notes["huge"]


def test_loads_in_flight_count_against_the_budget() -> None:
    result = plan(
        model("first", loading=True, size_bytes=30 * GIB),
        model("second", requests=5, size_bytes=30 * GIB),
        used=20 * GIB,
        budget=70 * GIB,
    )
    assert result.actions == ()
    assert "second" in result.notes


def test_without_a_vram_reading_hot_models_load_and_nothing_unloads() -> None:
    result = plan(model("hot", requests=5), model("cold", loaded=True), used=None, budget=None)
    assert kinds(result) == [("load", "hot", "hot")]


def test_a_hot_model_about_to_expire_is_kept_loaded() -> None:
    result = plan(
        model("soon", requests=5, loaded=True, expires_in=10.0),
        model("later", requests=5, loaded=True, expires_in=3600.0),
        model("cold-soon", loaded=True, expires_in=1.0),
        used=10 * GIB,
        budget=70 * GIB,
        refresh_within=25.0,
    )
    assert result.actions == (Action("load", "soon", "keep_hot", "Ollama would unload it in 10 s"),)
