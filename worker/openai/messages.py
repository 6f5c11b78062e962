"""OpenAI chat `messages` onto Ollama's: roles, content parts, images, tool calls.

- `system` and `developer` become Ollama `system` messages; `user`, `assistant`, `tool` stay.
- `content` is a string, `null` (an assistant turn, usually with `tool_calls`), or an
  array of parts: `text` parts are joined with a newline; `image_url` parts with a
  `data:` URL become the message's `images` (bare base64); an http(s) URL is refused and
  never fetched; any other part type is refused by name.
- An assistant's `tool_calls` go with `arguments` parsed from the JSON string into an
  object; a `tool` message carries `tool_call_id` and the `tool_name` of the call it
  answers (found in an earlier assistant turn; none is a 400, as OpenAI answers).

Error messages name the message and field (`messages[2].content[1].type`) and never
repeat the client's data beyond a short, quoted type or name.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from worker.openai.errors import InvalidRequest, unsupported
from worker.openai.limits import MAX_IMAGE_BYTES, MAX_JSON_DEPTH, deeper_than

ROLES = ("system", "developer", "user", "assistant", "tool")
TEXT_JOINER = "\n"
# Ollama's decodeImageURL (openai/openai.go) takes these data: URL prefixes.
IMAGE_PREFIXES = tuple(
    f"data:{kind};base64," for kind in ("image/jpeg", "image/jpg", "image/png", "image/webp", "")
)
# Message fields accepted and ignored: what the openai SDK echoes back when a client
# appends a `ChatCompletionMessage` to its history, and the participant `name`.
IGNORED_MESSAGE_FIELDS = frozenset({"name", "refusal", "annotations"})
# Message fields accepted only when null (an echoed-back message holds them so).
NULL_ONLY_MESSAGE_FIELDS = frozenset({"audio", "function_call"})
MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "reasoning"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _bad(where: str, message: str) -> InvalidRequest:
    return InvalidRequest("invalid_messages", f"{where}: {message}", where)


@dataclass(frozen=True)
class Messages:
    """Ollama's messages, and what they need: images (vision)."""

    messages: tuple[dict[str, Any], ...]
    has_images: bool


def ollama_messages(raw: object) -> Messages:
    """The OpenAI `messages` array as Ollama `/api/chat` messages; InvalidRequest if bad."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("invalid_messages", "messages must be a non-empty array", "messages")
    calls: dict[str, str] = {}  # tool_call_id -> function name, from assistant turns so far
    out: list[dict[str, Any]] = []
    has_images = has_user = False
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _bad(where, "must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role", "must be system, developer, user, assistant or tool")
        _check_fields(message, role, where)
        if role == "assistant":
            converted = _assistant(message, where, calls)
        elif role == "tool":
            converted = _tool(message, where, calls)
        else:
            text, images = _content(message.get("content"), f"{where}.content", role)
            converted = {"role": "system" if role == "developer" else role, "content": text}
            if images:
                converted["images"] = images
                has_images = True
            if role == "user" and (text.strip() or images):
                has_user = True
        out.append(converted)
    if not has_user:
        raise InvalidRequest(
            "invalid_messages",
            "messages must hold a user message with some text or an image",
            "messages",
        )
    return Messages(tuple(out), has_images)


def _check_fields(message: dict[str, Any], role: str, where: str) -> None:
    for key, value in message.items():
        if key in MESSAGE_FIELDS[role] or key in IGNORED_MESSAGE_FIELDS:
            continue
        if key in NULL_ONLY_MESSAGE_FIELDS and value is None:
            continue
        if key in NULL_ONLY_MESSAGE_FIELDS or key in ("tool_calls", "tool_call_id"):
            raise unsupported(
                f"{where}.{key}", f"{where}.{key} is not supported on a {role} message"
            )
        raise InvalidRequest(
            "unknown_field", f"{where} has an unknown field {key[:64]!r}", f"{where}.{key}"
        )


# --- content ----------------------------------------------------------------------------------
def _content(content: object, where: str, role: str) -> tuple[str, list[str]]:
    """(text, images) of a `content` value: a string or an array of parts."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _bad(where, "must be a string or an array of content parts")
    texts: list[str] = []
    images: list[str] = []
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise _bad(at, "must be an object with a type")
        kind = part.get("type")
        if kind == "text" or (kind == "refusal" and role == "assistant"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise _bad(f"{at}.{kind}", "must be a string")
            texts.append(text)
        elif kind == "image_url" and role == "user":
            images.append(_image(part.get("image_url"), f"{at}.image_url"))
        elif isinstance(kind, str):
            allowed = "text and image_url" if role == "user" else "text"
            raise InvalidRequest(
                "unsupported_content_part",
                f"{at}.type {kind[:32]!r} is not supported in a {role} message"
                f" (this worker takes {allowed} parts)",
                f"{at}.type",
            )
        else:
            raise _bad(f"{at}.type", "must be a string")
    return TEXT_JOINER.join(texts), images


def _image(value: object, where: str) -> str:
    """The bare base64 of an `image_url` part whose URL is a `data:` URL."""
    url = value.get("url") if isinstance(value, dict) else value
    if isinstance(value, dict):
        detail = value.get("detail")
        if detail not in (None, "auto", "low", "high"):
            raise _bad(f"{where}.detail", "must be auto, low or high")
    if not isinstance(url, str):
        raise _bad(f"{where}.url", "must be a string")
    if url[:8].lower().startswith(("http://", "https://")):
        raise InvalidRequest(
            "unsupported_image_url",
            f"{where}.url: image URLs are not fetched; send the image inline as a"
            " data: URL (data:image/png;base64,...)",
            f"{where}.url",
        )
    head = url[:32].lower()
    prefix = next((p for p in IMAGE_PREFIXES if head.startswith(p)), None)
    if prefix is None:
        raise _bad(
            f"{where}.url",
            "must be a base64 data: URL of a JPEG, PNG or WebP image (data:image/png;base64,...)",
        )
    data = url[len(prefix) :]
    # Base64 holds 3 bytes per 4 characters: refuse an oversized image before decoding it.
    if len(data) // 4 * 3 > MAX_IMAGE_BYTES + 2:
        raise InvalidRequest(
            "image_too_large",
            f"{where}.url: the image is larger than {MAX_IMAGE_BYTES} bytes",
            f"{where}.url",
        )
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where}.url", "the data: URL does not hold valid base64") from None
    return data


# --- assistant and tool turns ---------------------------------------------------------------
def _assistant(message: dict[str, Any], where: str, calls: dict[str, str]) -> dict[str, Any]:
    content = message.get("content")
    text = "" if content is None else _content(content, f"{where}.content", "assistant")[0]
    converted: dict[str, Any] = {"role": "assistant", "content": text}
    reasoning = message.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise _bad(f"{where}.reasoning", "must be a string")
        converted["thinking"] = reasoning
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise _bad(f"{where}.tool_calls", "must be an array")
        if tool_calls:
            converted["tool_calls"] = [
                _tool_call(call, f"{where}.tool_calls[{i}]", calls)
                for i, call in enumerate(tool_calls)
            ]
    return converted


def _tool_call(call: object, where: str, calls: dict[str, str]) -> dict[str, Any]:
    if not isinstance(call, dict):
        raise _bad(where, "must be an object")
    kind = call.get("type", "function")
    if kind != "function":
        raise _bad(f"{where}.type", "must be 'function'")
    call_id, function = call.get("id"), call.get("function")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.id", "must be a non-empty string")
    if not isinstance(function, dict):
        raise _bad(f"{where}.function", "must be an object")
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where}.function.name", "must be a non-empty string")
    if not isinstance(arguments, str):
        raise _bad(f"{where}.function.arguments", "must be a string holding a JSON object")
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except (ValueError, RecursionError):
        raise _bad(f"{where}.function.arguments", "is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise _bad(f"{where}.function.arguments", "must be a JSON object")
    if deeper_than(parsed, MAX_JSON_DEPTH):
        raise _bad(f"{where}.function.arguments", f"is nested deeper than {MAX_JSON_DEPTH} levels")
    calls[call_id] = name
    return {"id": call_id, "function": {"name": name, "arguments": parsed}}


def _tool(message: dict[str, Any], where: str, calls: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}.tool_call_id", "must be a non-empty string")
    name = calls.get(call_id)
    if name is None:
        raise _bad(
            f"{where}.tool_call_id",
            "answers no tool call of an earlier assistant message"
            f" (no call has id {call_id[:64]!r})",
        )
    text, _ = _content(message.get("content"), f"{where}.content", "tool")
    return {"role": "tool", "content": text, "tool_call_id": call_id, "tool_name": name}
