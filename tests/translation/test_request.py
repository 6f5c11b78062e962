"""worker/openai/request.py, messages.py, tools.py: OpenAI chat bodies onto Ollama's
/api/chat body, field by field, and every refusal naming its field (no HTTP)."""

from __future__ import annotations

import base64
import json

import pytest

from worker.agents import Agent
from worker.openai.errors import InvalidRequest
from worker.openai.limits import MAX_IMAGE_BYTES, MAX_JSON_DEPTH, MAX_TOOLS
from worker.openai.request import ChatPlan, chat_plan

AGENT = Agent(name="helper", model="m:1", system="Be brief.", max_tokens=100, temperature=0.5)
BARE = Agent(name="bare", model="m:1")
ALL = frozenset({"completion", "tools", "vision", "thinking"})
USER = [{"role": "user", "content": "hello"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city"}},
            "required": ["city"],
        },
    },
}


def plan(body: dict, agent: Agent = AGENT, capabilities=ALL) -> ChatPlan:
    return chat_plan({"messages": USER, **body}, agent, capabilities)


def refused(body: dict, agent: Agent = AGENT, capabilities=ALL) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        chat_plan(body if "messages" in body else {"messages": USER, **body}, agent, capabilities)
    return caught.value


# --- options ---------------------------------------------------------------------------------
def test_the_agents_defaults_stand_when_fields_are_omitted_and_nothing_is_forced() -> None:
    body = plan({}).ollama_body("m:1")
    assert body == {
        "model": "m:1",
        "messages": [{"role": "system", "content": "Be brief."}, *USER],
        "stream": True,
        "options": {"num_predict": 100, "temperature": 0.5},
    }
    # An agent without a temperature sends none: the model's own default, never 1.0.
    assert plan({}, BARE).options == {"num_predict": 1024}
    assert "keep_alive" not in body  # the residency loop owns keep_alive


def test_every_sampling_field_reaches_the_options() -> None:
    options = plan(
        {
            "temperature": 0,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
            "presence_penalty": -1.5,
            "frequency_penalty": 2,
        }
    ).options
    assert options == {
        "num_predict": 100,
        "temperature": 0.0,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
        "presence_penalty": -1.5,
        "frequency_penalty": 2.0,
    }


@pytest.mark.parametrize(
    ("fields", "num_predict"),
    [
        ({"max_tokens": 5}, 5),
        ({"max_completion_tokens": 6}, 6),
        ({"max_tokens": 5, "max_completion_tokens": 7}, 7),  # the newer field wins
        ({"max_completion_tokens": 10**6}, 100),  # capped by the agent
        ({"max_tokens": None}, 100),
    ],
)
def test_max_completion_tokens_and_max_tokens_are_num_predict_capped(
    fields: dict, num_predict: int
) -> None:
    assert plan(fields).options["num_predict"] == num_predict


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"temperature": 2.5}, "invalid_temperature", "temperature"),
        ({"top_p": "high"}, "invalid_top_p", "top_p"),
        ({"seed": 1.5}, "invalid_seed", "seed"),
        ({"presence_penalty": 3}, "invalid_presence_penalty", "presence_penalty"),
        ({"frequency_penalty": True}, "invalid_frequency_penalty", "frequency_penalty"),
        ({"max_completion_tokens": 0}, "invalid_max_completion_tokens", "max_completion_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "invalid_stop", "stop"),
        ({"stream": "yes"}, "invalid_stream", "stream"),
        ({"n": 2}, "unsupported_field", "n"),
        ({"n": "1"}, "invalid_n", "n"),
        ({"reasoning_effort": "extreme"}, "invalid_reasoning_effort", "reasoning_effort"),
        ({"stream_options": {"include_usage": "yes"}}, "invalid_stream_options", "stream_options"),
        ({"parallel_tool_calls": 1}, "invalid_parallel_tool_calls", "parallel_tool_calls"),
    ],
)
def test_bad_fields_are_400_naming_the_field(fields: dict, code: str, param: str) -> None:
    problem = refused(fields)
    assert (problem.status, problem.code, problem.param) == (400, code, param)
    assert param in problem.message


def test_n_of_one_is_fine() -> None:
    assert plan({"n": 1}).stream is False


# --- fields known, ignored, refused, unknown ---------------------------------------------------
def test_ignored_fields_change_nothing() -> None:
    ignored = {
        "user": "u-1",
        "metadata": {"a": "b"},
        "store": True,
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
        "logprobs": False,
        "top_logprobs": 0,
        "logit_bias": {},
        "modalities": ["text"],
        "audio": None,
    }
    assert plan(ignored) == plan({})


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("logprobs", True, "log probabilities"),
        ("top_logprobs", 3, "log probabilities"),
        ("logit_bias", {"50256": -100}, "logit bias"),
        ("functions", [{"name": "f"}], "use tools"),
        ("function_call", "auto", "tool_choice"),
        ("audio", {"voice": "alloy"}, "audio"),
        ("modalities", ["text", "audio"], "text output"),
        ("prediction", {"type": "content", "content": "x"}, "predicted"),
        ("web_search_options", {}, "web search"),
        ("verbosity", "low", "verbosity"),
    ],
)
def test_fields_this_worker_cannot_honour_are_refused_when_set(
    field: str, value: object, named: str
) -> None:
    problem = refused({field: value})
    assert (problem.code, problem.param) == ("unsupported_field", field)
    assert named in problem.message


def test_an_unknown_field_is_refused_by_name() -> None:
    problem = refused({"temprature": 0.2})
    assert (problem.code, problem.param) == ("unknown_field", "temprature")
    assert "'temprature'" in problem.message


# --- messages ---------------------------------------------------------------------------------
def test_roles_map_developer_to_system_and_keep_the_agents_prompt_first() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "developer", "content": "dev"},
        {"role": "user", "content": "hi", "name": "ann"},
    ]
    assert plan({"messages": messages}).messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "dev"},
        {"role": "user", "content": "hi"},
    )


def test_text_parts_are_joined_and_data_url_images_become_bare_base64() -> None:
    content = [
        {"type": "text", "text": "What is"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
        },
        {"type": "text", "text": "in this picture?"},
        {"type": "image_url", "image_url": f"data:image/jpeg;base64,{PNG}"},
    ]
    result = plan({"messages": [{"role": "user", "content": content}]}, BARE)
    assert result.messages == (
        {"role": "user", "content": "What is\nin this picture?", "images": [PNG, PNG]},
    )
    assert result.needs == ("completion", "vision")
    # A system message of text parts is fine too.
    system = [{"role": "system", "content": [{"type": "text", "text": "a"}]}, *USER]
    assert plan({"messages": system}, BARE).messages[0] == {"role": "system", "content": "a"}


@pytest.mark.parametrize(
    ("content", "code", "param", "named"),
    [
        (
            [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
            "unsupported_image_url",
            "messages[0].content[0].image_url.url",
            "not fetched",
        ),
        (
            [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
            "unsupported_content_part",
            "messages[0].content[0].type",
            "'input_audio'",
        ),
        (
            [{"type": "text", "text": "x"}, {"type": "file", "file": {"file_id": "f"}}],
            "unsupported_content_part",
            "messages[0].content[1].type",
            "'file'",
        ),
        (
            [{"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}}],
            "invalid_messages",
            "messages[0].content[0].image_url.url",
            "JPEG, PNG or WebP",
        ),
        (
            [{"type": "image_url", "image_url": {"url": "data:image/png;base64,not*base64"}}],
            "invalid_messages",
            "messages[0].content[0].image_url.url",
            "valid base64",
        ),
        (
            [{"type": "text", "text": 5}],
            "invalid_messages",
            "messages[0].content[0].text",
            "string",
        ),
        ([{"text": "x"}], "invalid_messages", "messages[0].content[0].type", "string"),
        ({"text": "x"}, "invalid_messages", "messages[0].content", "content parts"),
    ],
)
def test_bad_content_parts_are_refused_by_name(
    content: object, code: str, param: str, named: str
) -> None:
    problem = refused({"messages": [{"role": "user", "content": content}]})
    assert (problem.status, problem.code, problem.param) == (400, code, param)
    assert named in problem.message and param in problem.message
    assert "example.com" not in problem.message  # the URL is never echoed


def test_an_oversized_image_is_refused_before_it_is_decoded() -> None:
    big = "A" * ((MAX_IMAGE_BYTES // 3 + 2) * 4)
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{big}"}}]
    problem = refused({"messages": [{"role": "user", "content": content}]})
    assert (problem.code, problem.param) == (
        "image_too_large",
        "messages[0].content[0].image_url.url",
    )
    assert str(MAX_IMAGE_BYTES) in problem.message and "AAAA" not in problem.message


def test_an_agent_loop_turn_carries_tool_calls_and_tool_results() -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
    ]
    assert plan({"messages": messages}, BARE).messages[1:] == (
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {"id": "call_2", "function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "noon", "tool_call_id": "call_2", "tool_name": "get_time"},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "tool_name": "get_weather"},
    )


def assistant_call(arguments: str) -> list[dict]:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return [*USER, {"role": "assistant", "content": None, "tool_calls": [call]}]


@pytest.mark.parametrize(
    ("messages", "param", "named"),
    [
        (assistant_call('{"city": "Par'), "messages[1].tool_calls[0].function.arguments", "JSON"),
        (assistant_call("[1, 2]"), "messages[1].tool_calls[0].function.arguments", "JSON object"),
        (
            assistant_call("[" * 5000 + "]" * 5000),
            "messages[1].tool_calls[0].function.arguments",
            "JSON",
        ),
        (
            assistant_call('{"a":' * 40 + "1" + "}" * 40),
            "messages[1].tool_calls[0].function.arguments",
            f"deeper than {MAX_JSON_DEPTH}",
        ),
        (
            [*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}],
            "messages[1].tool_call_id",
            "no call has id 'nope'",
        ),
        ([*USER, {"role": "tool", "content": "x"}], "messages[1].tool_call_id", "non-empty"),
        ([{"role": "robot", "content": "x"}], "messages[0].role", "system, developer"),
        ([{"role": "system", "content": "only"}], "messages", "user message"),
        ([{"role": "user", "content": "  "}], "messages", "user message"),
        ([], "messages", "non-empty array"),
    ],
)
def test_bad_messages_are_400_naming_the_message(messages: list, param: str, named: str) -> None:
    problem = refused({"messages": messages})
    assert (problem.code, problem.param) == ("invalid_messages", param)
    assert named in problem.message


def test_unknown_and_unsupported_message_fields() -> None:
    problem = refused({"messages": [{"role": "user", "content": "x", "colour": "red"}]})
    assert (problem.code, problem.param) == ("unknown_field", "messages[0].colour")
    problem = refused({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})
    assert (problem.code, problem.param) == ("unsupported_field", "messages[0].tool_calls")
    echoed = {"role": "assistant", "content": "hi", "audio": None, "function_call": None}
    assert plan({"messages": [*USER, echoed]}).messages[-1] == {
        "role": "assistant",
        "content": "hi",
    }


# --- tools and tool_choice -------------------------------------------------------------------
def test_tools_go_to_ollama_and_need_the_tools_capability() -> None:
    result = plan({"tools": [WEATHER]}, BARE)
    assert result.tools == (
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["function"]["parameters"],
                "description": "The weather in a city",
            },
        },
    )
    assert result.needs == ("completion", "tools")
    assert result.ollama_body("m:1")["tools"] == list(result.tools)
    assert plan({"tools": [WEATHER], "tool_choice": "auto"}, BARE).tools == result.tools


def test_tool_choice_none_sends_no_tools_and_needs_none() -> None:
    result = plan({"tools": [WEATHER], "tool_choice": "none"}, BARE, frozenset({"completion"}))
    assert result.tools == () and "tools" not in result.ollama_body("m")


def test_a_named_function_is_honoured_through_format() -> None:
    chosen = {"type": "function", "function": {"name": "get_weather"}}
    result = plan({"tools": [WEATHER], "tool_choice": chosen}, BARE, frozenset({"completion"}))
    body = result.ollama_body("m:1")
    assert "tools" not in body and result.forced_tool == "get_weather"
    assert body["format"] == WEATHER["function"]["parameters"]
    assert "get_weather" in body["messages"][-1]["content"]
    assert body["messages"][-1]["role"] == "system"
    assert result.needs == ("completion",)  # no tools capability needed
    # `required` with one tool is the same.
    required = plan({"tools": [WEATHER], "tool_choice": "required"}, BARE)
    assert required.forced_tool == "get_weather"


@pytest.mark.parametrize(
    ("fields", "code", "named"),
    [
        (
            {
                "tools": [WEATHER, {**WEATHER, "function": {"name": "other"}}],
                "tool_choice": "required",
            },
            "unsupported_field",
            "cannot force a tool call",
        ),
        ({"tool_choice": "required"}, "invalid_tool_choice", "needs tools"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "invalid_tool_choice",
            "'x', which is not in tools",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
            "unsupported_field",
            "'allowed_tools'",
        ),
        ({"tools": [WEATHER], "tool_choice": "always"}, "invalid_tool_choice", "auto, none"),
        (
            {
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "response_format": {"type": "json_object"},
            },
            "unsupported_field",
            "cannot be combined",
        ),
    ],
)
def test_tool_choice_that_cannot_be_honoured_is_refused(
    fields: dict, code: str, named: str
) -> None:
    problem = refused(fields)
    assert problem.code == code and named in problem.message


def nested(depth: int) -> dict:
    node: dict = {"type": "string"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"x": node}}
    return node


@pytest.mark.parametrize(
    ("tools", "code", "param", "named"),
    [
        ([WEATHER] * (MAX_TOOLS + 1), "invalid_tools", "tools", f"at most {MAX_TOOLS}"),
        (
            [{"type": "function", "function": {"name": f"t{i}"}} for i in range(1000)],
            "invalid_tools",
            "tools",
            "1000 tools",
        ),
        ([WEATHER, WEATHER], "invalid_tools", "tools", "already taken"),
        ([{"type": "custom", "custom": {}}], "unsupported_field", "tools[0].type", "'custom'"),
        ("get_weather", "invalid_tools", "tools", "array"),
        (
            [{"type": "function", "function": {"name": "has space"}}],
            "invalid_tools",
            "tools[0].function.name",
            "letters, digits",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": nested(40)}}],
            "invalid_tools",
            "tools[0].function.parameters",
            f"deeper than {MAX_JSON_DEPTH}",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": ["object"]}}}],
            "invalid_tools",
            "tools[0].function.parameters",
            ".type must be a string",
        ),
        (
            [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {"a": {"type": 3}}},
                    },
                }
            ],
            "invalid_tools",
            "tools[0].function.parameters",
            "properties.a.type",
        ),
        (
            [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"properties": {"a": True}}},
                }
            ],
            "invalid_tools",
            "tools[0].function.parameters",
            "properties.a must be an object",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"required": "a"}}}],
            "invalid_tools",
            "tools[0].function.parameters",
            "required must be an array of strings",
        ),
        (
            [{"type": "function", "function": {"name": "f", "colour": "red"}}],
            "unknown_field",
            "tools[0].function",
            "'colour'",
        ),
    ],
)
def test_bad_tools_are_clean_400s(tools: object, code: str, param: str, named: str) -> None:
    problem = refused({"tools": tools})
    assert (problem.status, problem.code, problem.param) == (400, code, param)
    assert named in problem.message


def test_a_schema_as_real_sdks_send_it_passes() -> None:
    # pydantic's schema for a model with a nested model and an optional field, as
    # openai.pydantic_function_tool and chat.completions.parse send it (strict).
    schema = {
        "$defs": {
            "City": {
                "properties": {"name": {"title": "Name", "type": "string"}},
                "required": ["name"],
                "title": "City",
                "type": "object",
                "additionalProperties": False,
            }
        },
        "properties": {
            "city": {"$ref": "#/$defs/City"},
            "days": {"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Days"},
            "unit": {"enum": ["c", "f"], "title": "Unit", "type": "string"},
        },
        "required": ["city", "days", "unit"],
        "title": "Forecast",
        "type": "object",
        "additionalProperties": False,
    }
    tool = {
        "type": "function",
        "function": {"name": "Forecast", "parameters": schema, "strict": True},
    }
    assert plan({"tools": [tool]}).tools[0]["function"]["parameters"] == schema
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "Forecast", "schema": schema, "strict": True},
    }
    assert plan({"response_format": response_format}).format == schema


# --- response_format, reasoning ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            {"type": "object"},
        ),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "json"),
    ],
)
def test_response_format_is_ollamas_format(response_format: dict, expected: object) -> None:
    result = plan({"response_format": response_format})
    assert result.format == expected
    assert ("format" in result.ollama_body("m")) is (expected is not None)


@pytest.mark.parametrize(
    ("response_format", "code", "named"),
    [
        ({"type": "yaml"}, "invalid_response_format", "text, json_object or json_schema"),
        ({"type": "json_schema"}, "invalid_response_format", "json_schema must be an object"),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": nested(40)}},
            "invalid_response_format",
            f"deeper than {MAX_JSON_DEPTH}",
        ),
        ("json", "invalid_response_format", "object with a type"),
    ],
)
def test_bad_response_formats_are_refused(response_format: object, code: str, named: str) -> None:
    problem = refused({"response_format": response_format})
    assert (problem.code, problem.param) == (code, "response_format")
    assert named in problem.message


@pytest.mark.parametrize(
    ("effort", "think"),
    [("none", False), ("minimal", "low"), ("low", "low"), ("medium", "medium"), ("high", "high")],
)
def test_reasoning_effort_is_think(effort: str, think: object) -> None:
    result = plan({"reasoning_effort": effort})
    assert result.ollama_body("m")["think"] == think
    assert ("thinking" in result.needs) is (think is not False)


def test_without_reasoning_effort_no_think_is_sent() -> None:
    assert "think" not in plan({}).ollama_body("m")


# --- capabilities --------------------------------------------------------------------------------
IMAGE = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]


@pytest.mark.parametrize(
    ("fields", "capability", "param"),
    [
        ({"tools": [WEATHER]}, "tools", "tools"),
        ({"messages": [{"role": "user", "content": IMAGE}]}, "vision", "messages"),
        ({"reasoning_effort": "high"}, "thinking", "reasoning_effort"),
    ],
)
def test_a_capability_the_model_lacks_is_refused_naming_agent_model_and_capability(
    fields: dict, capability: str, param: str
) -> None:
    problem = refused(fields, capabilities=frozenset({"completion"}))
    assert (problem.status, problem.code, problem.param) == (400, "model_lacks_capability", param)
    assert "'helper'" in problem.message and "'m:1'" in problem.message
    assert f"{capability!r}" in problem.message


def test_chat_to_an_embedding_model_is_refused_as_an_embedding_agent() -> None:
    problem = refused({}, capabilities=frozenset({"embedding"}))
    assert problem.code == "model_lacks_capability"
    assert "'completion'" in problem.message and "embedding agent" in problem.message
    assert "/v1/embeddings" in problem.message


def test_unknown_capabilities_refuse_nothing_and_say_what_ollama_must_decide() -> None:
    fields = {
        "tools": [WEATHER],
        "reasoning_effort": "low",
        "messages": [{"role": "user", "content": IMAGE}],
    }
    result = plan(fields, capabilities=None)
    assert result.needs == ("completion", "tools", "vision", "thinking")
    assert result.unverified == ("tools", "vision", "thinking")
    assert plan({}, capabilities=None).unverified == ()
    assert plan(fields).unverified == ()  # known: nothing left to Ollama


def test_reasoning_effort_none_on_a_model_without_thinking_sends_nothing() -> None:
    result = plan({"reasoning_effort": "none"}, capabilities=frozenset({"completion"}))
    assert "think" not in result.ollama_body("m")


def test_the_ollama_body_is_json() -> None:
    fields = {"tools": [WEATHER], "response_format": {"type": "json_object"}, "stream": True}
    body = plan(fields).ollama_body("m:1")
    assert json.loads(json.dumps(body)) == body
