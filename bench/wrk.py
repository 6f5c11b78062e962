"""/gpu-check against the same server's /healthz, measured with wrk (a C load generator).

The Python load generator shares the machine's two cores with the server and spends
more CPU per byte it reads than the server does writing: against a 4.5 KB /gpu-check
answer and a 60 B /healthz one, its own cost would decide the ratio. wrk reads at a
fraction of that cost, so the ratio is the server's. Used when `wrk` is on PATH
(Debian: apt-get install wrk); the same flags as the figures in the issue (-t2 -c32).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

POST_SCRIPT = (
    'wrk.method = "POST"\n'
    'wrk.body = \'{"agent_id":"bench-agent"}\'\n'
    'wrk.headers["Content-Type"] = "application/json"\n'
)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class WrkRun:
    rps: float
    p99: float  # seconds
    non_2xx: int
    errors: int


def available() -> bool:
    return shutil.which("wrk") is not None


def parse(output: str) -> WrkRun:
    """Requests/s, p99 latency, non-2xx answers and socket errors from `wrk --latency`."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if p99 is None:
        raise ValueError("wrk printed no 99% latency (run it with --latency)")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkRun(
        rps,
        float(p99.group(1)) * _UNITS[p99.group(2)],
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run(url: str, seconds: float, connections: int, script: Path | None = None) -> WrkRun:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    return parse(output)


def compare(
    base_url: str, work: Path, rounds: int, seconds: float, connections: int
) -> list[tuple[WrkRun, WrkRun]]:
    """`rounds` pairs of (/healthz, /gpu-check) runs, the order alternating each round."""
    script = work / "gpu-check.lua"
    script.write_text(POST_SCRIPT)
    pairs = []
    for number in range(rounds):
        runs = {}
        order = ("healthz", "gpu-check") if number % 2 == 0 else ("gpu-check", "healthz")
        for target in order:
            if target == "healthz":
                runs[target] = run(f"{base_url}/healthz", seconds, connections)
            else:
                runs[target] = run(f"{base_url}/gpu-check", seconds, connections, script)
        pairs.append((runs["healthz"], runs["gpu-check"]))
    return pairs


def ratios(pairs: list[tuple[WrkRun, WrkRun]]) -> tuple[float, float]:
    """Median /gpu-check over /healthz: throughput and p99."""
    rps = statistics.median(job.rps / health.rps for health, job in pairs)
    p99 = statistics.median(job.p99 / health.p99 for health, job in pairs)
    return rps, p99
