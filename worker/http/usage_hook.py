"""Where each finished agent job reports its token usage (a no-op: the residency work fills it)."""

from __future__ import annotations


def record_usage(agent: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Record one job's usage; does nothing yet."""
    return None
