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
    # fake_nvml.set_health(0, clocks_event_reasons=0x40, fan_speed=UNSUPPORTED)
    # fake_nvml.set_memory_used(0, 30 * 2**30)  # e.g. following Ollama's loaded set
    # fake_nvml.inject_xid(1, 79)   # a waiting nvmlEventSetWait_v2 returns it
    # fake_nvml.set_health(0, recovery_action=1)  # the driver asks for a GPU reset

Health readings (clocks, ECC, PCIe, processes, ...) have per-GPU defaults in
``fake_nvml.c`` (mirrored in ``values.py``); ``set_health`` overrides them live
through the FAKE_NVML_HEALTH file, and ``inject_xid`` appends to the
FAKE_NVML_EVENTS file that event sets poll.  ``build_fake_nvml(dir,
omit=[...])`` builds a library lacking some symbols (pynvml then raises
NVMLError_FunctionNotFound for them).

``LD_LIBRARY_PATH`` is read once, when a process starts: the stand-in only
reaches processes started with ``fake_nvml.env()`` (or equivalent), never the
pytest process itself.

Command line: ``python tests/standins/nvml/build.py OUT_DIR`` builds into
OUT_DIR and prints the directory to put on ``LD_LIBRARY_PATH``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
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
    "eight_gpus",
)

# Per-GPU readings FakeNvml.set_health can override (FIELD_NAMES in fake_nvml.c).
HEALTH_FIELDS = (
    "temperature",
    "clocks_event_reasons",
    "clock_sm",
    "clock_mem",
    "clock_sm_max",
    "clock_mem_max",
    "pstate",
    "fan_speed",
    "temp_slowdown",
    "temp_shutdown",
    "ecc_mode_current",
    "ecc_mode_pending",
    "ecc_corrected_volatile",
    "ecc_corrected_aggregate",
    "ecc_uncorrected_volatile",
    "ecc_uncorrected_aggregate",
    "retired_sbe",
    "retired_dbe",
    "retired_pending",
    "remap_corr",
    "remap_unc",
    "remap_pending",
    "remap_failure",
    "pcie_gen",
    "pcie_gen_max",
    "pcie_width",
    "pcie_width_max",
    "pcie_replay",
    "mig_current",
    "mig_pending",
    "supported_events",
    "processes",
    "lost",
    "memory_used",
    "recovery_action",
)
# Values set_health accepts besides integers: the call then returns 3 / 4.
UNSUPPORTED = "unsupported"
NO_PERMISSION = "no_permission"

# Health symbols a build can leave out (build_fake_nvml(..., omit=...)).
OMITTABLE_SYMBOLS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetPerformanceState",
    "nvmlDeviceGetFanSpeed",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetEccMode",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRetiredPages",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetSupportedEventTypes",
    "nvmlDeviceGetFieldValues",
    "nvmlEventSetCreate",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait_v2",
    "nvmlEventSetFree",
)

ENV_CONTROL = "FAKE_NVML_CONTROL"
ENV_SCENARIO = "FAKE_NVML_SCENARIO"
ENV_CALL_LOG = "FAKE_NVML_CALL_LOG"
ENV_CALL_LOG_PID = "FAKE_NVML_CALL_LOG_PID"
ENV_HANG_SECONDS = "FAKE_NVML_HANG_SECONDS"
ENV_HEALTH = "FAKE_NVML_HEALTH"
ENV_EVENTS = "FAKE_NVML_EVENTS"
_ALL_ENV = (
    ENV_CONTROL,
    ENV_SCENARIO,
    ENV_CALL_LOG,
    ENV_CALL_LOG_PID,
    ENV_HANG_SECONDS,
    ENV_HEALTH,
    ENV_EVENTS,
)


class FakeNvmlBuildError(RuntimeError):
    """The C compiler is missing or rejected fake_nvml.c."""


def build_fake_nvml(
    out_dir: Path,
    *,
    source: Path = SOURCE,
    cc: str | None = None,
    omit: Iterable[str] = (),
) -> Path:
    """Compile ``source`` to ``out_dir/libnvidia-ml.so.1``; return that directory.

    Rebuilds only when the source is newer than the library.  The library is
    written to a temporary name and renamed into place, so concurrent builders
    (pytest-xdist workers) never see a half-written file.

    ``omit`` names symbols of OMITTABLE_SYMBOLS the library must not export (a
    driver too old for them).  Such a build goes to its own subdirectory of
    ``out_dir``, one per set of omitted symbols, and that subdirectory is returned.
    """
    omitted = sorted(set(omit))
    unknown = [name for name in omitted if name not in OMITTABLE_SYMBOLS]
    if unknown:
        raise ValueError(f"cannot omit {unknown}; omittable: {', '.join(OMITTABLE_SYMBOLS)}")
    out_dir = Path(out_dir)
    if omitted:
        digest = hashlib.sha256(" ".join(omitted).encode()).hexdigest()[:12]
        out_dir = out_dir / f"without-{digest}"
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
            # Renaming the definition removes the symbol pynvml looks up by name.
            [
                compiler,
                *CFLAGS,
                *(f"-D{name}=fake_nvml_omitted_{name}" for name in omitted),
                "-o",
                tmp_name,
                str(source),
            ],
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
    health: Path | None = None,
    events: Path | None = None,
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
    if health is not None:
        env[ENV_HEALTH] = str(health)
    if events is not None:
        env[ENV_EVENTS] = str(events)
    return env


def set_scenario(control: Path, name: str, *, check: bool = True) -> None:
    """Atomically write ``name`` as the control file's first line.

    Processes using the stand-in see the new scenario on their next call
    (a call blocked in ``hang`` notices within 50 ms).  ``check=False`` allows
    names the library does not know (it then answers 999 to every call).
    """
    if check and name not in SCENARIOS:
        raise ValueError(f"unknown fake NVML scenario {name!r}; known: {', '.join(SCENARIOS)}")
    _write_atomically(Path(control), name + "\n")


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


HealthValue = int | str


def _health_value(field: str, value: HealthValue) -> str:
    if field not in HEALTH_FIELDS:
        raise ValueError(f"unknown fake NVML health field {field!r}")
    if field == "processes" and value not in (UNSUPPORTED, NO_PERMISSION):
        raise ValueError("set processes with FakeNvml.set_processes")
    if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
        return str(int(value))
    if value in (UNSUPPORTED, NO_PERMISSION):
        return str(value)
    raise ValueError(f"{field}: {value!r} is neither a non-negative int nor {UNSUPPORTED!r}")


def add_health_lines(path: Path, lines: Sequence[str]) -> None:
    """Append override lines ("GPU FIELD VALUE") to a FAKE_NVML_HEALTH file, atomically."""
    path = Path(path)
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = ""
    _write_atomically(path, current + "".join(line + "\n" for line in lines))


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
    health: Path | None = None
    events: Path | None = None

    @classmethod
    def create(cls, lib_dir: Path, work_dir: Path, scenario: str = DEFAULT_SCENARIO) -> FakeNvml:
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        fake = cls(
            Path(lib_dir),
            work_dir / "fake_nvml.scenario",
            work_dir / "fake_nvml.calls",
            work_dir / "fake_nvml.health",
            work_dir / "fake_nvml.events",
        )
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
            health=self.health,
            events=self.events,
            base=base,
        )

    def set_scenario(self, name: str) -> None:
        set_scenario(self.control, name)

    def _health_file(self) -> Path:
        if self.health is None:
            raise RuntimeError("this FakeNvml has no health file (use FakeNvml.create)")
        return self.health

    def set_health(self, gpu: int | str, **fields: HealthValue) -> None:
        """Override readings of GPU ``gpu`` (an index, or "*" for all) from the next call.

        Values are non-negative ints, UNSUPPORTED or NO_PERMISSION; a call that
        reads several fields (ECC mode, remapped rows, MIG mode) fails with the
        first failing one.  ``lost=1`` makes every per-device query of that GPU
        return 15 GPU_IS_LOST; ``lost=0`` finds it again.
        """
        if gpu != "*" and not (isinstance(gpu, int) and 0 <= gpu < 8):
            raise ValueError(f"GPU must be an index 0-7 or '*', not {gpu!r}")
        lines = [f"{gpu} {field} {_health_value(field, v)}" for field, v in fields.items()]
        add_health_lines(self._health_file(), lines)

    def set_processes(self, gpu: int | str, processes: Sequence[tuple[int, int | None]]) -> None:
        """Set GPU ``gpu``'s compute processes: (pid, used bytes or None = not available)."""
        items = [f"{pid}:{'na' if used is None else int(used)}" for pid, used in processes]
        add_health_lines(self._health_file(), [f"{gpu} processes {','.join(items) or 'none'}"])

    def set_memory_used(self, gpu: int | str, used_bytes: int) -> None:
        """GPU ``gpu``'s memory used from the next call (capped at its total)."""
        self.set_health(gpu, memory_used=int(used_bytes))

    def reset_health(self) -> None:
        """Back to the built-in defaults for every GPU."""
        self._health_file().unlink(missing_ok=True)

    def inject_xid(self, gpu: int, xid: int) -> None:
        """Raise XID ``xid`` on GPU ``gpu``: every event set registered for it sees it once."""
        if self.events is None:
            raise RuntimeError("this FakeNvml has no events file (use FakeNvml.create)")
        with open(self.events, "a") as f:
            f.write(f"{int(gpu)} {int(xid)}\n")

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
