"""The stand-in libnvidia-ml.so.1 (tests/standins/nvml) seen through the real pynvml.

Every check runs a child Python with LD_LIBRARY_PATH pointing at the built
stand-in (the loader reads it once, at start-up), imports the installed
nvidia-ml-py binding and reports what its public API returned or raised.
Expected values are written out literally here: they are the specification,
and tests/standins/nvml/values.py is checked against them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

STANDIN_DIR = Path(__file__).resolve().parents[1] / "standins" / "nvml"


def _load(name: str) -> ModuleType:
    # By path, so this works whether or not the repo root is on sys.path.
    spec = importlib.util.spec_from_file_location(f"_fake_nvml_{name}", STANDIN_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load("build")
values = _load("values")

MEMORY_V2 = 0x02000028
H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-00000000-1111-2222-3333-444444444444",
    "total": 85520809984,
    "used": 21474836480,
    "temperature": 41,
    "power": 118500,
    "power_limit": 700000,
    "utilization": [37, 12],
}
L4 = {
    "name": "NVIDIA L4",
    "uuid": "GPU-55555555-6666-7777-8888-999999999999",
    "total": 24152899584,
    "used": 1073741824,
    "temperature": 55,
    "power": 27250,
    "power_limit": 72000,
    "utilization": [3, 1],
}
PER_DEVICE = (
    "name",
    "uuid",
    "memory_v1",
    "memory_v2",
    "temperature",
    "power",
    "power_limit",
    "utilization",
)
PER_DEVICE_SYMBOLS = {
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetUtilizationRates",
}


def expected_device(gpu: dict, index: int) -> dict:
    total, used = gpu["total"], gpu["used"]
    return {
        "name": {"ok": gpu["name"]},
        "uuid": {"ok": gpu["uuid"]},
        "memory_v1": {"ok": [total, total - used, used]},
        "memory_v2": {"ok": [MEMORY_V2, total, 0, total - used, used]},
        "temperature": {"ok": gpu["temperature"]},
        "power": {"ok": gpu["power"]},
        "power_limit": {"ok": gpu["power_limit"]},
        "utilization": {"ok": gpu["utilization"]},
        "index": {"ok": index},
    }


def err(name: str, value: int) -> dict:
    return {"error": f"NVMLError_{name}", "value": value}


PRELUDE = textwrap.dedent(
    """
    import ctypes, json, os, sys, threading, time
    import pynvml as p

    def attempt(fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except p.NVMLError as e:
            return {"error": type(e).__name__, "value": e.value}
        return {"ok": result}

    def mem1(h):
        m = p.nvmlDeviceGetMemoryInfo(h)
        return [m.total, m.free, m.used]

    def mem2(h):
        m = p.nvmlDeviceGetMemoryInfo(h, version=p.nvmlMemory_v2)
        return [m.version, m.total, m.reserved, m.free, m.used]

    def util(h):
        u = p.nvmlDeviceGetUtilizationRates(h)
        return [u.gpu, u.memory]

    QUERIES = {
        "name": p.nvmlDeviceGetName,
        "uuid": p.nvmlDeviceGetUUID,
        "memory_v1": mem1,
        "memory_v2": mem2,
        "temperature": lambda h: p.nvmlDeviceGetTemperature(h, p.NVML_TEMPERATURE_GPU),
        "power": p.nvmlDeviceGetPowerUsage,
        "power_limit": p.nvmlDeviceGetEnforcedPowerLimit,
        "utilization": util,
        "index": p.nvmlDeviceGetIndex,
    }

    def query_all(h):
        return {key: attempt(fn, h) for key, fn in QUERIES.items()}

    def handles():
        return [p.nvmlDeviceGetHandleByIndex(i) for i in range(p.nvmlDeviceGetCount())]

    def switch(name):
        control = os.environ["FAKE_NVML_CONTROL"]
        with open(control + ".tmp", "w") as f:
            f.write(name + "\\n")
        os.replace(control + ".tmp", control)

    def emit(obj):
        print("RESULT " + json.dumps(obj), flush=True)
    """
)


def _result(stdout: str, stderr: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"child printed no RESULT line\nstdout:\n{stdout}\nstderr:\n{stderr}")


def run_child(code: str, env: dict[str, str], timeout: float = 15) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return _result(proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def lib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = build.build_fake_nvml(tmp_path_factory.mktemp("fake_nvml_lib"))
    assert (out / "libnvidia-ml.so.1").is_file()
    return out


@pytest.fixture
def fake(lib_dir: Path, tmp_path: Path):
    return build.FakeNvml.create(lib_dir, tmp_path)


def test_two_gpus_reports_every_value_through_pynvml(fake) -> None:
    fake.set_scenario("two_gpus")
    out = run_child(
        """
        p.nvmlInit()
        hs = handles()
        emit({
            "pid": os.getpid(),
            "count": len(hs),
            "driver": p.nvmlSystemGetDriverVersion(),
            "nvml": p.nvmlSystemGetNVMLVersion(),
            "cuda": p.nvmlSystemGetCudaDriverVersion(),
            "cuda_v2": p.nvmlSystemGetCudaDriverVersion_v2(),
            "devices": [query_all(h) for h in hs],
            "shutdown": attempt(p.nvmlShutdown),
        })
        """,
        fake.env(call_log_pid=True),
    )
    assert out["count"] == 2
    assert out["driver"] == "560.35.03"
    assert out["nvml"] == "12.560.35.03"
    assert out["cuda"] == out["cuda_v2"] == 12060
    assert out["devices"][0] == expected_device(H100, 0)
    assert out["devices"][1] == expected_device(L4, 1)
    assert out["shutdown"] == {"ok": None}

    # The calls were made by the child, through the symbols pynvml really uses.
    calls = [line.split() for line in fake.calls()]
    assert {pid for _, pid in calls} == {str(out["pid"])}
    symbols = [symbol for symbol, _ in calls]
    assert symbols[:3] == [
        "nvmlInitWithFlags",
        "nvmlDeviceGetCount_v2",
        "nvmlDeviceGetHandleByIndex_v2",
    ]
    assert symbols[-1] == "nvmlShutdown"
    assert symbols.count("nvmlDeviceGetMemoryInfo") == 2
    assert symbols.count("nvmlDeviceGetMemoryInfo_v2") == 2
    assert "nvmlInit_v2" not in symbols
    assert set(symbols) >= PER_DEVICE_SYMBOLS


def test_values_module_matches_library(fake) -> None:
    for mirror, spec in ((values.H100, H100), (values.L4, L4)):
        assert mirror.name == spec["name"]
        assert mirror.uuid == spec["uuid"]
        assert mirror.memory_total == spec["total"]
        assert mirror.memory_used == spec["used"]
        assert mirror.memory_free == spec["total"] - spec["used"]
        assert mirror.memory_reserved == 0
        assert mirror.temperature_c == spec["temperature"]
        assert mirror.power_mw == spec["power"]
        assert mirror.power_limit_mw == spec["power_limit"]
        assert [mirror.util_gpu, mirror.util_memory] == spec["utilization"]
    assert values.TWO_GPUS == (values.H100, values.L4)
    assert values.H100.memory_total // values.MIB == 81559
    assert (values.DRIVER_VERSION, values.NVML_VERSION) == ("560.35.03", "12.560.35.03")
    assert values.CUDA_DRIVER_VERSION == 12060
    assert values.NO_POWER_NAME == "NVIDIA GeForce RTX 4090"
    assert build.SCENARIOS == (
        "two_gpus",
        "no_power",
        "driver_not_loaded",
        "gpu_lost",
        "all_lost",
        "hang",
        "no_gpus",
    )


def test_scenario_from_env_var_without_control_file(lib_dir: Path) -> None:
    out = run_child(
        """
        p.nvmlInit()
        emit({"count": p.nvmlDeviceGetCount(), "name": p.nvmlDeviceGetName(handles()[0])})
        """,
        build.fake_nvml_env(lib_dir, scenario="no_power"),
    )
    assert out == {"count": 1, "name": "NVIDIA GeForce RTX 4090"}


def test_no_power_raises_not_supported_for_power_only(fake) -> None:
    fake.set_scenario("no_power")
    out = run_child(
        """
        p.nvmlInit()
        hs = handles()
        emit({"count": len(hs), "device": query_all(hs[0]),
              "index_1": attempt(p.nvmlDeviceGetHandleByIndex, 1)})
        """,
        fake.env(),
    )
    assert out["count"] == 1
    expected = expected_device(H100, 0)
    expected["name"] = {"ok": "NVIDIA GeForce RTX 4090"}
    expected["power"] = err("NotSupported", 3)
    expected["power_limit"] = err("NotSupported", 3)
    assert out["device"] == expected
    assert out["index_1"] == err("InvalidArgument", 2)


def test_driver_not_loaded_fails_init(fake) -> None:
    fake.set_scenario("driver_not_loaded")
    out = run_child(
        """
        emit({"init": attempt(p.nvmlInit), "count": attempt(p.nvmlDeviceGetCount),
              "shutdown": attempt(p.nvmlShutdown)})
        """,
        fake.env(),
    )
    assert out["init"] == err("DriverNotLoaded", 9)
    # the library is loaded but was never initialised: it answers 1 itself
    assert out["count"] == err("Uninitialized", 1)
    assert out["shutdown"] == err("Uninitialized", 1)
    assert fake.calls() == ["nvmlInitWithFlags", "nvmlDeviceGetCount_v2", "nvmlShutdown"]


def test_gpu_lost_affects_gpu_1_only(fake) -> None:
    fake.set_scenario("gpu_lost")
    out = run_child(
        """
        p.nvmlInit()
        hs = handles()
        emit({"count": len(hs), "driver": p.nvmlSystemGetDriverVersion(),
              "devices": [query_all(h) for h in hs]})
        """,
        fake.env(),
    )
    assert out["count"] == 2
    assert out["driver"] == "560.35.03"
    assert out["devices"][0] == expected_device(H100, 0)
    lost = {key: err("GpuIsLost", 15) for key in PER_DEVICE}
    assert out["devices"][1] == {**lost, "index": {"ok": 1}}


def test_all_lost_affects_every_gpu(fake) -> None:
    fake.set_scenario("all_lost")
    out = run_child(
        """
        p.nvmlInit()
        emit({"devices": [query_all(h) for h in handles()]})
        """,
        fake.env(),
    )
    lost = {key: err("GpuIsLost", 15) for key in PER_DEVICE}
    assert out["devices"] == [{**lost, "index": {"ok": 0}}, {**lost, "index": {"ok": 1}}]


def test_no_gpus_has_count_zero(fake) -> None:
    fake.set_scenario("no_gpus")
    out = run_child(
        """
        p.nvmlInit()
        emit({"count": p.nvmlDeviceGetCount(), "handle": attempt(p.nvmlDeviceGetHandleByIndex, 0),
              "driver": p.nvmlSystemGetDriverVersion()})
        """,
        fake.env(),
    )
    assert out == {"count": 0, "handle": err("InvalidArgument", 2), "driver": "560.35.03"}


HANG_CHILD = """
p.nvmlInit()
hs = handles()
before = {"count": len(hs), "driver": p.nvmlSystemGetDriverVersion(),
          "index": p.nvmlDeviceGetIndex(hs[1])}
results = {}
def run(key):
    results[key] = attempt(QUERIES[key], hs[0])
threads = {key: threading.Thread(target=run, args=(key,), daemon=True) for key in QUERIES
           if key != "index"}
for t in threads.values():
    t.start()
time.sleep(0.5)   # bounded wait: the calls must still be running afterwards
print("BLOCKED " + json.dumps({**before, "alive": sorted(k for k, t in threads.items()
      if t.is_alive()), "done": dict(results)}), flush=True)
start = time.monotonic()
for t in threads.values():
    t.join(timeout=10)
emit({"alive": [k for k, t in threads.items() if t.is_alive()], "results": results,
      "unblocked_after": time.monotonic() - start})
"""


def test_hang_blocks_until_control_file_changes(fake) -> None:
    fake.set_scenario("hang")
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + HANG_CHILD],
        env=fake.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("BLOCKED "), line + proc.stderr.read() if proc.stderr else line
        blocked = json.loads(line[len("BLOCKED ") :])
        # init, count, handles, system queries and GetIndex do not hang ...
        assert blocked["count"] == 2
        assert blocked["driver"] == "560.35.03"
        assert blocked["index"] == 1
        # ... every per-device query does, and each was entered in the library
        assert blocked["alive"] == sorted(PER_DEVICE)
        assert blocked["done"] == {}
        assert set(fake.calls()) >= PER_DEVICE_SYMBOLS

        fake.set_scenario("two_gpus")
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    out = _result(stdout, stderr)
    assert out["alive"] == []
    expected = expected_device(H100, 0)
    assert out["results"] == {key: expected[key] for key in PER_DEVICE}
    assert out["unblocked_after"] < 2


def test_hang_without_control_file_sleeps_then_times_out(lib_dir: Path) -> None:
    out = run_child(
        """
        p.nvmlInit()
        hs = handles()
        t0 = time.monotonic()
        temp = attempt(p.nvmlDeviceGetTemperature, hs[0], 0)
        emit({"count": len(hs), "temp": temp, "waited": time.monotonic() - t0})
        """,
        build.fake_nvml_env(lib_dir, scenario="hang", hang_seconds=0.4),
    )
    assert out["count"] == 2
    assert out["temp"] == err("Timeout", 10)
    assert 0.35 <= out["waited"] < 5


def test_control_file_switches_scenario_at_runtime(fake) -> None:
    fake.set_scenario("two_gpus")
    env = fake.env()
    env["FAKE_NVML_SCENARIO"] = "no_gpus"  # ignored: FAKE_NVML_CONTROL is set
    out = run_child(
        """
        count = lambda: attempt(p.nvmlDeviceGetCount)
        power0 = lambda: attempt(p.nvmlDeviceGetPowerUsage, h0)
        steps = {}
        p.nvmlInit()
        h0, h1 = handles()
        steps["two_gpus"] = [count(), power0(), attempt(p.nvmlDeviceGetName, h1)]
        switch("no_power")
        steps["no_power"] = [count(), power0(), attempt(p.nvmlDeviceGetName, h1),
                             attempt(p.nvmlDeviceGetName, h0)]
        switch("gpu_lost")
        steps["gpu_lost"] = [count(), power0(), attempt(p.nvmlDeviceGetName, h1)]
        switch("driver_not_loaded")
        steps["driver_not_loaded"] = [count(), power0(), attempt(p.nvmlSystemGetDriverVersion)]
        switch("no_gpus")
        steps["no_gpus"] = [count(), attempt(p.nvmlDeviceGetHandleByIndex, 0)]
        switch("")
        steps["empty_file"] = [count(), power0()]
        os.remove(os.environ["FAKE_NVML_CONTROL"])
        steps["missing_file"] = [count(), power0()]
        switch("all_lost")
        steps["all_lost"] = [count(), power0()]
        emit(steps)
        """,
        env,
    )
    assert out == {
        "two_gpus": [{"ok": 2}, {"ok": 118500}, {"ok": "NVIDIA L4"}],
        "no_power": [
            {"ok": 1},
            err("NotSupported", 3),
            err("InvalidArgument", 2),  # GPU 1's handle is stale: 1 GPU now
            {"ok": "NVIDIA GeForce RTX 4090"},
        ],
        "gpu_lost": [{"ok": 2}, {"ok": 118500}, err("GpuIsLost", 15)],
        "driver_not_loaded": [
            err("DriverNotLoaded", 9),
            err("DriverNotLoaded", 9),
            err("DriverNotLoaded", 9),
        ],
        "no_gpus": [{"ok": 0}, err("InvalidArgument", 2)],
        "empty_file": [{"ok": 2}, {"ok": 118500}],
        "missing_file": [{"ok": 2}, {"ok": 118500}],
        "all_lost": [{"ok": 2}, err("GpuIsLost", 15)],
    }


def test_uninitialized_before_init_and_after_matching_shutdowns(fake) -> None:
    out = run_child(
        """
        out = {"before_load": attempt(p.nvmlDeviceGetCount)}  # pynvml itself: no library yet
        p._LoadNvmlLibrary()
        out["loaded_not_init"] = attempt(p.nvmlDeviceGetCount)  # from here the library answers
        out["driver_not_init"] = attempt(p.nvmlSystemGetDriverVersion)
        out["shutdown_not_init"] = attempt(p.nvmlShutdown)
        p.nvmlInit()
        p.nvmlInit()
        h0 = handles()[0]
        p.nvmlShutdown()
        both = lambda: [attempt(p.nvmlDeviceGetCount), attempt(p.nvmlDeviceGetPowerUsage, h0)]
        out["after_1_of_2"] = both()
        p.nvmlShutdown()
        out["after_2_of_2"] = both()
        out["extra_shutdown"] = attempt(p.nvmlShutdown)
        out["reinit"] = [attempt(p.nvmlInit), attempt(p.nvmlDeviceGetCount)]
        emit(out)
        """,
        fake.env(),
    )
    assert out == {
        "before_load": err("Uninitialized", 1),
        "loaded_not_init": err("Uninitialized", 1),
        "driver_not_init": err("Uninitialized", 1),
        "shutdown_not_init": err("Uninitialized", 1),
        "after_1_of_2": [{"ok": 2}, {"ok": 118500}],
        "after_2_of_2": [err("Uninitialized", 1), err("Uninitialized", 1)],
        "extra_shutdown": err("Uninitialized", 1),
        "reinit": [{"ok": None}, {"ok": 2}],
    }
    # 5 of the 6 count calls (handles() makes one) reached the library; the
    # first never left pynvml, which had not loaded the library yet
    assert fake.calls().count("nvmlDeviceGetCount_v2") == 5


def test_argument_errors_and_buffer_sizes(fake) -> None:
    out = run_child(
        """
        p.nvmlInit()
        h0 = handles()[0]
        name = p._nvmlGetFunctionPointer("nvmlDeviceGetName")
        drv = p._nvmlGetFunctionPointer("nvmlSystemGetDriverVersion")
        buf = ctypes.create_string_buffer(96)
        out = {
            "index_2": attempt(p.nvmlDeviceGetHandleByIndex, 2),
            "sensor_1": attempt(p.nvmlDeviceGetTemperature, h0, 1),
            "mem_v1_version": attempt(p.nvmlDeviceGetMemoryInfo, h0, version=0x01000028),
            "name_len_21": name(h0, buf, ctypes.c_uint(21)),
            "name_null": name(h0, None, ctypes.c_uint(96)),
            "name_bad_handle": name(ctypes.c_void_p(4096), buf, ctypes.c_uint(96)),
            "name_len_22": [name(h0, buf, ctypes.c_uint(22)), buf.value.decode()],
            "driver_len_9": drv(buf, ctypes.c_uint(9)),
            "driver_len_10": drv(buf, ctypes.c_uint(10)),
            "count_null": p._nvmlGetFunctionPointer("nvmlDeviceGetCount_v2")(None),
            "power_null": p._nvmlGetFunctionPointer("nvmlDeviceGetPowerUsage")(h0, None),
        }
        try:
            p.nvmlDeviceGetMemoryInfo(h0, version=0x01000028)
        except p.NVMLError as e:
            out["mismatch_message"] = str(e)
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        out["init_v2"] = [lib.nvmlInit_v2(), lib.nvmlInit(), lib.nvmlShutdown(), lib.nvmlShutdown()]
        emit(out)
        """,
        fake.env(),
    )
    assert out.pop("mismatch_message").endswith("(fake_nvml)")  # text came from nvmlErrorString
    assert out == {
        "index_2": err("InvalidArgument", 2),
        "sensor_1": err("InvalidArgument", 2),
        "mem_v1_version": err("ArgumentVersionMismatch", 25),
        "name_len_21": 7,
        "name_null": 2,
        "name_bad_handle": 2,
        "name_len_22": [0, "NVIDIA H100 80GB HBM3"],
        "driver_len_9": 7,
        "driver_len_10": 0,
        "count_null": 2,
        "power_null": 2,
        "init_v2": [0, 0, 0, 0],
    }
    assert "nvmlErrorString" in fake.calls()


def test_unknown_scenario_fails_every_call(fake) -> None:
    build.set_scenario(fake.control, "typo", check=False)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + "emit({'init': attempt(p.nvmlInit)})"],
        env=fake.env(),
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert _result(proc.stdout, proc.stderr) == {"init": err("Unknown", 999)}
    assert "unknown scenario 'typo'" in proc.stderr
    with pytest.raises(ValueError, match="typo"):
        fake.set_scenario("typo")


def test_init_refcount_and_call_log_are_thread_safe(fake) -> None:
    out = run_child(
        """
        lib = ctypes.CDLL("libnvidia-ml.so.1")   # straight to C: no pynvml lock in the way
        def churn():
            for _ in range(300):
                assert lib.nvmlInit_v2() == 0
                assert lib.nvmlShutdown() == 0
        p.nvmlInit()
        threads = [threading.Thread(target=churn) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        still = attempt(p.nvmlDeviceGetCount)
        p.nvmlShutdown()
        emit({"still": still, "after": attempt(p.nvmlDeviceGetCount)})
        """,
        fake.env(),
        timeout=30,
    )
    assert out == {"still": {"ok": 2}, "after": err("Uninitialized", 1)}
    calls = fake.calls()
    assert calls.count("nvmlInit_v2") == 8 * 300
    assert calls.count("nvmlShutdown") == 8 * 300 + 1
    assert set(calls) == {
        "nvmlInitWithFlags",
        "nvmlInit_v2",
        "nvmlShutdown",
        "nvmlDeviceGetCount_v2",
    }


def test_missing_library_raises_library_not_found(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run_child(
        """
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
            system_lib = True
        except OSError:
            system_lib = False
        out = {"system_lib": system_lib, "init": attempt(p.nvmlInit)}
        if system_lib:
            out["message"] = p.nvmlErrorString(25)
        emit(out)
        """,
        build.fake_nvml_env(empty),
    )
    if out["system_lib"]:
        # A machine with a real NVIDIA driver (the ld cache finds it whatever
        # LD_LIBRARY_PATH says): pynvml must have loaded that, not the stand-in.
        assert out["init"] != err("LibraryNotFound", 12)
        assert "fake_nvml" not in out["message"]
    else:
        assert out == {"system_lib": False, "init": err("LibraryNotFound", 12)}


def test_build_is_incremental_atomic_and_reports_errors(tmp_path: Path) -> None:
    source = tmp_path / "fake_nvml.c"
    source.write_bytes(build.SOURCE.read_bytes())
    out_dir = tmp_path / "lib"
    assert build.build_fake_nvml(out_dir, source=source) == out_dir
    lib = out_dir / "libnvidia-ml.so.1"
    first = lib.stat()
    assert build.build_fake_nvml(out_dir, source=source) == out_dir
    assert lib.stat().st_ino == first.st_ino  # not rebuilt
    future = time.time() + 60
    os.utime(source, (future, future))
    build.build_fake_nvml(out_dir, source=source)
    assert lib.stat().st_ino != first.st_ino  # rebuilt and renamed into place
    assert sorted(p.name for p in out_dir.iterdir()) == ["libnvidia-ml.so.1"]

    broken = tmp_path / "broken.c"
    broken.write_text("int f(void) { return unused_variable_error; }\n")
    with pytest.raises(build.FakeNvmlBuildError, match="unused_variable_error"):
        build.build_fake_nvml(tmp_path / "broken", source=broken)
    assert list((tmp_path / "broken").iterdir()) == []


def test_build_script_command_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(STANDIN_DIR / "build.py"), str(tmp_path / "cli")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str((tmp_path / "cli").resolve())
    assert (tmp_path / "cli" / "libnvidia-ml.so.1").is_file()
    usage = subprocess.run(
        [sys.executable, str(STANDIN_DIR / "build.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2
    assert "usage" in usage.stderr
