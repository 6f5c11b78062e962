"""Fixtures for the payments tests: the committed config files and edited copies of them."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ORCHESTRATOR_CONF = REPO / "orchestrator_config" / "orchestrator.conf"
GATEWAY_CONF = REPO / "gateway_config" / "gateway.conf"

EditConfig = Callable[..., Path]


def edit_config_text(text: str, changes: dict[str, str | None]) -> str:
    """Set (or, with ``None``, remove) flags in config text; new flags are appended."""
    for name, value in changes.items():
        pattern = re.compile(rf"^{re.escape(name)}( .*)?$", re.MULTILINE)
        replacement = "" if value is None else f"{name} {value}"
        text, count = pattern.subn(replacement, text)
        if not count and value is not None:
            text += f"\n{name} {value}\n"
    return text


@pytest.fixture
def edited(tmp_path: Path) -> EditConfig:
    """Copy a committed config file with some flags changed; returns the copy's path."""

    def make(source: Path, name: str | None = None, **changes: str | None) -> Path:
        target = tmp_path / (name or source.name)
        target.write_text(edit_config_text(source.read_text(encoding="utf-8"), changes))
        return target

    return make
