"""Benchmark: the worker's /gpu-check against an empty-JSON baseline, in one command.

Starts the real worker (`python -m worker`: gunicorn, stand-in NVML through LD_LIBRARY_PATH,
stand-in Ollama) and the baseline (bench/baseline_app.py: the same gunicorn server class,
options and hooks, serving `{}`), then drives each with the same keep-alive load generator
and concurrency, in rounds: baseline, worker with sources ok, worker while hostile clients
hold connections (bodies trickled a byte at a time, silent sockets: tests/helpers/hostile.py),
worker with Ollama hanging, worker with NVML hanging. Prints requests/s, p50 and p99
(median and min-max over rounds), errors and timeouts of the normal clients, ratios to the
baseline of the same round, the RSS of every gunicorn worker process at start and after
the run, and whether each target holds.

    .venv/bin/python bench/run.py [--rounds 8] [--duration 2.5] [--connections 16]
                                  [--worker-class gthread|gevent] [--slow-bodies 40]
                                  [--silent 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


import wrk  # noqa: E402
from loadgen import RunResult, run_load  # noqa: E402

from tests.helpers.hostile import HostileClients  # noqa: E402
from tests.helpers.processes import spawn_logged  # noqa: E402
from tests.standins.nvml.build import FakeNvml, build_fake_nvml  # noqa: E402
from tests.standins.ollama_api import OllamaStandIn  # noqa: E402
from worker.config import load_settings  # noqa: E402

BODY = json.dumps({"agent_id": "bench-agent"}).encode()
JOB_PATH = "/gpu-check"
TARGETS = ("baseline", "healthz", "ok", "hostile", "ollama_hang", "nvml_hang")
LABELS = {
    "baseline": "baseline: empty JSON",
    "healthz": "worker's own GET /healthz",
    "ok": "/gpu-check, sources ok",
    "hostile": "/gpu-check, hostile clients",
    "ollama_hang": "/gpu-check, Ollama hanging",
    "nvml_hang": "/gpu-check, NVML hanging",
}
THROUGHPUT_TARGET = 0.80  # at least this share of the baseline's requests/s
P99_TARGET = 2.0  # at most this multiple of the baseline's p99
RSS_GROWTH_LIMIT_KIB = 1024  # per process, from after the first round to the end
# /gpu-check against the same server's /healthz: what the report itself costs.
HEALTHZ_THROUGHPUT_TARGET = 0.90
HEALTHZ_P99_TARGET = 1.5


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL built here
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, {}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: timed out after {timeout:g} s waiting for {what}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for {pid}")


@dataclass
class Server:
    """One gunicorn server (worker or baseline) in a subprocess, its log in a file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    rss: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.process = spawn_logged(self.command, self.log_path, self.env)
        wait_until(lambda: get_json(f"{self.url}/readyz")[0] == 200, 30, f"{self.name} ready")
        wait_until(lambda: len(self.worker_pids()) == int(self.env["WORKER_WORKERS"]), 10, "pids")
        return self

    def worker_pids(self) -> list[int]:
        """gunicorn's worker processes: children of the master with the master's command."""
        assert self.process is not None
        master = self.process.pid
        command = Path(f"/proc/{master}/cmdline").read_bytes()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if parent == master and (entry / "cmdline").read_bytes() == command:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        return sorted(pids)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and its worker processes."""
        assert self.process is not None
        total = 0
        for pid in [self.process.pid, *self.worker_pids()]:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def record_rss(self, moment: str) -> None:
        self.rss[moment] = {pid: rss_kib(pid) for pid in self.worker_pids()}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def degraded_by(url: str, source: str) -> bool:
    status, body = get_json(f"{url}{JOB_PATH}", BODY)
    return status == 200 and any(r.startswith(f"{source}:") for r in body.get("reasons", []))


def all_fine(url: str) -> bool:
    status, body = get_json(f"{url}{JOB_PATH}", BODY)
    return status == 200 and body["status"] == "success"


def settle(check: Callable[[], bool], what: str) -> None:
    """Wait until `check` holds 12 times in a row (new connections: both processes)."""
    wait_until(lambda: all(check() for _ in range(12)), 30, what)


@dataclass
class Scenario:
    enter: Callable[[], None]
    leave: Callable[[], None]


def summarise(values: list[float]) -> tuple[float, float, float]:
    """Median, min and max; a run with no answer (NaN) is left out, NaN if all are."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan, math.nan
    return statistics.median(values), min(values), max(values)


def cell(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    median, low, high = summarise([v * scale for v in values])
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.5, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--worker-class", choices=("gthread", "gevent"), help="WORKER_CLASS (default: the worker's)"
    )
    parser.add_argument("--slow-bodies", type=int, default=40, help="hostile: trickled bodies")
    parser.add_argument("--silent", type=int, default=200, help="hostile: silent connections")
    parser.add_argument(
        "--client-timeout", type=float, default=5.0, help="a normal request's time limit (s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    parser.add_argument(
        "--wrk-rounds", type=int, default=6, help="paired wrk runs of /healthz and /gpu-check"
    )
    args = parser.parse_args()

    # SIGTERM and SIGHUP unwind like Ctrl-C, so the servers stop and the directory goes.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))
    work = Path(tempfile.mkdtemp(prefix="agent-net-bench-"))
    try:
        return bench(args, work)
    finally:
        if args.keep:
            print(f"\nlogs: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path) -> int:
    """Start the servers under `work`, run every round, print the report; the exit status."""
    nvml = FakeNvml.create(build_fake_nvml(work / "nvml-lib"), work / "nvml")
    ollama = OllamaStandIn().start()
    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCH_", "CAPABILITY_", "WORKER_", "FAKE_NVML_"))
        and key not in ("AGENT_NET_RUNTIME_DIR", "PROMETHEUS_MULTIPROC_DIR", "OLLAMA_HOST")
    }
    base_env |= {
        "WORKER_HOST": "127.0.0.1",
        "WORKER_WORKERS": "2",
        "WORKER_THREADS": "8",
        "OLLAMA_HOST": ollama.url,
        # Room for every connection: the orchestrator never sends more jobs than this, and
        # the limiter still runs on every request; 503s here would measure the client.
        "CAPABILITY_CAPACITY": str(args.connections),
        "PYTHONUNBUFFERED": "1",
        "AGENT_NET_DATA_DIR": str(work / "data"),  # the usage database, not ./data
        **{k: v for k, v in nvml.env({}).items()},
    }
    if args.worker_class:
        base_env["WORKER_CLASS"] = args.worker_class
    python = sys.executable
    servers = {
        "baseline": Server(
            "baseline",
            [python, str(ROOT / "bench" / "baseline_app.py")],
            {
                **base_env,
                "WORKER_PORT": str(port := free_port()),
                "AGENT_NET_RUNTIME_DIR": str(work / "baseline-runtime"),  # not a new /tmp dir
            },
            work / "baseline.log",
            port,
        ),
        "worker": Server(
            "worker",
            [python, "-m", "worker"],
            {
                **base_env,
                "WORKER_PORT": str(port := free_port()),
                "AGENT_NET_RUNTIME_DIR": str(work / "worker-runtime"),  # not a new /tmp dir
            },
            work / "worker.log",
            port,
        ),
    }
    worker = servers["worker"]
    hostile = HostileClients(
        "127.0.0.1", worker.port, JOB_PATH, slow_bodies=args.slow_bodies, silent=args.silent
    )

    def hang_scenario(
        source: str, hang: Callable[[], None], release: Callable[[], None]
    ) -> Scenario:
        """Make `source` hang, and wait until the worker reports it; undo, and wait."""
        return Scenario(
            lambda: (
                hang(),
                settle(lambda: degraded_by(worker.url, source), f"{source} seen hanging"),
            ),
            lambda: (release(), settle(lambda: all_fine(worker.url), f"recovery from {source}")),
        )

    scenarios = {
        "ok": Scenario(lambda: None, lambda: None),
        "hostile": Scenario(
            lambda: (hostile.open(),),
            lambda: (
                hostile.close(),
                settle(lambda: all_fine(worker.url), "recovery from hostile clients"),
            ),
        ),
        "ollama_hang": hang_scenario(
            "ollama", lambda: ollama.set_mode("hang"), lambda: ollama.set_mode("ok")
        ),
        "nvml_hang": hang_scenario(
            "nvml", lambda: nvml.set_scenario("hang"), lambda: nvml.set_scenario("two_gpus")
        ),
    }
    results: dict[str, list[RunResult]] = {target: [] for target in TARGETS}
    wrk_pairs: list[tuple[wrk.WrkRun, wrk.WrkRun]] | None = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        for server in servers.values():
            server.start()
        settle(lambda: all_fine(worker.url), "the worker to read both sources")
        for server in servers.values():
            server.record_rss("start")
        for round_number in range(1, args.rounds + 1):
            # A different order each round, so no target always runs first or last.
            shift = (round_number - 1) % len(TARGETS)
            for target in TARGETS[shift:] + TARGETS[:shift]:
                server = servers["baseline" if target == "baseline" else "worker"]
                scenario = scenarios.get(target)
                if scenario:
                    scenario.enter()
                cpu_before = server.cpu_seconds()
                result = run_load(
                    "127.0.0.1",
                    server.port,
                    "/healthz" if target == "healthz" else JOB_PATH,
                    None if target == "healthz" else BODY,
                    connections=args.connections,
                    processes=args.client_processes,
                    warmup=args.warmup,
                    duration=args.duration,
                    timeout=args.client_timeout,
                )
                result = dataclasses.replace(result, server_cpu=server.cpu_seconds() - cpu_before)
                if scenario:
                    scenario.leave()
                results[target].append(result)
                print(
                    f"round {round_number} {target:<12} {result.rps:7.0f} req/s"
                    f"  p50 {result.p50 * 1e3:6.2f} ms  p99 {result.p99 * 1e3:6.2f} ms"
                    f"  CPU/request server {result.server_us_per_request:4.0f} us"
                    f" client {result.client_us_per_request:4.0f} us"
                    f"  statuses {result.statuses} errors {result.errors}"
                    f" (timeouts {result.timeouts})",
                    file=sys.stderr,
                    flush=True,
                )
            if round_number == 1:
                for server in servers.values():
                    server.record_rss("after round 1")
        for server in servers.values():
            server.record_rss("end")
        if wrk.available() and args.wrk_rounds > 0:
            wrk_pairs = wrk.compare(
                worker.url, work, args.wrk_rounds, args.duration + args.warmup, 32
            )
    finally:
        hostile.close()
        for server in servers.values():
            server.stop()
        ollama.stop()
    elapsed = time.monotonic() - started
    verdicts = print_report(
        args, results, servers, elapsed, (load_before, os.getloadavg()), wrk_pairs
    )
    code, line = outcome(verdicts)
    print(f"\n{line}")
    return code


def print_report(
    args: argparse.Namespace,
    results: dict[str, list[RunResult]],
    servers: dict[str, Server],
    elapsed: float,
    load_average: tuple[tuple[float, ...], tuple[float, ...]],
    wrk_pairs: list[tuple[wrk.WrkRun, wrk.WrkRun]] | None = None,
) -> list[Verdict]:
    """Print the report; return the verdict on every target."""
    baseline = results["baseline"]
    print()
    print(
        f"machine: {os.cpu_count()} CPUs, {_memory_gib():.0f} GiB, {platform.platform()},"
        f" Python {platform.python_version()}; load average (1 min) {load_average[0][0]:.1f}"
        f" before, {load_average[1][0]:.1f} after"
    )
    print(
        f"load: {args.connections} keep-alive connections ({args.client_processes} client"
        f" processes), {args.rounds} rounds x {args.duration:g} s measured"
        f" (+{args.warmup:g} s warm-up); {_server_shape(servers['worker'])};"
        f" {elapsed:.0f} s in all"
    )
    print(
        f"hostile clients: {args.slow_bodies} bodies trickled 1 byte / 0.5 s and"
        f" {args.silent} silent connections, held through the run; a normal request"
        f" times out after {args.client_timeout:g} s"
    )
    print("figures: median over rounds (min-max); ratios are to the baseline of the same round")
    print()
    header = (
        f"{'target':<27} {'req/s':>17} {'p50 ms':>17} {'p99 ms':>18}"
        f" {'req/s ratio':>17} {'p99 ratio':>17} {'server CPU us/req':>18}"
        f" {'errors (timeouts)':>18}"
    )
    print(header)
    print("-" * len(header))
    for target in TARGETS:
        runs = results[target]
        rps_ratio, p99_ratio = _ratios(runs, baseline)
        print(
            f"{LABELS[target]:<27} {cell([r.rps for r in runs]):>17}"
            f" {cell([r.p50 for r in runs], 1e3, 2):>17} {cell([r.p99 for r in runs], 1e3, 2):>18}"
            f" {cell(rps_ratio, 1, 2):>17} {cell(p99_ratio, 1, 2):>17}"
            f" {cell([r.server_us_per_request for r in runs]):>18}"
            f" {_failures(runs):>18}"
        )
    client = [r.client_us_per_request for runs in results.values() for r in runs]
    print(
        f"load generator CPU per request: {cell(client)} us (same client for every target;"
        " it shares the 2 cores with the server)"
    )
    statuses: dict[int, int] = {}
    errors = 0
    for target, runs in results.items():
        for run in runs:
            errors += run.errors if target != "hostile" else 0
            for status, count in run.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
    print(
        f"\nstatuses over every run: {statuses}; connection errors (hostile runs aside): {errors}"
    )

    print("\nRSS per gunicorn worker process (KiB)")
    print(
        f"{'server':<10} {'pid':>8} {'start':>10} {'after round 1':>14} {'end':>10}"
        f" {'growth since round 1':>21}"
    )
    growths = []
    for name, server in servers.items():
        for pid in sorted(server.rss["start"]):
            row = [server.rss[moment].get(pid) for moment in ("start", "after round 1", "end")]
            growth = None if None in row[1:] else row[2] - row[1]
            if name == "worker" and growth is not None:
                growths.append(growth)
            shown = ["gone" if v is None else str(v) for v in row]
            print(
                f"{name:<10} {pid:>8} {shown[0]:>10} {shown[1]:>14} {shown[2]:>10}"
                f" {'' if growth is None else f'{growth:+d}':>21}"
            )

    print("\ntargets")
    verdicts: list[Verdict] = []
    ok = results["ok"]
    rps_ratio = statistics.median(r.rps / b.rps for r, b in zip(ok, baseline, strict=True))
    p99_ratio = statistics.median(r.p99 / b.p99 for r, b in zip(ok, baseline, strict=True))
    _verdict(
        verdicts,
        f"throughput >= {THROUGHPUT_TARGET:.0%} of baseline",
        rps_ratio >= THROUGHPUT_TARGET,
        f"{rps_ratio:.0%}",
    )
    _verdict(
        verdicts, f"p99 <= {P99_TARGET:g}x baseline", p99_ratio <= P99_TARGET, f"{p99_ratio:.2f}x"
    )
    healthz = results["healthz"]
    rps_vs_healthz = statistics.median(r.rps / h.rps for r, h in zip(ok, healthz, strict=True))
    p99_vs_healthz = statistics.median(r.p99 / h.p99 for r, h in zip(ok, healthz, strict=True))
    client = "this load generator"
    if wrk_pairs:
        print_wrk(wrk_pairs)
        rps_vs_healthz, p99_vs_healthz = wrk.ratios(wrk_pairs)
        client = "wrk -t2 -c32"
    _verdict(
        verdicts,
        f"/gpu-check throughput >= {HEALTHZ_THROUGHPUT_TARGET:.0%} of the same server's /healthz"
        f" ({client})",
        rps_vs_healthz >= HEALTHZ_THROUGHPUT_TARGET,
        f"{rps_vs_healthz:.2f}",
    )
    _verdict(
        verdicts,
        f"/gpu-check p99 <= {HEALTHZ_P99_TARGET:g}x the same server's /healthz ({client})",
        p99_vs_healthz <= HEALTHZ_P99_TARGET,
        f"{p99_vs_healthz:.2f}x",
    )
    ok_rps, ok_p99 = _ratios(ok, baseline)
    noise = {"rps": _noise(ok_rps), "p99": _noise(ok_p99)}
    for target in ("ollama_hang", "nvml_hang"):
        rps, p99 = _ratios(results[target], baseline)
        rps_change = statistics.median(rps) - statistics.median(ok_rps)
        p99_change = statistics.median(p99) - statistics.median(ok_p99)
        within = abs(rps_change) <= noise["rps"] and abs(p99_change) <= noise["p99"]
        _verdict(
            verdicts,
            f"{LABELS[target]} unchanged",
            within,
            f"req/s ratio {rps_change:+.2f}, p99 ratio {p99_change:+.2f} vs sources ok"
            f" (noise: +-{noise['rps']:.2f}, +-{noise['p99']:.2f})",
        )
    worst = max(growths) if growths else 0
    _verdict(
        verdicts,
        f"no RSS growth (<= {RSS_GROWTH_LIMIT_KIB} KiB per process after round 1)",
        worst <= RSS_GROWTH_LIMIT_KIB and all(g is not None for g in growths),
        f"largest {worst:+d} KiB",
    )
    hostile = results["hostile"]
    hostile_rps, hostile_p99 = _ratios(hostile, baseline)
    failed = sum(r.errors for r in hostile)
    refused = sum(n for r in hostile for status, n in r.statuses.items() if status != 200)
    _verdict(
        verdicts,
        "normal clients served beside hostile ones (every answer 200, no error or timeout;"
        f" p99 <= {P99_TARGET:g}x baseline)",
        failed == 0 and refused == 0 and summarise(hostile_p99)[0] <= P99_TARGET,
        f"errors {failed}, not 200: {refused}, req/s ratio {summarise(hostile_rps)[0]:.2f},"
        f" p99 ratio {summarise(hostile_p99)[0]:.2f}",
    )
    gone = [pid for s in servers.values() for pid in s.rss["start"] if pid not in s.rss["end"]]
    _verdict(
        verdicts,
        "no worker process replaced during the run",
        not gone,
        f"replaced: {gone or 'none'}",
    )
    bad = {s: n for s, n in statuses_of(results).items() if s != 200}
    _verdict(
        verdicts,
        "every answer 200, no connection error",
        not bad and errors == 0,
        f"others: {bad or 'none'}, errors: {errors}",
    )
    return verdicts


def print_wrk(pairs: list[tuple[wrk.WrkRun, wrk.WrkRun]]) -> None:
    """The wrk rounds: /healthz and /gpu-check on the worker, and their ratios."""
    print("\n/gpu-check against the same server's /healthz, wrk -t2 -c32 (bench/wrk.py)")
    print(
        f"{'round':>5} {'/healthz req/s':>15} {'p99 ms':>8} {'/gpu-check req/s':>17}"
        f" {'p99 ms':>8} {'req/s ratio':>12} {'p99 ratio':>10} {'non-2xx/errors':>15}"
    )
    for number, (health, job) in enumerate(pairs, 1):
        print(
            f"{number:>5} {health.rps:>15.0f} {health.p99 * 1e3:>8.2f} {job.rps:>17.0f}"
            f" {job.p99 * 1e3:>8.2f} {job.rps / health.rps:>12.2f} {job.p99 / health.p99:>10.2f}"
            f" {health.non_2xx + job.non_2xx}/{health.errors + job.errors:>13}"
        )
    rps, p99 = wrk.ratios(pairs)
    print(f"median: req/s ratio {rps:.2f}, p99 ratio {p99:.2f}\n")


def _failures(runs: list[RunResult]) -> str:
    return f"{sum(r.errors for r in runs)} ({sum(r.timeouts for r in runs)})"


def _server_shape(server: Server) -> str:
    settings = load_settings(server.env)
    if settings.worker_class == "gevent":
        return f"gunicorn gevent {settings.worker_workers} processes"
    return (
        f"gunicorn gthread {settings.worker_workers} processes x {settings.worker_threads} threads"
    )


def statuses_of(results: dict[str, list[RunResult]]) -> dict[int, int]:
    statuses: dict[int, int] = {}
    for runs in results.values():
        for run in runs:
            for status, count in run.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
    return statuses


def _ratios(runs: list[RunResult], baseline: list[RunResult]) -> tuple[list[float], list[float]]:
    """Each run's req/s and p99 over the baseline's of the same round."""
    pairs = list(zip(runs, baseline, strict=True))
    return [r.rps / b.rps for r, b in pairs], [r.p99 / b.p99 for r, b in pairs]


def _noise(values: list[float]) -> float:
    """Round-to-round spread: half the min-max range of the sources-ok ratios, at least 0.05."""
    return max(0.05, (max(values) - min(values)) / 2)


@dataclass(frozen=True)
class Verdict:
    """One target of the report: whether it holds, and the figures behind that."""

    what: str
    holds: bool
    detail: str


def outcome(verdicts: list[Verdict]) -> tuple[int, str]:
    """The exit status and closing line: 0 only when targets were checked and all hold."""
    missed = [verdict.what for verdict in verdicts if not verdict.holds]
    if not verdicts:
        return 1, "bench: FAILED: no target was checked"
    if missed:
        names = "; ".join(missed)
        return 1, f"bench: FAILED: {len(missed)} of {len(verdicts)} targets missed: {names}"
    return 0, f"bench: OK: all {len(verdicts)} targets hold"


def _verdict(verdicts: list[Verdict], what: str, holds: bool, detail: str) -> None:
    verdicts.append(Verdict(what, holds, detail))
    print(f"  [{'PASS' if holds else 'MISS'}] {what}: {detail}")


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
