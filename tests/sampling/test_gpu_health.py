"""read_health through the real pynvml against the NVML stand-in (tests/standins/nvml)."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from tests.sampling.support import run_child
from tests.standins.nvml.build import (
    HEALTH_FIELDS,
    NO_PERMISSION,
    OMITTABLE_SYMBOLS,
    UNSUPPORTED,
    FakeNvml,
    build_fake_nvml,
)
from worker.sampling import gpu_health

READ_ALL = """
gh = gpu_health
pynvml.nvmlInit()
out = []
for i in range(pynvml.nvmlDeviceGetCount()):
    h = pynvml.nvmlDeviceGetHandleByIndex(i)
    try:
        out.append(gh.read_health(h, proc_root=PROC_ROOT).as_dict())
    except gh.GpuLostError as e:
        out.append({"lost": type(e).__name__, "is_nvml_error": isinstance(e, pynvml.NVMLError)})
    except pynvml.NVMLError as e:
        out.append({"nvml_error": type(e).__name__})
emit(out)
"""

H100 = {
    "throttle_reasons": [],
    "throttle_reasons_mask": 0,
    "clock_sm_mhz": 1980,
    "clock_sm_max_mhz": 1980,
    "clock_mem_mhz": 2619,
    "clock_mem_max_mhz": 2619,
    "pstate": 0,
    "fan_speed_pct": None,  # passively cooled board: NOT_SUPPORTED
    "temperature_c": 41,
    "temperature_slowdown_c": 87,
    "temperature_shutdown_c": 92,
    "temperature_margin_c": 46,
    "ecc_enabled": True,
    "ecc_enabled_pending": True,
    "ecc_corrected_volatile_count": 3,
    "ecc_corrected_aggregate_count": 12,
    "ecc_uncorrected_volatile_count": 0,
    "ecc_uncorrected_aggregate_count": 0,
    "retired_pages_sbe_count": None,
    "retired_pages_dbe_count": None,
    "retired_pages_pending": None,
    "remapped_rows_correctable_count": 2,
    "remapped_rows_uncorrectable_count": 0,
    "remapped_rows_pending": False,
    "remapped_rows_failure": False,
    "pcie_link_gen": 5,
    "pcie_link_gen_max": 5,
    "pcie_link_width": 16,
    "pcie_link_width_max": 16,
    "pcie_replay_count": 0,
    "processes": [
        {"pid": 4242, "used_memory_bytes": 16106127360, "used_memory_mb": 15360.0, "name": "ollama"}
    ],
    "mig_enabled": False,
    "mig_enabled_pending": False,
    "recovery_action_driver": None,  # driver 560: no recovery-action field
}
L4 = {
    **H100,
    "throttle_reasons": ["idle"],
    "throttle_reasons_mask": 1,
    "clock_sm_mhz": 210,
    "clock_sm_max_mhz": 2040,
    "clock_mem_mhz": 6251,
    "clock_mem_max_mhz": 6251,
    "pstate": 8,
    "fan_speed_pct": 30,
    "temperature_c": 55,
    "temperature_slowdown_c": 88,
    "temperature_shutdown_c": 93,
    "temperature_margin_c": 33,
    "ecc_corrected_volatile_count": 0,
    "ecc_corrected_aggregate_count": 0,
    "retired_pages_sbe_count": 0,
    "retired_pages_dbe_count": 0,
    "retired_pages_pending": False,
    "remapped_rows_correctable_count": 0,
    "pcie_link_gen": 4,
    "pcie_link_gen_max": 4,
    "processes": [],
    "mig_enabled": None,
    "mig_enabled_pending": None,
}
ALL_NONE = dict.fromkeys(H100, None)


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    """A stand-in /proc where PID 4242 is `ollama` and no other PID is visible."""
    root = tmp_path / "proc"
    (root / "4242").mkdir(parents=True)
    (root / "4242" / "comm").write_text("ollama\n")
    return root


def read_all(env: dict[str, str], proc_root: Path) -> list[dict]:
    prelude = f"PROC_ROOT = __import__('pathlib').Path({str(proc_root)!r})\n"
    return run_child(prelude + READ_ALL, env)


def test_throttle_reason_bits_are_nvmls() -> None:
    names = {name: bit for bit, name in gpu_health.THROTTLE_REASONS}
    assert names == {
        "power_cap": pynvml.nvmlClocksEventReasonSwPowerCap,
        "sw_thermal_slowdown": pynvml.nvmlClocksEventReasonSwThermalSlowdown,
        "hw_thermal_slowdown": pynvml.nvmlClocksEventReasonHwThermalSlowdown,
        "hw_power_brake": pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown,
        "hw_slowdown": pynvml.nvmlClocksEventReasonHwSlowdown,
        "sync_boost": pynvml.nvmlClocksEventReasonSyncBoost,
        "idle": pynvml.nvmlClocksEventReasonGpuIdle,
        "applications_clocks_setting": pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
    }
    assert names["hw_power_brake"] == pynvml.nvmlClocksThrottleReasonHwPowerBrakeSlowdown
    assert gpu_health.decode_throttle_reasons(0) == ()
    assert gpu_health.decode_throttle_reasons(0x44) == ("power_cap", "hw_thermal_slowdown")
    every = tuple(name for _, name in gpu_health.THROTTLE_REASONS)
    assert gpu_health.decode_throttle_reasons(0xFF) == every
    assert gpu_health.decode_throttle_reasons(0x100) == ()  # display clock setting: not reported


def test_read_health_defaults(fake_nvml: FakeNvml, proc_root: Path) -> None:
    assert read_all(fake_nvml.env(), proc_root) == [H100, L4]
    calls = set(fake_nvml.calls())
    assert "nvmlDeviceGetCurrentClocksEventReasons" in calls
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in calls  # only as a fallback


def test_read_health_follows_live_values(fake_nvml: FakeNvml, proc_root: Path) -> None:
    fake_nvml.set_health(
        0,
        clocks_event_reasons=0x04 | 0x40 | 0x80,
        temperature=84,
        ecc_uncorrected_volatile=2,
        remap_pending=1,
        pcie_gen=3,
        pcie_width=8,
        pcie_replay=12,
        pstate=32,  # NVML_PSTATE_UNKNOWN
    )
    fake_nvml.set_processes(0, [(4242, 1048576), (999999, None)])
    gpu0, gpu1 = read_all(fake_nvml.env(), proc_root)
    assert gpu1 == L4
    assert gpu0 == {
        **H100,
        "throttle_reasons": ["power_cap", "hw_thermal_slowdown", "hw_power_brake"],
        "throttle_reasons_mask": 0xC4,
        "temperature_c": 84,
        "temperature_margin_c": 3,
        "ecc_uncorrected_volatile_count": 2,
        "remapped_rows_pending": True,
        "pcie_link_gen": 3,
        "pcie_link_width": 8,
        "pcie_replay_count": 12,
        "pstate": None,
        "processes": [
            {"pid": 4242, "used_memory_bytes": 1048576, "used_memory_mb": 1.0, "name": "ollama"},
            {
                "pid": 999999,
                "used_memory_bytes": None,
                "used_memory_mb": None,
                "name": None,
            },  # not visible, no memory
        ],
    }


def test_driver_recovery_action_from_the_field_value(fake_nvml: FakeNvml, proc_root: Path) -> None:
    """NVML_FI_DEV_GET_GPU_RECOVERY_ACTION through nvmlDeviceGetFieldValues, per GPU."""
    fake_nvml.set_health(0, recovery_action=pynvml.NVML_GPU_RECOVERY_ACTION_GPU_RESET)
    fake_nvml.set_health(1, recovery_action=pynvml.NVML_GPU_RECOVERY_ACTION_NONE)
    gpu0, gpu1 = read_all(fake_nvml.env(), proc_root)
    assert gpu0 == {**H100, "recovery_action_driver": 1}
    assert gpu1 == {**L4, "recovery_action_driver": 0}
    fake_nvml.set_health(1, recovery_action=NO_PERMISSION)  # the field's own nvmlReturn
    assert read_all(fake_nvml.env(), proc_root)[1] == L4
    assert "nvmlDeviceGetFieldValues" in fake_nvml.calls()


def test_process_name_from_real_proc(fake_nvml: FakeNvml) -> None:
    out = run_child(
        """
        gh = gpu_health
        with open(os.environ["FAKE_NVML_HEALTH"], "a") as f:  # this child runs on GPU 1
            f.write(f"1 processes {os.getpid()}:536870912\\n")
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(1)
        emit({"processes": gh.read_health(h).as_dict()["processes"],
              "pid": os.getpid(), "comm": open("/proc/self/comm").read().strip()})
        """,
        fake_nvml.env(),
    )
    assert out["comm"]
    assert out["processes"] == [
        {
            "pid": out["pid"],
            "used_memory_bytes": 536870912,
            "used_memory_mb": 512.0,
            "name": out["comm"],
        }
    ]


def test_every_reading_unsupported_is_none(fake_nvml: FakeNvml, proc_root: Path) -> None:
    fake_nvml.set_health(1, **{f: UNSUPPORTED for f in HEALTH_FIELDS if f != "lost"})
    fake_nvml.set_health(0, clock_sm=NO_PERMISSION, ecc_mode_pending=NO_PERMISSION)
    gpu0, gpu1 = read_all(fake_nvml.env(), proc_root)
    assert gpu1 == ALL_NONE
    assert gpu0 == {
        **H100,
        "clock_sm_mhz": None,
        "ecc_enabled": None,  # one call reads both modes
        "ecc_enabled_pending": None,
    }


def test_driver_without_any_health_symbol(tmp_path: Path, proc_root: Path) -> None:
    lib = build_fake_nvml(tmp_path / "lib", omit=OMITTABLE_SYMBOLS)
    fake = FakeNvml.create(lib, tmp_path / "work")
    gpu0, gpu1 = read_all(fake.env(), proc_root)
    assert gpu0 == {**ALL_NONE, "temperature_c": 41}
    assert gpu1 == {**ALL_NONE, "temperature_c": 55}


def test_throttle_reasons_fall_back_to_the_older_call(tmp_path: Path, proc_root: Path) -> None:
    lib = build_fake_nvml(tmp_path / "lib", omit=["nvmlDeviceGetCurrentClocksEventReasons"])
    fake = FakeNvml.create(lib, tmp_path / "work")
    fake.set_health(0, clocks_event_reasons=0x20)
    gpu0, gpu1 = read_all(fake.env(), proc_root)
    assert gpu0["throttle_reasons"] == ["sw_thermal_slowdown"]
    assert gpu1["throttle_reasons"] == ["idle"]
    assert fake.calls().count("nvmlDeviceGetCurrentClocksThrottleReasons") == 2


def test_unsupported_current_call_does_not_fall_back(fake_nvml: FakeNvml, proc_root: Path) -> None:
    fake_nvml.set_health(1, clocks_event_reasons=UNSUPPORTED)
    _, gpu1 = read_all(fake_nvml.env(), proc_root)
    assert gpu1["throttle_reasons"] is None
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in fake_nvml.calls()


def test_lost_gpu_raises_gpu_lost_and_recovers(fake_nvml: FakeNvml, proc_root: Path) -> None:
    fake_nvml.set_scenario("gpu_lost")
    gpu0, gpu1 = read_all(fake_nvml.env(), proc_root)
    assert gpu0 == H100
    assert gpu1 == {"lost": "GpuLostError", "is_nvml_error": False}
    fake_nvml.set_scenario("two_gpus")
    fake_nvml.set_health(0, lost=1)
    gpu0, gpu1 = read_all(fake_nvml.env(), proc_root)
    assert gpu0 == {"lost": "GpuLostError", "is_nvml_error": False}
    assert gpu1 == L4
    fake_nvml.set_health(0, lost=0)
    assert read_all(fake_nvml.env(), proc_root) == [H100, L4]


def test_other_nvml_errors_propagate(fake_nvml: FakeNvml, proc_root: Path) -> None:
    assert fake_nvml.health is not None
    fake_nvml.health.write_text("1 clock_sm not-a-number\n")  # the stand-in answers 999
    assert read_all(fake_nvml.env(), proc_root) == [
        {"nvml_error": "NVMLError_Unknown"},
        {"nvml_error": "NVMLError_Unknown"},
    ]


def test_eight_gpus(fake_nvml: FakeNvml, proc_root: Path) -> None:
    fake_nvml.set_scenario("eight_gpus")
    fake_nvml.set_health(6, lost=1)
    out = read_all(fake_nvml.env(), proc_root)
    assert len(out) == 8
    assert [o.get("temperature_c") for o in out] == [40, 41, 42, 43, 44, 45, None, 47]
    assert out[6] == {"lost": "GpuLostError", "is_nvml_error": False}
    assert out[0]["processes"] == [
        {"pid": 4242, "used_memory_bytes": 16106127360, "used_memory_mb": 15360.0, "name": "ollama"}
    ]
    assert out[7]["processes"] == [
        {"pid": 4249, "used_memory_bytes": 16106127360, "used_memory_mb": 15360.0, "name": None}
    ]
