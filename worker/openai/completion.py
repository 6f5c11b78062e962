"""A whole (non-streamed) `chat.completion` from Ollama's streamed messages.

Ollama's `ToChatCompletion` (`openai/openai.go`), and more: content joined, thinking as
`message.reasoning`, tool calls as `message.tool_calls` (`id`, `type: "function"`,
`function.arguments` a JSON string) with `content: null` when there is no text, and
`finish_reason: "tool_calls"` after a tool call. A forced tool call (`tool_choice` naming
a function) turns the JSON answer into that function's call.
"""

from __future__ import annotations

from typing import Any

from worker.openai.chunks import call_parts, new_call_id


class CompletionBuilder:
    """Collects one answer's Ollama messages; `document()` is the `chat.completion`."""

    def __init__(self, *, forced_tool: str | None = None, single_tool_call: bool = False):
        self._forced, self._single = forced_tool, single_tool_call
        self._content: list[str] = []
        self._thinking: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []

    def add(self, message: dict[str, Any]) -> None:
        """One Ollama `message` of the stream."""
        text = message.get("content")
        if isinstance(text, str) and text:
            self._content.append(text)
        thinking = message.get("thinking")
        if isinstance(thinking, str) and thinking:
            self._thinking.append(thinking)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict) and not (self._single and self.tool_calls):
                    self.tool_calls.append(_call(*call_parts(call)))

    def message(self) -> dict[str, Any]:
        """The assistant message of the answer."""
        text = "".join(self._content)
        calls = self.tool_calls
        if self._forced is not None and not calls:
            calls = [_call(new_call_id(), self._forced, text or "{}")]
            text = ""
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["content"] = text or None
            message["tool_calls"] = calls
        if self._thinking:
            message["reasoning"] = "".join(self._thinking)
        return message

    def document(
        self,
        completion_id: str,
        created: int,
        model: str,
        finish_reason: str,
        usage: dict[str, int],
    ) -> dict[str, Any]:
        """The `chat.completion` (`finish_reason` as the job ended; `stop` becomes
        `tool_calls` when the answer is a tool call)."""
        message = self.message()
        if finish_reason == "stop" and "tool_calls" in message:
            finish_reason = "tool_calls"
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": usage,
        }


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
