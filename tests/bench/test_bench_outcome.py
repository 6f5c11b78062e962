"""bench/run.py's exit status: non-zero, naming each missed target, unless every one holds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_every_target_holding_exits_0() -> None:
    verdicts = [bench.Verdict("throughput", True, "91%"), bench.Verdict("p99", True, "1.1x")]
    assert bench.outcome(verdicts) == (0, "bench: OK: all 2 targets hold")


def test_a_missed_target_exits_1_and_is_named() -> None:
    verdicts = [
        bench.Verdict("throughput >= 80% of baseline", False, "76%"),
        bench.Verdict("p99 <= 2x baseline", True, "1.19x"),
        bench.Verdict("no RSS growth", False, "largest +2048 KiB"),
    ]
    assert bench.outcome(verdicts) == (
        1,
        "bench: FAILED: 2 of 3 targets missed: throughput >= 80% of baseline; no RSS growth",
    )


def test_no_target_checked_is_not_a_pass() -> None:
    assert bench.outcome([]) == (1, "bench: FAILED: no target was checked")
