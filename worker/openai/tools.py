"""OpenAI `tools`, `tool_choice` and `response_format` onto Ollama's `tools` and `format`.

- `tools`: `function` tools only, at most MAX_TOOLS, unique names as OpenAI spells them;
  `parameters` checked against what Ollama's Go types decode (`api.ToolFunctionParameters`,
  `api.ToolProperty`: `type` a string or strings, `required` strings, `properties` an
  object of objects, `anyOf` an array of objects) and nested at most MAX_JSON_DEPTH
  deep, so a schema Ollama would reject is a 400 here, before any stream.
- `tool_choice`: `auto` (the default) sends the tools; `none` sends none. Ollama cannot
  force a tool call, so a named function (or `required` with exactly one tool) is
  honoured another way: no tools go to Ollama, its `format` is that function's
  parameters schema, and the JSON answer comes back as a call of that function.
  `required` with several tools cannot be honoured that way and is refused.
- `response_format`: `text`; `json_object` as `format: "json"`; `json_schema` as
  `format: <schema>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from worker.openai.errors import InvalidRequest, invalid, unsupported
from worker.openai.limits import MAX_JSON_DEPTH, MAX_TOOLS, deeper_than

# OpenAI: a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
FUNCTION_FIELDS = frozenset({"name", "description", "parameters", "strict"})
SCHEMA_FIELDS = frozenset({"name", "description", "schema", "strict"})
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolPlan:
    """What `tools` and `tool_choice` ask of Ollama."""

    tools: tuple[dict[str, Any], ...]  # sent to Ollama (empty: none)
    forced: dict[str, Any] | None  # the function a forced tool_choice names (Ollama form)


def tool_plan(raw_tools: object, raw_choice: object) -> ToolPlan:
    """Validate `tools` and `tool_choice`; InvalidRequest if bad or not honourable."""
    tools = _tools(raw_tools)
    if raw_choice is None or raw_choice == "auto":
        return ToolPlan(tools, None)
    if raw_choice == "none":
        return ToolPlan((), None)
    if not tools:
        raise invalid("tool_choice", f"tool_choice {_shown(raw_choice)} needs tools")
    if raw_choice == "required":
        if len(tools) == 1:
            return ToolPlan((), tools[0])
        raise unsupported(
            "tool_choice",
            "tool_choice 'required' with several tools cannot be honoured: Ollama cannot"
            " force a tool call; name one function ({'type': 'function', 'function':"
            " {'name': ...}}) or use 'auto'",
        )
    if isinstance(raw_choice, dict) and raw_choice.get("type") == "function":
        function = raw_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise invalid("tool_choice", "tool_choice.function.name must be a string")
        chosen = next((t for t in tools if t["function"]["name"] == name), None)
        if chosen is None:
            raise invalid("tool_choice", f"tool_choice names {name[:64]!r}, which is not in tools")
        return ToolPlan((), chosen)
    if isinstance(raw_choice, dict) and isinstance(raw_choice.get("type"), str):
        raise unsupported(
            "tool_choice",
            f"tool_choice of type {raw_choice['type'][:32]!r} is not supported"
            " (auto, none, required or a named function)",
        )
    raise invalid("tool_choice", "tool_choice must be auto, none, required or a named function")


def _shown(choice: object) -> str:
    return repr(choice) if isinstance(choice, str) else "naming a function"


def _tools(raw: object) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise invalid("tools", "tools must be an array")
    if len(raw) > MAX_TOOLS:
        raise invalid("tools", f"tools holds {len(raw)} tools; at most {MAX_TOOLS} are taken")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, tool in enumerate(raw):
        converted = _tool(tool, f"tools[{index}]")
        name = converted["function"]["name"]
        if name in names:
            raise invalid("tools", f"tools[{index}]: the name {name!r} is already taken")
        names.add(name)
        out.append(converted)
    return tuple(out)


def _tool(tool: object, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise invalid("tools", f"{where} must be an object", where)
    kind = tool.get("type")
    if kind != "function":
        if isinstance(kind, str):
            raise unsupported(
                f"{where}.type", f"{where}.type {kind[:32]!r} is not supported (only 'function')"
            )
        raise invalid("tools", f"{where}.type must be 'function'", f"{where}.type")
    extra = set(tool) - {"type", "function"}
    if extra:
        key = sorted(extra)[0][:64]
        raise InvalidRequest("unknown_field", f"{where} has an unknown field {key!r}", where)
    function = tool.get("function")
    if not isinstance(function, dict):
        raise invalid("tools", f"{where}.function must be an object", f"{where}.function")
    extra = set(function) - FUNCTION_FIELDS
    if extra:
        key = sorted(extra)[0][:64]
        raise InvalidRequest(
            "unknown_field", f"{where}.function has an unknown field {key!r}", f"{where}.function"
        )
    name = function.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
        raise invalid(
            "tools",
            f"{where}.function.name must be 1-64 letters, digits, '_' or '-'",
            f"{where}.function.name",
        )
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid(
            "tools", f"{where}.function.description must be a string", f"{where}.function"
        )
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid("tools", f"{where}.function.strict must be a boolean", f"{where}.function")
    parameters = function.get("parameters")
    at = f"{where}.function.parameters"
    if parameters is None:
        parameters = NO_PARAMETERS
    elif not isinstance(parameters, dict):
        raise invalid("tools", f"{at} must be a JSON schema object", at)
    elif deeper_than(parameters, MAX_JSON_DEPTH):
        raise invalid("tools", f"{at} is nested deeper than {MAX_JSON_DEPTH} levels", at)
    else:
        problem = _parameters_problem(parameters)
        if problem is not None:
            raise invalid("tools", f"{at}{problem}", at)
    converted: dict[str, Any] = {"name": name, "parameters": parameters}
    if description:
        converted["description"] = description
    return {"type": "function", "function": converted}


def _parameters_problem(schema: dict[str, Any]) -> str | None:
    """Where and why Ollama's Go types would not decode `schema` (None: they would)."""
    if "type" in schema and not isinstance(schema["type"], str):
        return ".type must be a string"
    return _property_problem(schema, "", top=True)


def _property_problem(node: dict[str, Any], path: str, top: bool = False) -> str | None:
    kind = node.get("type")
    if not top and kind is not None and not _is_type(kind):
        return f"{path}.type must be a string or an array of strings"
    required = node.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        return f"{path}.required must be an array of strings"
    description = node.get("description")
    if not top and description is not None and not isinstance(description, str):
        return f"{path}.description must be a string"
    enum = node.get("enum")
    if not top and enum is not None and not isinstance(enum, list):
        return f"{path}.enum must be an array"
    properties = node.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            return f"{path}.properties must be an object"
        for name, value in properties.items():
            at = f"{path}.properties.{name[:64]}"
            if not isinstance(value, dict):
                return f"{at} must be an object (a schema)"
            problem = _property_problem(value, at)
            if problem is not None:
                return problem
    any_of = node.get("anyOf")
    if not top and any_of is not None:
        if not isinstance(any_of, list):
            return f"{path}.anyOf must be an array"
        for index, value in enumerate(any_of):
            at = f"{path}.anyOf[{index}]"
            if not isinstance(value, dict):
                return f"{at} must be an object (a schema)"
            problem = _property_problem(value, at)
            if problem is not None:
                return problem
    return None


def _is_type(kind: object) -> bool:
    return isinstance(kind, str) or (
        isinstance(kind, list) and all(isinstance(k, str) for k in kind)
    )


# --- response_format ----------------------------------------------------------------------
def ollama_format(raw: object) -> str | dict[str, Any] | None:
    """Ollama's `format` for an OpenAI `response_format` (None: free text)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("response_format", "response_format must be an object with a type")
    kind = raw.get("type")
    extra = set(raw) - {"type", "json_schema"}
    if extra:
        key = sorted(extra)[0][:64]
        raise InvalidRequest(
            "unknown_field", f"response_format has an unknown field {key!r}", "response_format"
        )
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind != "json_schema":
        raise invalid(
            "response_format", "response_format.type must be text, json_object or json_schema"
        )
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise invalid("response_format", "response_format.json_schema must be an object")
    extra = set(spec) - SCHEMA_FIELDS
    if extra:
        key = sorted(extra)[0][:64]
        raise InvalidRequest(
            "unknown_field",
            f"response_format.json_schema has an unknown field {key!r}",
            "response_format",
        )
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name)):
        raise invalid(
            "response_format",
            "response_format.json_schema.name must be 1-64 letters, digits, '_' or '-'",
        )
    schema = spec.get("schema")
    if schema is None:
        return "json"
    if not isinstance(schema, dict):
        raise invalid("response_format", "response_format.json_schema.schema must be an object")
    if deeper_than(schema, MAX_JSON_DEPTH):
        raise invalid(
            "response_format",
            f"response_format.json_schema.schema is nested deeper than {MAX_JSON_DEPTH} levels",
        )
    return schema
