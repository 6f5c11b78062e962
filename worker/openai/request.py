"""An OpenAI chat-completions body, for one agent, as Ollama's `/api/chat` body.

`chat_plan(body, agent, capabilities)` is the whole mapping (docs/agents.md has the table,
field by field, beside what Ollama's own OpenAI layer does). Past Ollama's layer:
`max_completion_tokens` counts, the agent caps `num_predict`, the agent's defaults stand
when a field is omitted (nothing is forced to 1.0), `tool_choice` and `n` are honoured or
refused, never ignored, and a request that needs a capability the model lacks (`tools`,
`vision`, `thinking`, or `completion` for an embedding model) is refused before Ollama is
called, naming the agent, the model and the capability. `keep_alive` is not sent: the
residency loop (worker/residency) decides how long each model stays loaded.

Every field is known: fields that change nothing here are accepted and ignored
(IGNORED_FIELDS), fields whose behaviour this worker cannot give are refused when set
(UNSUPPORTED_FIELDS), and any other field is refused as unknown, so no field ever changes
behaviour silently.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from worker.agents import Agent
from worker.openai.capabilities import (
    COMPLETION,
    THINKING,
    TOOLS,
    VISION,
    first_missing,
    lacking_message,
)
from worker.openai.errors import InvalidRequest, invalid, unsupported
from worker.openai.messages import ollama_messages
from worker.openai.tools import ollama_format, tool_plan

MAX_STOP_SEQUENCES = 4
# reasoning_effort -> Ollama's `think` (a level where the model takes one; a thinking
# model without levels treats any level as true).
THINK_LEVELS: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}
HANDLED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "n",
    }
)
# Accepted and ignored: they change nothing in the answer.
IGNORED_FIELDS = frozenset(
    {
        "user",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
    }
)
# Refused when set to anything but their "off" value (OFF_VALUES): this worker cannot
# give what they ask.
UNSUPPORTED_FIELDS: dict[str, str] = {
    "logprobs": "log probabilities are not returned",
    "top_logprobs": "log probabilities are not returned",
    "logit_bias": "Ollama takes no logit bias",
    "functions": "the legacy functions API is not supported; use tools",
    "function_call": "the legacy functions API is not supported; use tool_choice",
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
    "verbosity": "Ollama takes no verbosity",
}
OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "modalities": (None, ["text"]),
}
STREAM_OPTIONS = frozenset({"include_usage", "include_obfuscation"})


@dataclass(frozen=True)
class ChatPlan:
    """A chat request ready for Ollama, and how its answer is to be shaped."""

    messages: tuple[dict[str, Any], ...]
    options: dict[str, Any]
    stream: bool = False
    tools: tuple[dict[str, Any], ...] = ()
    format: str | dict[str, Any] | None = None
    think: bool | str | None = None
    include_usage: bool = False  # stream_options.include_usage: a last chunk with usage
    forced_tool: str | None = None  # the answer's JSON is the arguments of this function
    single_tool_call: bool = False  # parallel_tool_calls: false (calls after the first dropped)
    needs: tuple[str, ...] = (COMPLETION,)  # the capabilities the request needs
    unverified: tuple[str, ...] = ()  # needs beyond completion the readings did not confirm

    def ollama_body(self, model: str) -> dict[str, Any]:
        """The `/api/chat` body (always streamed from Ollama: the worker relays or joins)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": list(self.messages),
            "stream": True,
            "options": self.options,
        }
        if self.tools:
            body["tools"] = list(self.tools)
        if self.format is not None:
            body["format"] = self.format
        if self.think is not None:
            body["think"] = self.think
        return body


def chat_plan(body: dict[str, Any], agent: Agent, capabilities: Collection[str] | None) -> ChatPlan:
    """The Ollama request for `body` sent to `agent`, whose model has `capabilities`
    (None: not known); InvalidRequest (a 4xx) when the body is bad, asks for what this
    worker cannot do, or needs a capability the model lacks."""
    _check_fields(body)
    messages = ollama_messages(body.get("messages"))
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("stream", "stream must be true or false")
    include_usage = _include_usage(body.get("stream_options"))
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise invalid("n", "n must be an integer")
    if n not in (None, 1):
        raise unsupported("n", f"n={n}: this worker answers one choice per request (n=1)")
    tools = tool_plan(body.get("tools"), body.get("tool_choice"))
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid("parallel_tool_calls", "parallel_tool_calls must be true or false")
    format_ = ollama_format(body.get("response_format"))
    forced = tools.forced
    chat_messages = messages.messages
    if forced is not None:
        if format_ is not None:
            raise unsupported(
                "response_format",
                "response_format cannot be combined with a tool_choice that names a function",
            )
        format_ = forced["function"]["parameters"]
        chat_messages = (*chat_messages, _forced_instruction(forced["function"]))
    think = _think(body.get("reasoning_effort"))
    if agent.system:
        chat_messages = ({"role": "system", "content": agent.system}, *chat_messages)
    needs = [COMPLETION]
    if tools.tools:
        needs.append(TOOLS)
    if messages.has_images:
        needs.append(VISION)
    if think is not None and think is not False:
        needs.append(THINKING)
    missing = first_missing(needs, capabilities)
    if missing is not None:
        assert capabilities is not None
        raise InvalidRequest(
            "model_lacks_capability",
            lacking_message(agent.name, agent.model, missing, capabilities),
            _param_needing(missing),
        )
    if think is False and capabilities is not None and THINKING not in capabilities:
        think = None  # nothing to turn off
    return ChatPlan(
        messages=chat_messages,
        options=_options(body, agent),
        stream=stream,
        tools=tools.tools,
        format=format_,
        think=think,
        include_usage=include_usage,
        forced_tool=None if forced is None else forced["function"]["name"],
        single_tool_call=parallel is False,
        needs=tuple(needs),
        unverified=() if capabilities is not None else tuple(needs[1:]),
    )


def _check_fields(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in HANDLED_FIELDS or key in IGNORED_FIELDS:
            continue
        reason = UNSUPPORTED_FIELDS.get(key)
        if reason is None:
            raise InvalidRequest(
                "unknown_field",
                f"unknown field {key[:64]!r}: this worker does not know it"
                " (docs/agents.md lists the fields it takes)",
                key[:64],
            )
        if value is not None and value not in OFF_VALUES.get(key, (None,)):
            raise unsupported(key, f"{key}: {reason}")


def _include_usage(raw: object) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise invalid("stream_options", "stream_options must be an object")
    extra = set(raw) - STREAM_OPTIONS
    if extra:
        key = sorted(extra)[0][:64]
        raise InvalidRequest(
            "unknown_field", f"stream_options has an unknown field {key!r}", "stream_options"
        )
    include = raw.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise invalid("stream_options", "stream_options.include_usage must be true or false")
    return bool(include)


def _think(raw: object) -> bool | str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or raw not in THINK_LEVELS:
        raise invalid(
            "reasoning_effort",
            "reasoning_effort must be one of " + ", ".join(THINK_LEVELS),
        )
    return THINK_LEVELS[raw]


def _forced_instruction(function: dict[str, Any]) -> dict[str, str]:
    """The system turn that tells the model its answer is a call of `function`."""
    text = (
        f"Call the function {function['name']!r} now: answer with nothing but its"
        " arguments, as one JSON object."
    )
    description = function.get("description")
    if description:
        text += f" The function: {description}"
    return {"role": "system", "content": text}


def _param_needing(capability: str) -> str | None:
    return {TOOLS: "tools", VISION: "messages", THINKING: "reasoning_effort"}.get(capability)


# --- options ---------------------------------------------------------------------------------
def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(key, f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def _integer(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(key, f"{key} must be an integer from {low} to {high}")
    return value


def _stop(body: dict[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise invalid(
            "stop", f"stop must be a string or up to {MAX_STOP_SEQUENCES} non-empty strings"
        )
    return stops


def _options(body: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """Ollama's options: the request's values, else the agent's; num_predict capped."""
    limit = _integer(body, "max_completion_tokens", 1, 10**9)
    max_tokens = _integer(body, "max_tokens", 1, 10**9)
    if limit is None:
        limit = max_tokens
    options: dict[str, Any] = {"num_predict": min(limit or agent.max_tokens, agent.max_tokens)}
    temperature = _number(body, "temperature", 0, 2)
    for key, value in (
        ("temperature", agent.temperature if temperature is None else temperature),
        ("top_p", _number(body, "top_p", 0, 1)),
        ("seed", _integer(body, "seed", -(2**63), 2**63 - 1)),
        ("stop", _stop(body)),
        ("presence_penalty", _number(body, "presence_penalty", -2, 2)),
        ("frequency_penalty", _number(body, "frequency_penalty", -2, 2)),
        ("num_ctx", agent.num_ctx),
    ):
        if value is not None:
            options[key] = value
    return options
