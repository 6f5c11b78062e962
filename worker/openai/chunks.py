"""Ollama's streamed `/api/chat` messages as OpenAI `chat.completion.chunk` SSE events.

`ChunkEncoder` is a small stateful translator for one stream (Ollama's `ToStreamChunks`
and `FinishChunk` in `openai/openai.go`, and more):

- a first chunk with the role; then per Ollama message, in this order, its `thinking`
  as `delta.reasoning` (never mixed into `content`), its `content`, and each of its
  `tool_calls` as `delta.tool_calls` entries with `index`: the first delta of a call
  carries `id`, `type` and `function.name`, the next ones `function.arguments` pieces;
- `finish_reason` `tool_calls` when a tool call went out and Ollama stopped by itself;
- with `include_usage`, a last chunk with `choices: []` and `usage` (otherwise the usage
  rides on the finish chunk, as this worker always sent it);
- every line at most MAX_EVENT_LINE_BYTES, newline included: long content, reasoning or
  arguments are split across chunks (go-livepeer's BYOC relay drops a stream at a line
  of 64 KiB).

A plain content piece of a plain stream costs one dict lookup, a length check and a
string encode: the path to the first token stays as lean as it was.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

from worker.openai.limits import MAX_EVENT_LINE_BYTES

DONE_LINE = b"data: [DONE]\n\n"
# Bytes a character can take in a JSON string written with ensure_ascii=False: at most 6
# (a control character as \u00XX); a piece this short always fits a line unmeasured.
_WORST_BYTES_PER_CHAR = 6

_encode_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
# Where a string goes in a chunk template: a value no chunk can hold otherwise.
_SLOT = f"slot-{secrets.token_hex(16)}"
_SLOT_JSON = _encode_string(_SLOT).encode()


def compact(value: object) -> str:
    """JSON without spaces or ASCII escaping (what every chunk is written with)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def new_call_id() -> str:
    """A tool call id in OpenAI's form, for a call Ollama sent without one."""
    return f"call_{secrets.token_hex(12)}"


def call_parts(call: dict[str, Any]) -> tuple[str, str, str]:
    """(id, name, arguments as a JSON string) of an Ollama tool call (`arguments` is an
    object there); an id is made when Ollama sent none."""
    function = call.get("function")
    function = function if isinstance(function, dict) else {}
    name, arguments, call_id = function.get("name"), function.get("arguments"), call.get("id")
    if not isinstance(arguments, str):
        arguments = compact({} if arguments is None else arguments)
    return (
        call_id if isinstance(call_id, str) and call_id else new_call_id(),
        name if isinstance(name, str) else "",
        arguments,
    )


def split_text(text: str, budget: int) -> Iterator[str]:
    """`text` in pieces whose JSON string encodings (quotes included) each take at most
    `budget` bytes; one piece when it fits."""
    start, end = 0, len(text)
    while start < end:
        size = min(end - start, budget)
        while True:
            piece = text[start : start + size]
            used = len(_encode_string(piece).encode())
            if used <= budget or size == 1:
                break
            size = max(1, min(size - 1, size * budget // used))
        yield piece
        start += size


class ChunkEncoder:
    """SSE events (bytes, each `data: ...\\n\\n`) of one streamed chat completion."""

    def __init__(
        self,
        completion_id: str,
        created: int,
        model: str,
        *,
        include_usage: bool = False,
        forced_tool: str | None = None,
        single_tool_call: bool = False,
        line_limit: int = MAX_EVENT_LINE_BYTES,
    ) -> None:
        head = compact(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
            }
        )[:-1]
        self._head = head
        self._include_usage = include_usage
        self._forced = forced_tool
        self._single = single_tool_call
        self._limit = line_limit
        self.tool_calls = 0  # tool calls sent so far (their indexes are 0, 1, ...)
        self._forced_index: int | None = None
        # Written out (not through _frame): this runs on every request's path.
        self._data_head = b"data: " + head.encode()
        self._content_prefix = self._data_head + b',"choices":[{"index":0,"delta":{"content":'
        self._suffix = b'},"finish_reason":null}]}\n\n'
        self._frames: dict[object, tuple[bytes, bytes]] = {}  # made when first needed
        # The longest content piece sent without measuring it.
        self._plain_chars = self._budget(self._content_prefix) // _WORST_BYTES_PER_CHAR

    # -- framing ----------------------------------------------------------------------------
    def _frame(self, delta: dict[str, Any]) -> tuple[bytes, bytes]:
        """The bytes around the JSON string value of a chunk whose delta is `delta` with
        one leaf set to _SLOT (the place of the string)."""
        event = self.chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        before, _, after = event.partition(_SLOT_JSON)
        return before, after

    def _framed(self, key: object, delta: dict[str, Any]) -> tuple[bytes, bytes]:
        """`_frame(delta)`, made once per stream and `key`."""
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = self._frame(delta)
        return frame

    def _budget(self, prefix: bytes, suffix: bytes | None = None) -> int:
        return self._limit - len(prefix) - len(self._suffix if suffix is None else suffix)

    def chunk(self, document: dict[str, Any]) -> bytes:
        """One event: the stream's id, object, created and model, then `document`."""
        return b"data: " + (self._head + "," + compact(document)[1:]).encode() + b"\n\n"

    def _strings(self, prefix: bytes, suffix: bytes, text: str) -> list[bytes]:
        """Events with `text` as the string between `prefix` and `suffix`, split to fit."""
        budget = self._budget(prefix, suffix)
        return [
            prefix + _encode_string(piece).encode() + suffix for piece in split_text(text, budget)
        ]

    # -- events -------------------------------------------------------------------------------
    def role(self) -> bytes:
        """The first chunk: the assistant's role (and empty content, as before)."""
        return (
            self._data_head
            + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            + b'"finish_reason":null}]}\n\n'
        )

    def content(self, text: str) -> bytes:
        """The events of a content piece (usually one)."""
        if self._forced is not None:
            return self._forced_arguments(text)
        if len(text) <= self._plain_chars:
            return self._content_prefix + _encode_string(text).encode() + self._suffix
        return b"".join(self._strings(self._content_prefix, self._suffix, text))

    def message(self, message: dict[str, Any]) -> bytes:
        """The events of one Ollama `message` (thinking, content, tool calls); b"" if it
        holds none of them."""
        if len(message) == 2 and self._forced is None:  # {role, content}: a plain piece
            text = message.get("content")
            if text and len(text) <= self._plain_chars:
                return self._content_prefix + _encode_string(text).encode() + self._suffix
        events: list[bytes] = []
        thinking = message.get("thinking")
        if isinstance(thinking, str) and thinking:
            prefix, suffix = self._framed("reasoning", {"reasoning": _SLOT})
            events += self._strings(prefix, suffix, thinking)
        text = message.get("content")
        if isinstance(text, str) and text:
            events.append(self.content(text))
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                events += self._tool_call(call)
        return b"".join(events)

    def _tool_call(self, call: object) -> list[bytes]:
        if not isinstance(call, dict) or (self._single and self.tool_calls >= 1):
            return []
        call_id, name, arguments = call_parts(call)
        index, header = self._start_call(call_id, name)
        return [header, *self._arguments(index, arguments)]

    def _start_call(self, call_id: str, name: str) -> tuple[int, bytes]:
        """A new tool call's index and its first event (id, type, name)."""
        index = self.tool_calls
        self.tool_calls += 1
        header = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        delta = {"tool_calls": [header]}
        return index, self.chunk({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})

    def _arguments(self, index: int, text: str) -> list[bytes]:
        if not text:
            return []
        prefix, suffix = self._framed(
            index, {"tool_calls": [{"index": index, "function": {"arguments": _SLOT}}]}
        )
        return self._strings(prefix, suffix, text)

    def _forced_arguments(self, text: str) -> bytes:
        """A content piece of a forced tool call: a piece of that call's arguments."""
        events = []
        if self._forced_index is None:
            assert self._forced is not None
            self._forced_index, header = self._start_call(new_call_id(), self._forced)
            events.append(header)
        events += self._arguments(self._forced_index, text)
        return b"".join(events)

    def finish(self, reason: str, usage: dict[str, int]) -> bytes:
        """The finish chunk (`reason` as the job ended: Ollama's done_reason mapped by
        `finish_reason`, or the worker's own like `time_limit`), and with include_usage
        the usage chunk; `[DONE]` is the caller's (DONE_LINE)."""
        if reason == "stop" and self.tool_calls:
            reason = "tool_calls"
        finish: dict[str, Any] = {
            "choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
        }
        if not self._include_usage:
            return self.chunk({**finish, "usage": usage})
        return self.chunk(finish) + self.chunk({"choices": [], "usage": usage})

    @staticmethod
    def error(message: str, code: str) -> bytes:
        """An error event in OpenAI's shape (after which the caller sends DONE_LINE)."""
        error = {"message": message, "type": "server_error", "param": None, "code": code}
        return b"data: " + compact({"error": error}).encode() + b"\n\n"
