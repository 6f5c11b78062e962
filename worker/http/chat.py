"""Agent routes: `POST /<agent>` and `POST /v1/chat/completions`, OpenAI-shaped, from Ollama.

A request is checked in this order, each failure a JSON answer in OpenAI's shape before
any stream: bearer token (401), body size (413), body and the model's capabilities (400,
unknown agent 404; the OpenAI -> Ollama mapping is worker/openai/), admission from the
GPU's and Ollama's published state (503 with `Retry-After`), the agent's capacity (503).
Then the agent's model generates through Ollama's streamed `/api/chat`:

- streamed (`"stream": true`): `text/event-stream`, a first chunk with the role, the
  `data: {chat.completion.chunk}` events of each piece as Ollama sends it (content,
  reasoning, tool calls: worker/openai/chunks.py), a last chunk with `finish_reason` and
  `usage`, then `data: [DONE]` — always, after an error chunk (`{"error": {...}}`) or
  the agent's time limit too, because go-livepeer keeps a job open and charging until
  it relays a line holding `[DONE]`;
- not streamed: one `chat.completion` object with `usage`.

When the model's capabilities are not known yet and the request needs more than
completion, Ollama's answer status is read before the stream starts, so its refusal
(`"m" does not support tools`) is a 400 too.

A client that leaves stops the generation upstream: a watcher sees the connection close
(or a write fails) and cuts the Ollama connection; the capacity slot is freed on close.
"""

from __future__ import annotations

import _socket
import _thread
import contextlib
import json
import logging
import os
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from worker.agents import Agent
from worker.http.agent_metrics import AgentSeries
from worker.http.capacity import SlotLimiter
from worker.http.errors import OPENAI_ERRORS_KEY, ApiError, BodyTooLarge, read_request_body
from worker.http.job_admission import admit
from worker.http.ollama_stream import OllamaChat, TimeLimit, UpstreamError
from worker.http.usage_hook import job_finished, job_started, record_usage
from worker.openai.capabilities import published_capabilities
from worker.openai.chunks import DONE_LINE, ChunkEncoder, compact
from worker.openai.completion import CompletionBuilder
from worker.openai.errors import InvalidRequest
from worker.openai.request import ChatPlan, chat_plan
from worker.sampling.published import Readings

log = logging.getLogger("agent_net.agents")

OPENAI_ROUTE = "/v1/chat/completions"
WATCH_INTERVAL_SECONDS = 0.2  # how often a waiting stream looks at its client's socket
TIME_LIMIT_REASON = "time_limit"  # finish_reason when the agent's time limit ended it
# A job still streaming this long after its first piece gets its bookkeeping then, if
# Ollama never made it wait (a fast model); a reply over sooner needs none.
BOOKKEEPING_AFTER_SECONDS = 0.05
MAX_BATCH_BYTES = 32 * 1024  # pieces already received leave together, up to this much


# --- The request -------------------------------------------------------------------------------
def _bad(code: str, detail: str) -> ApiError:
    return ApiError(400, code, detail)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad("invalid_json", "request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad("invalid_json", "request body must be a JSON object")
    return body


def parse_chat(
    body: dict[str, Any], agent: Agent, capabilities: Collection[str] | None = None
) -> ChatPlan:
    """The Ollama request for `body` to `agent` (worker/openai/request.py), whose model
    has `capabilities` (None: not known); ApiError (4xx) if the body is bad or needs a
    capability the model lacks."""
    try:
        return chat_plan(body, agent, capabilities)
    except InvalidRequest as problem:
        raise ApiError(problem.status, problem.code, problem.message, param=problem.param) from None


def upstream_refusal(agent: Agent, error: UpstreamError) -> ApiError | None:
    """An ApiError for Ollama refusing the request before any output (a 400 such as
    `"m" does not support tools` when the model's capabilities were not known yet, so
    nothing was refused here); None for a failure that is not the request's fault."""
    if error.status != 400:
        return None
    code = "model_lacks_capability" if "does not support" in error.message else "ollama_refused"
    return ApiError(
        400,
        code,
        f"agent {agent.name!r} (model {agent.model!r}): Ollama refused the request:"
        f" {error.message}",
    )


# --- The job -----------------------------------------------------------------------------------
class ClientWatch:
    """Watches the client's socket while a job runs; calls `on_gone` once it closes."""

    def __init__(self, sock: socket.socket | None, on_gone: Callable[[], None]) -> None:
        self._sock, self._on_gone = sock, on_gone
        self._stop = threading.Event()
        self.gone = False
        self._greenlet: Any = None
        if sock is not None:
            # Not threading.Thread: its start() waits until the thread runs, which under
            # gevent switches to it at once; this one first runs when the job waits.
            if _under_gevent():
                import gevent

                self._greenlet = gevent.spawn_raw(self._watch)
            else:
                _thread.start_new_thread(self._watch, ())

    def _watch(self) -> None:
        # Peek through a duplicate of the descriptor with the C-level socket type, which
        # gevent does not patch: a peek that finds no data returns at once instead of
        # waiting on the socket beside the server's own reader (gevent forbids two).
        # Wait on the duplicate too, never on the server's descriptor: once the server
        # closes that, its number goes to the next connection while this wait (and the
        # readiness of the old connection, kept open by the duplicate) would stay on it.
        sock = self._sock
        assert sock is not None
        try:
            raw = _socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([raw.fileno()], [], [], WATCH_INTERVAL_SECONDS)
                if self._stop.is_set():
                    return
                if not readable:
                    continue
                try:
                    if raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"":
                        self._stop.wait(WATCH_INTERVAL_SECONDS)  # a pipelined request
                        continue
                except BlockingIOError:
                    continue  # the server read it meanwhile
                except OSError:
                    pass  # reset: gone too
                self.gone = True
                self._on_gone()
                return
        except (OSError, ValueError):
            return
        finally:
            raw.close()

    def stop(self) -> None:
        """End the watch. Under gevent the watcher is ended at once: left in its wait
        (up to WATCH_INTERVAL_SECONDS), it would wake with the next request on a
        kept-alive connection and run on that request's path."""
        self._stop.set()
        if self._greenlet is not None:
            import gevent

            gevent.kill(self._greenlet)  # raised in its wait; its `finally` closes the dup


def _under_gevent() -> bool:
    """Whether this process's threads are gevent's greenlets (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class ChatJob:
    """One admitted job: owns its capacity slot, its Ollama call and its accounting."""

    def __init__(
        self,
        agent: Agent,
        chat: ChatPlan,
        ollama_url: str,
        series: AgentSeries,
        release: Callable[[], None],
        client: socket.socket | None,
    ) -> None:
        self.agent, self.chat, self.series = agent, chat, series
        self.started = time.monotonic()
        body = chat.ollama_body(agent.model)
        self.upstream = OllamaChat(ollama_url, body, self.started + agent.timeout_seconds)
        self.upstream.on_idle = self._begin
        # Ollama starts now; the answer's headers overlap its work. A failure shows when
        # the pieces are read (sending is tried once more then).
        with contextlib.suppress(TimeLimit, UpstreamError):
            self.upstream.send()
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self._release = release
        self._client = client
        self._usage_job: int | None = None
        self.watch: ClientWatch | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.finish_reason: str | None = None
        self.outcome: str | None = None
        self._closed = False
        self._open_failure: TimeLimit | UpstreamError | None = None
        series.running.inc()

    def _begin(self) -> None:
        """What need not delay the first piece, done the first time the job waits for
        Ollama, else once it has streamed BOOKKEEPING_AFTER_SECONDS: the residency mark
        (the model is never unloaded while the job runs) and the watcher of the client's
        socket. A reply that is over before either needs neither: its end is recorded,
        and a write to a client that has gone fails."""
        if self.watch is None:
            self._usage_job = job_started(self.agent.name, self.agent.model)
            self.watch = ClientWatch(self._client, self.upstream.abort)

    # -- generation ---------------------------------------------------------------------
    def refused_upstream(self) -> ApiError | None:
        """Read Ollama's answer status now, before any stream starts: its refusal of the
        request (a 400) as an ApiError (the job is then closed), else None; any other
        failure is kept for `pieces()` to report as a stream would."""
        try:
            self.upstream.open()
        except UpstreamError as failure:
            refused = upstream_refusal(self.agent, failure)
            if refused is not None:
                self.outcome = "bad_request"
                self.close()
                return refused
            self._open_failure = failure
        except TimeLimit as failure:
            self._open_failure = failure
        return None

    def pieces(self) -> Iterator[dict[str, Any]]:
        """Ollama's messages that hold something (content, thinking or tool calls), as
        it sends them; sets finish_reason, usage and outcome.

        Raises UpstreamError when Ollama fails (outcome `upstream_error`, or
        `client_gone` when the client left); a time limit ends it with `time_limit`.
        """
        try:
            if self._open_failure is not None:
                raise self._open_failure
            self.upstream.open()
            for message in self.upstream:
                piece = message.get("message")
                if piece and (
                    piece.get("content") or piece.get("thinking") or piece.get("tool_calls")
                ):
                    now = time.monotonic()
                    if self.first_token_at is None:
                        self.first_token_at = now
                    self.last_token_at = now
                    self.completion_tokens += 1
                    yield piece
                    if now - self.first_token_at >= BOOKKEEPING_AFTER_SECONDS:
                        self.upstream.idle()  # no-op once run
                if message.get("done"):
                    self._done(message)
                    return
            raise UpstreamError("Ollama ended the stream before it was done")
        except TimeLimit:
            self.finish_reason, self.outcome = TIME_LIMIT_REASON, "time_limit"
        except UpstreamError:
            gone = self.watch is not None and self.watch.gone
            self.outcome = "client_gone" if gone else "upstream_error"
            raise

    def _done(self, message: dict[str, Any]) -> None:
        self.prompt_tokens = _count(message.get("prompt_eval_count"), 0)
        self.completion_tokens = _count(message.get("eval_count"), self.completion_tokens)
        reason = message.get("done_reason")
        self.finish_reason = "length" if reason == "length" else "stop"
        self.outcome = "completed"

    def usage(self) -> dict[str, int]:
        prompt, completion = self.prompt_tokens, self.completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def close(self, outcome: str | None = None) -> None:
        """End the job once: stop Ollama and the watcher, free the slot, account for it."""
        if self._closed:
            return
        self._closed = True
        if self.watch is not None:
            self.watch.stop()
        if self.outcome is None:
            self.outcome = outcome or "client_gone"  # closed before Ollama finished
        if self.outcome != "completed":
            self.upstream.abort()
        self.upstream.close()
        self._release()
        job_finished(self._usage_job)
        series = self.series
        series.running.dec()
        series.ended(self.outcome)
        series.prompt_tokens.inc(self.prompt_tokens)
        series.completion_tokens.inc(self.completion_tokens)
        if self.first_token_at is not None:
            series.first_token.observe(self.first_token_at - self.started)
            if self.last_token_at is not None and self.completion_tokens > 1:
                span = self.last_token_at - self.first_token_at
                if span > 0:
                    series.speed.observe((self.completion_tokens - 1) / span)
        log.info(
            "agent_job agent=%s outcome=%s prompt_tokens=%d completion_tokens=%d seconds=%.3f",
            self.agent.name,
            self.outcome,
            self.prompt_tokens,
            self.completion_tokens,
            time.monotonic() - self.started,
        )
        try:
            record_usage(
                self.agent.name, self.agent.model, self.prompt_tokens, self.completion_tokens
            )
        except Exception as exc:  # usage accounting must never break an answer
            log.warning(
                "usage_record_failed agent=%s error=%s", self.agent.name, type(exc).__name__
            )


def _count(value: object, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )


# --- Answers ----------------------------------------------------------------------------------
class EventStream:
    """The WSGI body of a streamed job: SSE bytes; `close()` (always called) ends the job."""

    def __init__(self, job: ChatJob) -> None:
        self.job = job
        chat = job.chat
        self.encoder = ChunkEncoder(
            job.id,
            job.created,
            job.agent.name,
            include_usage=chat.include_usage,
            forced_tool=chat.forced_tool,
            single_tool_call=chat.single_tool_call,
        )
        self._events = self._generate()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> bytes:
        return next(self._events)

    def _generate(self) -> Iterator[bytes]:
        job, encoder = self.job, self.encoder
        # The role first: the response headers leave now, before Ollama's first token.
        yield encoder.role()
        # The first piece leaves alone, at once; after it, pieces already received leave
        # together in one write (one event each still): a burst costs the worker and
        # the client one write and one wake-up, not one per piece.
        events, upstream = encoder.message, job.upstream
        batch: list[bytes] = []
        size = 0
        try:
            for piece in job.pieces():
                event = events(piece)
                if job.completion_tokens > 1 and size < MAX_BATCH_BYTES and upstream.buffered():
                    batch.append(event)
                    size += len(event)
                    continue
                if batch:
                    batch.append(event)
                    event, batch, size = b"".join(batch), [], 0
                yield event
            if batch:
                yield b"".join(batch)
        except UpstreamError as exc:
            if job.outcome == "client_gone":
                return
            # What came before the failure, then the error.
            yield b"".join(batch) + encoder.error(exc.message, "upstream_error")
            yield DONE_LINE
            return
        yield encoder.finish(job.finish_reason or "stop", job.usage())
        yield DONE_LINE

    def close(self) -> None:
        try:
            self._events.close()
        finally:
            self.job.close()


def whole_answer(job: ChatJob) -> Response:
    """A non-streamed job: one `chat.completion` object (or a JSON error)."""
    chat = job.chat
    answer = CompletionBuilder(forced_tool=chat.forced_tool, single_tool_call=chat.single_tool_call)
    try:
        for piece in job.pieces():
            answer.add(piece)
    except UpstreamError as exc:
        if job.completion_tokens == 0:
            refused = upstream_refusal(job.agent, exc)
            if refused is not None:
                job.outcome = "bad_request"
                raise refused from None
        raise ApiError(502, "upstream_error", f"Ollama failed: {exc.message}") from None
    finally:
        job.close()
    if job.outcome == "time_limit" and job.completion_tokens == 0:
        raise ApiError(
            504,
            "time_limit",
            f"the agent's time limit ({job.agent.timeout_seconds:g} s) passed before a token",
        )
    document = answer.document(
        job.id, job.created, job.agent.name, job.finish_reason or "stop", job.usage()
    )
    return Response(compact(document), mimetype="application/json")


# --- Wiring -----------------------------------------------------------------------------------
# An agent's own route: (environ, proxied) -> the answer; `proxied`: no bearer token.
AgentRoute = Callable[[dict[str, Any], bool], Response]
RouteAgent = Callable[[Agent, AgentRoute, SlotLimiter, AgentSeries], AgentRoute]


def register_chat_routes(
    app: Flask,
    agents: tuple[Agent, ...],
    *,
    readings: Readings,
    ollama_url: str,
    runtime_dir: Any,
    max_body_bytes: int,
    authorise: Callable[[dict[str, Any]], None],
    route_agent: RouteAgent | None = None,
) -> ChatRoutes:
    """Add every agent's route and the OpenAI route; returns the agents' slot limiters,
    their handlers for the lean routes and for the live-runner proxy (whose secret path
    replaces the bearer token). `route_agent`, given an agent, its chat route, slots and
    series, gives the route to serve at `/<agent>` instead (an embedding agent's)."""
    by_name = {agent.name: agent for agent in agents}
    limiters = {
        agent.name: SlotLimiter(runtime_dir / f"agent-{agent.name}.slots", agent.capacity)
        for agent in agents
    }
    series = {agent.name: AgentSeries(agent.name) for agent in agents}

    def answer(agent: Agent | None, environ: dict[str, Any], *, proxied: bool = False) -> Response:
        environ[OPENAI_ERRORS_KEY] = True  # its clients are OpenAI SDKs
        if not proxied:
            authorise(environ)
        raw = read_request_body(environ, max_body_bytes + 1)
        if len(raw) > max_body_bytes:
            raise BodyTooLarge(max_body_bytes)
        body = parse_json_object(raw)
        if agent is None:
            name = body.get("model")
            if not isinstance(name, str) or not name:
                raise _bad("missing_model", "model is required: the name of an agent")
            agent = by_name.get(name)
            if agent is None:
                raise ApiError(404, "unknown_agent", f"no agent named {name[:64]!r}")
        agent_series = series[agent.name]
        views = readings.views()
        try:
            chat = parse_chat(body, agent, published_capabilities(views[1], agent.model))
        except ApiError:
            agent_series.ended("bad_request")
            raise
        limiter = limiters[agent.name]
        slot = admit(views, agent, limiter, agent_series)
        try:
            job = ChatJob(
                agent,
                chat,
                ollama_url,
                agent_series,
                lambda: limiter.give(slot),
                environ.get("gunicorn.socket"),
            )
        except BaseException:
            limiter.give(slot)
            raise
        if not chat.stream:
            return whole_answer(job)
        if chat.unverified:
            # Capabilities not known yet (Ollama decides): a refusal must be a 400, not
            # an error chunk, so Ollama's answer status is read before the stream starts.
            refused_upstream = job.refused_upstream()
            if refused_upstream is not None:
                raise refused_upstream
        return Response(
            EventStream(job),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            direct_passthrough=True,
        )

    own: dict[str, AgentRoute] = {}
    for agent in agents:

        def chat(environ: dict[str, Any], proxied: bool, agent: Agent = agent) -> Response:
            return answer(agent, environ, proxied=proxied)

        own[agent.name] = (
            chat
            if route_agent is None
            else route_agent(agent, chat, limiters[agent.name], series[agent.name])
        )
    lean: dict[str, Callable[[dict[str, Any]], Response]] = {
        OPENAI_ROUTE: lambda environ: answer(None, environ)
    }
    for name, route in own.items():
        lean[f"/{name}"] = lambda environ, route=route: route(environ, False)
    for path, handler in lean.items():
        app.add_url_rule(
            path,
            endpoint=f"chat:{path}",
            view_func=lambda handler=handler: handler(request.environ),
            methods=["POST"],
        )
    proxied = {
        name: (lambda environ, route=route: route(environ, True)) for name, route in own.items()
    }
    return ChatRoutes(limiters, lean, proxied)


@dataclass(frozen=True)
class ChatRoutes:
    """What `register_chat_routes` gives the app: slots per agent, and handlers (of the
    WSGI environ) per route path and, for the live-runner proxy, per agent name."""

    limiters: dict[str, SlotLimiter]
    lean: dict[str, Callable[[dict[str, Any]], Response]]
    proxied: dict[str, Callable[[dict[str, Any]], Response]]
