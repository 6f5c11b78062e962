"""bench/wrk.py reads wrk's report exactly (a sample of wrk 4.1's --latency output)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import wrk

SAMPLE = """Running 4s test @ http://127.0.0.1:40000/gpu-check
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.72ms   20.11ms 226.14ms   91.55%
    Req/Sec     1.07k   180.32     1.45k    71.25%
  Latency Distribution
     50%    8.87ms
     75%   13.21ms
     90%   25.48ms
     99%  107.73ms
  8533 requests in 4.01s, 37.24MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   2127.89
Transfer/sec:      9.29MB
"""


def test_parse_reads_throughput_p99_and_failures() -> None:
    run = wrk.parse(SAMPLE)
    assert run == wrk.WrkRun(rps=2127.89, p99=0.10773, non_2xx=5, errors=3)


def test_ratios_are_medians_of_paired_rounds() -> None:
    health = [wrk.WrkRun(1000, 0.010, 0, 0), wrk.WrkRun(2000, 0.020, 0, 0)]
    job = [wrk.WrkRun(900, 0.012, 0, 0), wrk.WrkRun(1000, 0.020, 0, 0)]
    rps, p99 = wrk.ratios(list(zip(health, job, strict=True)))
    assert (round(rps, 3), round(p99, 3)) == (0.7, 1.1)
