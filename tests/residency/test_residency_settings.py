"""Residency settings: defaults, VRAM_BUDGET as a fraction or MiB, keep_alive, pins, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import (
    ConfigError,
    budget_bytes,
    keep_alive_value,
    load_settings,
    parse_vram_budget,
)
from worker.residency.served import served_models

MIB = 2**20


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.residency_enabled is True
    assert settings.residency_interval_seconds == 10
    assert (settings.hot_requests, settings.hot_window_seconds) == (3, 900)
    assert settings.vram_budget == "0.9"
    assert settings.residency_manage_all is False
    assert settings.usage_db_path == Path("data") / "usage.sqlite3"
    assert served_models(settings) == {"codellama:34b-instruct-q4_k_m": False}


def test_usage_db_follows_the_data_dir_unless_set() -> None:
    assert load_settings({"AGENT_NET_DATA_DIR": "/data"}).usage_db_path == Path(
        "/data/usage.sqlite3"
    )
    settings = load_settings({"AGENT_NET_DATA_DIR": "/data", "USAGE_DB": "/v/u.db"})
    assert settings.usage_db_path == Path("/v/u.db")
    assert load_settings({"USAGE_DB": ""}).usage_db_path == Path("data/usage.sqlite3")


@pytest.mark.parametrize(
    ("text", "total", "expected"),
    [
        ("0.9", 100 * MIB, 90 * MIB),
        ("1", 100 * MIB, 100 * MIB),
        ("70000", None, 70000 * MIB),
        ("70000MiB", None, 70000 * MIB),
        ("0.5MiB", None, MIB // 2),
        ("0.9", None, None),  # a fraction of an unknown total is unknown
    ],
)
def test_vram_budget_is_a_fraction_or_mib(text: str, total: int | None, expected: object) -> None:
    assert budget_bytes(parse_vram_budget(text), total) == expected


@pytest.mark.parametrize("text", ["", "0", "-1", "abc", "nan", "inf", "90%"])
def test_bad_vram_budgets_are_refused_by_name(text: str) -> None:
    with pytest.raises(ConfigError, match="VRAM_BUDGET"):
        load_settings({"VRAM_BUDGET": text})


def test_keep_alive_is_seconds_or_a_duration_never_zero() -> None:
    assert keep_alive_value("-1") == -1
    assert keep_alive_value("3600") == 3600
    assert keep_alive_value("24h") == "24h"
    assert keep_alive_value("1h30m") == "1h30m"
    for bad in ("0", "soon", "5 m", ""):
        with pytest.raises(ConfigError, match="RESIDENCY_KEEP_ALIVE"):
            load_settings({"RESIDENCY_KEEP_ALIVE": bad})


def test_pinned_models_are_served_and_pinned() -> None:
    settings = load_settings({"OLLAMA_MODEL": "llama3", "RESIDENCY_PINNED": "a:1, b ,"})
    assert served_models(settings) == {"llama3:latest": False, "a:1": True, "b:latest": True}
    assert served_models(load_settings({"OLLAMA_MODEL": "a:1", "RESIDENCY_PINNED": "a:1"})) == {
        "a:1": True
    }


def test_bad_numbers_are_refused() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"HOT_REQUESTS": "0", "RESIDENCY_INTERVAL_SECONDS": "0"})
    assert "HOT_REQUESTS" in str(error.value)
    assert "RESIDENCY_INTERVAL_SECONDS" in str(error.value)
