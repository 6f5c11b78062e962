"""docs/operator-first-hour.md says exactly what runs and how to ask the doctor."""

from __future__ import annotations

import re

from tests.helpers.processes import ROOT

DOC = (ROOT / "docs" / "operator-first-hour.md").read_text()


def compose_services() -> list[str]:
    """The services plain `docker compose up -d` starts (those of a profile excluded)."""
    text = (ROOT / "docker-compose.yml").read_text()
    block = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    services = re.split(r"^  ([a-z][a-z0-9_-]*):$", block, flags=re.MULTILINE)
    pairs = zip(services[1::2], services[2::2], strict=True)
    return [name for name, body in pairs if "\n    profiles:" not in body]


def test_the_doc_lists_every_service_compose_starts_and_no_other() -> None:
    table = DOC.split("## What runs", 1)[1].split("## Prerequisites", 1)[0]
    listed = re.findall(r"^\| `([a-z][a-z0-9_-]*)` ", table, re.MULTILINE)
    assert listed == compose_services() == ["ollama", "worker", "orchestrator"]


def test_the_doc_names_the_prerequisites_and_starts_troubleshooting_with_the_doctor() -> None:
    assert "Compose v2" in DOC and "NVIDIA Container Toolkit" in DOC
    wrong = DOC.split("## When something is wrong", 1)[1]
    first_block = wrong.split("```sh", 1)[1].split("```", 1)[0]
    assert "docker compose exec worker agent-net doctor" in first_block
    assert ".venv/bin/agent-net doctor" in first_block
