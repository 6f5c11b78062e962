"""A stand-in Ollama server speaking the documented HTTP API, with switchable faults.

Endpoints (docs/api.md upstream): `GET|HEAD /`, `GET /api/version`, `GET /api/tags`,
`GET /api/ps`, `POST /api/show`. Modes, switchable while running:
- `ok`: answers like a server with the catalogue in `models` (some loaded);
- `slow`: every API answer waits `delay` seconds first;
- `hang`: API requests never get an answer (until the mode changes);
- `error`: every API call answers 500 `{"error": "..."}`;
- `nonjson`: every API call answers 200 with an HTML page.

Use in-process (`OllamaStandIn().start()`) or as a script:
`python tests/standins/ollama_api.py --port 11434 [--mode ok]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "slow", "hang", "error", "nonjson")
VERSION = "0.12.6"


def default_models() -> list[dict[str, Any]]:
    """Two models on disk; the first is loaded, fully in VRAM."""
    return [
        {
            "name": "codellama:34b-instruct-q4_k_m",
            "model": "codellama:34b-instruct-q4_k_m",
            "modified_at": "2026-11-20T10:12:43.123456789Z",
            "size": 20219745376,
            "digest": "a" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "34B",
                "quantization_level": "Q4_K_M",
            },
            "loaded": True,
            "size_vram": 20219745376,
        },
        {
            "name": "llama3.2:3b",
            "model": "llama3.2:3b",
            "modified_at": "2026-11-19T08:00:00Z",
            "size": 2019393189,
            "digest": "b" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
            "loaded": False,
            "size_vram": 0,
        },
    ]


@dataclass
class StandInState:
    """What the stand-in serves; mutate through OllamaStandIn's setters."""

    mode: str = "ok"
    delay: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=default_models)
    requests: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)


def _public(model: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in model.items() if key not in ("loaded", "size_vram")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_HEAD(self) -> None:
        self._send(200, b"", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._serve()

    def _serve(self) -> None:
        state = self.server.state
        with state.changed:
            state.requests += 1
        if self.path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
            return
        if not self._apply_fault(state):
            return
        routes = {
            "/api/version": lambda: {"version": VERSION},
            "/api/tags": lambda: {"models": [_public(m) for m in state.models]},
            "/api/ps": lambda: {"models": [self._running(m) for m in state.models if m["loaded"]]},
        }
        if self.path in routes:
            self._json(200, routes[self.path]())
        elif self.path == "/api/show":
            self._json(404, {"error": "model not found"})
        else:
            self._send(404, b"404 page not found", "text/plain")

    @staticmethod
    def _running(model: dict[str, Any]) -> dict[str, Any]:
        return {
            **_public(model),
            "expires_at": "2026-11-23T19:00:00.000000000Z",
            "size_vram": model["size_vram"],
            "context_length": 4096,
        }

    def _apply_fault(self, state: StandInState) -> bool:
        """Return True when the request should be answered normally."""
        with state.changed:
            mode, delay = state.mode, state.delay
            if mode == "hang":
                state.changed.wait_for(lambda: state.mode != "hang")
                mode, delay = state.mode, state.delay
        if mode == "slow":
            time.sleep(delay)
        if mode == "error":
            self._json(500, {"error": "llama runner process has terminated: exit status 2"})
            return False
        if mode == "nonjson":
            self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return False
        return True

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: StandInState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class OllamaStandIn:
    """The stand-in server in a background thread of this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "ok") -> None:
        self.state = StandInState(mode=mode)
        self._server = _Server((host, port), self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OllamaStandIn:
        self._thread.start()
        return self

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self.state.changed:
            self.state.mode, self.state.delay = mode, delay
            self.state.changed.notify_all()

    def set_models(self, models: list[dict[str, Any]]) -> None:
        with self.state.changed:
            self.state.models = models

    def stop(self) -> None:
        self.set_mode("ok")
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    server = OllamaStandIn(args.host, args.port, args.mode)
    server.set_mode(args.mode, args.delay)
    print(f"ollama stand-in listening on http://{args.host}:{server.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._server.serve_forever()


if __name__ == "__main__":
    main()
