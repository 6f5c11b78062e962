"""What each process loads: the worker stays slim, and each process only what it needs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.helpers.processes import ROOT

# web3 and the eth-* packages behind payments.tickets, and payments itself
ETHEREUM_AND_PAYMENTS = ("web3", "eth_account", "eth_utils", "eth_keys", "eth_hash", "payments")
WORKER_MODULES = [
    "worker.__main__",
    "worker.server",
    "worker.supervisor",
    "worker.http.app",
    "worker.http.chat",
    "worker.registration.process",
    "worker.http.metrics",
    "worker.sampling.process",
    "worker.cli",  # agent-net doctor runs in the image, which has no payments package
    "worker.doctor",
]


def loaded_after_import(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules under `prefixes` that importing `modules` loads, in a fresh process."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_worker_modules_import_neither_web3_nor_payments() -> None:
    loaded = loaded_after_import(WORKER_MODULES, ("worker", *ETHEREUM_AND_PAYMENTS))
    assert "worker.http.app" in loaded  # the check saw the worker's modules load
    assert [name for name in loaded if not name.startswith("worker")] == []


def test_http_workers_never_load_nvml_or_an_ollama_client() -> None:
    """Only the sampler process talks to NVML and Ollama's catalogue. The agent routes
    stream chat from Ollama over the standard library's sockets (worker.http.
    ollama_stream: http.client connects, httptools, a parser with no I/O of its own,
    parses the answer), which gevent's monkey-patching makes cooperative; no client
    library (ollama, httpx, requests/urllib3) is loaded on the HTTP side."""
    loaded = loaded_after_import(
        ["worker.http.app", "worker.sampling.fitness"],
        ("pynvml", "ollama", "httpx", "requests", "urllib3", "worker"),
    )
    assert "worker.sampling.published" in loaded
    assert "worker.sampling.fitness" in loaded
    assert {"worker.http.chat", "worker.http.ollama_stream"} <= set(loaded)
    assert [name for name in loaded if not name.startswith("worker")] == []


def test_the_master_loads_no_module_that_gevent_cannot_patch_after_it() -> None:
    """gevent warns (MonkeyPatchWarning) when urllib3 or the like was imported before it."""
    loaded = loaded_after_import(
        ["worker.__main__", "worker.server", "worker.supervisor"],
        ("urllib3", "requests", "httpx", "ollama", "pynvml", "prometheus_client", "flask"),
    )
    assert loaded == []


def test_settings_depend_on_nothing_above_them() -> None:
    """worker.config is the bottom of the worker: importing it loads no other worker
    module, and no import of one hides anywhere in it (in a function, for type checks)."""
    assert loaded_after_import(["worker.config"], ("worker",)) == ["worker", "worker.config"]
    tree = ast.parse((ROOT / "worker" / "config.py").read_text(encoding="utf-8"))
    named = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "pydantic" in named  # the check saw the module's imports
    assert [name for name in named if name.split(".")[0] == "worker"] == []
