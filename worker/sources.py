"""What every reading source (NVML, Ollama) shares: how it says it cannot answer."""

from __future__ import annotations


class SourceUnavailable(Exception):
    """A source could not be read; `reason` is safe to show to operators and clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
