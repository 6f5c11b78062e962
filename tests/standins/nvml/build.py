"""Build and drive the stand-in ``libnvidia-ml.so.1`` (source: ``fake_nvml.c``).

The scenarios, values and environment variables are documented at the top of
``fake_nvml.c``.  Typical session fixture::

    from tests.standins.nvml.build import FakeNvml, build_fake_nvml

    @pytest.fixture(scope="session")
    def fake_nvml_dir(tmp_path_factory) -> Path:
        return build_fake_nvml(tmp_path_factory.mktemp("fake_nvml"))

    @pytest.fixture
    def fake_nvml(fake_nvml_dir, tmp_path) -> FakeNvml:
        return FakeNvml.create(fake_nvml_dir, tmp_path, scenario="two_gpus")

    # child = subprocess.Popen([...], env=fake_nvml.env())
    # fake_nvml.set_scenario("hang"); ...; fake_nvml.calls()

``LD_LIBRARY_PATH`` is read once, when a process starts: the stand-in only
reaches processes started with ``fake_nvml.env()`` (or equivalent), never the
pytest process itself.

Command line: ``python tests/standins/nvml/build.py OUT_DIR`` builds into
OUT_DIR and prints the directory to put on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("fake_nvml.c")
LIBRARY_NAME = "libnvidia-ml.so.1"
CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-pthread")

DEFAULT_SCENARIO = "two_gpus"
SCENARIOS = (
    "two_gpus",
    "no_power",
    "driver_not_loaded",
    "gpu_lost",
    "all_lost",
    "hang",
    "no_gpus",
)

ENV_CONTROL = "FAKE_NVML_CONTROL"
ENV_SCENARIO = "FAKE_NVML_SCENARIO"
ENV_CALL_LOG = "FAKE_NVML_CALL_LOG"
ENV_CALL_LOG_PID = "FAKE_NVML_CALL_LOG_PID"
ENV_HANG_SECONDS = "FAKE_NVML_HANG_SECONDS"
_ALL_ENV = (ENV_CONTROL, ENV_SCENARIO, ENV_CALL_LOG, ENV_CALL_LOG_PID, ENV_HANG_SECONDS)


class FakeNvmlBuildError(RuntimeError):
    """The C compiler is missing or rejected fake_nvml.c."""


def build_fake_nvml(out_dir: Path, *, source: Path = SOURCE, cc: str | None = None) -> Path:
    """Compile ``source`` to ``out_dir/libnvidia-ml.so.1``; return ``out_dir``.

    Rebuilds only when the source is newer than the library.  The library is
    written to a temporary name and renamed into place, so concurrent builders
    (pytest-xdist workers) never see a half-written file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / LIBRARY_NAME
    source = Path(source)
    if target.exists() and target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        return out_dir

    compiler = cc or os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise FakeNvmlBuildError(f"C compiler {compiler!r} not found; it builds {source}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{LIBRARY_NAME}.", dir=out_dir)
    os.close(fd)
    try:
        proc = subprocess.run(
            [compiler, *CFLAGS, "-o", tmp_name, str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise FakeNvmlBuildError(
                f"{compiler} failed ({proc.returncode}) on {source}:\n{proc.stdout}{proc.stderr}"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out_dir


def fake_nvml_env(
    lib_dir: Path,
    *,
    scenario: str | None = None,
    control: Path | None = None,
    call_log: Path | None = None,
    call_log_pid: bool = False,
    hang_seconds: float | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a child process that should load the stand-in.

    Starts from ``base`` (default ``os.environ``), drops inherited FAKE_NVML_*
    variables, puts ``lib_dir`` first on ``LD_LIBRARY_PATH`` and sets the
    variables asked for.  ``control`` wins over ``scenario`` in the library.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _ALL_ENV}
    previous = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = str(lib_dir) + (os.pathsep + previous if previous else "")
    if scenario is not None:
        env[ENV_SCENARIO] = scenario
    if control is not None:
        env[ENV_CONTROL] = str(control)
    if call_log is not None:
        env[ENV_CALL_LOG] = str(call_log)
        if call_log_pid:
            env[ENV_CALL_LOG_PID] = "1"
    if hang_seconds is not None:
        env[ENV_HANG_SECONDS] = repr(float(hang_seconds))
    return env


def set_scenario(control: Path, name: str, *, check: bool = True) -> None:
    """Atomically write ``name`` as the control file's first line.

    Processes using the stand-in see the new scenario on their next call
    (a call blocked in ``hang`` notices within 50 ms).  ``check=False`` allows
    names the library does not know (it then answers 999 to every call).
    """
    if check and name not in SCENARIOS:
        raise ValueError(f"unknown fake NVML scenario {name!r}; known: {', '.join(SCENARIOS)}")
    control = Path(control)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{control.name}.", dir=control.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(name + "\n")
        os.replace(tmp_name, control)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def read_call_log(path: Path) -> list[str]:
    """Lines of a FAKE_NVML_CALL_LOG file (empty list if nothing was called)."""
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


@dataclass(frozen=True)
class FakeNvml:
    """One stand-in setup: library dir, a control file and a call log."""

    lib_dir: Path
    control: Path
    call_log: Path

    @classmethod
    def create(cls, lib_dir: Path, work_dir: Path, scenario: str = DEFAULT_SCENARIO) -> FakeNvml:
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        fake = cls(Path(lib_dir), work_dir / "fake_nvml.scenario", work_dir / "fake_nvml.calls")
        fake.set_scenario(scenario)
        return fake

    def env(
        self,
        base: Mapping[str, str] | None = None,
        *,
        hang_seconds: float | None = None,
        call_log_pid: bool = False,
    ) -> dict[str, str]:
        return fake_nvml_env(
            self.lib_dir,
            control=self.control,
            call_log=self.call_log,
            call_log_pid=call_log_pid,
            hang_seconds=hang_seconds,
            base=base,
        )

    def set_scenario(self, name: str) -> None:
        set_scenario(self.control, name)

    def calls(self) -> list[str]:
        return read_call_log(self.call_log)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {Path(__file__).name} OUT_DIR", file=sys.stderr)
        return 2
    try:
        out = build_fake_nvml(Path(args[0]))
    except FakeNvmlBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
