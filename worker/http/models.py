"""`GET /v1/models` and `GET /v1/models/{id}`: the agents as OpenAI model objects.

Each agent is a model (clients name the agent as `model`); its capabilities are those the
sampler last read from Ollama. An unknown id is a 404 in OpenAI's shape that names it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response

from worker.agents import Agent
from worker.http.errors import OPENAI_ERRORS_KEY, ApiError
from worker.openai.models import model_list, model_object
from worker.sampling.admission import catalogue_entry
from worker.sampling.published import Readings

MODELS_ROUTE = "/v1/models"


class ModelRoutes:
    """Answers the model routes for `agents` from the published readings."""

    def __init__(
        self,
        agents: tuple[Agent, ...],
        readings: Readings,
        authorise: Callable[[dict[str, Any]], None],
    ) -> None:
        self._agents = agents
        self._by_name = {agent.name: agent for agent in agents}
        self._readings = readings
        self._authorise = authorise

    def listing(
        self, environ: dict[str, Any], *, only: Agent | None = None, proxied: bool = False
    ) -> Response:
        """Every agent (`only`: a live runner's one agent) as OpenAI's model list."""
        self._check(environ, proxied)
        agents = self._agents if only is None else (only,)
        catalogue = self._readings.views()[1].data
        objects = (model_object(a, catalogue_entry(catalogue, a.model)) for a in agents)
        return _json(model_list(objects))

    def one(
        self,
        environ: dict[str, Any],
        model_id: str,
        *,
        only: Agent | None = None,
        proxied: bool = False,
    ) -> Response:
        """The agent named `model_id` as an OpenAI model object; 404 when there is none."""
        self._check(environ, proxied)
        agent = self._by_name.get(model_id)
        if only is not None and agent is not only:
            raise ApiError(
                404,
                "unknown_agent",
                f"model {model_id[:64]!r} is not served here: this runner serves {only.name!r}",
                param="model",
            )
        if agent is None:
            raise ApiError(404, "unknown_agent", f"no agent named {model_id[:64]!r}", param="model")
        catalogue = self._readings.views()[1].data
        return _json(model_object(agent, catalogue_entry(catalogue, agent.model)))

    def _check(self, environ: dict[str, Any], proxied: bool) -> None:
        environ[OPENAI_ERRORS_KEY] = True
        if not proxied:
            self._authorise(environ)


def _json(document: object) -> Response:
    return Response(json.dumps(document, separators=(",", ":")), mimetype="application/json")
