"""Agent routes on the real worker (gunicorn, gevent) over the Ollama and NVML stand-ins."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest

from tests.agents.support import HELLO, agents_file, open_stream, read_events, stream
from tests.helpers.openai_errors import openai_error
from tests.helpers.processes import http, post_json, wait_for, worker_runtime_dir
from tests.metrics.scrape import scrape, value
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn

AGENT = "agent-net-llm"


@pytest.fixture
def run_worker(start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path):
    """Start the worker on the stand-ins: `run_worker(*agents, **env)`; agents (dicts)
    go to an agents file, none means the default agent."""

    def run(*agents: dict, **env: str):
        extra = dict(env)
        if agents:
            extra["AGENTS_FILE"] = str(agents_file(tmp_path, *agents))
        return start_worker({"OLLAMA_HOST": ollama.url, **extra}, nvml=fake_nvml)

    return run


def generation(ollama: OllamaStandIn, index: int = -1):
    return ollama.generations()[index]


def test_a_streamed_answer_arrives_piece_by_piece_then_usage_then_done(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    ollama.configure(reply="The sky is blue because air scatters blue light", token_interval=0.2)
    worker = run_worker()
    seen_while_running: list[tuple[int, bool]] = []

    def on_event(data: str) -> None:
        # When each piece arrives, the stand-in has not finished the generation yet.
        gens = ollama.generations()
        if gens and data != "[DONE]" and '"content":"' in data and '"content":""' not in data:
            seen_while_running.append((gens[-1].tokens_sent, gens[-1].ended_at is None))

    result = stream(worker.url, f"/{AGENT}", {"messages": HELLO}, on_event=on_event)
    assert result.status == 200
    assert result.headers["Content-Type"].startswith("text/event-stream")
    assert result.payloads[-1] == "[DONE]"
    chunks = result.chunks()
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == AGENT for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert result.text() == "The sky is blue because air scatters blue light"
    assert len(result.pieces()) == 9  # one chunk per piece Ollama sent
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"]["completion_tokens"] == 9
    assert last["usage"]["prompt_tokens"] == len(HELLO[0]["content"].split())
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 9
    # The stand-in counts a piece before it sends it: a client holding piece k finds at
    # least k counted, whatever the machine's load.
    counts = [count for count, _ in seen_while_running]
    assert len(counts) == 9 and all(count >= k for k, count in enumerate(counts, 1)), counts
    # Spread over time (a piece every 0.2 s): the first one arrived while Ollama was still
    # generating, long before the last.
    assert seen_while_running[0][1] is True and counts[0] < 9
    gen = generation(ollama)
    assert gen.endpoint == "/api/chat" and gen.model == "codellama:34b-instruct-q4_k_m"
    assert gen.body["stream"] is True and gen.outcome == "done"


def test_not_streamed_is_one_chat_completion_with_usage(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    ollama.configure(reply="Rayleigh scattering.")
    worker = run_worker(
        {
            "name": "sky",
            "model": "llama3.2:3b",
            "system": "You are terse.",
            "max_tokens": 64,
            "num_ctx": 8192,
            "temperature": 0.3,
        },
    )
    body = {
        "model": "sky",
        "messages": HELLO,
        "max_tokens": 1000,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
    }
    status, answer = post_json(f"{worker.url}/v1/chat/completions", body, timeout=20)
    assert status == 200, answer
    assert answer["object"] == "chat.completion" and answer["model"] == "sky"
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Rayleigh scattering.",
    }
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == 2
    sent = generation(ollama).body
    assert sent["model"] == "llama3.2:3b"
    assert sent["messages"] == [{"role": "system", "content": "You are terse."}, *HELLO]
    assert sent["options"] == {
        "num_predict": 64,  # the client's 1000 capped by the agent
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["\n\n"],
        "num_ctx": 8192,
    }
    # The route named after the agent answers the same way.
    status, answer = post_json(f"{worker.url}/sky", {"messages": HELLO}, timeout=20)
    assert status == 200 and answer["choices"][0]["message"]["content"] == "Rayleigh scattering."


def test_max_tokens_ends_with_finish_reason_length(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    ollama.configure(tokens=20)
    worker = run_worker()
    result = stream(worker.url, f"/{AGENT}", {"messages": HELLO, "max_tokens": 3})
    assert len(result.pieces()) == 3
    assert result.chunks()[-1]["choices"][0]["finish_reason"] == "length"
    assert result.payloads[-1] == "[DONE]"
    assert generation(ollama).options["num_predict"] == 3


def test_an_error_mid_stream_is_an_error_chunk_then_done(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = run_worker()
    for mode in ("error", "close"):
        ollama.configure(tokens=10, fail_after=3, fail_mode=mode)
        result = stream(worker.url, f"/{AGENT}", {"messages": HELLO})
        assert result.status == 200
        assert len(result.pieces()) == 3
        assert result.payloads[-1] == "[DONE]", mode
        error = result.chunks()[-1]["error"]
        assert error["code"] == "upstream_error" and error["message"], mode
        if mode == "error":
            assert "model runner has unexpectedly stopped" in error["message"]


def test_the_time_limit_ends_generation_upstream_and_the_stream_with_done(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    ollama.configure(tokens=200, token_interval=0.05)
    worker = run_worker(
        {"name": "brief", "model": "codellama:34b-instruct-q4_k_m", "timeout_seconds": 1.0},
    )
    result = stream(worker.url, "/brief", {"messages": HELLO})
    assert result.payloads[-1] == "[DONE]"
    last = result.chunks()[-1]
    assert last["choices"][0]["finish_reason"] == "time_limit"
    assert 0 < len(result.pieces()) < 200
    assert last["usage"]["completion_tokens"] == len(result.pieces())
    wait_for(lambda: ollama.active_generations == 0, 10, what="the generation to stop")
    assert generation(ollama).outcome == "client_gone"  # the worker hung up on Ollama

    # A model that never sends a first token: the time limit still ends it with [DONE].
    ollama.configure(hang_before_first_token=True)
    result = stream(worker.url, "/brief", {"messages": HELLO})
    assert result.pieces() == []
    assert result.chunks()[-1]["choices"][0]["finish_reason"] == "time_limit"
    assert result.payloads[-1] == "[DONE]"
    wait_for(lambda: ollama.active_generations == 0, 10, what="the hung generation to stop")
    status, answer = post_json(f"{worker.url}/brief", {"messages": HELLO}, timeout=20)
    error = openai_error(answer)
    assert (status, error["code"], error["type"]) == (504, "time_limit", "server_error")
    assert "time limit (1 s)" in error["message"]


def _disconnect_case(worker, ollama: OllamaStandIn, path: str, wait_pieces: int) -> float:
    """Open a stream, read `wait_pieces` content events, hang up; the time of the hang-up."""
    conn, response = open_stream(worker.url, path, {"messages": HELLO, "stream": True})
    read_events(response, limit=1 + wait_pieces)
    wait_for(lambda: ollama.active_generations == 1, 10, what="the generation to run")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    return time.monotonic()


def test_a_client_that_leaves_stops_the_generation_and_frees_its_slot(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    worker = run_worker(
        {"name": "solo", "model": "codellama:34b-instruct-q4_k_m", "capacity": 1},
    )
    for behaviour, pieces in (
        ({"hang_before_first_token": True}, 0),  # nothing to write: the watcher sees it
        ({"hang_before_first_token": False, "tokens": 500, "token_interval": 0.05}, 3),
    ):
        ollama.configure(**behaviour)
        left_at = _disconnect_case(worker, ollama, "/solo", pieces)
        wait_for(lambda: ollama.active_generations == 0, 10, what="the generation to stop")
        gen = generation(ollama)
        assert gen.outcome == "client_gone"
        assert gen.client_gone_at is not None and gen.client_gone_at - left_at < 1.0
        # The slot is free again: the next job is admitted (not 503 at_capacity).
        ollama.configure(hang_before_first_token=False, tokens=2, token_interval=0.0)
        _, answer = wait_for(
            lambda: (lambda r: r if r[0] == 200 else None)(
                post_json(f"{worker.url}/solo", {"messages": HELLO}, timeout=20)
            ),
            10,
            what="the freed slot",
        )
        assert answer["usage"]["completion_tokens"] == 2


def test_bad_requests_are_stable_json_errors(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = run_worker(AGENT_MAX_BODY_BYTES="2048")
    openai = f"{worker.url}/v1/chat/completions"
    agent = f"{worker.url}/{AGENT}"
    cases = [  # url, body, status, code, a part of the message that names the problem
        (openai, {"model": "nobody", "messages": HELLO}, 404, "unknown_agent", "'nobody'"),
        (openai, {"messages": HELLO}, 400, "missing_model", "model is required"),
        (agent, {"messages": []}, 400, "invalid_messages", "non-empty array"),
        (agent, {"messages": "hi"}, 400, "invalid_messages", "non-empty array"),
        (
            agent,
            {"messages": [{"role": "robot", "content": "x"}]},
            400,
            "invalid_messages",
            "messages[0].role",
        ),
        (
            agent,
            {"messages": [{"role": "user", "content": 3}]},
            400,
            "invalid_messages",
            "messages[0].content",
        ),
        (agent, {"messages": HELLO, "max_tokens": 0}, 400, "invalid_max_tokens", "max_tokens"),
        (
            agent,
            {"messages": HELLO, "temperature": "hot"},
            400,
            "invalid_temperature",
            "temperature",
        ),
        (agent, {"messages": HELLO, "stream": "yes"}, 400, "invalid_stream", "stream"),
        (agent, {"messages": HELLO, "stop": [1]}, 400, "invalid_stop", "stop"),
        (
            agent,
            {"messages": [{"role": "user", "content": "x" * 4000}]},
            413,
            "body_too_large",
            "2048 bytes",
        ),
    ]
    for url, body, status, code, named in cases:
        got, headers, raw = http(
            "POST", url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        error = openai_error(raw)
        assert (got, error["code"]) == (status, code), (body, raw)
        assert named in error["message"], (body, raw)
        assert headers["Content-Type"] == "application/json"
    got, _, raw = http("POST", agent, b"{not json", {})
    error = openai_error(raw)
    assert (got, error["code"], error["type"]) == (400, "invalid_json", "invalid_request_error")
    assert "JSON object" in error["message"]
    assert ollama.generations() == []  # nothing bad reached the model


def test_the_worker_token_guards_the_agent_routes(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = run_worker(WORKER_TOKEN="tok-123")
    for path in (f"/{AGENT}", "/v1/chat/completions"):
        body = {"model": AGENT, "messages": HELLO}
        status, answer = post_json(worker.url + path, body)
        error = openai_error(answer)
        assert (status, error["code"], error["type"]) == (
            401,
            "unauthorized",
            "authentication_error",
        )
        assert "Bearer" in error["message"]
        status, answer = post_json(
            worker.url + path, body, {"Authorization": "Bearer tok-123"}, timeout=20
        )
        assert status == 200 and answer["object"] == "chat.completion"


def test_admission_refuses_with_503_and_retry_after_before_any_stream(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    worker = run_worker(
        {"name": AGENT, "model": "codellama:34b-instruct-q4_k_m", "capacity": 2},
        {"name": "absent", "model": "mistral:7b"},
    )

    def refused(path: str = f"/{AGENT}") -> tuple[int, dict[str, str], dict]:
        status, headers, raw = http(
            "POST",
            worker.url + path,
            json.dumps({"messages": HELLO, "stream": True}).encode(),
            {"Content-Type": "application/json"},
            timeout=20,
        )
        return (
            status,
            headers,
            json.loads(raw) if headers["Content-Type"] == "application/json" else {},
        )

    status, headers, body = refused("/absent")
    error = openai_error(body)
    assert (status, error["code"], headers["Retry-After"]) == (503, "model_not_on_disk", "30")
    assert "mistral:7b" in error["message"] and error["type"] == "server_error"

    fake_nvml.set_scenario("gpu_lost")
    status, headers, body = wait_for(
        lambda: (lambda r: r if r[0] == 503 else None)(refused()), 10, what="GPU lost refusal"
    )
    error = openai_error(body)
    assert error["code"] == "gpu_unfit" and "GPU 1" in error["message"]
    assert int(headers["Retry-After"]) > 0
    fake_nvml.set_scenario("two_gpus")
    wait_for(lambda: refused()[0] == 200, 10, what="admitted again")

    ollama.set_mode("error")
    status, headers, body = wait_for(
        lambda: (lambda r: r if r[0] == 503 else None)(refused()), 10, what="Ollama down refusal"
    )
    error = openai_error(body)
    assert error["code"] == "ollama_unavailable" and int(headers["Retry-After"]) > 0
    assert "Ollama" in error["message"]
    ollama.set_mode("ok")
    wait_for(lambda: refused()[0] == 200, 10, what="admitted again")

    # Hold both of the agent's slots from here, as two running jobs in other processes
    # would (the last job frees its slot just after its [DONE]: wait for it).
    fd = os.open(worker_runtime_dir(worker) / f"agent-{AGENT}.slots", os.O_RDWR)
    try:

        def lock(slot: int) -> bool:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
            except OSError:
                return False
            return True

        for slot in range(2):
            wait_for(lambda slot=slot: lock(slot), 10, what=f"slot {slot} free")
        status, headers, body = refused()
        error = openai_error(body)
        assert (status, error["code"], headers["Retry-After"]) == (503, "at_capacity", "1")
        assert f"agent {AGENT} is running 2 jobs" in error["message"]
    finally:
        os.close(fd)
    before = len(ollama.generations())
    assert refused()[0] == 200
    assert len(ollama.generations()) == before + 1


def test_without_nvml_agents_are_refused(start_worker, ollama: OllamaStandIn) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url})  # no NVML library at all
    status, headers, raw = http(
        "POST",
        f"{worker.url}/{AGENT}",
        json.dumps({"messages": HELLO}).encode(),
        {"Content-Type": "application/json"},
    )
    error = openai_error(raw)
    assert (status, error["code"]) == (503, "gpu_unfit") and "Retry-After" in headers
    assert "NVML" in error["message"] or "GPU" in error["message"], error
    assert ollama.generations() == []


def test_fifty_streams_at_once_all_complete(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    ollama.configure(tokens=10, token_interval=0.05)
    worker = run_worker(
        {"name": "crowd", "model": "codellama:34b-instruct-q4_k_m", "capacity": 60},
        WORKER_WORKERS="1",
    )
    results: list = [None] * 50

    def one(index: int) -> None:
        results[index] = stream(worker.url, "/crowd", {"messages": HELLO}, timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(r is not None for r in results)
    assert [len(r.pieces()) for r in results] == [10] * 50
    assert all(r.payloads[-1] == "[DONE]" for r in results)
    # The generations overlapped: a single-process gevent worker ran them concurrently.
    # (A generation ends just after its last line: the stand-in may still be ending one.)
    assert ollama.wait_idle(10)
    gens = ollama.generations()
    assert max(g.started_at for g in gens) < min(g.ended_at for g in gens)


def test_metrics_and_gpu_check_show_each_agent(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn, tmp_path: Path
) -> None:
    ollama.configure(tokens=5, token_interval=0.01)
    worker = run_worker(
        {"name": "coder", "model": "codellama:34b-instruct-q4_k_m"},
        {"name": "small", "model": "llama3.2:3b", "capacity": 2},
    )
    for _ in range(2):
        assert stream(worker.url, "/coder", {"messages": HELLO}).payloads[-1] == "[DONE]"
    post_json(f"{worker.url}/coder", {"messages": []})
    samples = scrape(worker.url)
    assert value(samples, "agent_net_agent_requests_total", agent="coder", outcome="completed") == 2
    assert (
        value(samples, "agent_net_agent_requests_total", agent="coder", outcome="bad_request") == 1
    )
    assert value(samples, "agent_net_agent_completion_tokens_total", agent="coder") == 10
    assert value(samples, "agent_net_agent_prompt_tokens_total", agent="coder") == 2 * 5
    assert value(samples, "agent_net_agent_time_to_first_token_seconds_count", agent="coder") == 2
    assert value(samples, "agent_net_agent_tokens_per_second_count", agent="coder") == 2
    assert value(samples, "agent_net_agent_jobs_running", agent="coder") == 0
    assert value(samples, "agent_net_agent_requests_total", agent="small", outcome="completed") == 0

    status, report = worker.check("small")
    assert status == 200
    assert [a["name"] for a in report["agents"]] == ["small", "coder"]
    small, coder = report["agents"]
    assert small == {
        "name": "small",
        "model": "llama3.2:3b",
        "on_disk": True,
        "loaded": False,
        "vram_mb": None,
        "capacity": 2,
        "capabilities": ["completion", "tools"],  # Ollama's /api/show, read by the sampler
        "jobs_running": 0,
    }
    assert coder["loaded"] is True and coder["vram_mb"] == round(20219745376 / 2**20, 1)
    assert [a["name"] for a in worker.check("someone-else")[1]["agents"]] == ["coder", "small"]

    # A job running shows in jobs_running (and the gauge) while it runs.
    ollama.configure(hang_before_first_token=True)
    conn, response = open_stream(worker.url, "/small", {"messages": HELLO, "stream": True})
    try:
        read_events(response, limit=1)
        wait_for(lambda: worker.check("x")[1]["agents"][1]["jobs_running"] == 1, 10)
        wait_for(
            lambda: value(scrape(worker.url), "agent_net_agent_jobs_running", agent="small") == 1,
            10,
        )
    finally:
        conn.close()


def test_streams_one_after_another_on_one_kept_alive_connection(
    run_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    """go-livepeer reuses its connections to the worker: the disconnect watcher must never
    disturb the server reading the next request on the same connection. The worker keeps
    its own connection to Ollama alive too: all 40 generations ride on one."""
    worker = run_worker(WORKER_WORKERS="1")
    host, _, port = worker.url.removeprefix("http://").partition(":")
    conn = HTTPConnection(host, int(port), timeout=20)
    try:
        for _ in range(40):
            conn.request(
                "POST",
                f"/{AGENT}",
                json.dumps({"messages": HELLO, "stream": True}).encode(),
                {"Content-Type": "application/json"},
            )
            result = read_events(conn.getresponse())
            assert result.status == 200 and result.payloads[-1] == "[DONE]"
            assert len(result.pieces()) == 8
    finally:
        conn.close()
    assert [g.outcome for g in ollama.generations()] == ["done"] * 40
    chats = [r for r in ollama.state.recorded if r.path == "/api/chat"]
    assert len(chats) == 40
    assert {r.connection for r in chats} == {chats[0].connection}
