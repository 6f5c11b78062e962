"""The worker stays slim: loading every worker module pulls in neither web3, eth-* nor payments."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.processes import ROOT

# web3 and the eth-* packages behind payments.tickets, and payments itself
ETHEREUM_AND_PAYMENTS = ("web3", "eth_account", "eth_utils", "eth_keys", "eth_hash", "payments")
WORKER_MODULES = [
    "worker.__main__",
    "worker.server",
    "worker.app",
    "worker.registrar",
    "worker.metrics",
    "worker.sampling",
]


def test_worker_modules_import_neither_web3_nor_payments() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {WORKER_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{('worker', *ETHEREUM_AND_PAYMENTS)!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "worker.app" in loaded  # the check saw the worker's modules load
    assert [name for name in loaded if not name.startswith("worker")] == []
