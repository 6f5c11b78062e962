"""A closed-loop HTTP/1.1 keep-alive load generator: N connections, each one request at a time.

Connections are spread over several client processes (threads inside each), so the
client is not held back by one interpreter lock. Every connection sends the same request
(a POST with a JSON body, or a GET), over and over, from `start` to `stop`
(time.monotonic, shared by every process on Linux); latencies are recorded only inside
the measured window.
"""

from __future__ import annotations

import http.client
import math
import multiprocessing
import resource
import statistics
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plan:
    host: str
    port: int
    path: str
    body: bytes | None  # None: GET, else POST with this JSON body
    start_at: float
    warmup_until: float
    stop_at: float
    timeout: float = 5.0  # a request unanswered this long counts as a timeout


@dataclass
class Outcome:
    """What one client process saw inside the measured window."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    timeouts: int = 0  # errors that were the client giving up after Plan.timeout
    reconnects: int = 0
    answered: int = 0  # every answer, warm-up included (for CPU per request)


def _connection(plan: Plan) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection(plan.host, plan.port, timeout=plan.timeout)
    connection.connect()
    return connection


def _drive(plan: Plan, outcome: Outcome, lock: threading.Lock) -> None:
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = timeouts = reconnects = answered = 0
    connection = _connection(plan)
    time.sleep(max(0.0, plan.start_at - time.monotonic()))
    while (now := time.monotonic()) < plan.stop_at:
        try:
            method = "GET" if plan.body is None else "POST"
            connection.request(method, plan.path, plan.body, headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            # A server may close a kept-alive connection: reconnect, count it, go on.
            connection.close()
            # Counted when it fails inside or after the window, wherever it started: a
            # request starved since the warm-up still shows as a timeout.
            if time.monotonic() >= plan.warmup_until:
                errors += 1
                timeouts += isinstance(error, TimeoutError)
                reconnects += 1
            # Connected by the next request(), so a connect that fails is counted there too.
            connection = http.client.HTTPConnection(plan.host, plan.port, timeout=plan.timeout)
            continue
        done = time.monotonic()
        answered += 1
        if now >= plan.warmup_until and done <= plan.stop_at:
            latencies.append(done - now)
            statuses[status] = statuses.get(status, 0) + 1
        if response.will_close:
            connection.close()
            connection = _connection(plan)
            reconnects += 1
    connection.close()
    with lock:
        outcome.latencies.extend(latencies)
        for status, count in statuses.items():
            outcome.statuses[status] = outcome.statuses.get(status, 0) + count
        outcome.errors += errors
        outcome.timeouts += timeouts
        outcome.reconnects += reconnects
        outcome.answered += answered


def _client_process(plan: Plan, threads: int, results: multiprocessing.Queue) -> None:
    outcome, lock = Outcome(), threading.Lock()
    workers = [threading.Thread(target=_drive, args=(plan, outcome, lock)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(outcome)


@dataclass(frozen=True)
class RunResult:
    requests: int
    seconds: float
    p50: float
    p99: float
    statuses: dict[int, int]
    errors: int
    answered: int
    timeouts: int = 0  # among errors: the client gave up waiting
    server_cpu: float = 0.0  # seconds of CPU the server's processes used during the run
    client_cpu: float = 0.0  # seconds of CPU the load generator used

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu / self.answered * 1e6 if self.answered else float("nan")

    @property
    def client_us_per_request(self) -> float:
        return self.client_cpu / self.answered * 1e6 if self.answered else float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values), max(1, math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def run_load(
    url_host: str,
    port: int,
    path: str,
    body: bytes | None,
    *,
    connections: int,
    processes: int,
    warmup: float,
    duration: float,
    timeout: float = 5.0,
) -> RunResult:
    """Drive `connections` keep-alive connections for warmup + duration seconds."""
    client_cpu_before = _children_cpu()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    per_process = [
        connections // processes + (i < connections % processes) for i in range(processes)
    ]
    # Spawning takes a moment: start the clock once every process could be up.
    start = time.monotonic() + 0.6
    plan = Plan(
        url_host, port, path, body, start, start + warmup, start + warmup + duration, timeout
    )
    children = [
        context.Process(target=_client_process, args=(plan, threads, results), daemon=True)
        for threads in per_process
        if threads
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=warmup + duration + 60) for _ in children]
    for child in children:
        child.join(10)
    latencies = sorted(latency for outcome in outcomes for latency in outcome.latencies)
    statuses: dict[int, int] = {}
    for outcome in outcomes:
        for status, count in outcome.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return RunResult(
        requests=len(latencies),
        seconds=duration,
        p50=statistics.median(latencies) if latencies else float("nan"),
        p99=percentile(latencies, 0.99),
        statuses=statuses,
        errors=sum(outcome.errors for outcome in outcomes),
        timeouts=sum(outcome.timeouts for outcome in outcomes),
        answered=sum(outcome.answered for outcome in outcomes),
        client_cpu=_children_cpu() - client_cpu_before,
    )
