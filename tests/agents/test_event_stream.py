"""EventStream (worker/http/chat.py) over a real socket from a one-write Ollama: what the
worker writes, event by event, when pieces arrive together or a failure follows them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.agents import Agent
from worker.http import usage_hook
from worker.http.agent_metrics import AgentSeries
from worker.http.chat import ChatJob, EventStream
from worker.openai.request import ChatPlan

AGENT = Agent(name="batcher", model="m:1")
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def line(content: str, done: bool = False) -> bytes:
    message = {"message": {"role": "assistant", "content": content}, "done": done}
    if done:
        message |= {"done_reason": "stop", "prompt_eval_count": 3, "eval_count": 5}
    data = json.dumps(message).encode() + b"\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def one_write_ollama() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server that answers each connection with the bytes queued, in one write."""
    listener = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)  # the request (small: one read)
                conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers
    listener.close()


def stream(url: str, tmp_path: Path) -> list[bytes]:
    usage_hook.configure(tmp_path / "usage.sqlite3")
    chat = ChatPlan(({"role": "user", "content": "hi"},), {}, stream=True)
    job = ChatJob(AGENT, chat, url, AgentSeries(AGENT.name), lambda: None, None)
    events = EventStream(job)
    try:
        return list(events)
    finally:
        events.close()


def data_lines(write: bytes) -> list[dict]:
    return [json.loads(part[6:]) for part in write.split(b"\n\n") if part.startswith(b"data: {")]


def contents(writes: list[bytes]) -> list[str]:
    return [
        event["choices"][0]["delta"]["content"]
        for write in writes
        for event in data_lines(write)
        if "choices" in event and event["choices"][0]["delta"].get("content")
    ]


def test_the_first_piece_leaves_alone_and_the_ones_already_here_leave_together(
    one_write_ollama, tmp_path: Path
) -> None:
    url, answers = one_write_ollama
    words = [f"w{i} " for i in range(10)]
    answers.append(HEAD + b"".join(line(w) for w in words) + line("", done=True) + b"0\r\n\r\n")
    writes = stream(url, tmp_path)
    assert len(data_lines(writes[0])) == 1  # the role
    assert contents([writes[1]]) == ["w0 "]  # the first piece, alone
    assert len(data_lines(writes[1])) == 1
    assert contents(writes) == words  # every piece, in order, one event each
    # The nine that were already here left in one write, not nine.
    assert [len(contents([w])) for w in writes[2:]] == [9, 0, 0]
    final = data_lines(writes[-2])[0]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    assert writes[-1] == b"data: [DONE]\n\n"


def test_pieces_received_before_a_failure_still_leave_before_its_error(
    one_write_ollama, tmp_path: Path
) -> None:
    url, answers = one_write_ollama
    # Three pieces, then framing that is not HTTP: Ollama's answer is broken there.
    answers.append(HEAD + line("a") + line("b") + line("c") + b"zz\r\n")
    writes = stream(url, tmp_path)
    assert contents(writes) == ["a", "b", "c"]
    error = [event for write in writes for event in data_lines(write) if "error" in event]
    assert error and error[0]["error"]["code"] == "upstream_error"
    assert writes[-1] == b"data: [DONE]\n\n"


def count_job_marks(monkeypatch) -> list[str]:
    """Record each job the residency store is told about (and still mark it)."""
    from worker.http import chat

    marked: list[str] = []
    real = chat.job_started

    def job_started(agent: str, model: str) -> int | None:
        marked.append(model)
        return real(agent, model)

    monkeypatch.setattr(chat, "job_started", job_started)
    return marked


def test_a_reply_over_at_once_writes_no_running_job(
    one_write_ollama, tmp_path: Path, monkeypatch
) -> None:
    marked = count_job_marks(monkeypatch)
    url, answers = one_write_ollama
    answers.append(HEAD + line("x") + line("y") + line("", done=True) + b"0\r\n\r\n")
    assert contents(stream(url, tmp_path)) == ["x", "y"]
    assert marked == []  # no row to write and delete again: it never waited
    assert usage_hook.store().tokens("m:1", 60) == (3, 5)  # its usage is recorded


def test_a_fast_stream_that_never_waits_is_marked_running_while_it_streams(
    ollama, tmp_path: Path, monkeypatch
) -> None:
    """Pieces 2 ms apart never leave Ollama silent for the 5 ms grace; the job is still
    marked running once it has streamed 50 ms, and unmarked at its end."""
    marked = count_job_marks(monkeypatch)
    model = "codellama:34b-instruct-q4_k_m"
    ollama.configure(reply=" ".join(f"t{i}" for i in range(80)), token_interval=0.002)
    usage_hook.configure(tmp_path / "usage.sqlite3")
    agent = Agent(name="fast", model=model)
    chat = ChatPlan(({"role": "user", "content": "hi"},), {}, stream=True)
    job = ChatJob(agent, chat, ollama.url, AgentSeries(agent.name), lambda: None, None)
    events = EventStream(job)
    seen_running = []
    try:
        for write in events:
            if contents([write]):
                seen_running.append(usage_hook.store().running_jobs().get(model, 0))
    finally:
        events.close()
    assert marked == [model]
    assert seen_running[0] == 0  # not on the first piece's path
    assert max(seen_running) == 1  # marked while it streamed
    assert usage_hook.store().running_jobs() == {}  # and unmarked at its end
