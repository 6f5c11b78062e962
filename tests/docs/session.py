"""Run a document's commands as a reader would, against the real worker over stand-ins.

The commands run with bash in a copy of the checkout made of links (so a `.env` or a
`data/` of yours is never read or written), with a fresh shell's environment plus what
the setup exports. The only change to a command is its ports: the documents write the
defaults (9876 the worker, 8935 the orchestrator, 11434 Ollama; after `127.0.0.1:`,
`localhost:` or `--port `) and the test serves them on free ports, so that a worker of
yours on 9876 neither answers nor collides; the exported WORKER_PORT and OLLAMA_HOST say
the same to the scripts and the doctor.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.blocks import ROOT, Command, Plan
from tests.docs.matching import agrees, appears
from tests.helpers.processes import GaveUp, WorkerProcess, free_port, http, wait_for
from tests.registration.support import ORCH_SECRET, Blackhole, StandinProcess
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn

COMMAND_TIMEOUT = 120
# A user's shell: what a documented command may rely on from the environment.
KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "SHELL")
# curl as typed in a terminal: no progress meter (curl shows one only when its output is
# not a terminal). And the HTTP status is checked: an error answer fails the command, unless
# the block says it shows one (`http-error`). Scripts the commands run keep curl as it is.
CURL_AS_TYPED = 'curl() {{ command curl --no-progress-meter {} "$@"; }}\n'
# The Ollama stand-in's answer to every chat (docs/agents.md shows one starting "The").
REPLY = "The sky is blue because air scatters blue light more than red light."
SHELL_PRELUDE = "set -e\n"


@dataclass(frozen=True)
class Setup:
    """A setup a block can ask for with `<!-- doc-test: setup NAME -->`."""

    name: str
    says: str  # what the paragraph right above the block must mention (a regex)
    about: str  # what it is, for docs/testing.md


SETUPS = {
    setup.name: setup
    for setup in (
        Setup(
            "default",
            "",
            "the worker with no settings over the NVML (two GPUs) and Ollama stand-ins",
        ),
        Setup(
            "no-gpu-no-ollama",
            r"no GPU, no Ollama",
            "the worker with no settings, no NVIDIA library and nothing at Ollama's address",
        ),
        Setup(
            "orchestrator",
            r"orchestrator",
            "the default one, registered (BYOC and live runners) with a TLS orchestrator"
            " stand-in on 8935; ORCH_URL and ORCH_SECRET exported",
        ),
        Setup(
            "three-wrong",
            r"GPU 1 lost",
            "the orchestrator one with GPU 1 lost, OLLAMA_MODEL=qwen2.5:7b (not pulled) and"
            " an orchestrator whose secret differs",
        ),
        Setup(
            "nothing-answers",
            r"No NVIDIA library",
            "no NVIDIA library, Ollama and the worker down, three orchestrators: one"
            " refusing, one silent, one silent over TLS; run where no pricing files are",
        ),
        Setup(
            "pricing-copies",
            r"my\.conf",
            "copies of the two pricing files as my.conf and their.conf",
        ),
    )
}


class DocFailure(AssertionError):
    """A documented command that does not run as written, or says something else."""


@dataclass
class Ran:
    command: str
    code: int
    output: str


@dataclass
class Server:
    """A block that started a server: its process group and log."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@dataclass
class DocSession:
    """The stand-ins, the worker and the servers a document's commands run against."""

    tmp: Path
    nvml_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    setup: str = ""
    exports: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    last: list[Ran] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list)
    _servers: list[Server] = field(default_factory=list)
    _worker: WorkerProcess | None = None
    _count: int = 0

    def __post_init__(self) -> None:
        self.ports = {"9876": free_port(), "8935": free_port(), "11434": free_port()}
        self.checkout = self._link_checkout(self.tmp / "checkout")

    # --- the checkout the commands run in ------------------------------------------------
    @staticmethod
    def _link_checkout(path: Path) -> Path:
        """The repository as links, without .env and data/ (never yours), with .venv."""
        path.mkdir()
        for entry in ROOT.iterdir():
            if entry.name in (".env", "data", ".git", ".venv"):
                continue
            (path / entry.name).symlink_to(entry)
        (path / ".venv").symlink_to(Path(sys.executable).parent.parent)
        return path

    def rewrite(self, command: str) -> str:
        """`command` with the documented default ports replaced by the test's."""
        for port, real in self.ports.items():
            command = re.sub(
                rf"(127\.0\.0\.1:|localhost:|--port ){port}\b", rf"\g<1>{real}", command
            )
        return command

    # --- setups ----------------------------------------------------------------------------
    def use(self, name: str, worker: bool = True) -> None:
        """Make `name` the setup (building it when another one is in place); start its
        worker when `worker` and nothing answers on the worker's port."""
        if name not in SETUPS and name != "stand-ins":
            raise DocFailure(f"unknown setup {name!r} (known: {', '.join(SETUPS)})")
        if name != self.setup:
            self.tear_down()
            self.setup = name
            getattr(self, "_build_" + name.replace("-", "_"))()
        if worker and name not in ("stand-ins", "nothing-answers", "pricing-copies"):
            self._ensure_worker()

    def tear_down(self) -> None:
        """Stop what the setup started (servers started by blocks stay)."""
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        while self._stops:
            self._stops.pop()()
        self.setup, self.exports, self.cwd = "", {}, None

    def close(self) -> None:
        self.stop_servers()
        self.tear_down()

    def _nvml(self, scenario: str = "two_gpus") -> dict[str, str]:
        self._count += 1
        nvml = FakeNvml.create(self.nvml_dir, self.tmp / f"nvml-{self._count}", scenario)
        return dict(nvml.env({}))

    def _ollama(self) -> str:
        ollama = OllamaStandIn(port=self.ports["11434"]).start()
        ollama.configure(reply=REPLY)
        self._stops.append(ollama.stop)
        return ollama.url

    def _orchestrator(self, secret: str = ORCH_SECRET) -> StandinProcess:
        self._count += 1
        orch = StandinProcess(
            self.tmp / f"orchestrator-{self._count}",
            secret=secret,
            tls=True,
            port=self.ports["8935"],
            live_runners=True,
        )
        orch.log_dir.mkdir()
        orch.start()
        self._stops.append(orch.stop)
        return orch

    def _build_default(self) -> None:
        self.exports = {
            **self._nvml(),
            "OLLAMA_HOST": self._ollama(),
            "WORKER_PORT": str(self.ports["9876"]),
            "WORKER_HOST": "127.0.0.1",
        }

    _build_stand_ins = _build_default

    def _build_no_gpu_no_ollama(self) -> None:
        empty = self.tmp / f"no-nvml-{self._count}"
        empty.mkdir(exist_ok=True)
        self.exports = {
            "LD_LIBRARY_PATH": str(empty),
            "OLLAMA_HOST": f"http://127.0.0.1:{self.ports['11434']}",  # nothing listens
            "WORKER_PORT": str(self.ports["9876"]),
            "WORKER_HOST": "127.0.0.1",
        }

    def _build_orchestrator(self, secret: str = ORCH_SECRET, **more: str) -> None:
        self._build_default()
        orch = self._orchestrator(secret)
        self.exports |= {
            "ORCH_URL": orch.url,
            "ORCH_SECRET": ORCH_SECRET,
            "CAPABILITY_URL": f"http://127.0.0.1:{self.ports['9876']}",
            "REGISTER_INTERVAL_SECONDS": "1",
            **more,
        }

    def _build_three_wrong(self) -> None:
        self._build_orchestrator("the-orchestrators-own-secret", OLLAMA_MODEL="qwen2.5:7b")
        self.exports |= self._nvml("gpu_lost")

    def _build_nothing_answers(self) -> None:
        empty = self.tmp / f"empty-{self._count}"  # no pricing files: only .venv
        empty.mkdir(exist_ok=True)
        if not (empty / ".venv").exists():
            (empty / ".venv").symlink_to(self.checkout / ".venv")
        holes = [Blackhole(), Blackhole()]
        self._stops.extend(hole.close for hole in holes)
        self.exports = {
            "LD_LIBRARY_PATH": str(empty),
            "OLLAMA_HOST": f"http://127.0.0.1:{self.ports['11434']}",
            "WORKER_PORT": str(self.ports["9876"]),
            "ORCH_URL": f"http://127.0.0.1:{free_port()},{holes[0].url},"
            f"https://127.0.0.1:{holes[1].port}",
            "ORCH_SECRET": ORCH_SECRET,
        }
        self.cwd = empty

    def _build_pricing_copies(self) -> None:
        self._build_default()
        copies = [self.checkout / "my.conf", self.checkout / "their.conf"]
        shutil.copy(ROOT / "orchestrator_config" / "orchestrator.conf", copies[0])
        shutil.copy(ROOT / "gateway_config" / "gateway.conf", copies[1])
        self._stops.extend(lambda path=path: path.unlink(missing_ok=True) for path in copies)

    def _ensure_worker(self) -> None:
        process = self._worker.process if self._worker is not None else None
        if process is not None and process.poll() is None:
            return
        if _answers(self.ports["9876"]):
            return  # a worker a block started (a server) serves the port
        self._count += 1
        env = {k: v for k, v in self.exports.items() if k != "LD_LIBRARY_PATH"}
        lib = self.exports.get("LD_LIBRARY_PATH")
        log = self.tmp / f"worker-{self._count}.log"
        worker = WorkerProcess(env, log, Path(lib) if lib else None)
        self._worker = worker.start()
        if "ORCH_URL" in self.exports:
            wait_for(lambda: self._registered(worker), 30, what="the worker registering")

    @staticmethod
    def _registered(worker: WorkerProcess) -> bool:
        """Every registration of the worker answered (ok, or refused: three-wrong's)."""
        document = json.loads(http("GET", f"{worker.url}/readyz", timeout=2)[2])
        entries = [*document["registration"], *document.get("live_runners", [])]
        return bool(entries) and all(
            entry.get("registered") or entry.get("last_error") for entry in entries
        )

    def worker_log(self) -> str:
        return self._worker.logs() if self._worker is not None else ""

    # --- running commands ----------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """A fresh shell's environment plus the setup's exports."""
        env = {k: v for k, v in os.environ.items() if k in KEPT_VARIABLES}
        return {**env, **self.exports}

    def run(self, script: str, checks_http: bool = True) -> Ran:
        """Run `script` (ports rewritten) with bash in the checkout, as one shell."""
        text = self.rewrite(script)
        checks = "--fail-with-body" if checks_http else ""
        prelude = SHELL_PRELUDE + CURL_AS_TYPED.format(checks)
        result = subprocess.run(
            ["bash", "-c", prelude + text],
            cwd=self.cwd or self.checkout,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return Ran(text, result.returncode, result.stdout.decode(errors="replace"))

    def start_server(self, plan: Plan) -> None:
        """Start the block in the background; wait for each `# ... line` it shows, else
        for each port it names to answer."""
        self._count += 1
        log = self.tmp / f"server-{self._count}.log"
        script = "\n".join(command.text for command in plan.commands)
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", SHELL_PRELUDE + self.rewrite(script)],
                cwd=self.cwd or self.checkout,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(process, log)
        self._servers.append(server)
        expected = [
            line.strip().removeprefix("#").strip()
            for line in plan.block.text.splitlines()
            if line.strip().startswith("# ...")
        ]

        def up() -> bool:
            if process.poll() is not None:
                raise GaveUp(f"{plan.block.where}: the server exited ({process.returncode})")
            text = log.read_text(errors="replace")
            if expected:
                return all(appears(line, text, self.ports) for line in expected)
            named = [port for port in self.ports if str(self.ports[port]) in self.rewrite(script)]
            return all(_answers(self.ports[port]) for port in named)

        try:
            wait_for(up, 60, what=f"the server of {plan.block.where}")
        except (GaveUp, AssertionError) as error:
            raise DocFailure(f"{error}\n{log.read_text(errors='replace')}") from None

    @property
    def serving(self) -> bool:
        """Whether a block of the document started a server that still runs."""
        return bool(self._servers)

    def stop_servers(self) -> None:
        while self._servers:
            self._servers.pop().stop()

    def transcript(self, commands: list[Command], checks_http: bool) -> list[str]:
        """Run each command of a transcript; the problems: output not as shown, or a
        failing command whose status the transcript does not show (`$ echo $?`)."""
        problems: list[str] = []
        previous: Ran | None = None
        for index, command in enumerate(commands):
            if command.text == "echo $?" and previous is not None:
                ran = Ran("echo $?", 0, f"{previous.code}\n")
            else:
                ran = self.run(command.text, checks_http)
                shows_status = index + 1 < len(commands) and commands[index + 1].text == "echo $?"
                if ran.code != 0 and not shows_status:
                    problems.append(
                        f"line {command.line}: `{ran.command}` exited {ran.code}:\n{ran.output}"
                    )
            if command.shown is not None and not agrees(command.shown, ran.output, self.ports):
                problems.append(
                    f"line {command.line}: `{ran.command}` printed:\n{ran.output}\n"
                    f"--- where the document shows:\n{command.shown}"
                )
            previous = ran
        return problems


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def describe(ran: Ran) -> str:
    return f"`{ran.command}` exited {ran.code}:\n{ran.output}"


def compose_services() -> list[str]:
    """The services docker-compose.yml defines (the gateway file's too)."""
    names: list[str] = []
    for name in ("docker-compose.yml", "docker-compose-gateway.yml"):
        text = (ROOT / name).read_text(encoding="utf-8")
        block = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
        names += re.findall(r"^  ([a-z][a-z0-9_-]*):$", block, re.MULTILINE)
    return names


def named_service(command: str) -> str | None:
    """The service a `docker compose SUBCOMMAND [options] SERVICE ...` command names."""
    words = command.split()
    if words[:2] != ["docker", "compose"] or len(words) < 3:
        return None
    sub, rest = words[2], words[3:]
    if sub not in ("exec", "logs", "restart", "up", "stop", "start", "run"):
        return None
    service = next((word for word in rest if not word.startswith("-")), None)
    return service if service and service not in ("&&", "|") else None
