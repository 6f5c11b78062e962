"""The fenced blocks of README.md and docs/*.md, and what the suite does with each.

Every block is accounted for (docs/testing.md, "Commands in the docs"):

- a shell block (```sh, bash, shell, console) runs as one script, each command checked
  for exit status 0; a block with `$ ` prompts (in any language) is a transcript: each
  command runs and its output is compared with the lines shown under it;
- a block of another language, or none, is a file's contents, a query or an output, and
  is read, not run; a block right under an `output` directive is compared with the output
  of the commands of the block above it;
- a `<!-- doc-test: ... -->` comment right above a block says more: `setup NAME` (the
  block needs another setup than the default worker, which the prose above it says),
  `output`, `server` (the block starts a server, kept for the rest of the document),
  `http-error` (an HTTP error answer is what the block shows), or `not run: REASON`;
- a command that starts with `docker` needs the deployed compose stack: it is not run
  here, and the service it names must be one of docker-compose.yml's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "shell-session", "zsh"})
DIRECTIVE = re.compile(r"^<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
PROMPT = "$ "
# Words that start a command: a block of another language that starts with one of these
# is most likely commands in the wrong fence.
COMMAND_WORDS = (
    "curl ",
    "docker ",
    "python",
    "scripts/",
    ".venv/",
    "agent-net ",
    "export ",
    "cp ",
    "sudo ",
    "ollama ",
)
COMPOSE_REASON = "needs the deployed compose stack (tests/docker/ runs the stack itself)"


def documents() -> list[Path]:
    """README.md and every Markdown file in docs/: the documents whose commands run."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Directive:
    """A `<!-- doc-test: ... -->` comment: its word and what follows it."""

    word: str  # setup, output, server, http-error, not run
    argument: str  # the setup's name, or the reason a block is not run


@dataclass(frozen=True)
class Command:
    """One command of a block (continuation lines and open quotes joined), and for a
    transcript the output shown under it."""

    text: str
    line: int
    shown: str | None = None  # transcripts only

    @property
    def compose_only(self) -> bool:
        return self.text.startswith("docker ")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, text, directive and the prose above."""

    path: Path
    line: int  # the opening fence's line, 1-based
    language: str
    text: str
    directive: Directive | None = None
    prose: str = ""  # the paragraph right above the block (and its directive)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_transcript(self) -> bool:
        return any(line.startswith(PROMPT) for line in self.text.splitlines())

    @property
    def is_shell(self) -> bool:
        return self.language in SHELL_LANGUAGES

    def word(self) -> str:
        return self.directive.word if self.directive else ""

    def commands(self) -> list[Command]:
        """The block's commands: each prompt's for a transcript, else every command line."""
        if self.is_transcript:
            return transcript_commands(self.text, self.line + 1)
        return script_commands(self.text, self.line + 1)


@dataclass
class Plan:
    """What the suite does with one block."""

    block: Block
    action: str  # run, transcript, server, output, read, not run
    reason: str = ""  # why it is read or not run
    setup: str = "default"
    commands: list[Command] = field(default_factory=list)  # what runs
    compose_only: list[Command] = field(default_factory=list)  # not run: the stack's


def parse(path: Path) -> list[Block]:
    """Every fenced block of the Markdown file `path`, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, info = opening.group("fence"), opening.group("info").strip()
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence))
            and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        directive, prose = _above(lines, index)
        language = info.split()[0].lower() if info else ""
        text = "\n".join(lines[index + 1 : end])
        blocks.append(Block(path, index + 1, language, text, directive, prose))
        index = end + 1
    return blocks


def _above(lines: list[str], fence_index: int) -> tuple[Directive | None, str]:
    """The directive right above the fence (blank lines allowed), and the paragraph above."""
    at = fence_index - 1
    while at >= 0 and not lines[at].strip():
        at -= 1
    directive = None
    if at >= 0 and (match := DIRECTIVE.match(lines[at].strip())):
        directive = _directive(match.group("body"))
        at -= 1
        while at >= 0 and not lines[at].strip():
            at -= 1
    paragraph: list[str] = []
    while at >= 0 and lines[at].strip() and not FENCE.match(lines[at]):
        paragraph.insert(0, lines[at].strip())
        at -= 1
    return directive, " ".join(paragraph)


def _directive(body: str) -> Directive:
    if body.startswith("not run"):
        return Directive("not run", body.removeprefix("not run").lstrip(" :").strip())
    word, _, argument = body.partition(" ")
    return Directive(word, argument.strip())


def _quotes_open(text: str) -> bool:
    """Whether `text` ends inside a single- or double-quoted string (shell rules)."""
    single = double = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and not single:
            escaped = True
        elif char == "'" and not double:
            single = not single
        elif char == '"' and not single:
            double = not double
    return single or double


def _continues(text: str) -> bool:
    return text.endswith("\\") or _quotes_open(text)


def script_commands(text: str, first_line: int) -> list[Command]:
    """The commands of a script: lines joined while a quote is open or a line ends in a
    backslash; blank and comment-only lines left out."""
    commands: list[Command] = []
    current: list[str] = []
    start = first_line
    for number, line in enumerate(text.splitlines(), first_line):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not current:
            start = number
        current.append(line)
        if not _continues("\n".join(current)):
            commands.append(Command("\n".join(current).strip(), start))
            current = []
    if current:
        commands.append(Command("\n".join(current).strip(), start))
    return commands


def transcript_commands(text: str, first_line: int) -> list[Command]:
    """A transcript's commands (after `$ `, with their continuation lines) and the output
    shown under each, up to the next prompt."""
    commands: list[Command] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith(PROMPT):
            index += 1
            continue
        start = index
        command = [lines[index][len(PROMPT) :]]
        index += 1
        while _continues("\n".join(command)) and index < len(lines):
            command.append(lines[index])
            index += 1
        shown: list[str] = []
        while index < len(lines) and not lines[index].startswith(PROMPT):
            shown.append(lines[index])
            index += 1
        commands.append(Command("\n".join(command).strip(), first_line + start, "\n".join(shown)))
    return commands


def plan(blocks: list[Block]) -> list[Plan]:
    """What to do with each block of one document, or a Plan whose action is `unknown`."""
    plans: list[Plan] = []
    for block in blocks:
        plans.append(_plan(block, plans[-1] if plans else None))
    return plans


def _plan(block: Block, previous: Plan | None) -> Plan:
    word = block.word()
    if word == "not run":
        if not block.directive or not block.directive.argument:
            return Plan(block, "unknown", "`not run` needs a reason after it")
        return Plan(block, "not run", block.directive.argument)
    if word == "output":
        if previous is None or previous.action not in ("run", "server"):
            return Plan(block, "unknown", "`output` follows no block that runs")
        return Plan(block, "output", setup=previous.setup)
    if word and word not in ("setup", "server", "http-error"):
        return Plan(block, "unknown", f"unknown directive {word!r}")
    if not block.is_shell and not block.is_transcript:
        first = next((ln.strip() for ln in block.text.splitlines() if ln.strip()), "")
        if word or first.startswith(COMMAND_WORDS):
            return Plan(block, "unknown", "commands outside a shell block: fence them ```sh")
        shown = f"```{block.language}" if block.language else "a plain fence"
        return Plan(block, "read", f"not a command ({shown}): a file, a query or an output")
    setup = block.directive.argument if word == "setup" and block.directive else "default"
    commands = block.commands()
    runs = [command for command in commands if not command.compose_only]
    compose = [command for command in commands if command.compose_only]
    action = "server" if word == "server" else "transcript" if block.is_transcript else "run"
    if not runs:
        action = "not run"
    plan = Plan(block, action, COMPOSE_REASON if not runs else "", setup, runs, compose)
    if block.is_transcript and compose:
        return Plan(block, "unknown", "a transcript of a compose-stack command: not run here")
    return plan
