"""Benchmark: what the /gpu-check report itself costs, in-process, like for like.

`bench/run.py` compares `/gpu-check` with the same server's `/healthz` under load. Since
the job routes are answered without Flask (worker/http/lean.py) and `/healthz` still goes
through it, that ratio holds Flask's own per-request cost in /gpu-check's favour. This
script shows the parts apart: it runs the real worker once (stand-in NVML with two GPUs
and their health, Ollama stand-in) to take a real `readings.json`, then calls the app's
WSGI callable in this process, alternating, and prints the best of several rounds for:

- `GET /healthz` through Flask;
- `POST /gpu-check` on the lean route (the whole job: body, capacity slot, document);
- `POST` to a lean route that answers `{}` (added here): the floor of the lean path.

The report's own cost is the second minus the third.

    .venv/bin/python bench/report_cost.py [--requests 3000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import Server, all_fine, free_port, settle  # noqa: E402

from tests.standins.nvml.build import FakeNvml, build_fake_nvml  # noqa: E402
from tests.standins.ollama_api import OllamaStandIn  # noqa: E402

BODY = b'{"agent_id": "bench-agent"}'


def capture_readings(work: Path) -> Path:
    """A readings.json the real sampler published (two GPUs with health, two models)."""
    nvml = FakeNvml.create(build_fake_nvml(work / "lib"), work / "nvml")
    ollama = OllamaStandIn().start()
    port = free_port()
    env = dict(os.environ) | {
        "WORKER_HOST": "127.0.0.1",
        "WORKER_PORT": str(port),
        "WORKER_WORKERS": "1",
        "OLLAMA_HOST": ollama.url,
        "AGENT_NET_RUNTIME_DIR": str(work / "runtime"),
        "AGENT_NET_DATA_DIR": str(work / "data"),
        **nvml.env({}),
    }
    server = Server("worker", [sys.executable, "-m", "worker"], env, work / "w.log", port)
    try:
        server.start()
        settle(lambda: all_fine(server.url), "worker fine")
        kept = work / "readings.json"
        shutil.copy(work / "runtime" / "readings.json", kept)
        return kept
    finally:
        server.stop()
        ollama.stop()


def environ(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "bench",
        "SERVER_PORT": "9876",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:9876",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per round and route")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agent-net-bench-report-"))
    readings_file = capture_readings(work)
    runtime = work / "app"
    runtime.mkdir()
    shutil.copy(readings_file, runtime / "readings.json")
    published = json.loads(readings_file.read_text())["published_at"]

    from werkzeug.wrappers import Response

    from worker.config import load_settings
    from worker.http.app import create_app
    from worker.sampling.published import Readings

    settings = load_settings(
        {"OLLAMA_HOST": "http://127.0.0.1:9", "AGENT_NET_DATA_DIR": str(work / "data")}
    )
    # The readings as of just after they were published, their sampler taken as alive.
    readings = Readings(
        runtime, stale_after=3, clock=lambda: published + 0.1, pid_alive=lambda pid: True
    )
    app = create_app(settings, runtime, readings=readings)
    app.wsgi_app.routes["/bench-empty"] = lambda env: Response("{}", mimetype="application/json")

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"answered {status}")

    cases = {
        "GET /healthz (Flask)": ("GET", "/healthz", b""),
        "POST /gpu-check (lean)": ("POST", "/gpu-check", BODY),
        "POST {} (lean floor)": ("POST", "/bench-empty", BODY),
    }
    best = {name: float("inf") for name in cases}
    for _ in range(args.rounds):
        for name, (method, path, body) in cases.items():
            started = time.perf_counter()
            for _ in range(args.requests):
                b"".join(app(environ(method, path, body), start_response))
            took = (time.perf_counter() - started) / args.requests * 1e6
            best[name] = min(best[name], took)
    print(f"\nin-process, best of {args.rounds} rounds of {args.requests} requests each:")
    for name, micros in best.items():
        print(f"  {name:26} {micros:7.1f} us per request")
    report = best["POST /gpu-check (lean)"] - best["POST {} (lean floor)"]
    print(f"  the report's own cost       {report:7.1f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
