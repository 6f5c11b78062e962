"""Sampler threads stay real OS threads when gevent has monkey-patched the process."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.processes import ROOT
from worker.realthreads import RealEvent, gevent_patched

# Runs in a fresh interpreter: patching this one would change every later test.
UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import json, threading
import gevent
from worker.realthreads import gevent_patched
from worker.snapshot import SourceSampler

real_ident = monkey.get_original("_thread", "get_ident")
hub_thread = real_ident()
gate = monkey.get_original("_thread", "allocate_lock")()
gate.acquire()
seen = {}

def read():
    if "thread" not in seen:
        seen["thread"] = real_ident()
        return "first"
    gate.acquire()  # blocks this OS thread for good; the hub must not notice
    return "never"

patched_thread = threading.Thread(target=lambda: seen.setdefault("patched", real_ident()))
patched_thread.start()
patched_thread.join()
sampler = SourceSampler("nvml", read, interval=0.01, timeout=0.1, stale_after=60)
sampler.start()
answered = sampler.wait_first_answer(5)
ticks = 0
while sampler.view().status != "stale" and ticks < 500:
    gevent.sleep(0.01)  # other greenlets (requests) keep running meanwhile
    ticks += 1
print(json.dumps({
    "patched": gevent_patched(),
    "patched_thread_on_hub_thread": seen["patched"] == hub_thread,
    "answered": answered,
    "sampler_on_hub_thread": seen.get("thread") == hub_thread,
    "status": sampler.view().status,
}))
"""


def test_sampler_reads_in_a_real_thread_under_gevent() -> None:
    result = subprocess.run(
        [sys.executable, "-c", UNDER_GEVENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["patched"] is True  # the check ran under gevent's patches
    assert outcome["patched_thread_on_hub_thread"] is True  # threading.Thread: a greenlet
    assert outcome["answered"] is True
    assert outcome["sampler_on_hub_thread"] is False
    assert outcome["status"] == "stale"  # seen stale while its read is blocked


def test_real_event_without_gevent() -> None:
    assert not gevent_patched()
    event = RealEvent()
    assert not event.wait(0.01) and not event.is_set()
    event.set()
    event.set()  # setting twice is harmless
    assert event.wait(0) and event.wait(5) and event.is_set()
