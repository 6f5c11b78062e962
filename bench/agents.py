"""Benchmark: agent streams through the worker against the same streams straight from Ollama.

Starts the Ollama stand-in (tests/standins/ollama_api.py, its own process, streaming a
fixed reply at a set pace) and the real worker (`python -m worker`: gunicorn gevent, two
processes by default, stand-in NVML) with one agent on the stand-in's loaded model. Then measures:

- for reference, single `/gpu-check` requests: the cost of the worker's own hop;
- time to first token (request sent to the first piece of text received), through the
  worker's `POST /<agent>` SSE against the stand-in's own `/api/chat` NDJSON, one request
  at a time, interleaved, each way on a new connection per request and on one kept-alive
  connection (as go-livepeer's client keeps them); the overhead is the difference of the
  two distributions' p50 and p99 (target: <= 2 ms p50, <= 10 ms p99);
- the same for a streamed tool call (the request carries `tools`; the first "token" is
  the chunk holding the call: Ollama's `message.tool_calls`, the worker's first
  `delta.tool_calls`), on an agent whose model takes tools;
- tokens per second of paced streams, both ways (target: worker >= 0.98 of direct);
- 200 streams at once through the worker: every one complete with `[DONE]`, no error,
  and the gunicorn workers' RSS growth (sum over processes, after a warm-up) < 20 MB;
- embeddings of one string (768 dimensions): the worker's `POST /v1/embeddings` (base64,
  as openai-python asks; and float) against the stand-in's own `/api/embed`, interleaved,
  on new and kept-alive connections (target: <= 2 ms p50 overhead).

Prints a table with [PASS]/[MISS] per target; exits 1 on any MISS.

    .venv/bin/python bench/agents.py [--requests 200] [--concurrent 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import Server, free_port, wait_until  # noqa: E402

from tests.agents.support import WEATHER_TOOL  # noqa: E402
from tests.helpers.processes import spawn_logged  # noqa: E402
from tests.standins.nvml.build import FakeNvml, build_fake_nvml  # noqa: E402

MODEL = "codellama:34b-instruct-q4_k_m"  # loaded in the stand-in from the start
AGENT = "bench-agent"
EMBED_MODEL = "nomic-embed-text:latest"  # 768 dimensions (on disk in the fast stand-in)
EMBED_AGENT = "bench-embedder"
EMBED_TEXT = "Why is the sky blue? Rayleigh scattering of sunlight by the air."
EMBED_P50_MS = 2.0
MESSAGES = [{"role": "user", "content": "why is the sky blue?"}]
TOOLS_MODEL = "llama3.2:3b"  # takes tools (the stand-in's capability table)
TOOLS_AGENT = "bench-tools"
TOOLS = [WEATHER_TOOL]
TOOL_CALLS = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
REPLY_WORDS = 40
TTFT_P50_MS, TTFT_P99_MS = 2.0, 10.0
SPEED_RATIO = 0.98
RSS_GROWTH_MB = 20.0


class OneWriteConnection(http.client.HTTPConnection):
    """A client that sends a request's head and its (small, sized) body in one write, as
    go-livepeer's Go client does (net/http writes both through one bufio.Writer and
    flushes it once); http.client's own `request()` sends them in two."""

    def _send_output(self, message_body: bytes | None = None, encode_chunked: bool = False) -> None:
        self._buffer.extend((b"", b""))
        head = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(head + (message_body or b""))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def post(
    port: int, path: str, body: dict, conn: http.client.HTTPConnection | None = None
) -> tuple[http.client.HTTPConnection, float]:
    """Send `body`; on `conn` when given (keep-alive), else on a new connection."""
    conn = conn or OneWriteConnection("127.0.0.1", port, timeout=60)
    payload = json.dumps(body).encode()
    sent = time.perf_counter()
    conn.request("POST", path, payload, {"Content-Type": "application/json"})
    return conn, sent


def direct_stream(
    port: int, keep: http.client.HTTPConnection | None = None, tools: bool = False
) -> tuple[float, list[float]]:
    """(sent at, arrival time of each piece: text or tool calls) from the stand-in's
    /api/chat; with `tools`, a request with tools to the tools model."""
    body: dict = {"model": MODEL, "messages": MESSAGES, "stream": True}
    if tools:
        body |= {"model": TOOLS_MODEL, "tools": TOOLS}
    conn, sent = post(port, "/api/chat", body, keep)
    response = conn.getresponse()
    arrivals = []
    while line := response.readline():
        message = json.loads(line)
        piece = message.get("message", {})
        if piece.get("content") or piece.get("tool_calls"):
            arrivals.append(time.perf_counter())
        if message.get("done"):
            break
    response.read()
    if keep is None:
        conn.close()
    return sent, arrivals


def worker_stream(
    port: int, keep: http.client.HTTPConnection | None = None, tools: bool = False
) -> tuple[float, list[float], bool]:
    """(sent at, arrival of each piece, ended with [DONE]) from the worker's agent route;
    with `tools`, a request with tools to the tools agent (a piece: a tool call's first
    delta)."""
    path, body = f"/{AGENT}", {"messages": MESSAGES, "stream": True}
    if tools:
        path, body = f"/{TOOLS_AGENT}", body | {"tools": TOOLS}
    conn, sent = post(port, path, body, keep)
    response = conn.getresponse()
    arrivals, done = [], False
    while line := response.readline():
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            done = True
            break
        if (b'"content":"' in data and b'"content":""' not in data) or b'"id":"call_' in data:
            arrivals.append(time.perf_counter())
    response.read()
    if keep is None:
        conn.close()
    return sent, arrivals, done


def measure_ttft(
    direct_port: int, worker_port: int, requests: int, tools: bool = False
) -> dict[str, tuple[list[float], list[float]]]:
    """TTFT ms (direct, through the worker), one request at a time, interleaved: on a new
    connection each, and on one kept-alive connection per path (as go-livepeer keeps
    its connections to the worker)."""
    ttft: dict[str, tuple[list[float], list[float]]] = {"new": ([], []), "keep": ([], [])}
    keep_direct = OneWriteConnection("127.0.0.1", direct_port, timeout=60)
    keep_worker = OneWriteConnection("127.0.0.1", worker_port, timeout=60)
    for _ in range(20):  # warm-up
        direct_stream(direct_port, tools=tools)
        worker_stream(worker_port, tools=tools)
        direct_stream(direct_port, keep_direct, tools)
        worker_stream(worker_port, keep_worker, tools)
    for _ in range(requests):
        for mode, direct_conn, worker_conn in (
            ("new", None, None),
            ("keep", keep_direct, keep_worker),
        ):
            sent, arrivals = direct_stream(direct_port, direct_conn, tools)
            ttft[mode][0].append((arrivals[0] - sent) * 1000)
            sent, arrivals, _ = worker_stream(worker_port, worker_conn, tools)
            ttft[mode][1].append((arrivals[0] - sent) * 1000)
    keep_direct.close()
    keep_worker.close()
    return ttft


def embed_ms(port: int, path: str, body: dict, keep: http.client.HTTPConnection | None) -> float:
    """One whole embeddings answer: ms from the request sent to its last byte read."""
    conn, sent = post(port, path, body, keep)
    response = conn.getresponse()
    response.read()
    took = (time.perf_counter() - sent) * 1000
    assert response.status == 200, response.status
    if keep is None:
        conn.close()
    return took


def measure_embeddings(
    direct_port: int, worker_port: int, requests: int
) -> dict[str, tuple[list[float], list[float]]]:
    """ms (direct, through the worker) of one-string embeddings, interleaved, by how the
    worker is asked: base64 (openai-python's default) or float, on a new connection each
    or on kept-alive ones."""
    direct_body = {"model": EMBED_MODEL, "input": EMBED_TEXT}
    cases = (("base64", False), ("base64", True), ("float", True))  # (encoding, kept alive)
    results: dict[str, tuple[list[float], list[float]]] = {}
    keep_direct = OneWriteConnection("127.0.0.1", direct_port, timeout=60)
    keep_worker = OneWriteConnection("127.0.0.1", worker_port, timeout=60)
    for encoding, kept in cases:
        body = {"model": EMBED_AGENT, "input": EMBED_TEXT, "encoding_format": encoding}
        direct, worker = [], []
        for index in range(requests + 20):  # the first 20: warm-up
            direct_conn, worker_conn = (keep_direct, keep_worker) if kept else (None, None)
            one_direct = embed_ms(direct_port, "/api/embed", direct_body, direct_conn)
            one_worker = embed_ms(worker_port, "/v1/embeddings", body, worker_conn)
            if index >= 20:
                direct.append(one_direct)
                worker.append(one_worker)
        results[f"{encoding}, {'kept-alive' if kept else 'new conn.'}"] = (direct, worker)
    keep_direct.close()
    keep_worker.close()
    return results


def rss_sum_mb(server: Server) -> float:
    from run import rss_kib

    return sum(rss_kib(pid) for pid in server.worker_pids()) / 1024


def crowd(port: int, count: int) -> tuple[int, int]:
    """`count` streams at once; (complete with [DONE] and every piece, failed)."""
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def one() -> None:
        ok = False
        try:
            start.wait(30)
            _, arrivals, done = worker_stream(port)
            ok = done and len(arrivals) == REPLY_WORDS
        except Exception:  # counted as a failure
            ok = False
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    good = sum(results)
    return good, count - good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="TTFT samples per path")
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--token-interval", type=float, default=0.02)
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn processes (WORKER_WORKERS, default 2)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agent-net-bench-agents-"))
    nvml = FakeNvml.create(build_fake_nvml(work / "nvml-lib"), work / "nvml")
    reply = " ".join(f"word{i}" for i in range(REPLY_WORDS))
    python = sys.executable

    def standin(
        name: str, reply: str, interval: float, tool_calls: list | None = None
    ) -> tuple[int, subprocess.Popen[bytes]]:
        """An Ollama stand-in process streaming `reply`, a piece every `interval` s (and
        `tool_calls` to a request with tools)."""
        port = free_port()
        command = [python, str(ROOT / "tests/standins/ollama_api.py"), "--port", str(port)]
        command += ["--reply", reply, "--token-interval", str(interval)]
        command += ["--embedding-model", EMBED_MODEL]
        command += ["--tool-calls", json.dumps(tool_calls or [])]
        return port, spawn_logged(command, work / f"ollama-{name}.log")

    ollama_port, fast = standin("fast", reply, 0.0)
    paced_port, paced = standin("paced", reply, args.token_interval)
    # As a model generates: the first piece at once, the next ones a token interval apart
    # (so the worker relays the first piece alone, as with a real model).
    generating_port, generating = standin("generating", "one two three", args.token_interval)
    # A model that answers a request with tools by calling one, at once.
    tools_port, tooling = standin("tools", "", args.token_interval, TOOL_CALLS)
    agents = work / "agents.toml"
    agents.write_text(
        f'[[agents]]\nname = "{AGENT}"\nmodel = "{MODEL}"\ncapacity = {args.concurrent + 50}\n'
        f"max_tokens = 4096\ntimeout_seconds = 120\n"
        f'\n[[agents]]\nname = "{EMBED_AGENT}"\nmodel = "{EMBED_MODEL}"\ncapacity = 8\n'
        f'\n[[agents]]\nname = "{TOOLS_AGENT}"\nmodel = "{TOOLS_MODEL}"\ntimeout_seconds = 120\n'
    )
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCH_", "CAPABILITY_", "WORKER_", "FAKE_NVML_", "AGENTS_"))
        and key not in ("AGENT_NET_RUNTIME_DIR", "PROMETHEUS_MULTIPROC_DIR", "OLLAMA_HOST")
    }
    base_env |= {
        "WORKER_HOST": "127.0.0.1",
        "WORKER_WORKERS": str(args.workers),
        "AGENTS_FILE": str(agents),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
        **nvml.env({}),
    }
    servers = {}
    ports = {
        "fast": ollama_port,
        "paced": paced_port,
        "generating": generating_port,
        "tools": tools_port,
    }
    for name, port in ports.items():
        worker_port = free_port()
        servers[name] = Server(
            f"worker-{name}",
            [python, "-m", "worker"],
            {
                **base_env,
                "WORKER_PORT": str(worker_port),
                "OLLAMA_HOST": f"http://127.0.0.1:{port}",
            },
            work / f"worker-{name}.log",
            worker_port,
        )
    try:
        for server in servers.values():
            server.start()
        fast_worker, paced_worker = servers["fast"], servers["paced"]
        for server in servers.values():
            wait_until(lambda server=server: worker_stream(server.port)[2], 20, "admitted")

        # 1. Time to first token: the whole reply at once (the worker relays a burst),
        #    and as a model generates (the first piece alone).
        ttft = {
            "burst": measure_ttft(ollama_port, fast_worker.port, args.requests),
            "generating": measure_ttft(generating_port, servers["generating"].port, args.requests),
            "tool call": measure_ttft(tools_port, servers["tools"].port, args.requests, True),
        }

        # Embeddings of one string, through the worker and straight from the stand-in.
        embeddings = measure_embeddings(ollama_port, fast_worker.port, args.requests)

        # For reference: one /gpu-check (the worker's hop without Ollama), same client.
        gpu_check = []
        for _ in range(args.requests):
            conn, sent = post(fast_worker.port, "/gpu-check", {"agent_id": "bench"})
            conn.getresponse().read()
            gpu_check.append((time.perf_counter() - sent) * 1000)
            conn.close()

        # 2. Tokens per second of paced streams.
        def speed(arrivals: list[float]) -> float:
            return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])

        direct_speed, worker_speed = [], []
        for _ in range(5):
            direct_speed.append(speed(direct_stream(paced_port)[1]))
            worker_speed.append(speed(worker_stream(paced_worker.port)[1]))

        # 3. Many streams at once (paced, so they overlap), RSS after a warm-up crowd.
        crowd(paced_worker.port, 20)
        rss_before = rss_sum_mb(paced_worker)
        good, failed = crowd(paced_worker.port, args.concurrent)
        rss_after = rss_sum_mb(paced_worker)
    finally:
        for server in servers.values():
            server.stop()
        for process in (fast, paced, generating, tooling):
            process.terminate()
            process.wait(10)

    ratio = statistics.median(worker_speed) / statistics.median(direct_speed)
    growth = rss_after - rss_before
    rows = []
    for reply, by_mode in ttft.items():
        for mode, label in (("new", "new conn."), ("keep", "kept-alive")):
            direct, worker = by_mode[mode]
            for share, limit in ((0.5, TTFT_P50_MS), (0.99, TTFT_P99_MS)):
                overhead = percentile(worker, share) - percentile(direct, share)
                rows.append(
                    (
                        f"TTFT overhead p{share * 100:g}, {reply}, {label}",
                        f"{overhead:.2f} ms",
                        f"<= {limit:g} ms",
                        overhead <= limit,
                    )
                )
    for label, (direct, worker) in embeddings.items():
        overhead = percentile(worker, 0.5) - percentile(direct, 0.5)
        rows.append(
            (
                f"embeddings overhead p50, {label}",
                f"{overhead:.2f} ms",
                f"<= {EMBED_P50_MS:g} ms",
                overhead <= EMBED_P50_MS,
            )
        )
    rows += [
        ("tokens/s, worker / direct", f"{ratio:.3f}", f">= {SPEED_RATIO}", ratio >= SPEED_RATIO),
        (
            f"{args.concurrent} concurrent streams",
            f"{good} ok, {failed} failed",
            "0 failed",
            failed == 0,
        ),
        (
            f"RSS growth ({args.workers} processes)",
            f"{growth:.1f} MB",
            f"< {RSS_GROWTH_MB:g} MB",
            growth < RSS_GROWTH_MB,
        ),
    ]
    print()
    for reply, by_mode in ttft.items():
        for mode, label in (("new", "a new connection each"), ("keep", "one kept-alive")):
            direct, worker = by_mode[mode]
            print(
                f"TTFT ms, {reply} reply, {label}: direct p50 {percentile(direct, 0.5):.2f}"
                f" p99 {percentile(direct, 0.99):.2f}  |  worker p50"
                f" {percentile(worker, 0.5):.2f} p99 {percentile(worker, 0.99):.2f}"
                f"  ({args.requests} each)"
            )
    for label, (direct, worker) in embeddings.items():
        print(
            f"embeddings ms, one string, {label}: direct p50 {percentile(direct, 0.5):.2f}"
            f" p99 {percentile(direct, 0.99):.2f}  |  worker p50 {percentile(worker, 0.5):.2f}"
            f" p99 {percentile(worker, 0.99):.2f}  ({args.requests} each)"
        )
    print(
        f"/gpu-check ms (the worker's own hop, for reference) p50"
        f" {percentile(gpu_check, 0.5):.2f} p99 {percentile(gpu_check, 0.99):.2f}"
    )
    print(
        f"tokens/s direct {statistics.median(direct_speed):.1f}  worker "
        f"{statistics.median(worker_speed):.1f}  (pace {args.token_interval * 1000:g} ms,"
        f" {REPLY_WORDS} pieces, 5 streams each)"
    )
    print(f"RSS of the worker processes: {rss_before:.1f} MB before, {rss_after:.1f} MB after\n")
    print(f"{'measure':44} {'result':>18}  {'target':>10}")
    for name, result, target, ok in rows:
        print(f"{name:44} {result:>18}  {target:>10}  [{'PASS' if ok else 'MISS'}]")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
