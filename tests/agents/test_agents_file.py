"""The agents file: parsed with tomllib, every bad entry named in one startup error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.support import agents_file
from tests.helpers.processes import ROOT
from worker.agents import DEFAULT_AGENT_NAME, load_agents
from worker.config import ConfigError, load_settings

EXAMPLE = ROOT / "agents.example.toml"


def test_no_file_means_one_agent_on_ollama_model() -> None:
    [agent] = load_agents(load_settings({"OLLAMA_MODEL": "llama3.2:3b"}))
    assert (agent.name, agent.model) == (DEFAULT_AGENT_NAME, "llama3.2:3b")
    assert agent.system == "" and agent.pinned is False
    assert agent.max_tokens > 0 and agent.capacity > 0 and agent.timeout_seconds > 0
    assert (agent.price_per_unit, agent.price_scaling, agent.currency) == (0, 1, "wei")


def test_every_field_is_read(tmp_path: Path) -> None:
    path = agents_file(
        tmp_path,
        {
            "name": "coder",
            "model": "codellama:34b-instruct-q4_k_m",
            "system": "You write Python.",
            "description": "Code helper",
            "temperature": 0.2,
            "max_tokens": 512,
            "num_ctx": 8192,
            "capacity": 3,
            "timeout_seconds": 90,
            "pinned": True,
            "price_per_unit": 1200,
            "price_scaling": 1000,
            "currency": "eth",
        },
        {"name": "small", "model": "llama3.2:3b"},
    )
    coder, small = load_agents(load_settings({"AGENTS_FILE": str(path)}))
    assert coder.model_dump() == {
        "name": "coder",
        "model": "codellama:34b-instruct-q4_k_m",
        "system": "You write Python.",
        "description": "Code helper",
        "temperature": 0.2,
        "max_tokens": 512,
        "num_ctx": 8192,
        "capacity": 3,
        "timeout_seconds": 90.0,
        "pinned": True,
        "price_per_unit": 1200,
        "price_scaling": 1000,
        "currency": "eth",
    }
    assert small.name == "small" and small.summary == "Agent-Net LLM agent small on llama3.2:3b"


def test_a_file_with_no_agent_serves_none(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text("# no agents on this host\n")
    assert load_agents(load_settings({"AGENTS_FILE": str(path)})) == ()


def test_every_bad_entry_is_named_in_one_message(tmp_path: Path) -> None:
    path = agents_file(
        tmp_path,
        {"name": "good", "model": "llama3.2:3b"},
        {"name": "bad name", "model": "llama3.2:3b"},
        {"name": "pricey", "model": "llama3.2:3b", "currency": "USD", "capacity": 0},
        {"name": "good", "model": "llama3.2:3b"},
        {"name": "typo", "model": "llama3.2:3b", "max_token": 5},
        {"name": "metrics", "model": "llama3.2:3b"},
        {"name": "agent-net", "model": "llama3.2:3b"},
        {"name": "nomodel"},
    )
    with pytest.raises(ConfigError) as caught:
        load_agents(load_settings({"AGENTS_FILE": str(path)}))
    message = str(caught.value)
    lines = message.splitlines()
    assert lines[0] == f"invalid agents file {path} (8 problems):"
    body = "\n".join(lines[1:])
    assert "agents[1] ('bad name'): name: not a valid capability name" in body
    assert "agents[2] ('pricey'): capacity:" in body
    assert "agents[2] ('pricey'): currency: 'USD' needs a price feed" in body
    assert "agents[3] ('good'): name 'good' is already agents[0]" in body
    assert "agents[4] ('typo'): max_token: unknown field" in body
    assert "agents[5] ('metrics'): name: 'metrics' is one of the worker's own routes" in body
    assert "agents[6] ('agent-net'): name: 'agent-net' is one of the worker's own routes" in body
    assert "agents[7] ('nomodel'): model: Field required" in body


def test_a_name_taken_by_capability_name_is_refused(tmp_path: Path) -> None:
    path = agents_file(tmp_path, {"name": "agent-net-nyc", "model": "llama3.2:3b"})
    settings = load_settings({"AGENTS_FILE": str(path), "CAPABILITY_NAME": "agent-net-nyc"})
    with pytest.raises(ConfigError, match="already a job route"):
        load_agents(settings)


def test_bad_toml_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[[agents]]\nname = "x\n')
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_agents(load_settings({"AGENTS_FILE": str(broken)}))
    with pytest.raises(ConfigError, match=r"AGENTS_FILE: .* is not a readable file"):
        load_settings({"AGENTS_FILE": str(tmp_path / "missing.toml")})
    top = tmp_path / "top.toml"
    top.write_text('agent = "x"\n')
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_agents(load_settings({"AGENTS_FILE": str(top)}))


def test_the_shipped_example_is_valid_and_names_its_models() -> None:
    agents = load_agents(load_settings({"AGENTS_FILE": str(EXAMPLE)}))
    assert agents[0].name == DEFAULT_AGENT_NAME
    assert len(agents) >= 2


def test_a_bad_agents_file_stops_the_worker_with_exit_code_2(tmp_path: Path) -> None:
    path = agents_file(tmp_path, {"name": "x", "model": ""}, {"name": "y", "capacity": -1})
    env = {**os.environ, "AGENTS_FILE": str(path)}
    for module in ("worker", "worker.registration"):
        extra = {"ORCH_URL": "http://127.0.0.1:9", "ORCH_SECRET": "s"} if "reg" in module else {}
        result = subprocess.run(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "invalid agents file" in result.stderr
        assert "agents[0] ('x'): model:" in result.stderr
        assert "agents[1] ('y'): capacity:" in result.stderr
        assert "Traceback" not in result.stderr
