"""Embeddings: `POST /v1/embeddings` and `POST /<embedding agent>`, through Ollama's /api/embed.

An agent whose model has `embedding` and no `completion` (Ollama's /api/show, read by the
sampler) is an embedding agent: its own route, the one orchestrators call, takes OpenAI's
embeddings body, and `/v1/embeddings` serves it by `model`. A request is checked in this
order, each failure a JSON answer in OpenAI's shape: bearer token (401), body size (413),
body (400; unknown agent 404; a chat agent 400, naming it), admission from the published
GPU and Ollama state (503 with `Retry-After`), the agent's capacity (503: the same slots
as its chat). The job is counted in the agent's metrics and usage like a chat job; its
bookkeeping after the answer is sent (a quick answer waits for none of it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Response

from worker.agents import Agent
from worker.http.agent_metrics import AgentSeries
from worker.http.capacity import SlotLimiter
from worker.http.chat import AgentRoute, parse_json_object
from worker.http.errors import OPENAI_ERRORS_KEY, ApiError, BodyTooLarge, read_request_body
from worker.http.job_admission import admit
from worker.http.ollama_embed import OllamaEmbed
from worker.http.ollama_stream import TimeLimit, UpstreamError
from worker.http.usage_hook import job_finished, job_started, record_usage
from worker.openai.embeddings import (
    EmbeddingsRequest,
    InvalidRequest,
    UnexpectedAnswer,
    embeddings_answer,
    ollama_embed_body,
    parse_embeddings_request,
)
from worker.sampling.admission import RETRY_PULL_SECONDS, catalogue_entry
from worker.sampling.published import Readings
from worker.sampling.readings import embeds_only

log = logging.getLogger("agent_net.agents")

EMBEDDINGS_ROUTE = "/v1/embeddings"


class EmbeddingRoutes:
    """The embeddings handlers of one app. `route_agent` is register_chat_routes' hook:
    it gets each agent's chat route, slots and series, and answers embeddings instead
    while the agent's model embeds only."""

    def __init__(
        self,
        agents: tuple[Agent, ...],
        *,
        readings: Readings,
        ollama_url: str,
        max_body_bytes: int,
        authorise: Callable[[dict[str, Any]], None],
    ) -> None:
        self._by_name = {agent.name: agent for agent in agents}
        self._readings = readings
        self._ollama_url = ollama_url
        self._max_body_bytes = max_body_bytes
        self._authorise = authorise
        self._accounts: dict[str, tuple[SlotLimiter, AgentSeries]] = {}
        self._embeds_only: dict[str, bool] = {}  # model -> as last read (kept in outages)

    def route_agent(
        self, agent: Agent, chat: AgentRoute, limiter: SlotLimiter, series: AgentSeries
    ) -> AgentRoute:
        """`agent`'s own route: embeddings while its model embeds only, else its chat."""
        self._accounts[agent.name] = (limiter, series)

        def route(environ: dict[str, Any], proxied: bool) -> Response:
            if self.is_embedding_agent(agent):
                return self.answer(environ, agent, proxied=proxied)
            return chat(environ, proxied)

        return route

    def is_embedding_agent(self, agent: Agent) -> bool | None:
        """Whether `agent`'s model embeds and cannot chat: from the latest catalogue, else
        as last read (None: never read)."""
        entry = catalogue_entry(self._readings.views()[1].data, agent.model)
        capabilities = None if entry is None else entry.capabilities
        if capabilities is not None:
            self._embeds_only[agent.model] = embeds_only(capabilities)
        return self._embeds_only.get(agent.model)

    def answer(
        self,
        environ: dict[str, Any],
        agent: Agent | None,
        *,
        proxied: bool = False,
        pinned: Agent | None = None,
    ) -> Response:
        """The embeddings of the request in `environ` for `agent` (None: the one its
        `model` names, which must be `pinned` when given: a live runner's agent)."""
        environ[OPENAI_ERRORS_KEY] = True  # its clients are OpenAI SDKs
        if not proxied:
            self._authorise(environ)
        raw = read_request_body(environ, self._max_body_bytes + 1)
        if len(raw) > self._max_body_bytes:
            raise BodyTooLarge(self._max_body_bytes)
        body = parse_json_object(raw)
        if agent is None:
            agent = self._named(body.get("model")) if pinned is None else pinned_agent(body, pinned)
        limiter, series = self._accounts[agent.name]
        try:
            request = self._request(body, agent)
        except ApiError:
            series.ended("bad_request")
            raise
        slot = admit(self._readings.views(), agent, limiter, series)
        job = EmbedJob(agent, series, lambda: limiter.give(slot))
        try:
            document = job.run(request, self._ollama_url)
        except BaseException:
            job.close()
            raise
        response = Response(_compact(document), mimetype="application/json")
        response.call_on_close(job.close)
        return response

    def _named(self, name: object) -> Agent:
        if not isinstance(name, str) or not name:
            raise ApiError(
                400,
                "missing_model",
                "model is required: the name of an embedding agent",
                param="model",
            )
        agent = self._by_name.get(name)
        if agent is None or agent.name not in self._accounts:
            raise ApiError(404, "unknown_agent", f"no agent named {name[:64]!r}", param="model")
        return agent

    def _request(self, body: dict[str, Any], agent: Agent) -> EmbeddingsRequest:
        if "messages" in body and "input" not in body:
            raise ApiError(
                400,
                "not_a_chat_agent",
                f"agent {agent.name!r} is an embedding agent (model {agent.model!r} has no"
                " completion): send `input` to embed, not `messages`",
                param="messages",
            )
        try:
            request = parse_embeddings_request(body)
        except InvalidRequest as bad:
            raise ApiError(400, bad.code, bad.message, param=bad.param) from None
        if self.is_embedding_agent(agent) is False:
            entry = catalogue_entry(self._readings.views()[1].data, agent.model)
            shown = ", ".join(entry.capabilities or ()) if entry is not None else "unknown"
            raise ApiError(
                400,
                "not_an_embedding_agent",
                f"agent {agent.name!r} is a chat agent: its model {agent.model!r} has no"
                f" `embedding` capability (it has: {shown}); ask an embedding agent",
                param="model",
            )
        return request


def pinned_agent(body: dict[str, Any], pinned: Agent) -> Agent:
    """`pinned` (a live runner's agent), when the body's `model` names it or is left out;
    any other name is a 404 that says which agent is served here."""
    name = body.get("model")
    if name is None or name == pinned.name:
        return pinned
    shown = repr(name[:64]) if isinstance(name, str) else "of that type"
    raise ApiError(
        404,
        "unknown_agent",
        f"model {shown} is not served here: this runner serves {pinned.name!r}",
        param="model",
    )


class EmbedJob:
    """One admitted embeddings job: its Ollama call, its slot and its accounting."""

    def __init__(self, agent: Agent, series: AgentSeries, release: Callable[[], None]) -> None:
        self.agent, self.series = agent, series
        self.started = time.monotonic()
        self._release = release
        self._usage_job: int | None = None
        self.prompt_tokens = 0
        self.inputs = 0
        self.outcome: str | None = None
        self._closed = False
        series.running.inc()

    def _begin(self) -> None:
        """Mark the model in use (the residency loop leaves it loaded), once Ollama makes
        the job wait: a quick answer does without."""
        self._usage_job = job_started(self.agent.name, self.agent.model)

    def run(self, request: EmbeddingsRequest, ollama_url: str) -> dict[str, Any]:
        """OpenAI's embeddings list for `request`; ApiError when Ollama fails or refuses."""
        agent = self.agent
        self.inputs = len(request.inputs)
        body = ollama_embed_body(request, agent.model, agent.num_ctx)
        call = OllamaEmbed(ollama_url, body, self.started + agent.timeout_seconds)
        call.on_idle = self._begin
        try:
            answer = call.call()
        except TimeLimit:
            self.outcome = "time_limit"
            raise ApiError(
                504,
                "time_limit",
                f"the agent's time limit ({agent.timeout_seconds:g} s) passed before Ollama"
                " answered",
            ) from None
        except UpstreamError as exc:
            raise self._upstream_error(exc) from None
        try:
            document = embeddings_answer(answer, request, agent.name)
        except UnexpectedAnswer as exc:
            self.outcome = "upstream_error"
            raise ApiError(502, "upstream_error", f"Ollama failed: {exc}") from None
        self.prompt_tokens = document["usage"]["prompt_tokens"]
        self.outcome = "completed"
        return document

    def _upstream_error(self, exc: UpstreamError) -> ApiError:
        agent, status, message = self.agent, exc.status, exc.message
        if status == 400:  # e.g. the input length exceeds the context length
            self.outcome = "bad_request"
            return ApiError(400, "ollama_refused", f"Ollama refused: {message}", param="input")
        if status == 501:  # a model that was not started for embeddings
            self.outcome = "bad_request"
            return ApiError(
                400,
                "not_an_embedding_agent",
                f"agent {agent.name!r} cannot embed: Ollama says its model {agent.model!r}"
                f" does not ({message})",
                param="model",
            )
        if status == 404:
            self.outcome = "refused"
            return ApiError(
                503,
                "model_not_on_disk",
                f"model {agent.model!r} is not on disk (Ollama: {message})",
                {"Retry-After": str(RETRY_PULL_SECONDS)},
            )
        self.outcome = "upstream_error"
        if status == 503:  # Ollama's queue is full
            return ApiError(503, "ollama_busy", f"Ollama is busy: {message}", {"Retry-After": "1"})
        return ApiError(502, "upstream_error", f"Ollama failed: {message}")

    def close(self) -> None:
        """End the job once: free the slot, then account for it (after the answer)."""
        if self._closed:
            return
        self._closed = True
        self._release()
        job_finished(self._usage_job)
        series = self.series
        series.running.dec()
        series.ended(self.outcome or "upstream_error")
        series.prompt_tokens.inc(self.prompt_tokens)
        log.info(
            "agent_job agent=%s kind=embeddings outcome=%s inputs=%d prompt_tokens=%d seconds=%.3f",
            self.agent.name,
            self.outcome,
            self.inputs,
            self.prompt_tokens,
            time.monotonic() - self.started,
        )
        try:
            record_usage(self.agent.name, self.agent.model, self.prompt_tokens, 0)
        except Exception as exc:  # usage accounting must never break an answer
            log.warning(
                "usage_record_failed agent=%s error=%s", self.agent.name, type(exc).__name__
            )


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
