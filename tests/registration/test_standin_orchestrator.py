"""The orchestrator stand-in enforces go-livepeer's rules, so passing against it means something."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.helpers.processes import free_port, wait_for
from tests.registration.support import (
    Reply,
    ScriptedServer,
    livepeer_header,
    read_lines,
    submit_job,
)
from tests.standins.orchestrator import (
    EXTERNAL_CAPABILITY,
    GoJSONError,
    StandinOrchestrator,
    go_unmarshal,
)

SECRET = "orch-secret"
Standin = Callable[..., StandinOrchestrator]


def register(
    orch: StandinOrchestrator, body: Any, secret: str | None = SECRET, raw: bytes | None = None
) -> requests.Response:
    headers = {} if secret is None else {"Authorization": secret}
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(
        f"{orch.url}/capability/register", data=data, headers=headers, verify=False, timeout=5
    )


def capability(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "agent-net",
        "description": "d",
        "url": "http://127.0.0.1:9",
        "capacity": 2,
        "price_per_unit": 0,
        "price_scaling": 1,
        "currency": "wei",
        "token": "tok",
        **overrides,
    }


# --- Go's encoding/json -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'{"capacity":"10"}',
            "json: cannot unmarshal string into Go struct field"
            " ExternalCapability.capacity of type int",
        ),
        (
            b'{"capacity":10.5}',
            "json: cannot unmarshal number 10.5 into Go struct field"
            " ExternalCapability.capacity of type int",
        ),
        (
            b'{"capacity":1e3}',
            "json: cannot unmarshal number 1e3 into Go struct field"
            " ExternalCapability.capacity of type int",
        ),
        (
            b'{"price_per_unit":9223372036854775808}',
            "json: cannot unmarshal number"
            " 9223372036854775808 into Go struct field ExternalCapability.price_per_unit of type"
            " int64",
        ),
        (
            b'{"name":7}',
            "json: cannot unmarshal number into Go struct field"
            " ExternalCapability.name of type string",
        ),
        (
            b'{"capacity":true}',
            "json: cannot unmarshal bool into Go struct field"
            " ExternalCapability.capacity of type int",
        ),
        (
            b'{"token":{"a":1}}',
            "json: cannot unmarshal object into Go struct field"
            " ExternalCapability.token of type string",
        ),
        (b"[1]", "json: cannot unmarshal array into Go value of type core.ExternalCapability"),
        (b"", "unexpected end of JSON input"),
        (b'{"name":"a"', "unexpected end of JSON input"),
        (b'{"capacity":NaN}', "invalid character 'N' looking for beginning of value"),
    ],
)
def test_wrong_types_fail_like_go(body: bytes, error: str) -> None:
    with pytest.raises(GoJSONError) as caught:
        go_unmarshal(body, "core.ExternalCapability", EXTERNAL_CAPABILITY)
    assert str(caught.value) == error


def test_keys_match_case_insensitively_and_unknown_keys_are_ignored() -> None:
    decoded = go_unmarshal(
        b'{"NAME":"a","Capacity":3,"price_PER_unit":-4,"extra":[1,{"x":2}],"token":null,'
        b'"name":"b"}',
        "core.ExternalCapability",
        EXTERNAL_CAPABILITY,
    )
    assert decoded["name"] == "b"  # the last of duplicate keys wins, as in Go
    assert decoded["capacity"] == 3 and decoded["price_per_unit"] == -4
    assert decoded["token"] == ""  # null leaves the zero value


# --- Registration -----------------------------------------------------------------------
def test_registration_needs_the_raw_secret(standin: Standin) -> None:
    orch = standin()
    for secret in (None, "wrong", f"Bearer {SECRET}", f"{SECRET} "):
        response = register(orch, capability(), secret=secret)
        assert (response.status_code, response.text) == (400, "invalid authorization\n"), secret
    assert orch.store.view()["capabilities"] == []
    response = register(orch, capability())
    assert (response.status_code, response.text) == (200, "ok")


def test_only_post_is_allowed(standin: Standin) -> None:
    orch = standin()
    response = requests.get(f"{orch.url}/capability/register", timeout=5)
    assert (response.status_code, response.text) == (405, "Method not allowed\n")


def test_a_badly_typed_registration_is_refused_whole(standin: Standin) -> None:
    orch = standin()
    response = register(orch, None, raw=b'{"name":"agent-net","capacity":"10"}')
    assert response.status_code == 400
    assert response.text.startswith("Error registering capability: json: cannot unmarshal")
    assert orch.store.view()["capabilities"] == []


def test_a_currency_without_a_price_feed_drops_the_connection(standin: Standin) -> None:
    orch = standin()
    with pytest.raises(requests.ConnectionError):
        register(orch, capability(currency="USD"))
    assert orch.store.view()["capabilities"] == []


def test_registration_is_stored_without_exposing_the_token(standin: Standin) -> None:
    orch = standin()
    register(orch, capability(price_scaling=0))
    view = orch.store.view()
    [entry] = view["capabilities"]
    assert entry["has_token"] is True and "token" not in entry
    assert entry["price_scaling"] == 1  # go-livepeer turns 0 into 1
    assert "tok" not in json.dumps(view).replace("has_token", "")


def test_registering_again_replaces_the_entry(standin: Standin) -> None:
    orch = standin()
    register(orch, capability(url="http://old:1"))
    orch.store.reserve("agent-net")
    register(orch, capability(url="http://new:2", capacity=5))
    [entry] = orch.store.view()["capabilities"]
    assert (entry["url"], entry["capacity"], entry["load"]) == ("http://new:2", 5, 0)


def test_unregister_takes_the_name_as_plain_text(standin: Standin) -> None:
    orch = standin()
    register(orch, capability())
    for name in ("agent-net", "never-registered"):
        response = requests.post(
            f"{orch.url}/capability/unregister",
            data=name,
            headers={"Authorization": SECRET},
            timeout=5,
        )
        assert (response.status_code, response.text) == (200, "ok")
    assert orch.store.view()["capabilities"] == []
    assert orch.store.view()["counts"]["unregister"] == 2


def test_a_restarted_orchestrator_has_forgotten_everything() -> None:
    orch = StandinOrchestrator(SECRET).start()
    session = requests.Session()  # a kept-alive connection must not reach the old memory
    try:
        session.post(
            f"{orch.url}/capability/register",
            json=capability(),
            headers={"Authorization": SECRET},
            timeout=5,
        )
        assert session.get(f"{orch.url}/_standin/capabilities", timeout=5).json()["capabilities"]
        orch.stop()
        orch = StandinOrchestrator(SECRET, port=orch.port).start()
        view = session.get(f"{orch.url}/_standin/capabilities", timeout=5).json()
        assert view["capabilities"] == []
    finally:
        orch.stop()


# --- Jobs -------------------------------------------------------------------------------
class FakeWorker:
    """Records what the orchestrator forwards and answers with a chosen status."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.status = 200
        self.content_type = "application/json"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                reply = json.dumps({"answered": self.path}).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", owner.content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def fake_worker() -> Iterator[FakeWorker]:
    worker = FakeWorker()
    yield worker
    worker.server.shutdown()
    worker.server.server_close()


def test_a_job_is_forwarded_to_the_route_with_the_bearer_token(
    standin: Standin, fake_worker: FakeWorker
) -> None:
    orch = standin()
    register(orch, capability(url=fake_worker.url, token="the-token"))
    response = submit_job(orch.url, "gpu-check", {"agent_id": "a"}, capability="agent-net")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"answered": "/gpu-check"}
    [seen] = fake_worker.seen
    assert seen["headers"]["Authorization"] == "Bearer the-token"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert json.loads(seen["body"]) == {"agent_id": "a"}
    assert "Livepeer" not in seen["headers"]


def test_no_token_means_no_authorization_header(standin: Standin, fake_worker: FakeWorker) -> None:
    orch = standin()
    register(orch, capability(url=fake_worker.url, token=""))
    assert submit_job(orch.url, "agent-net", {}).status_code == 200
    assert "Authorization" not in fake_worker.seen[0]["headers"]


def test_a_worker_error_status_comes_back_as_go_http_error(
    standin: Standin, fake_worker: FakeWorker
) -> None:
    orch = standin()
    register(orch, capability(url=fake_worker.url))
    fake_worker.status = 503
    response = submit_job(orch.url, "gpu-check", {}, capability="agent-net")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == json.dumps({"answered": "/gpu-check"}) + "\n"
    assert [c["name"] for c in orch.store.view()["capabilities"]] == ["agent-net"]


def test_a_worker_401_makes_the_orchestrator_forget_the_capability(
    standin: Standin, fake_worker: FakeWorker
) -> None:
    orch = standin()
    register(orch, capability(url=fake_worker.url))
    fake_worker.status = 401
    response = submit_job(orch.url, "gpu-check", {}, capability="agent-net")
    assert response.status_code == 500
    assert "worker auth token failed" in response.text
    assert orch.store.view()["capabilities"] == []
    assert orch.store.view()["removed"][0]["reason"] == "worker_401"


def test_an_unreachable_worker_makes_the_orchestrator_forget_the_capability(
    standin: Standin,
) -> None:
    orch = standin()
    register(orch, capability(url=f"http://127.0.0.1:{free_port()}"))
    response = submit_job(orch.url, "gpu-check", {}, capability="agent-net")
    assert response.status_code == 500
    assert orch.store.view()["capabilities"] == []
    assert orch.store.view()["removed"][0]["reason"] == "connection_error"


def test_jobs_for_unknown_capabilities_or_without_timeout_are_refused(standin: Standin) -> None:
    orch = standin()
    response = submit_job(orch.url, "gpu-check", {}, capability="nobody")
    assert (response.status_code, response.text) == (503, "No capacity available for capability\n")
    response = requests.post(
        f"{orch.url}/process/request/x",
        data=b"{}",
        timeout=5,
        headers={"Livepeer": livepeer_header("x", timeout_seconds=0)},
    )
    assert response.status_code == 400 and "timeout_seconds is required" in response.text
    bad = base64.b64encode(b'{"capability":"x","timeout_seconds":"5"}').decode()
    response = requests.post(
        f"{orch.url}/process/request/x", data=b"{}", timeout=5, headers={"Livepeer": bad}
    )
    assert (response.status_code, response.text) == (400, "Could not verify job creds\n")
    response = requests.post(f"{orch.url}/process/request/x", data=b"{}", timeout=5)
    assert (response.status_code, response.text) == (400, "Could not verify job creds\n")


def test_tls_serves_the_self_signed_certificate(standin: Standin, tls_pair: Any) -> None:
    orch = standin(tls=True)
    assert orch.url.startswith("https://")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{orch.url}/_standin/capabilities", timeout=5)
    ok = requests.get(f"{orch.url}/_standin/capabilities", verify=str(tls_pair[0]), timeout=5)
    assert ok.status_code == 200


# --- Streamed jobs (byoc/job_orchestrator.go:349-437) ------------------------------------
SSE = {"Content-Type": "text/event-stream", "X-Metadata": "meta-1"}
BALANCE = b'data: {"balance": 0.000}\n\n\n'  # FloatString(3) + "\n\n", then the relay's "\n"


def sse_worker(lines: list[bytes], gap: float = 0.0, status: int = 200) -> Any:
    """A worker script: SSE headers, then each line (a newline added) `gap` s apart."""

    def script(reply: Reply) -> None:
        reply.start(status, SSE)
        for number, line in enumerate(lines):
            if number and gap:
                time.sleep(gap)
            reply.write(line + b"\n")
        reply.end()

    return script


def stream_job(
    orch: StandinOrchestrator, timeout_seconds: int = 10, until: bytes | None = b"[DONE]"
) -> tuple[Any, list[tuple[float, bytes]]]:
    return read_lines(
        f"{orch.url}/process/request/stream",
        body=b"{}",
        headers={
            "Livepeer": livepeer_header("agent-net", timeout_seconds=timeout_seconds),
            "Content-Type": "application/json",
        },
        until=until,
    )


def test_sse_lines_are_relayed_as_they_arrive_with_the_balance_before_done(
    standin: Standin, scripted: Callable[[], ScriptedServer]
) -> None:
    orch, worker = standin(), scripted()
    register(orch, capability(url=worker.url))
    worker.script = sse_worker(
        [b"data: one", b"", b"data: two", b"", b"data: three", b"", b"data: [DONE]", b""],
        gap=0.2,
    )
    started = time.monotonic()
    response, lines = stream_job(orch)
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Cache-Control") == "no-cache"
    assert response.getheader("X-Metadata") == "meta-1"
    assert response.getheader("Livepeer-Payment-Balance") == "0"
    assert response.getheader("Transfer-Encoding") == "chunked"
    received = b"".join(line for _, line in lines)
    assert received == (b"data: one\n\ndata: two\n\ndata: three\n\n" + BALANCE + b"data: [DONE]\n")
    # Spread over time as the worker sent them (7 gaps of 0.2 s), not all at the end.
    times = {line: at for at, line in lines}
    assert times[b"data: one\n"] - started < 0.6
    assert times[b"data: three\n"] - times[b"data: one\n"] > 0.6
    assert times[b"data: [DONE]\n"] - times[b"data: three\n"] > 0.3
    # The client hung up after [DONE]: the relay notices at its next write.
    wait_for(lambda: orch.jobs()[0]["end_reason"] == "client_gone", 5)
    [job] = orch.jobs()
    assert job["streamed"] and job["worker_status"] == 200 and job["done_seen"]
    relayed = [entry["line"] for entry in job["lines"]]
    assert relayed == ["data: one", "", "data: two", "", "data: three", "", "data: [DONE]", ""]
    arrivals = [entry["at"] for entry in job["lines"]]
    assert arrivals == sorted(arrivals) and arrivals[-2] - arrivals[0] > 1.0


def test_a_stream_stays_open_until_timeout_seconds_even_after_done(
    standin: Standin, scripted: Callable[[], ScriptedServer]
) -> None:
    orch, worker = standin(), scripted()
    register(orch, capability(url=worker.url))
    worker.script = sse_worker([b"data: [DONE]", b""])
    started = time.monotonic()
    _, lines = stream_job(orch, timeout_seconds=1, until=None)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3
    received = b"".join(line for _, line in lines)
    assert received.startswith(BALANCE + b"data: [DONE]\n\n")
    # After the worker's body ends upstream keeps writing "\n" until the timeout.
    assert set(received[len(BALANCE + b"data: [DONE]\n\n") :]) == {ord("\n")}
    assert len(lines) > 5
    [job] = orch.jobs()
    assert (job["end_reason"], job["worker_eof"], job["done_seen"]) == ("timeout", True, True)
    # The capacity is freed once the job is over (deferred, as go-livepeer's: just after the
    # client has the end of the stream).
    wait_for(lambda: [c["load"] for c in orch.store.view()["capabilities"]] == [0], 2)


def test_a_stream_without_done_ends_at_the_timeout_without_a_balance_line(
    standin: Standin, scripted: Callable[[], ScriptedServer]
) -> None:
    orch, worker = standin(), scripted()
    register(orch, capability(url=worker.url))

    def silent_after_one(reply: Reply) -> None:
        reply.start(200, SSE)
        reply.write(b"data: partial\n")
        time.sleep(3)  # still open when the job times out

    worker.script = silent_after_one
    started = time.monotonic()
    _, lines = stream_job(orch, timeout_seconds=1, until=None)
    assert 0.9 < time.monotonic() - started < 2.5
    assert [line for _, line in lines] == [b"data: partial\n"]
    [job] = orch.jobs()
    assert (job["end_reason"], job["done_seen"], job["worker_eof"]) == ("timeout", False, False)


@pytest.mark.parametrize(("length", "relayed"), [(65535, True), (65536, False)])
def test_a_line_of_64_kib_or_more_ends_the_relay_like_bufio_scanner(
    standin: Standin, scripted: Callable[[], ScriptedServer], length: int, relayed: bool
) -> None:
    orch, worker = standin(), scripted()
    register(orch, capability(url=worker.url))
    long_line = b"data: " + b"x" * (length - 6)
    worker.script = sse_worker([b"data: first", long_line, b"data: [DONE]"])
    _, lines = stream_job(orch, timeout_seconds=1, until=b"[DONE]")
    received = [line for _, line in lines if line != b"\n"]
    if relayed:
        assert received == [
            b"data: first\n",
            long_line + b"\n",
            BALANCE.rstrip(b"\n") + b"\n",
            b"data: [DONE]\n",
        ]
    else:
        assert received == [b"data: first\n"]  # nothing after the long line, no [DONE]
    [job] = orch.jobs()
    assert job["done_seen"] is relayed
    assert job["scanner_error"] == (None if relayed else "bufio.Scanner: token too long")


def test_sse_relay_drops_carriage_returns_and_ignores_the_worker_status(
    standin: Standin, scripted: Callable[[], ScriptedServer]
) -> None:
    orch, worker = standin(), scripted()
    register(orch, capability(url=worker.url))
    worker.script = sse_worker([b"data: crlf\r", b"\r", b"data: [DONE]\r"], status=500)
    response, lines = stream_job(orch)
    # The SSE branch never looks at the status: a 500 stream is relayed as a 200.
    assert response.status == 200
    assert b"".join(line for _, line in lines) == b"data: crlf\n\n" + BALANCE + b"data: [DONE]\n"
    assert orch.jobs()[0]["worker_status"] == 500


def test_a_non_sse_stream_is_read_whole_and_sent_at_the_end(
    standin: Standin, scripted: Callable[[], ScriptedServer]
) -> None:
    orch, worker = standin(), scripted()
    register(orch, capability(url=worker.url))

    def ndjson(reply: Reply) -> None:
        reply.start(200, {"Content-Type": "application/x-ndjson", "X-Metadata": "m"})
        for number in range(3):
            reply.write(b'{"n": %d}\n' % number)
            time.sleep(0.3)
        reply.end()

    worker.script = ndjson
    started = time.monotonic()
    response, lines = stream_job(orch, until=None)
    assert lines[0][0] - started > 0.8  # nothing before the worker finished
    assert b"".join(line for _, line in lines) == b'{"n": 0}\n{"n": 1}\n{"n": 2}\n'
    assert response.getheader("Content-Type") == "application/x-ndjson"
    assert response.getheader("X-Metadata") == "m"
    assert response.getheader("Livepeer-Balance") == "0"
    [job] = orch.jobs()
    assert (job["streamed"], job["end_reason"], job["lines"]) == (False, "complete", [])
