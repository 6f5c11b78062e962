"""Fixtures for the live container tests: a real Docker engine (provisioned when needed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provision_engine import (
    Engine,
    EngineUnavailable,
    ensure_base_image,
    ensure_engine,
    stop_engine,
)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A Docker engine with `python:3.11-slim`; fails (never skips) when none can be had."""
    try:
        engine = ensure_engine()
    except EngineUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        how = ensure_base_image(engine)
    except EngineUnavailable as exc:
        stop_engine(engine)
        pytest.fail(str(exc), pytrace=False)
    print(f"docker engine {engine.env['DOCKER_HOST']}: python:3.11-slim {how}", file=sys.stderr)
    yield engine
    stop_engine(engine)
