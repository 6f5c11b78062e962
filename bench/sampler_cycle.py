"""Benchmark: one sampler NVML cycle (read + health + XID stats + verdict, every GPU).

Times `GpuReader.read()`, the call the sampler's NVML thread makes each interval, on the
8-GPU stand-in (`eight_gpus`, tests/standins/nvml) through the real pynvml, in a child
process (the stand-in is found through LD_LIBRARY_PATH at start-up). The XID watcher runs
beside it as in the sampler. Also times the parts (read_health, verdict) and publishing
the report (as_json + json.dumps). Prints median and p99 per row and a [PASS]/[MISS] line
for the full cycle's p99 against the target; exits 1 on MISS.

    .venv/bin/python bench/sampler_cycle.py [--cycles 300] [--target-ms 50]
    .venv/bin/python bench/sampler_cycle.py --real     # the machine's own driver and GPUs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = {
    "cycle": "full cycle: GpuReader.read()",
    "health": "read_health, every GPU",
    "verdict": "verdict, every GPU",
    "publish": "as_json + json.dumps",
}


def child(cycles: int) -> None:
    """Runs with the NVML library to measure on LD_LIBRARY_PATH; prints one JSON line."""
    import pynvml

    from worker.sampling.gpu_health import read_health
    from worker.sampling.nvml import GpuReader
    from worker.sampling.verdict import verdict

    reader = GpuReader()
    report = reader.read()  # initialises NVML and starts the XID watcher
    for _ in range(5):
        reader.read()
    handles = [pynvml.nvmlDeviceGetHandleByIndex(gpu.index) for gpu in report.gpus]
    watcher = reader.xids
    timings: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(cycles):
        started = time.perf_counter()
        report = reader.read()
        timings["cycle"].append(time.perf_counter() - started)

        started = time.perf_counter()
        healths = [read_health(handle) for handle in handles]
        timings["health"].append(time.perf_counter() - started)

        started = time.perf_counter()
        for index, health in enumerate(healths):
            xids = None if watcher is None else watcher.stats(index)
            verdict(health, xids, False)
        timings["verdict"].append(time.perf_counter() - started)

        started = time.perf_counter()
        json.dumps(report.as_json())
        timings["publish"].append(time.perf_counter() - started)
    reader.close()
    info = {
        "gpus": len(report.gpus),
        "names": sorted({gpu.name or "?" for gpu in report.gpus}),
        "driver": report.driver_version,
        "verdicts": [gpu.verdict for gpu in report.gpus],
        "xid_registered": list(watcher.registered) if watcher is not None else [],
    }
    print("RESULT " + json.dumps({"info": info, "timings": timings}), flush=True)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def run_child(cycles: int, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--cycles", str(cycles)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"benchmark child failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--target-ms", type=float, default=50.0)
    parser.add_argument("--real", action="store_true", help="the real driver, not the stand-in")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.cycles)
        return 0

    with tempfile.TemporaryDirectory(prefix="sampler-cycle-") as tmp:
        if args.real:
            env = dict(os.environ)
            source = "the machine's NVIDIA driver"
        else:
            from tests.standins.nvml.build import build_fake_nvml, fake_nvml_env, set_scenario

            lib = build_fake_nvml(Path(tmp) / "lib")
            control = Path(tmp) / "scenario"
            set_scenario(control, "eight_gpus")
            # Health and events files as the live tests have them; no call log (a file
            # append per call is the stand-in's cost, not the sampler's).
            env = fake_nvml_env(
                lib, control=control, health=Path(tmp) / "health", events=Path(tmp) / "events"
            )
            source = "the NVML stand-in, eight_gpus"
        result = run_child(args.cycles, env)

    info, timings = result["info"], result["timings"]
    print(
        f"sampler NVML cycle on {source}: {info['gpus']} GPUs ({', '.join(info['names'])}),"
        f" driver {info['driver']}, {args.cycles} cycles, XID events on GPUs"
        f" {info['xid_registered'] or 'none'}; verdicts {info['verdicts']}"
    )
    print(f"{'what':<34} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for name, label in ROWS.items():
        values = [seconds * 1000 for seconds in timings[name]]
        print(
            f"{label:<34} {statistics.median(values):>10.2f}"
            f" {percentile(values, 0.99):>8.2f} {max(values):>8.2f}"
        )
    p99 = percentile([seconds * 1000 for seconds in timings["cycle"]], 0.99)
    held = p99 < args.target_ms
    verdict_word = "PASS" if held else "MISS"
    print(f"[{verdict_word}] full cycle p99 < {args.target_ms:g} ms: {p99:.2f} ms")
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(main())
