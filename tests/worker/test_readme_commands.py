"""The README's run command serves the worker, answering the README's curl probe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from tests.helpers.processes import ROOT, free_port, http, wait_for


def test_scripts_run_sh_serves_the_readme_probe(tmp_path: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCH_", "CAPABILITY_", "WORKER_", "OLLAMA_", "AGENT_NET_"))
    }
    env.update(
        {"WORKER_PORT": str(port), "WORKER_HOST": "127.0.0.1", "LD_LIBRARY_PATH": str(tmp_path)}
    )
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http("GET", f"{url}/readyz", timeout=1)[0] == 200, 60, what="run.sh")
        # curl -X POST localhost:9876/gpu-check -d '{"agent_id":"demo"}' (form content type)
        status, _, body = http(
            "POST",
            f"{url}/gpu-check",
            b'{"agent_id":"demo"}',
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        document = json.loads(body)
        assert status == 200
        assert document["agent_id"] == "demo" and document["status"] == "degraded"
        assert "ollama: Ollama unreachable at http://127.0.0.1:11434" in document["reasons"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
        log.close()
    assert process.returncode == 0
    output = (tmp_path / "run.log").read_text()
    assert "worker_listening" in output and "Traceback" not in output
