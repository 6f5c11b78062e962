"""The translation's limits (documented in docs/agents.md): past them a request is a 4xx,
never a 5xx, whatever it holds."""

from __future__ import annotations

MAX_TOOLS = 128  # OpenAI's own limit on `tools`
# Nesting of a tool's parameters, a json_schema, or a tool call's arguments (objects and
# arrays): deep enough for real schemas, far from Python's recursion limit.
MAX_JSON_DEPTH = 32
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # one decoded image (the body limit applies first)
# Every SSE line the worker writes stays at or under this, newline included: go-livepeer's
# BYOC relay reads the stream with a default bufio.Scanner, whose lines must stay under
# 64 KiB (a longer one ends the stream silently). Longer text is split across chunks.
MAX_EVENT_LINE_BYTES = 32 * 1024


def deeper_than(value: object, limit: int) -> bool:
    """Whether `value` (parsed JSON) nests objects and arrays more than `limit` deep;
    iterative, so no depth of input can exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
