"""Benchmark: what residency saves (time to first token) and what it costs per interval.

Against the Ollama stand-in (a model that takes `--load-time` seconds to load):

- cold start: the model is not loaded; a streamed /api/generate's time to first token;
- hot: the same model after it became hot (HOT_REQUESTS recorded in the usage database)
  and one residency interval (`ResidencyLoop.run_once`) loaded it ahead of the request;
- loop cost: one interval's work (usage query over `--rows` request rows of `--models`
  models, the decision, the report) with nothing to do, median and max over `--runs`.

Prints [PASS]/[MISS] per target and exits non-zero on a MISS.

    .venv/bin/python bench/residency.py [--load-time 2] [--repeats 3] [--rows 100000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.standins.ollama_api import OllamaStandIn  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.residency.loop import ResidencyLoop  # noqa: E402
from worker.residency.usage import UsageStore  # noqa: E402
from worker.sampling.ollama_catalogue import OllamaReader  # noqa: E402
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry  # noqa: E402
from worker.sampling.source import SourceState  # noqa: E402

GIB = 2**30
MODEL = "coder:7b"
HOT_TTFT_SHARE = 0.10  # a hot model's first token in at most this share of a cold start's
LOOP_COST_TARGET_MS = 50.0  # one interval's work, median (the default interval is 10 s)


def stand_in_model(name: str, loaded: bool = False) -> dict[str, object]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-11-20T10:12:43Z",
        "size": 8 * GIB,
        "digest": "c" * 64,
        "details": {"family": "llama", "parameter_size": "7B", "quantization_level": "Q4_K_M"},
        "loaded": loaded,
        "size_vram": 8 * GIB,
    }


def first_token_seconds(url: str, model: str) -> float:
    """Time from sending a streamed /api/generate to its first non-empty piece."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    body = json.dumps({"model": model, "prompt": "why is the sky blue"})
    started = time.perf_counter()
    connection.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    try:
        for line in response:
            if json.loads(line).get("response"):
                return time.perf_counter() - started
        raise RuntimeError("the stream ended without a token")
    finally:
        connection.close()


def unload(url: str, model: str) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps({"model": model, "keep_alive": 0, "stream": False})
    connection.request("POST", "/api/generate", body, {"Content-Type": "application/json"})
    connection.getresponse().read()
    connection.close()


def gpu_state() -> SourceState[GpuReport]:
    now = time.monotonic()
    gpu = GpuReading(index=0, memory_used_bytes=10 * GIB, memory_total_bytes=80 * GIB)
    return SourceState(GpuReport("560.35.03", (gpu,)), now, time.time(), None, 1, None, now)


def catalogue_state(reader: OllamaReader | None, fixed: Catalogue | None) -> SourceState:
    started = time.monotonic()
    catalogue = fixed if fixed is not None else reader.read()  # type: ignore[union-attr]
    return SourceState(catalogue, time.monotonic(), time.time(), None, 1, None, started)


def measure_ttft(args: argparse.Namespace, work: Path) -> tuple[list[float], list[float]]:
    ollama = OllamaStandIn(load_time=args.load_time).start()
    try:
        ollama.set_models([stand_in_model(MODEL)])
        cold = []
        for _ in range(args.repeats):
            cold.append(first_token_seconds(ollama.url, MODEL))
            unload(ollama.url, MODEL)
        settings = load_settings(
            {
                "OLLAMA_HOST": ollama.url,
                "OLLAMA_MODEL": MODEL,
                "USAGE_DB": str(work / "ttft.sqlite3"),
                "HOT_REQUESTS": "3",
            }
        )
        store = UsageStore(settings.usage_db_path)
        for _ in range(3):
            store.record("bench", MODEL, 10, 10)
        reader = OllamaReader(settings.ollama_host, 5.0)
        loop = ResidencyLoop(settings, lambda: (gpu_state(), catalogue_state(reader, None)))
        hot = []
        for _ in range(args.repeats):
            loop.run_once()  # starts the load in its thread
            deadline = time.monotonic() + 60
            while MODEL not in {name for name, _ in ollama.loaded_set()}:
                if time.monotonic() > deadline:
                    raise RuntimeError("the residency loop did not load the hot model")
                time.sleep(0.01)
            time.sleep(0.05)  # the load thread records its result
            hot.append(first_token_seconds(ollama.url, MODEL))
            unload(ollama.url, MODEL)
        loop.stop()
        reader.close()
        store.close()
        return cold, hot
    finally:
        ollama.stop()


def measure_loop_cost(args: argparse.Namespace, work: Path) -> list[float]:
    names = [f"model-{i}:7b" for i in range(args.models)]
    store = UsageStore(work / "cost.sqlite3")
    now = time.time()
    rng = random.Random(7)
    with store._db(write=True) as db:  # bulk load: one transaction
        db.executemany(
            "INSERT INTO requests (at, agent, model, prompt_tokens, completion_tokens)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (now - rng.random() * 86_400, "bench", rng.choice(names), 100, 200)
                for _ in range(args.rows)
            ],
        )
        db.executemany(
            "INSERT INTO totals VALUES (?, ?, 1, 0, 0, ?, ?)",
            [("bench", name, now - 60, now - 60) for name in names],
        )
    store.close()
    catalogue = Catalogue(
        "0.12.6",
        tuple(
            ModelEntry(name=name, size_bytes=4 * GIB, loaded=True, vram_bytes=4 * GIB)
            for name in names[:20]
        ),
    )
    settings = load_settings(
        {
            "OLLAMA_HOST": "http://127.0.0.1:9",  # never called: nothing to do
            "OLLAMA_MODEL": names[0],
            "USAGE_DB": str(work / "cost.sqlite3"),
            "RESIDENCY_MANAGE_ALL": "true",
            "HOT_REQUESTS": str(args.rows * 10),  # nobody hot: measure the reading, not loads
        }
    )
    loop = ResidencyLoop(settings, lambda: (gpu_state(), catalogue_state(None, catalogue)))
    loop.run_once()  # opens the database and prunes, once
    costs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        plan = loop.run_once()
        costs.append(time.perf_counter() - started)
        assert plan is not None and plan.actions == ()
    loop.stop()
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-time", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agent-net-bench-") as temporary:
        work = Path(temporary)
        cold, hot = measure_ttft(args, work)
        costs = measure_loop_cost(args, work)
    cold_ms, hot_ms = statistics.median(cold) * 1000, statistics.median(hot) * 1000
    cost_ms, cost_max = statistics.median(costs) * 1000, max(costs) * 1000
    print(f"model load time (stand-in)        {args.load_time * 1000:8.1f} ms")
    print(f"time to first token, cold start   {cold_ms:8.1f} ms  (median of {len(cold)})")
    print(f"time to first token, hot (loaded) {hot_ms:8.1f} ms  (median of {len(hot)})")
    print(
        f"residency interval, nothing to do {cost_ms:8.2f} ms  (median of {len(costs)},"
        f" max {cost_max:.2f} ms; {args.rows} rows, {args.models} models)"
    )
    results = [
        (
            hot_ms <= HOT_TTFT_SHARE * cold_ms,
            f"hot first token {hot_ms:.1f} ms <= {HOT_TTFT_SHARE:.0%} of cold {cold_ms:.1f} ms",
        ),
        (
            cold_ms >= args.load_time * 1000,
            f"cold start pays the load ({cold_ms:.0f} ms >= {args.load_time * 1000:.0f} ms)",
        ),
        (
            cost_ms <= LOOP_COST_TARGET_MS,
            f"interval cost {cost_ms:.2f} ms <= {LOOP_COST_TARGET_MS:.0f} ms",
        ),
    ]
    for ok, text in results:
        print(f"[{'PASS' if ok else 'MISS'}] {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
