"""The worked examples of docs/agents.md (an agent loop with tools, structured output, an
image), extracted from the page and run as written against the real worker over the
Ollama stand-in, with the agents file the page shows."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agents.support import model_entry
from tests.helpers.processes import WorkerProcess
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, default_models

ROOT = Path(__file__).resolve().parents[2]
SECTION = "### Worked examples with the `openai` SDK"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d7"
    "63f8cfc000000301010018dd8db00000000049454e44ae426082"
)


def section_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the worked examples' section."""
    page = (ROOT / "docs" / "agents.md").read_text(encoding="utf-8")
    start = page.index(SECTION)
    end = page.find("\n## ", start)
    text = page[start : end if end >= 0 else None]
    return re.findall(r"^```(\w+)\n(.*?)^```$", text, flags=re.M | re.S)


def example(marker: str) -> str:
    [code] = [code for kind, code in section_blocks() if kind == "python" and marker in code]
    return code


@pytest.fixture
def worker(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> WorkerProcess:
    [toml] = [code for kind, code in section_blocks() if kind == "toml"]
    agents = tmp_path / "agents.toml"
    agents.write_text(toml, encoding="utf-8")
    ollama.set_models([*default_models(), model_entry("qwen2.5:7b"), model_entry("llava:7b")])
    return start_worker({"OLLAMA_HOST": ollama.url, "AGENTS_FILE": str(agents)}, nvml=fake_nvml)


def run(code: str, worker: WorkerProcess, cwd: Path) -> str:
    """Run `code` as a script with the page's environment; its standard output."""
    env = {**os.environ, "AGENT_NET_URL": worker.url}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def chats(ollama: OllamaStandIn) -> list[dict[str, Any]]:
    return [b for b in ollama.bodies("/api/chat") if b.get("messages")]


def test_the_page_has_the_three_examples_and_the_agents_file() -> None:
    kinds = [kind for kind, _ in section_blocks()]
    assert kinds == ["toml", "python", "python", "python"]


def test_the_agent_loop_with_tools(
    worker: WorkerProcess, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ollama.configure(reply="It is 21 C and sunny in Paris.", tool_calls=(call,))
    assert run(example("tool_calls"), worker, tmp_path) == "It is 21 C and sunny in Paris.\n"
    first, second = chats(ollama)
    assert first["model"] == second["model"] == "qwen2.5:7b"
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-1] == {
        "role": "tool",
        "content": "Paris: 21 C, sunny",
        "tool_call_id": second["messages"][-2]["tool_calls"][0]["id"],
        "tool_name": "get_weather",
    }


def test_structured_output(worker: WorkerProcess, ollama: OllamaStandIn, tmp_path: Path) -> None:
    ollama.configure(reply='{"name": "Paris", "country": "France", "population": 2102650}')
    assert run(example(".parse("), worker, tmp_path) == "Paris France 2102650\n"
    schema = chats(ollama)[-1]["format"]
    assert set(schema["required"]) == {"name", "country", "population"}


def test_an_image(worker: WorkerProcess, ollama: OllamaStandIn, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(PNG)
    ollama.configure(reply="A red square.")
    assert run(example("image_url"), worker, tmp_path) == "A red square.\n"
    [body] = chats(ollama)
    assert body["model"] == "llava:7b"
    assert body["messages"][-1]["images"] == [base64.b64encode(PNG).decode()]
