"""The benchmark's baseline: an empty-JSON endpoint under the worker's own gunicorn server.

It runs through `worker.__main__.serve` with only the app replaced, so the gunicorn
options and hooks (worker class, processes, threads, timeouts, keep-alive, metrics
directory) are the worker's and cannot drift. Environment as for `python -m worker`.

    python bench/baseline_app.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.__main__ import serve  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.logs import setup_logging  # noqa: E402


def baseline_app() -> Any:
    """A Flask app whose every job route answers `{}`: the floor the worker is measured on."""
    from flask import Flask, Response, jsonify

    app = Flask("agent_net_baseline")

    def empty() -> Response:
        return jsonify({})

    app.add_url_rule("/gpu-check", view_func=empty, methods=["POST"])
    app.add_url_rule("/readyz", view_func=empty, methods=["GET"])
    return app


def main() -> int:
    settings = load_settings(os.environ)
    setup_logging(settings.log_level, settings.log_format)
    return serve(settings, app_factory=baseline_app)


if __name__ == "__main__":
    sys.exit(main())
