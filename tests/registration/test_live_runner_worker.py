"""The real worker (`python -m worker`) as a go-livepeer live runner, end to end, against
the in-process orchestrator stand-in with live runners on (interval 500 ms, TTL 2 s)."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.agents.support import agents_file
from tests.helpers.processes import WorkerProcess, free_port, http, wait_for
from tests.registration.support import ORCH_SECRET, leaked
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import default_models
from tests.standins.ollama_models import embedding, embedding_model
from tests.standins.orchestrator import StandinOrchestrator

TOKEN = "worker-token-live"
INTERVAL, TTL = "500ms", "2s"
APP = "agent-net/gpu-check"
H100 = "NVIDIA H100 80GB HBM3"
H100_VRAM_MB = 81559
Standin = Callable[..., StandinOrchestrator]
StartWorker = Callable[..., WorkerProcess]


NO_AGENTS = Path(__file__).with_name("no_agents.toml")


def live(standin: Standin, **options: Any) -> StandinOrchestrator:
    return standin(live_runners=True, heartbeat_interval=INTERVAL, heartbeat_ttl=TTL, **options)


def worker_env(orch: StandinOrchestrator, port: int | None = None, **extra: str) -> dict[str, str]:
    port = port or free_port()
    return {
        "WORKER_PORT": str(port),
        "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        "ORCH_URL": orch.url,
        "ORCH_SECRET": ORCH_SECRET,
        "WORKER_TOKEN": TOKEN,
        "REGISTER_INTERVAL_SECONDS": "1",
        "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}",  # nothing listens: Ollama is down
        "AGENTS_FILE": str(NO_AGENTS),  # the GPU-check runner alone (agents: their own test)
        **extra,
    }


def discovered(orch: StandinOrchestrator) -> list[dict[str, Any]]:
    """The runners GET /discovery lists now, over HTTP as a client sees it."""
    response = requests.get(f"{orch.url}/discovery", timeout=5)
    response.raise_for_status()
    [entry] = response.json()
    return [runner for runner in entry.get("runners", []) if runner["app"] == APP]


def one_discovered(orch: StandinOrchestrator) -> dict[str, Any] | None:
    runners = discovered(orch)
    return runners[0] if len(runners) == 1 else None


def runner_id_of(entry: dict[str, Any]) -> str:
    return entry["url"].rstrip("/").split("/")[-2]  # <service>/apps/<id>/app


def call_through(orch: StandinOrchestrator, entry: dict[str, Any], path: str = "gpu-check"):
    return requests.post(f"{entry['url']}/{path}", json={"agent_id": "via-live"}, timeout=10)


def readyz(worker: WorkerProcess) -> dict[str, Any]:
    return json.loads(http("GET", f"{worker.url}/readyz")[2])


def test_runner_is_discovered_with_the_gpu_and_answers_through_the_proxy(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = live(standin)
    worker = start_worker(worker_env(orch), nvml=fake_nvml)
    entry = wait_for(lambda: one_discovered(orch), 20, what="the runner in discovery")
    assert entry["gpu"] == {"id": "0", "name": H100, "vram_mb": H100_VRAM_MB}
    assert entry["mode"] == "single-shot" and entry["capacity"] == 10
    assert entry["url"].startswith(f"{orch.url}/apps/agent-net-gpu-check-")
    assert entry["url"].endswith("/app")
    metadata = json.loads(entry["metadata"])
    assert metadata["vram_total_mb"] == H100_VRAM_MB and metadata["status"] == "ready"
    assert "temperature_c" in metadata and "power_w" in metadata

    response = call_through(orch, entry)
    assert response.status_code == 200, response.text
    assert response.json()["agent_id"] == "via-live" and "gpu_count" in response.json()
    [proxied] = orch.live.view()["proxied"]
    assert proxied["path"].endswith("/gpu-check")

    # /readyz and /metrics show the runner: id, status sent, heartbeat age.
    [state] = wait_for(lambda: [s for s in readyz(worker)["live_runners"] if s["registered"]], 10)
    assert state["runner_id"] == runner_id_of(entry)
    assert state["status_sent"] == "ready" and state["orchestrator"] == orch.url
    assert 0 <= state["last_heartbeat_age_seconds"] < 20  # deadlock guard, not timing
    metrics = http("GET", f"{worker.url}/metrics")[2].decode()
    assert f'runner_id="{runner_id_of(entry)}"' in metrics
    assert "agent_net_live_runner_ready{" in metrics

    # BYOC goes on beside it (REGISTRATION_PROTOCOL defaults to both).
    assert wait_for(lambda: orch.store.get("agent-net"), 10, what="BYOC registration")


def test_a_lost_gpu_leaves_discovery_and_recovery_brings_it_back(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = live(standin)
    start_worker(worker_env(orch), nvml=fake_nvml)
    wait_for(lambda: one_discovered(orch), 20, what="the runner in discovery")

    for scenario in ("gpu_lost", "all_lost"):
        fake_nvml.set_scenario(scenario)
        wait_for(lambda: discovered(orch) == [], 10, what=f"the runner gone ({scenario})")
        [held] = [r for r in orch.runners() if r["app"] == APP]
        assert held["status"] == "unhealthy"
        assert "lost" in json.loads(held["metadata"])["reason"]
        fake_nvml.set_scenario("two_gpus")
        back = wait_for(lambda: one_discovered(orch), 10, what="the runner back")
        assert back["gpu"]["name"] == H100
    # The same registration throughout: status changes need no new bootstrap.
    assert len({r["runner_id"] for r in orch.runners()}) == 1


def test_an_orchestrator_restart_is_healed_with_a_fresh_id(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = live(standin)
    worker = start_worker(worker_env(orch), nvml=fake_nvml)
    before = runner_id_of(wait_for(lambda: one_discovered(orch), 20, what="discovery"))
    orch.restart()  # every runner forgotten: the next heartbeat gets 401
    after = wait_for(
        lambda: (e := one_discovered(orch)) and runner_id_of(e) != before and e,
        10,
        what="a new registration after the restart",
    )
    assert call_through(orch, after).status_code == 200
    refused = [h for h in orch.heartbeats() if h["status"] == 401]
    assert refused and all(h["secret"] == "heartbeat" for h in refused)
    assert "live_runner_forgotten" in worker.logs()


def test_sigkill_then_start_again_is_back_in_discovery_with_a_fresh_id(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = live(standin)
    port = free_port()
    first = start_worker(worker_env(orch, port), nvml=fake_nvml)
    old = runner_id_of(wait_for(lambda: one_discovered(orch), 20, what="discovery"))
    # A crash: the registrar (which holds the heartbeat secret) and the master die at once,
    # with no unregister; the orchestrator still holds the old id until its TTL.
    registrar = int(re.search(r"registrar_started pid=(\d+)", first.logs()).group(1))  # type: ignore[union-attr]
    os.kill(registrar, signal.SIGKILL)
    first.stop(signal.SIGKILL)
    start_worker(worker_env(orch, port), nvml=fake_nvml)
    fresh = wait_for(
        lambda: [e for e in discovered(orch) if runner_id_of(e) != old],
        20,
        what="the restarted worker's runner",
    )
    assert call_through(orch, fresh[0]).status_code == 200
    # The old id was not unregistered, and is never bootstrapped again (go-livepeer would
    # answer 401 while it holds it): the new one is fresh.
    events = orch.live.view()["events"]
    assert not [e for e in events if e["runner_id"] == old and e.get("reason") == "unregister"]
    assert not [h for h in orch.heartbeats() if h["runner_id"] == old and h["status"] != 200]


def test_sigterm_unregisters_and_nothing_secret_is_logged_or_shown(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = live(standin)
    worker = start_worker(worker_env(orch), nvml=fake_nvml)
    entry = wait_for(lambda: one_discovered(orch), 20, what="discovery")
    assert call_through(orch, entry).status_code == 200
    [held] = [r for r in orch.runners() if r["app"] == APP]
    assert held["runner_url"].endswith("/gpu-check")  # <CAPABILITY_URL>/lr/<prefix>/gpu-check
    prefix = held["runner_url"].split("/lr/")[1].split("/")[0]
    heartbeat_secret = orch.live._runners[held["runner_id"]]["heartbeat_secret"]
    shown = http("GET", f"{worker.url}/readyz")[2].decode()
    shown += http("GET", f"{worker.url}/metrics")[2].decode()
    # A request without the secret prefix is 404, also with the bearer token.
    for path in (
        "/lr/gpu-check",
        f"/lr/{'a' * 32}/gpu-check/gpu-check",
        "/lr/",
        f"/lr/{prefix}/nope",
        f"/lr/{prefix}/gpu-check/nope",
    ):
        status, _, body = http(
            "POST", worker.url + path, b'{"agent_id": "x"}', {"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 404 and json.loads(body)["error"] == "not_found", path
        assert prefix not in body.decode()

    assert worker.stop() == 0
    assert discovered(orch) == []
    removed = [e for e in orch.live.view()["events"] if e["event"] == "removed"]
    assert [e["reason"] for e in removed] == ["unregister"]  # 204 from /unregister
    logs = worker.logs()
    assert "live_runner_unregistered" in logs
    secrets = {
        "orch secret": ORCH_SECRET,
        "token": TOKEN,
        "heartbeat secret": heartbeat_secret,
        "route prefix": prefix,
    }
    assert leaked(logs + shown, secrets) == []
    sessions = [p["session_id"] for p in orch.live.view()["proxied"]]
    assert sessions and leaked(logs + shown, {s: s for s in sessions}) == []


def test_without_live_runners_one_warning_and_byoc_registers(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = standin()  # as go-livepeer without -useLiveRunners
    worker = start_worker(worker_env(orch), nvml=fake_nvml)
    wait_for(lambda: orch.store.get("agent-net"), 10, what="BYOC registration")
    wait_for(lambda: "live_runner_unsupported" in worker.logs(), 10, what="the warning")
    [state] = wait_for(
        lambda: [s for s in readyz(worker)["live_runners"] if s["supported"] is False], 10
    )
    assert "-useLiveRunners" in state["last_error"] and state["registered"] is False
    warnings = [line for line in worker.logs().splitlines() if "live_runner_unsupported" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert f"orchestrator={orch.url}" in warnings[0] and "-useLiveRunners" in warnings[0]
    assert readyz(worker)["registration"][0]["registered"] is True


def test_live_runner_only_registers_no_byoc_capability(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml
) -> None:
    orch = live(standin)
    worker = start_worker(
        worker_env(orch, REGISTRATION_PROTOCOL="live-runner", WORKER_TOKEN=""), nvml=fake_nvml
    )
    entry = wait_for(lambda: one_discovered(orch), 20, what="discovery")
    # Without a token the prefix is random per start, known to every HTTP worker.
    for _ in range(4):  # two gunicorn workers: several calls reach both
        assert call_through(orch, entry).status_code == 200
    assert orch.store.get("agent-net") is None
    assert readyz(worker)["registration"] == []


def test_each_agent_is_a_runner_ready_only_while_its_model_can_run(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml, ollama
) -> None:
    """The default agent beside the GPU check: streamed through the proxy while Ollama
    serves its model; out of discovery (the GPU check staying) once Ollama fails."""
    orch = live(standin)
    env = worker_env(orch, OLLAMA_HOST=ollama.url, AGENTS_FILE="")  # the default agent

    def runners() -> dict[str, dict[str, Any]]:
        response = requests.get(f"{orch.url}/discovery", timeout=5)
        [entry] = response.json()
        return {runner["app"]: runner for runner in entry.get("runners", [])}

    start_worker(env, nvml=fake_nvml)
    agent_app = "agent-net/agent-net-llm"
    found = wait_for(lambda: agent_app in (r := runners()) and APP in r and r, 20, what="both")
    agent = found[agent_app]
    assert agent["mode"] == "single-shot" and agent["gpu"]["name"] == H100
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 4}
    with requests.post(f"{agent['url']}/agent-net-llm", json=body, stream=True, timeout=20) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])

    ollama.set_mode("error")  # Ollama answers 500: the agent cannot run, the GPU check can
    remaining = wait_for(lambda: agent_app not in (r := runners()) and r, 20, what="agent out")
    assert APP in remaining
    ollama.set_mode("ok")
    wait_for(lambda: agent_app in runners(), 20, what="the agent back in discovery")


def test_an_agents_runner_serves_the_openai_api_for_that_agent(
    standin: Standin, start_worker: StartWorker, fake_nvml: FakeNvml, ollama, tmp_path: Path
) -> None:
    """An OpenAI client whose base_url is `<orchestrator>/apps/<runner_id>/app/v1` works
    unchanged through go-livepeer's proxy: models, chat (tool calls too), embeddings, for
    the runner's agent alone; another agent's name is a 404 that says which agent the
    runner serves."""
    ollama.set_models([*default_models(), embedding_model()])
    agents = agents_file(
        tmp_path,
        {"name": "coder", "model": "codellama:34b-instruct-q4_k_m"},
        {"name": "embedder", "model": "nomic-embed-text:latest"},
        {"name": "helper", "model": "llama3.2:3b"},  # takes tools
    )
    orch = live(standin)
    start_worker(worker_env(orch, OLLAMA_HOST=ollama.url, AGENTS_FILE=str(agents)), nvml=fake_nvml)

    def runners() -> dict[str, dict[str, Any]]:
        [entry] = requests.get(f"{orch.url}/discovery", timeout=5).json()
        return {runner["app"]: runner for runner in entry.get("runners", [])}

    apps = ("agent-net/coder", "agent-net/embedder", "agent-net/helper")
    found = wait_for(lambda: all(a in (r := runners()) for a in apps) and r, 20, what="runners")
    coder = openai.OpenAI(base_url=f"{found[apps[0]]['url']}/v1", api_key="-", max_retries=0)
    embedder = openai.OpenAI(base_url=f"{found[apps[1]]['url']}/v1", api_key="-", max_retries=0)
    helper = openai.OpenAI(base_url=f"{found[apps[2]]['url']}/v1", api_key="-", max_retries=0)

    assert [m.id for m in coder.models.list().data] == ["coder"]
    assert coder.models.retrieve("coder").model_dump()["capabilities"] == ["completion"]
    with pytest.raises(openai.NotFoundError) as elsewhere:
        coder.models.retrieve("embedder")
    assert elsewhere.value.body["message"] == (  # type: ignore[index]
        "model 'embedder' is not served here: this runner serves 'coder'"
    )

    answer = coder.chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert answer.choices[0].message.content and answer.model == "coder"
    pieces = coder.chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    with pytest.raises(openai.NotFoundError, match="this runner serves 'coder'"):
        coder.chat.completions.create(
            model="agent-net-llm", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.BadRequestError, match="agent 'coder' is a chat agent"):
        coder.embeddings.create(model="coder", input="hi")

    vectors = embedder.embeddings.create(
        model="embedder", input=["a", "b"], encoding_format="float"
    )
    assert [d.embedding for d in vectors.data] == [
        embedding("nomic-embed-text:latest", text, 768) for text in ("a", "b")
    ]
    assert len(embedder.embeddings.create(model="embedder", input="a").data[0].embedding) == 768
    with pytest.raises(openai.BadRequestError, match="'embedder' is an embedding agent"):
        embedder.chat.completions.create(
            model="embedder", messages=[{"role": "user", "content": "hi"}]
        )
    ollama.configure(
        reply="", tool_calls=({"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},)
    )
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    called = helper.chat.completions.create(model="helper", messages=ask, tools=[weather])
    [call] = called.choices[0].message.tool_calls or []
    assert called.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Oslo"},
    )
    streamed = list(
        helper.chat.completions.create(model="helper", messages=ask, tools=[weather], stream=True)
    )
    deltas = [d for c in streamed if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "tool_calls"

    paths = [p["path"] for p in orch.live.view()["proxied"]]
    assert any(p.endswith("/helper/v1/chat/completions") for p in paths)
    assert any(p.endswith("/embedder/v1/embeddings") for p in paths)
    assert any(p.endswith("/coder/v1/models/coder") for p in paths)
