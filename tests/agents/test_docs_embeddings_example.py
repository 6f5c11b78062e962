"""docs/agents.md's "Models and embeddings" examples, run as written against the real
worker (agents.example.toml, no token) over the Ollama stand-in: each command's output
is the block the docs show after it."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.processes import ROOT
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, default_models
from tests.standins.ollama_models import embedding_model

DOC = ROOT / "docs" / "agents.md"
SECTION = "## Models and embeddings"
DOC_URL = "http://127.0.0.1:9876"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def examples() -> list[tuple[str, str, str]]:
    """(language, code, shown output) of each example in the section, in order."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    following = section.find("\n## ", len(SECTION))
    section = section if following < 0 else section[:following]
    blocks = BLOCK.findall(section)
    pairs = []
    for (language, code), (shown_language, shown) in itertools.pairwise(blocks):
        if language in ("sh", "python") and shown_language == "":
            pairs.append((language, code, shown))
    return pairs


def test_the_section_has_its_examples() -> None:
    assert [language for language, _, _ in examples()] == ["sh", "sh", "sh", "python"]


def test_the_examples_print_what_the_docs_show(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    llama31 = {**default_models()[1], "name": "llama3.1:8b", "model": "llama3.1:8b"}
    ollama.set_models([*default_models(), llama31, embedding_model()])
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "AGENTS_FILE": str(ROOT / "agents.example.toml")},
        nvml=fake_nvml,
    )
    for language, code, shown in examples():
        code = code.replace(DOC_URL, worker.url)
        command = (
            ["bash", "-o", "pipefail", "-c", code]
            if language == "sh"
            else [sys.executable, "-c", code]
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == shown.strip(), code
