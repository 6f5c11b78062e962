"""XidWatcher through the real pynvml against the NVML stand-in, XIDs injected live."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers.child import finished, reaped, result_of, start_python
from tests.sampling.support import CHILD_PRELUDE, run_child
from tests.standins.nvml.build import UNSUPPORTED, FakeNvml, build_fake_nvml

WATCH_CHILD = """
xw = xid_watch
w = xw.XidWatcher()
w.start(interval_ms=50)
print("READY " + json.dumps(list(w.registered)), flush=True)
deadline = time.monotonic() + 15
while time.monotonic() < deadline and sum(s.count for s in w.all_stats().values()) < 3:
    time.sleep(0.02)
stats = {i: s.as_dict() for i, s in w.all_stats().items()}
w.close()
w.close()  # idempotent
emit({"stats": stats, "after_close": w.poll(10000),
      "nvml_after_close": attempt_count()})
"""

ATTEMPT_COUNT = """
def attempt_count():
    try:
        return pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as e:
        return type(e).__name__
"""


def test_watcher_thread_records_injected_xids(fake_nvml: FakeNvml) -> None:
    fake_nvml.inject_xid(0, 13)  # before the watcher: never seen
    with reaped(start_python(CHILD_PRELUDE + ATTEMPT_COUNT + WATCH_CHILD, fake_nvml.env())) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "READY [0, 1]\n", line
        before = time.time()
        fake_nvml.inject_xid(1, 79)
        fake_nvml.inject_xid(1, 13)
        fake_nvml.inject_xid(0, 48)
        out = finished(proc, 30)
        after = time.time()
    gpu0, gpu1 = out["stats"]["0"], out["stats"]["1"]
    assert before <= gpu1["xid_last_time_unix"] <= after
    assert {k: v for k, v in gpu1.items() if k != "xid_last_time_unix"} == {
        "xid_count": 2,
        "xid_last": 13,
        "xid_count_last_hour": 2,
        "xid_codes_since_start": [13, 79],
        "xid_codes_last_hour": [13, 79],
    }
    assert gpu0["xid_count"] == 1 and gpu0["xid_last"] == 48
    assert out["after_close"] == []
    assert out["nvml_after_close"] == "NVMLError_Uninitialized"  # init/shutdown balanced


def test_poll_returns_events_and_hour_window_follows_clock(fake_nvml: FakeNvml) -> None:
    out = run_child(
        """
        xw = xid_watch
        now = [1000.0]
        w = xw.XidWatcher(clock=lambda: now[0])
        t0 = time.monotonic()
        empty = w.poll(100)
        waited = time.monotonic() - t0
        with open(os.environ["FAKE_NVML_EVENTS"], "a") as f:
            f.write("1 31\\n1 94\\n")
        events = w.poll(5000)
        fresh = w.stats(1).as_dict()
        now[0] += 3601
        later = w.stats(1).as_dict()
        never = w.stats(0).as_dict()
        w.close()
        emit({"empty": empty, "waited": waited,
              "events": [[e.gpu_index, e.xid, e.wall_time] for e in events],
              "fresh": fresh, "later": later, "never": never})
        """,
        fake_nvml.env(),
    )
    assert out["empty"] == [] and 0.09 <= out["waited"] < 5
    assert out["events"] == [[1, 31, 1000.0], [1, 94, 1000.0]]  # both drained in one poll
    assert out["fresh"] == {
        "xid_count": 2,
        "xid_last": 94,
        "xid_last_time_unix": 1000.0,
        "xid_count_last_hour": 2,
        "xid_codes_since_start": [31, 94],
        "xid_codes_last_hour": [31, 94],
    }
    assert out["later"] == {**out["fresh"], "xid_count_last_hour": 0, "xid_codes_last_hour": []}
    assert out["never"] == {
        "xid_count": 0,
        "xid_last": None,
        "xid_last_time_unix": None,
        "xid_count_last_hour": 0,
        "xid_codes_since_start": [],
        "xid_codes_last_hour": [],
    }


UNSUPPORTED_CHILD = """
xw = xid_watch
w = xw.XidWatcher()
t0 = time.monotonic()
events = w.poll(80)
waited = time.monotonic() - t0
w.close()
emit({"registered": list(w.registered), "events": events, "waited": waited})
"""


def test_devices_without_events_are_skipped_not_errors(fake_nvml: FakeNvml) -> None:
    fake_nvml.set_health(0, supported_events=UNSUPPORTED)
    fake_nvml.set_health(1, lost=1)
    out = run_child(UNSUPPORTED_CHILD, fake_nvml.env())
    assert out["registered"] == []
    assert out["events"] == [] and 0.07 <= out["waited"] < 5  # sleeps instead of spinning

    fake_nvml.reset_health()
    fake_nvml.set_health(1, supported_events=0x3)  # no XID bit on GPU 1
    out = run_child(UNSUPPORTED_CHILD, fake_nvml.env())
    assert out["registered"] == [0]


def test_driver_without_event_symbols(tmp_path: Path) -> None:
    events = ["nvmlEventSetCreate", "nvmlEventSetWait_v2", "nvmlEventSetFree"]
    fake = FakeNvml.create(build_fake_nvml(tmp_path / "lib", omit=events), tmp_path / "work")
    out = run_child(UNSUPPORTED_CHILD, fake.env())
    assert out["registered"] == [] and out["events"] == []


SHARED_INIT_CHILD = """
pynvml.nvmlInit()  # the caller's own initialisation, as the sampler's GPU reader does
w = xid_watch.XidWatcher(owns_nvml=False)
w.start(interval_ms=50)
print("READY", flush=True)
sys.stdin.readline()  # the parent switched the driver away and back
deadline = time.monotonic() + 15
while time.monotonic() < deadline and w.stats(1).count < 1:
    time.sleep(0.02)
stats = w.stats(1).as_dict()
w.close()
emit({"stats": stats, "count_after_close": pynvml.nvmlDeviceGetCount()})
"""


def test_a_watcher_on_the_callers_init_survives_the_driver_going_away(
    fake_nvml: FakeNvml,
) -> None:
    with reaped(
        start_python(CHILD_PRELUDE + SHARED_INIT_CHILD, fake_nvml.env(), stdin=True)
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "READY\n"
        fake_nvml.set_scenario("driver_not_loaded")
        waits_before = fake_nvml.calls().count("nvmlEventSetWait_v2")
        time.sleep(1.0)
        waits_down = fake_nvml.calls().count("nvmlEventSetWait_v2") - waits_before
        fake_nvml.set_scenario("two_gpus")
        fake_nvml.inject_xid(1, 79)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    out = result_of(stdout, stderr)
    # Failing waits sleep out their interval (50 ms): about 20 in a second, never a spin.
    assert 1 <= waits_down <= 60, waits_down
    assert stderr.count("XID event wait failed") == 1  # logged when it starts, not per wait
    assert out["stats"]["xid_count"] == 1 and out["stats"]["xid_last"] == 79
    assert out["count_after_close"] == 2  # close() left the caller's NVML initialised
    assert fake_nvml.calls().count("nvmlInitWithFlags") == 1
    assert "nvmlShutdown" not in fake_nvml.calls()
