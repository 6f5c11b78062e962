"""The stand-in libnvidia-ml.so.1 (tests/standins/nvml) seen through the real pynvml.

Every check runs a child Python with LD_LIBRARY_PATH pointing at the built
stand-in (the loader reads it once, at start-up), imports the installed
nvidia-ml-py binding and reports what its public API returned or raised.
Expected values are written out literally here: they are the specification,
and tests/standins/nvml/values.py is checked against them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.child import finished, reaped, result_of, run_python, start_python
from tests.standins.nvml import build, values

STANDIN_DIR = Path(build.__file__).resolve().parent

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


def run_child(code: str, env: dict[str, str], timeout: float = 15) -> dict:
    return run_python(PRELUDE, code, env, timeout)


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
    # The scenario names the Python side offers are the library's own table, in order.
    source = build.SOURCE.read_text()
    table = source.split("} SCENARIOS[] = {", 1)[1].split("};", 1)[0]
    assert tuple(re.findall(r'\{"(\w+)", S_\w+\}', table)) == build.SCENARIOS


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
    with reaped(start_python(PRELUDE + HANG_CHILD, fake.env())) as proc:
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
        out = finished(proc, 15)
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
    assert result_of(proc.stdout, proc.stderr) == {"init": err("Unknown", 999)}
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


# ---- health readings --------------------------------------------------------------

HEALTH_PRELUDE = """
def procs(h):
    return [[x.pid, x.usedGpuMemory] for x in p.nvmlDeviceGetComputeRunningProcesses(h)]

def recovery_action(h):
    # the call succeeds; the field's own nvmlReturn says whether the driver has it
    (v,) = p.nvmlDeviceGetFieldValues(h, [p.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
    assert v.fieldId == p.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION and v.timestamp > 0
    if v.nvmlReturn != p.NVML_SUCCESS:
        raise p.NVMLError(v.nvmlReturn)
    assert v.valueType == p.NVML_VALUE_TYPE_UNSIGNED_INT
    return v.value.uiVal

HEALTH = {
    "clocks_event_reasons": p.nvmlDeviceGetCurrentClocksEventReasons,
    "clocks_throttle_reasons": p.nvmlDeviceGetCurrentClocksThrottleReasons,
    "clock_sm": lambda h: p.nvmlDeviceGetClockInfo(h, p.NVML_CLOCK_SM),
    "clock_mem": lambda h: p.nvmlDeviceGetClockInfo(h, p.NVML_CLOCK_MEM),
    "clock_sm_max": lambda h: p.nvmlDeviceGetMaxClockInfo(h, p.NVML_CLOCK_SM),
    "clock_mem_max": lambda h: p.nvmlDeviceGetMaxClockInfo(h, p.NVML_CLOCK_MEM),
    "pstate": p.nvmlDeviceGetPerformanceState,
    "fan_speed": p.nvmlDeviceGetFanSpeed,
    "temp_slowdown": lambda h: p.nvmlDeviceGetTemperatureThreshold(
        h, p.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN),
    "temp_shutdown": lambda h: p.nvmlDeviceGetTemperatureThreshold(
        h, p.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN),
    "ecc_mode": p.nvmlDeviceGetEccMode,
    "ecc_corrected_volatile": lambda h: p.nvmlDeviceGetTotalEccErrors(
        h, p.NVML_MEMORY_ERROR_TYPE_CORRECTED, p.NVML_VOLATILE_ECC),
    "ecc_corrected_aggregate": lambda h: p.nvmlDeviceGetTotalEccErrors(
        h, p.NVML_MEMORY_ERROR_TYPE_CORRECTED, p.NVML_AGGREGATE_ECC),
    "ecc_uncorrected_volatile": lambda h: p.nvmlDeviceGetTotalEccErrors(
        h, p.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, p.NVML_VOLATILE_ECC),
    "ecc_uncorrected_aggregate": lambda h: p.nvmlDeviceGetTotalEccErrors(
        h, p.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, p.NVML_AGGREGATE_ECC),
    "retired_sbe": lambda h: p.nvmlDeviceGetRetiredPages(
        h, p.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
    "retired_dbe": lambda h: p.nvmlDeviceGetRetiredPages(
        h, p.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
    "retired_pending": p.nvmlDeviceGetRetiredPagesPendingStatus,
    "remapped_rows": lambda h: list(p.nvmlDeviceGetRemappedRows(h)),
    "pcie_gen": p.nvmlDeviceGetCurrPcieLinkGeneration,
    "pcie_gen_max": p.nvmlDeviceGetMaxPcieLinkGeneration,
    "pcie_width": p.nvmlDeviceGetCurrPcieLinkWidth,
    "pcie_width_max": p.nvmlDeviceGetMaxPcieLinkWidth,
    "pcie_replay": p.nvmlDeviceGetPcieReplayCounter,
    "processes": procs,
    "mig_mode": p.nvmlDeviceGetMigMode,
    "supported_events": p.nvmlDeviceGetSupportedEventTypes,
    "temperature": lambda h: p.nvmlDeviceGetTemperature(h, p.NVML_TEMPERATURE_GPU),
    "recovery_action": recovery_action,
}

def health_all(h):
    return {key: attempt(fn, h) for key, fn in HEALTH.items()}

def serve():
    # Interactive: each stdin line is a command; the answer is one RESULT line.
    p.nvmlInit()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "health":
            emit([health_all(h) for h in handles()])
        elif cmd == "basic":
            emit([query_all(h) for h in handles()])
        else:
            emit({"unknown": cmd})
"""

# Which stand-in fields each HEALTH query reads.
QUERY_FIELDS = {
    "clocks_event_reasons": ("clocks_event_reasons",),
    "clocks_throttle_reasons": ("clocks_event_reasons",),
    "clock_sm": ("clock_sm",),
    "clock_mem": ("clock_mem",),
    "clock_sm_max": ("clock_sm_max",),
    "clock_mem_max": ("clock_mem_max",),
    "pstate": ("pstate",),
    "fan_speed": ("fan_speed",),
    "temp_slowdown": ("temp_slowdown",),
    "temp_shutdown": ("temp_shutdown",),
    "ecc_mode": ("ecc_mode_current", "ecc_mode_pending"),
    "ecc_corrected_volatile": ("ecc_corrected_volatile",),
    "ecc_corrected_aggregate": ("ecc_corrected_aggregate",),
    "ecc_uncorrected_volatile": ("ecc_uncorrected_volatile",),
    "ecc_uncorrected_aggregate": ("ecc_uncorrected_aggregate",),
    "retired_sbe": ("retired_sbe",),
    "retired_dbe": ("retired_dbe",),
    "retired_pending": ("retired_pending",),
    "remapped_rows": ("remap_corr", "remap_unc", "remap_pending", "remap_failure"),
    "pcie_gen": ("pcie_gen",),
    "pcie_gen_max": ("pcie_gen_max",),
    "pcie_width": ("pcie_width",),
    "pcie_width_max": ("pcie_width_max",),
    "pcie_replay": ("pcie_replay",),
    "processes": ("processes",),
    "mig_mode": ("mig_current", "mig_pending"),
    "supported_events": ("supported_events",),
    "temperature": ("temperature",),
    "recovery_action": ("recovery_action",),
}
NOT_SUPPORTED = {"error": "NVMLError_NotSupported", "value": 3}
DBE = 1 << 40

# The defaults, written out: the specification values.py mirrors.
H100_HEALTH = {
    "clocks_event_reasons": {"ok": 0},
    "clocks_throttle_reasons": {"ok": 0},
    "clock_sm": {"ok": 1980},
    "clock_mem": {"ok": 2619},
    "clock_sm_max": {"ok": 1980},
    "clock_mem_max": {"ok": 2619},
    "pstate": {"ok": 0},
    "fan_speed": NOT_SUPPORTED,
    "temp_slowdown": {"ok": 87},
    "temp_shutdown": {"ok": 92},
    "ecc_mode": {"ok": [1, 1]},
    "ecc_corrected_volatile": {"ok": 3},
    "ecc_corrected_aggregate": {"ok": 12},
    "ecc_uncorrected_volatile": {"ok": 0},
    "ecc_uncorrected_aggregate": {"ok": 0},
    "retired_sbe": NOT_SUPPORTED,
    "retired_dbe": NOT_SUPPORTED,
    "retired_pending": NOT_SUPPORTED,
    "remapped_rows": {"ok": [2, 0, 0, 0]},
    "pcie_gen": {"ok": 5},
    "pcie_gen_max": {"ok": 5},
    "pcie_width": {"ok": 16},
    "pcie_width_max": {"ok": 16},
    "pcie_replay": {"ok": 0},
    "processes": {"ok": [[4242, 16106127360]]},
    "mig_mode": {"ok": [0, 0]},
    "supported_events": {"ok": 0x1F},
    "temperature": {"ok": 41},
    "recovery_action": NOT_SUPPORTED,  # driver 560 predates the field
}
L4_HEALTH = {
    **H100_HEALTH,
    "clocks_event_reasons": {"ok": 1},
    "clocks_throttle_reasons": {"ok": 1},
    "clock_sm": {"ok": 210},
    "clock_mem": {"ok": 6251},
    "clock_sm_max": {"ok": 2040},
    "clock_mem_max": {"ok": 6251},
    "pstate": {"ok": 8},
    "fan_speed": {"ok": 30},
    "temp_slowdown": {"ok": 88},
    "temp_shutdown": {"ok": 93},
    "ecc_corrected_volatile": {"ok": 0},
    "ecc_corrected_aggregate": {"ok": 0},
    "retired_sbe": {"ok": []},
    "retired_dbe": {"ok": []},
    "retired_pending": {"ok": 0},
    "remapped_rows": {"ok": [0, 0, 0, 0]},
    "pcie_gen": {"ok": 4},
    "pcie_gen_max": {"ok": 4},
    "processes": {"ok": []},
    "mig_mode": NOT_SUPPORTED,
    "temperature": {"ok": 55},
}


def expected_health(mirror, temperature: int) -> dict:
    """What HEALTH_PRELUDE reports for a values.FakeHealth mirror."""

    def ok(value):
        return NOT_SUPPORTED if value is None else {"ok": value}

    def pages(count, base):
        return ok(None if count is None else [0x10000 * (k + 1) + base for k in range(count)])

    m = mirror
    both = (m.ecc_mode_current, m.ecc_mode_pending)
    rows = (m.remap_corr, m.remap_unc, m.remap_pending, m.remap_failure)
    mig = (m.mig_current, m.mig_pending)
    return {
        "clocks_event_reasons": ok(m.clocks_event_reasons),
        "clocks_throttle_reasons": ok(m.clocks_event_reasons),
        "clock_sm": ok(m.clock_sm),
        "clock_mem": ok(m.clock_mem),
        "clock_sm_max": ok(m.clock_sm_max),
        "clock_mem_max": ok(m.clock_mem_max),
        "pstate": ok(m.pstate),
        "fan_speed": ok(m.fan_speed),
        "temp_slowdown": ok(m.temp_slowdown),
        "temp_shutdown": ok(m.temp_shutdown),
        "ecc_mode": ok(None if None in both else list(both)),
        "ecc_corrected_volatile": ok(m.ecc_corrected_volatile),
        "ecc_corrected_aggregate": ok(m.ecc_corrected_aggregate),
        "ecc_uncorrected_volatile": ok(m.ecc_uncorrected_volatile),
        "ecc_uncorrected_aggregate": ok(m.ecc_uncorrected_aggregate),
        "retired_sbe": pages(m.retired_sbe, 0),
        "retired_dbe": pages(m.retired_dbe, DBE),
        "retired_pending": ok(m.retired_pending),
        "remapped_rows": ok(None if None in rows else list(rows)),
        "pcie_gen": ok(m.pcie_gen),
        "pcie_gen_max": ok(m.pcie_gen_max),
        "pcie_width": ok(m.pcie_width),
        "pcie_width_max": ok(m.pcie_width_max),
        "pcie_replay": ok(m.pcie_replay),
        "processes": ok([list(proc) for proc in m.processes]),
        "mig_mode": ok(None if None in mig else list(mig)),
        "supported_events": ok(m.supported_events),
        "temperature": ok(temperature),
        "recovery_action": ok(m.recovery_action),
    }


class Child:
    """A child Python running HEALTH_PRELUDE's serve(): ask() sends a command."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = start_python(PRELUDE + HEALTH_PRELUDE + "serve()", env, stdin=True)

    def ask(self, command: str):
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line.startswith("RESULT "):
            self.proc.kill()
            _, stderr = self.proc.communicate()
            raise AssertionError(f"child answered {line!r}\n{stderr}")
        return json.loads(line[len("RESULT ") :])

    def close(self) -> str:
        """Stop the child; return its stderr."""
        try:
            _, stderr = self.proc.communicate(input="", timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        return stderr


@pytest.fixture
def child(fake):
    children: list[Child] = []

    def start(env: dict[str, str] | None = None) -> Child:
        children.append(Child(fake.env() if env is None else env))
        return children[-1]

    yield start
    for c in children:
        c.close()


def test_health_defaults_through_pynvml(fake) -> None:
    out = run_child(
        HEALTH_PRELUDE + "p.nvmlInit(); emit([health_all(h) for h in handles()])", fake.env()
    )
    assert out == [H100_HEALTH, L4_HEALTH]
    assert set(out[0]) == set(QUERY_FIELDS)
    symbols = set(fake.calls())
    assert set(build.OMITTABLE_SYMBOLS) - symbols == {
        "nvmlEventSetCreate",
        "nvmlDeviceRegisterEvents",
        "nvmlEventSetWait_v2",
        "nvmlEventSetFree",
    }
    assert "nvmlDeviceGetComputeRunningProcesses_v3" in symbols  # the struct pynvml uses


def test_values_health_mirror_matches_library(fake) -> None:
    assert expected_health(values.H100_HEALTH, values.H100.temperature_c) == H100_HEALTH
    assert expected_health(values.L4_HEALTH, values.L4.temperature_c) == L4_HEALTH
    assert values.TWO_GPUS_HEALTH == (values.H100_HEALTH, values.L4_HEALTH)
    # every overridable field but `lost` and the basic readings is mirrored
    mirrored = set(values.FakeHealth.__dataclass_fields__)
    assert mirrored == set(build.HEALTH_FIELDS) - {"lost", "temperature", "memory_used"}


def test_eight_gpus_scenario_matches_values(fake) -> None:
    fake.set_scenario("eight_gpus")
    out = run_child(
        HEALTH_PRELUDE
        + "p.nvmlInit(); hs = handles()\n"
        + "emit({'basic': [query_all(h) for h in hs], 'health': [health_all(h) for h in hs]})",
        fake.env(),
    )
    assert len(values.EIGHT_GPUS) == len(values.EIGHT_GPUS_HEALTH) == 8
    assert len(out["basic"]) == 8
    pairs = zip(values.EIGHT_GPUS, values.EIGHT_GPUS_HEALTH, strict=True)
    for i, (gpu, health) in enumerate(pairs):
        spec = {
            "name": gpu.name,
            "uuid": gpu.uuid,
            "total": gpu.memory_total,
            "used": gpu.memory_used,
            "temperature": gpu.temperature_c,
            "power": gpu.power_mw,
            "power_limit": gpu.power_limit_mw,
            "utilization": [gpu.util_gpu, gpu.util_memory],
        }
        assert out["basic"][i] == expected_device(spec, i)
        assert out["health"][i] == expected_health(health, gpu.temperature_c)
    assert out["basic"][7]["uuid"] == {"ok": "GPU-88888888-0000-0000-0000-000000000007"}
    assert out["basic"][7]["temperature"] == {"ok": 47}
    assert out["basic"][7]["power"] == {"ok": 275000}
    assert out["health"][7]["processes"] == {"ok": [[4249, 16106127360]]}


def test_every_health_field_can_be_made_unsupported_live(fake, child) -> None:
    c = child()
    assert c.ask("health") == [H100_HEALTH, L4_HEALTH]
    for field in build.HEALTH_FIELDS:
        if field in ("lost", "memory_used"):  # memory_used: a basic reading (test below)
            continue
        fake.reset_health()
        fake.set_health(1, **{field: build.UNSUPPORTED})
        gpu0, gpu1 = c.ask("health")
        assert gpu0 == H100_HEALTH, field  # the other GPU is untouched
        failing = {key for key, fields in QUERY_FIELDS.items() if field in fields}
        assert failing, field
        for key, expected in L4_HEALTH.items():
            assert gpu1[key] == (NOT_SUPPORTED if key in failing else expected), (field, key)


def test_health_overrides_values_permission_star_and_reset(fake, child) -> None:
    c = child()
    fake.set_health(
        1,
        clocks_event_reasons=0x40 | 0x4,
        clock_sm=1005,
        pstate=2,
        temp_slowdown=80,
        ecc_uncorrected_volatile=7,
        retired_dbe=2,
        retired_pending=1,
        remap_unc=1,
        remap_pending=1,
        remap_failure=1,
        pcie_gen=1,
        pcie_width=4,
        pcie_replay=99,
        mig_current=1,
        mig_pending=0,
        temperature=78,
    )
    fake.set_health("*", fan_speed=build.NO_PERMISSION)
    fake.set_processes(1, [(os.getpid(), None), (77, 1024)])
    gpu0, gpu1 = c.ask("health")
    no_permission = err("NoPermission", 4)
    assert gpu0 == {**H100_HEALTH, "fan_speed": no_permission}
    assert gpu1 == {
        **L4_HEALTH,
        "clocks_event_reasons": {"ok": 0x44},
        "clocks_throttle_reasons": {"ok": 0x44},
        "clock_sm": {"ok": 1005},
        "pstate": {"ok": 2},
        "fan_speed": no_permission,
        "temp_slowdown": {"ok": 80},
        "ecc_uncorrected_volatile": {"ok": 7},
        "retired_dbe": {"ok": [0x10000 + DBE, 0x20000 + DBE]},
        "retired_pending": {"ok": 1},
        "remapped_rows": {"ok": [0, 1, 1, 1]},
        "pcie_gen": {"ok": 1},
        "pcie_width": {"ok": 4},
        "pcie_replay": {"ok": 99},
        "mig_mode": {"ok": [1, 0]},
        "processes": {"ok": [[os.getpid(), None], [77, 1024]]},
        "temperature": {"ok": 78},
    }
    # later lines win; an empty process list; back to defaults
    fake.set_health(1, clock_sm=1500)
    fake.set_processes(0, [])
    gpu0, gpu1 = c.ask("health")
    assert gpu1["clock_sm"] == {"ok": 1500}
    assert gpu0["processes"] == {"ok": []}
    fake.reset_health()
    assert c.ask("health") == [H100_HEALTH, L4_HEALTH]


def test_recovery_action_field_through_pynvml(fake, child) -> None:
    """nvmlDeviceGetFieldValues: field 230 answers per GPU, set live; other fields and
    the default (a driver older than the field) answer NOT_SUPPORTED in nvmlReturn."""
    c = child()
    gpu0, gpu1 = c.ask("health")
    assert gpu0["recovery_action"] == gpu1["recovery_action"] == NOT_SUPPORTED
    for action in range(8):  # NONE .. SYSTEM_REBOOT
        fake.set_health(1, recovery_action=action)
        gpu0, gpu1 = c.ask("health")
        assert gpu1["recovery_action"] == {"ok": action}
        assert gpu0["recovery_action"] == NOT_SUPPORTED
    fake.set_health(1, recovery_action=build.NO_PERMISSION)
    assert c.ask("health")[1]["recovery_action"] == err("NoPermission", 4)
    out = run_child(
        "p.nvmlInit(); h = p.nvmlDeviceGetHandleByIndex(1)\n"
        "vs = p.nvmlDeviceGetFieldValues(h, [p.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION,"
        " p.NVML_FI_DEV_RESET_STATUS])\n"
        "emit([[v.fieldId, v.nvmlReturn] for v in vs])",
        fake.env(),
    )
    assert out == [[230, 4], [226, 3]]


def test_lost_gpu_applies_to_health_calls_and_recovers(fake, child) -> None:
    c = child()
    lost_health = {key: err("GpuIsLost", 15) for key in QUERY_FIELDS}
    lost_basic = {key: err("GpuIsLost", 15) for key in PER_DEVICE}
    fake.set_scenario("gpu_lost")
    assert c.ask("health") == [H100_HEALTH, lost_health]
    fake.set_scenario("two_gpus")
    assert c.ask("health") == [H100_HEALTH, L4_HEALTH]
    # per GPU, through the health file: every per-device query, old and new
    fake.set_health(0, lost=1)
    assert c.ask("health") == [lost_health, L4_HEALTH]
    basic0, basic1 = c.ask("basic")
    assert basic0 == {**lost_basic, "index": {"ok": 0}}
    assert basic1 == expected_device(L4, 1)
    fake.set_health(0, lost=0)
    assert c.ask("health") == [H100_HEALTH, L4_HEALTH]
    assert c.ask("basic")[0] == expected_device(H100, 0)


def test_memory_used_follows_the_override_live(fake, child) -> None:
    c = child()
    assert c.ask("basic") == [expected_device(H100, 0), expected_device(L4, 1)]
    fake.set_memory_used(0, 30 * 2**30)
    basic0, basic1 = c.ask("basic")
    assert basic0 == expected_device({**H100, "used": 30 * 2**30}, 0)  # v1 and v2, free too
    assert basic1 == expected_device(L4, 1)  # the other GPU is untouched
    fake.set_memory_used("*", 2**30)
    assert c.ask("basic") == [
        expected_device({**H100, "used": 2**30}, 0),
        expected_device({**L4, "used": 2**30}, 1),
    ]
    fake.set_memory_used(1, 10 * L4["total"])  # never more than the board has
    assert c.ask("basic")[1] == expected_device({**L4, "used": L4["total"]}, 1)
    fake.set_health(1, memory_used=build.UNSUPPORTED)
    basic1 = c.ask("basic")[1]
    assert basic1["memory_v1"] == basic1["memory_v2"] == err("NotSupported", 3)
    assert basic1["name"] == {"ok": L4["name"]}
    fake.reset_health()
    assert c.ask("basic") == [expected_device(H100, 0), expected_device(L4, 1)]


def test_eight_gpus_one_lost(fake, child) -> None:
    fake.set_scenario("eight_gpus")
    fake.set_health(5, lost=1)
    c = child()
    answers = c.ask("health")
    assert [a["clock_sm"] for a in answers] == [{"ok": 1980}] * 5 + [err("GpuIsLost", 15)] + [
        {"ok": 1980}
    ] * 2


def test_health_argument_errors(fake) -> None:
    out = run_child(
        """
        p.nvmlInit()
        h0 = handles()[0]
        ecc = p._nvmlGetFunctionPointer("nvmlDeviceGetTotalEccErrors")
        procs = p._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses_v3")
        count = ctypes.c_uint(0)
        emit({
            "clock_graphics": attempt(p.nvmlDeviceGetClockInfo, h0, p.NVML_CLOCK_GRAPHICS),
            "clock_video": attempt(p.nvmlDeviceGetClockInfo, h0, p.NVML_CLOCK_VIDEO),
            "threshold_gpu_max": attempt(p.nvmlDeviceGetTemperatureThreshold, h0,
                                         p.NVML_TEMPERATURE_THRESHOLD_GPU_MAX),
            "threshold_8": attempt(p.nvmlDeviceGetTemperatureThreshold, h0, 8),
            "ecc_type_2": attempt(p.nvmlDeviceGetTotalEccErrors, h0, 2, 0),
            "ecc_null": ecc(h0, 0, 0, None),
            "procs_size": [procs(h0, ctypes.byref(count), None), count.value],
            "retired_cause_2": attempt(p.nvmlDeviceGetRetiredPages, handles()[1], 2),
        })
        """,
        fake.env(),
    )
    assert out == {
        "clock_graphics": {"ok": 1980},
        "clock_video": err("InvalidArgument", 2),
        "threshold_gpu_max": NOT_SUPPORTED,
        "threshold_8": err("InvalidArgument", 2),
        "ecc_type_2": err("InvalidArgument", 2),
        "ecc_null": 2,
        "procs_size": [7, 1],  # INSUFFICIENT_SIZE and the count, as real NVML
        "retired_cause_2": err("InvalidArgument", 2),
    }


def test_malformed_health_file_fails_device_queries(fake) -> None:
    assert fake.health is not None
    fake.health.write_text("0 no_such_field 1\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PRELUDE + "p.nvmlInit(); emit({'count': p.nvmlDeviceGetCount(),"
            " 'fan': attempt(p.nvmlDeviceGetFanSpeed, handles()[1])})",
        ],
        env=fake.env(),
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert result_of(proc.stdout, proc.stderr) == {"count": 2, "fan": err("Unknown", 999)}
    assert "line 1: unknown field" in proc.stderr


def test_set_health_rejects_bad_input(fake) -> None:
    with pytest.raises(ValueError, match="unknown"):
        fake.set_health(0, no_such_field=1)
    with pytest.raises(ValueError, match="non-negative"):
        fake.set_health(0, clock_sm=-1)
    with pytest.raises(ValueError, match="GPU"):
        fake.set_health(8, clock_sm=1)
    with pytest.raises(ValueError, match="set_processes"):
        fake.set_health(0, processes=3)
    assert fake.health is not None and not fake.health.exists()


# ---- builds without symbols -------------------------------------------------------

SYMBOL_PROBE = """
lib = ctypes.CDLL("libnvidia-ml.so.1")
emit({name: hasattr(lib, name) for name in NAMES})
"""


def test_default_build_exports_every_omittable_symbol(lib_dir: Path) -> None:
    code = f"NAMES = {list(build.OMITTABLE_SYMBOLS)!r}\n" + SYMBOL_PROBE
    out = run_child(code, build.fake_nvml_env(lib_dir))
    assert out == dict.fromkeys(build.OMITTABLE_SYMBOLS, True)


def test_build_without_every_health_symbol(tmp_path: Path) -> None:
    out_dir = build.build_fake_nvml(tmp_path, omit=build.OMITTABLE_SYMBOLS)
    assert out_dir.parent == tmp_path and out_dir.name.startswith("without-")
    code = f"NAMES = {list(build.OMITTABLE_SYMBOLS)!r}\n" + HEALTH_PRELUDE
    code += """
lib = ctypes.CDLL("libnvidia-ml.so.1")
exported = {name: hasattr(lib, name) for name in NAMES}
p.nvmlInit()
hs = handles()
try:
    p.nvmlDeviceGetComputeRunningProcesses(hs[0])
    mismatch = False
except p.NVMLLibraryMismatchError:  # pynvml's wrapper for the unversioned name
    mismatch = True
HEALTH["processes"] = p.nvmlDeviceGetComputeRunningProcesses_v3
health = health_all(hs[0])
health["processes_mismatch"] = mismatch
emit({"exported": exported, "health": health, "name": p.nvmlDeviceGetName(hs[0]),
      "event_set": attempt(p.nvmlEventSetCreate)})
"""
    out = run_child(code, build.fake_nvml_env(out_dir))
    assert out["exported"] == dict.fromkeys(build.OMITTABLE_SYMBOLS, False)
    not_found = err("FunctionNotFound", 13)
    expected = dict.fromkeys(QUERY_FIELDS, not_found)
    expected["temperature"] = {"ok": 41}  # not omittable: older than every driver here
    expected["processes_mismatch"] = True
    assert out["health"] == expected
    assert out["name"] == "NVIDIA H100 80GB HBM3"
    assert out["event_set"] == not_found


def test_build_without_event_reasons_keeps_throttle_reasons(tmp_path: Path) -> None:
    omit = ["nvmlDeviceGetCurrentClocksEventReasons"]
    out_dir = build.build_fake_nvml(tmp_path / "libs", omit=omit)
    default_dir = build.build_fake_nvml(tmp_path / "libs")
    assert out_dir != default_dir and out_dir.parent == default_dir
    assert build.build_fake_nvml(tmp_path / "libs", omit=omit) == out_dir  # one dir per set
    out = run_child(
        HEALTH_PRELUDE
        + "p.nvmlInit(); h = handles()[1]\n"
        + "emit([attempt(p.nvmlDeviceGetCurrentClocksEventReasons, h),"
        + " attempt(p.nvmlDeviceGetCurrentClocksThrottleReasons, h)])",
        build.fake_nvml_env(out_dir),
    )
    assert out == [err("FunctionNotFound", 13), {"ok": 1}]
    with pytest.raises(ValueError, match="cannot omit"):
        build.build_fake_nvml(tmp_path, omit=["nvmlDeviceGetName"])


# ---- XID events -------------------------------------------------------------------

EVENT_CHILD = """
p.nvmlInit()
hs = handles()
es = p.nvmlEventSetCreate()
for h in hs:
    p.nvmlDeviceRegisterEvents(h, p.nvmlEventTypeXidCriticalError, es)
t0 = time.monotonic()
timeout = attempt(p.nvmlEventSetWait_v2, es, 150)
waited = time.monotonic() - t0
print("READY", flush=True)
got = []
for _ in range(N):
    d = p.nvmlEventSetWait_v2(es, 10000)
    got.append([p.nvmlDeviceGetIndex(d.device), d.eventType, d.eventData,
                d.gpuInstanceId, d.computeInstanceId])
emit({"timeout": timeout, "waited": waited, "got": got,
      "after": attempt(p.nvmlEventSetWait_v2, es, 0),
      "free": attempt(p.nvmlEventSetFree, es), "free_again": attempt(p.nvmlEventSetFree, es)})
"""


def _start(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return start_python(PRELUDE + code, env)


def _finish(proc: subprocess.Popen[str]) -> dict:
    return finished(proc, 20)


def test_injected_xid_reaches_every_waiting_process(fake) -> None:
    fake.inject_xid(0, 31)  # before any set exists: never delivered
    procs = [_start("N = 2\n" + EVENT_CHILD, fake.env()) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "READY\n"
        fake.inject_xid(1, 79)
        fake.inject_xid(0, 48)
    finally:
        outs = [_finish(proc) for proc in procs]
    for out in outs:
        assert out["timeout"] == err("Timeout", 10)
        assert 0.14 <= out["waited"] < 5
        assert out["got"] == [
            [1, 0x8, 79, 0xFFFFFFFF, 0xFFFFFFFF],
            [0, 0x8, 48, 0xFFFFFFFF, 0xFFFFFFFF],
        ]
        assert out["after"] == err("Timeout", 10)
        assert out["free"] == {"ok": None}
        assert out["free_again"] == err("InvalidArgument", 2)


def test_xid_only_for_registered_gpus_and_supported_types(fake) -> None:
    fake.set_health(1, supported_events=0x7)  # no XID bit on GPU 1
    out = run_child(
        """
        p.nvmlInit()
        h0, h1 = handles()
        es = p.nvmlEventSetCreate()
        reg1 = attempt(p.nvmlDeviceRegisterEvents, h1, p.nvmlEventTypeXidCriticalError, es)
        p.nvmlDeviceRegisterEvents(h0, p.nvmlEventTypeXidCriticalError, es)
        with open(os.environ["FAKE_NVML_EVENTS"], "a") as f:
            f.write("1 79\\n0 13\\n")
        first = p.nvmlEventSetWait_v2(es, 2000)
        emit({"reg1": reg1, "first": [p.nvmlDeviceGetIndex(first.device), first.eventData],
              "next": attempt(p.nvmlEventSetWait_v2, es, 50)})
        """,
        fake.env(),
    )
    assert out == {
        "reg1": NOT_SUPPORTED,
        "first": [0, 13],  # GPU 1's XID went to nobody
        "next": err("Timeout", 10),
    }


def test_event_calls_on_lost_and_unsupported_gpus(fake) -> None:
    fake.set_health(0, supported_events=build.UNSUPPORTED)
    fake.set_health(1, lost=1)
    out = run_child(
        """
        p.nvmlInit()
        h0, h1 = handles()
        es = p.nvmlEventSetCreate()
        x = p.nvmlEventTypeXidCriticalError
        emit({"supported0": attempt(p.nvmlDeviceGetSupportedEventTypes, h0),
              "register0": attempt(p.nvmlDeviceRegisterEvents, h0, x, es),
              "supported1": attempt(p.nvmlDeviceGetSupportedEventTypes, h1),
              "register1": attempt(p.nvmlDeviceRegisterEvents, h1, x, es),
              "wait": attempt(p.nvmlEventSetWait_v2, es, 20),
              "free": attempt(p.nvmlEventSetFree, es)})
        """,
        fake.env(),
    )
    assert out == {
        "supported0": NOT_SUPPORTED,
        "register0": NOT_SUPPORTED,
        "supported1": err("GpuIsLost", 15),
        "register1": err("GpuIsLost", 15),
        "wait": err("Timeout", 10),
        "free": {"ok": None},
    }
