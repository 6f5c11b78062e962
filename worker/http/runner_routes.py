"""What each live runner's URL serves: `/lr/<prefix>/<runner>/<path>`.

go-livepeer proxies `/apps/<runner_id>/app/<path>` to `<runner_url>/<path>`, and each
runner's runner_url ends in its own capability (worker/registration/runners.py), so a
request says which runner it came through. The GPU check's runner serves the job routes
(`gpu-check`, `agent-net`, ...); an agent's runner serves the agent's own route and the
OpenAI API for that agent alone (`v1/chat/completions`, `v1/embeddings`, `v1/models`,
`v1/models/<agent>`), so an OpenAI client with `base_url`
`<orchestrator>/apps/<runner_id>/app/v1` works unchanged. There `model` names the
runner's agent or is left out; any other name is a 404 that says which agent it serves.
No bearer token: the secret prefix is the credential.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Response

from worker.agents import Agent
from worker.http.chat import parse_json_object
from worker.http.embeddings import EmbeddingRoutes, pinned_agent
from worker.http.errors import OPENAI_ERRORS_KEY, BodyTooLarge, read_request_body
from worker.http.models import ModelRoutes
from worker.registration.runners import GPU_CHECK

Handler = Callable[[dict[str, Any]], Response]
CHAT_PATH = "v1/chat/completions"
EMBEDDINGS_PATH = "v1/embeddings"
MODELS_PATH = "v1/models"


class RunnerRoutes:
    """`find(runner, path)`: the method and handler a runner serves at `path`, or None."""

    def __init__(
        self,
        *,
        job_routes: Iterable[str],
        run_job: Handler,
        agents: tuple[Agent, ...],
        agent_routes: dict[str, Handler],
        embeddings: EmbeddingRoutes,
        models: ModelRoutes,
        max_body_bytes: int,
    ) -> None:
        self._job_routes = frozenset(job_routes)
        self._run_job = run_job
        self._agents = {agent.name: agent for agent in agents}
        self._agent_routes = agent_routes  # each agent's own route, proxied (no token)
        self._embeddings = embeddings
        self._models = models
        self._max_body_bytes = max_body_bytes

    def find(self, runner: str, path: str) -> tuple[str, Handler] | None:
        if runner == GPU_CHECK:
            return ("POST", self._run_job) if path in self._job_routes else None
        agent = self._agents.get(runner)
        if agent is None:
            return None
        if path == agent.name:
            return "POST", self._agent_routes[agent.name]
        if path == CHAT_PATH:
            return "POST", lambda environ: self._chat(environ, agent)
        if path == EMBEDDINGS_PATH:
            return "POST", lambda environ: self._embeddings.answer(
                environ, None, proxied=True, pinned=agent
            )
        if path == MODELS_PATH:
            return "GET", lambda environ: self._models.listing(environ, only=agent, proxied=True)
        if path.startswith(MODELS_PATH + "/"):
            model_id = path[len(MODELS_PATH) + 1 :]
            return "GET", lambda environ: self._models.one(
                environ, model_id, only=agent, proxied=True
            )
        return None

    def _chat(self, environ: dict[str, Any], agent: Agent) -> Response:
        """The agent's chat, once the body's `model` is known to name it (or is left
        out): the body is read here, then handed to the agent's route as it came."""
        environ[OPENAI_ERRORS_KEY] = True
        raw = read_request_body(environ, self._max_body_bytes + 1)
        if len(raw) > self._max_body_bytes:
            raise BodyTooLarge(self._max_body_bytes)
        pinned_agent(parse_json_object(raw), agent)
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self._agent_routes[agent.name](environ)
