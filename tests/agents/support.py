"""Helpers for the agent tests: an agents file, a streamed request read line by line."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.processes import free_port
from tests.registration.support import ORCH_SECRET
from tests.standins.ollama_models import catalogue_entry

DEFAULT_MODEL = "codellama:34b-instruct-q4_k_m"  # loaded in the Ollama stand-in at start
HELLO = [{"role": "user", "content": "why is the sky blue?"}]
ORCHESTRATED_TOKEN = "worker-token-agents"  # the worker token of start_registered()
# A function tool as OpenAI clients declare it (the SDK tests and bench/agents.py).
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def model_entry(name: str, loaded: bool = True, size: int = 5_000_000_000) -> dict[str, Any]:
    """A catalogue entry for the Ollama stand-in (`set_models`); what it can do comes
    from the stand-in's capability table by name."""
    return catalogue_entry(
        name,
        size=size,
        family=name.split(":")[0],
        parameter_size="8B",
        quantization="Q4_K_M",
        modified_at="2026-11-21T10:00:00Z",
        loaded=loaded,
    )


def agents_file(directory: Path, *agents: Mapping[str, Any]) -> Path:
    """Write an agents TOML file of `agents` (strings, numbers, booleans) and return it."""
    lines = []
    for agent in agents:
        lines.append("[[agents]]")
        for key, value in agent.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path = directory / "agents.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclass
class Streamed:
    """One streamed answer: status, headers, and each `data:` payload with its arrival time."""

    status: int
    headers: dict[str, str]
    events: list[tuple[float, str]] = field(default_factory=list)
    other_lines: list[bytes] = field(default_factory=list)

    @property
    def payloads(self) -> list[str]:
        return [data for _, data in self.events]

    def chunks(self) -> list[dict[str, Any]]:
        """The JSON payloads (every `data:` line but `[DONE]`)."""
        return [json.loads(data) for data in self.payloads if data != "[DONE]"]

    def pieces(self) -> list[str]:
        """The text of each content chunk, in order (the role chunk has none)."""
        return [
            chunk["choices"][0]["delta"]["content"]
            for chunk in self.chunks()
            if "choices" in chunk and chunk["choices"][0]["delta"].get("content")
        ]

    def text(self) -> str:
        return "".join(self.pieces())


def open_stream(
    base_url: str,
    path: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    host, _, port = base_url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.request(
        "POST",
        path,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )
    return conn, conn.getresponse()


def read_events(
    response: http.client.HTTPResponse, on_event: Any = None, limit: int | None = None
) -> Streamed:
    """Read SSE lines until the body ends (or `limit` events); `on_event(data)` per event."""
    result = Streamed(response.status, dict(response.headers))
    while line := response.readline():
        if line.startswith(b"data: "):
            data = line[6:].rstrip(b"\r\n").decode()
            result.events.append((time.monotonic(), data))
            if on_event is not None:
                on_event(data)
            if limit is not None and len(result.events) >= limit:
                break
        elif line.strip():
            result.other_lines.append(line)
    return result


def stream(
    base_url: str,
    path: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    **kw: Any,
) -> Streamed:
    """POST `body` with `"stream": true` and read the whole event stream."""
    conn, response = open_stream(base_url, path, {**body, "stream": True}, headers, timeout)
    try:
        return read_events(response, **kw)
    finally:
        conn.close()


def start_registered(
    start_worker: Any, fake_nvml: Any, ollama: Any, orch: Any, tmp_path: Path, *agents: Any
) -> Any:
    """Start the worker over the stand-ins with `agents`, registering with the orchestrator
    stand-in `orch` every second, its job routes guarded by ORCHESTRATED_TOKEN."""
    port = free_port()
    env = {
        "WORKER_PORT": str(port),
        "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        "ORCH_URL": orch.url,
        "ORCH_SECRET": ORCH_SECRET,
        "WORKER_TOKEN": ORCHESTRATED_TOKEN,
        "REGISTER_INTERVAL_SECONDS": "1",
        "OLLAMA_HOST": ollama.url,
        "AGENTS_FILE": str(agents_file(tmp_path, *agents)),
    }
    return start_worker(env, nvml=fake_nvml)
