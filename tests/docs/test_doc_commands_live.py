"""Every command a reader would type from the README and docs/ runs as written.

One test per document: its blocks in order, against the real worker over the stand-ins
(tests/docs/session.py), each as its plan says (tests/docs/blocks.py): a script's every
command must succeed (an HTTP error answer included), a transcript's output must be what
the document shows, an `output` block must be what the block above printed, a `server`
block's server must come up and stays for the rest of the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.blocks import ROOT, Plan, documents, parse, plan
from tests.docs.matching import agrees
from tests.docs.session import DocSession, describe

pytestmark = pytest.mark.timeout(600)


def runnable(document: Path) -> bool:
    return any(p.action not in ("read", "not run") for p in plan(parse(document)))


@pytest.fixture(scope="module")
def session(fake_nvml_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocSession]:
    session = DocSession(tmp_path_factory.mktemp("docs"), fake_nvml_dir)
    yield session
    session.close()


@pytest.mark.parametrize(
    "document",
    [document for document in documents() if runnable(document)],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_the_commands_run_as_written(document: Path, session: DocSession) -> None:
    problems: list[str] = []
    try:
        for step in plan(parse(document)):
            problems += run(step, session)
    finally:
        session.stop_servers()
    if problems:
        print(f"--- the last worker's log ---\n{session.worker_log()}")
    assert problems == [], "\n\n".join(problems)


def run(step: Plan, session: DocSession) -> list[str]:
    """Carry out one block's plan; what went wrong, each with where."""
    where = step.block.where
    checks_http = step.block.word() != "http-error"
    if step.action in ("read", "not run"):
        return []
    if step.action == "server":
        session.use("stand-ins", worker=False)  # the block brings its own server
        session.start_server(step)
        return []
    if step.action == "output":
        output = session.last[-1].output if session.last else ""
        if agrees(step.block.text, output, session.ports):
            return []
        return [
            f"{where}: the block above printed:\n{output}\n--- where this shows:\n{step.block.text}"
        ]
    # Once a document has started its own servers, its default blocks use them.
    setup = "stand-ins" if session.serving and step.setup == "default" else step.setup
    session.use(setup)
    if step.action == "transcript":
        return [f"{where}, {problem}" for problem in session.transcript(step.commands, checks_http)]
    ran = session.run("\n".join(command.text for command in step.commands), checks_http)
    session.last = [ran]
    return [] if ran.code == 0 else [f"{where}: {describe(ran)}"]
