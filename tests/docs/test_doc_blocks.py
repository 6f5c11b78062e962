"""Every block of the README and docs/ is run or said not to be, for a reason.

Static checks (no process started): each block has a plan (tests/docs/blocks.py), a
named setup exists and the prose above the block says what it needs, a compose-stack
command names a real service; and the parser and the output matcher do what
docs/testing.md says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.blocks import Block, documents, parse, plan, script_commands, transcript_commands
from tests.docs.matching import agrees, appears
from tests.docs.session import SETUPS, compose_services, named_service

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_block_is_run_or_said_not_to_be(document: Path) -> None:
    plans = plan(parse(document))
    unknown = [f"{p.block.where}: {p.reason}" for p in plans if p.action == "unknown"]
    assert unknown == []
    for p in plans:
        assert p.action in ("run", "transcript", "server", "output", "read", "not run")
        if p.action in ("read", "not run"):
            assert p.reason, p.block.where  # a reason, shown in the plan
        else:
            assert p.commands or p.action == "output", p.block.where


@pytest.mark.parametrize("document", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_block_with_another_setup_says_so_right_above_it(document: Path) -> None:
    for p in plan(parse(document)):
        if p.action in ("read", "not run", "output") or p.setup == "default":
            continue
        assert p.setup in SETUPS, f"{p.block.where}: unknown setup {p.setup!r}"
        says = SETUPS[p.setup].says
        assert re.search(says, p.block.prose), (
            f"{p.block.where}: setup {p.setup!r} needs the paragraph above the block to say"
            f" so (/{says}/): {p.block.prose!r}"
        )


def test_compose_commands_name_the_services_compose_defines() -> None:
    services = compose_services()
    named = [
        (p.block.where, command.text, named_service(command.text))
        for document in documents()
        for p in plan(parse(document))
        for command in p.compose_only
    ]
    assert named, "the documents show compose commands"
    assert [
        (where, text) for where, text, service in named if service not in (None, *services)
    ] == []
    assert {service for _, _, service in named} >= {"worker", "ollama"}


def test_testing_md_lists_every_setup() -> None:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([a-z-]+)` \|", text, re.MULTILINE)
    assert listed == list(SETUPS)


# --- the parser ----------------------------------------------------------------------------


def block_plan(tmp_path: Path, markdown: str) -> list[tuple[str, str, str]]:
    page = tmp_path / "page.md"
    page.write_text(markdown, encoding="utf-8")
    return [(p.action, p.setup, p.reason) for p in plan(parse(page))]


def test_the_parser_reads_directives_setups_and_reasons(tmp_path: Path) -> None:
    markdown = (
        "Plain:\n\n```sh\ncurl -s localhost:9876/healthz\n```\n\n"
        "With the orchestrator stand-in:\n\n<!-- doc-test: setup orchestrator -->\n"
        "```sh\ncurl -sk https://127.0.0.1:8935/discovery\n```\n\n"
        "<!-- doc-test: output -->\n```json\n[]\n```\n\n"
        "<!-- doc-test: not run: a server of its own -->\n```sh\nscripts/run.sh\n```\n\n"
        "```toml\n[[agents]]\n```\n\n```\ncurl -s x\n```\n\n"
        "<!-- doc-test: not run -->\n```sh\nls\n```\n\n"
        "```sh\ndocker compose ps\n```\n\n<!-- doc-test: wobble -->\n```sh\nls\n```\n"
    )
    assert block_plan(tmp_path, markdown) == [
        ("run", "default", ""),
        ("run", "orchestrator", ""),
        ("output", "orchestrator", ""),
        ("not run", "default", "a server of its own"),
        ("read", "default", "not a command (```toml): a file, a query or an output"),
        ("unknown", "default", "commands outside a shell block: fence them ```sh"),
        ("unknown", "default", "`not run` needs a reason after it"),
        (
            "not run",
            "default",
            "needs the deployed compose stack (tests/docker/ runs the stack itself)",
        ),
        ("unknown", "default", "unknown directive 'wobble'"),
    ]
    page = tmp_path / "page.md"
    orchestrator = parse(page)[1]
    assert orchestrator.prose == "With the orchestrator stand-in:"
    assert orchestrator.line == 10


def test_commands_span_continuations_and_open_quotes() -> None:
    script = (
        "# a comment\nJOB=$(printf '{}' | base64 -w0)\n"
        "curl -N http://127.0.0.1:9876/v1 \\\n  -H 'A: b' \\\n"
        '  -d \'{"model": "m",\n       "messages": []}\'\n'
        "docker compose logs -f worker   # follow\n"
    )
    commands = script_commands(script, 1)
    assert [(c.line, c.text.splitlines()[0], c.compose_only) for c in commands] == [
        (2, "JOB=$(printf '{}' | base64 -w0)", False),
        (3, "curl -N http://127.0.0.1:9876/v1 \\", False),
        (7, "docker compose logs -f worker   # follow", True),
    ]
    assert commands[1].text.endswith('"messages": []}\'')


def test_a_transcript_pairs_each_command_with_the_output_under_it() -> None:
    text = "$ agent-net doctor \\\n  --json\n{\n}\n$ echo $?\n0\n"
    assert [(c.text, c.shown, c.line) for c in transcript_commands(text, 5)] == [
        ("agent-net doctor \\\n  --json", "{\n}", 5),
        ("echo $?", "0", 9),
    ]
    assert Block(Path("x.md"), 1, "text", text).is_transcript


@pytest.mark.parametrize(
    "named",
    [
        ("docker compose exec worker agent-net doctor", "worker"),
        ("docker compose logs -f ollama", "ollama"),
        ("docker compose up -d ollama && docker compose logs -f ollama", "ollama"),
        ("docker compose ps", None),
        ("docker compose down -v", None),
    ],
)
def test_the_service_a_compose_command_names(named: tuple[str, str | None]) -> None:
    command, service = named
    assert named_service(command) == service


# --- the output matcher --------------------------------------------------------------------

PORTS = {"9876": 41000, "8935": 41001, "11434": 41002}


def test_ellipses_whitespace_and_the_default_ports() -> None:
    shown = (
        '{"status":"degraded","agent_id":"demo",\n "reasons":["nvml: not found: ...",\n'
        '            "ollama: Ollama unreachable at http://127.0.0.1:11434"], ...}'
    )
    real = (
        '{"status":"degraded","agent_id":"demo","reasons":["nvml: not found: no GPU here",'
        '"ollama: Ollama unreachable at http://127.0.0.1:41002"],"gpus":[]}'
    )
    assert agrees(shown, real, PORTS)
    assert not agrees(shown, real.replace("41002", "11434"), PORTS)
    assert not agrees(shown, real.replace("degraded", "success"), PORTS)
    assert not agrees(shown, real.replace('"agent_id"', '"agent"'), PORTS)


def test_a_shown_port_stands_for_one_real_port_throughout() -> None:
    shown = "ok  worker  at http://127.0.0.1:35683\nok  ready  at 127.0.0.1:35683 in 0.9 s"
    real = "ok worker at http://127.0.0.1:40001\nok ready at 127.0.0.1:{} in 2.13 s"
    assert agrees(shown, real.format(40001), PORTS)
    assert not agrees(shown, real.format(40002), PORTS)


def test_times_temporary_paths_and_token_counts_match_by_shape() -> None:
    shown = '"created":1764640000,"usage":{"prompt_tokens":26} in /tmp/dr/empty within 3 s'
    real = '"created":1796528586,"usage":{"prompt_tokens":5} in /tmp/pytest-1/x/empty within 3 s'
    assert agrees(shown, real, PORTS)
    assert not agrees(shown, real.replace("within 3 s", "within 4 s"), PORTS)


def test_a_log_line_shown_in_a_comment_is_searched_for() -> None:
    log = "2026-12-06T03:45:25Z INFO standin listening url=https://127.0.0.1:41001\nmore\n"
    assert appears("... INFO standin listening url=https://127.0.0.1:8935", log, PORTS)
    assert not appears("... INFO standin listening url=http://127.0.0.1:8935", log, PORTS)
    assert not appears("... INFO standin listening url=https://127.0.0.1:9876", log, PORTS)
