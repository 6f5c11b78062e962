"""What each Ollama model can do, read from `POST /api/show` once per model version.

Ollama answers `capabilities` (`completion`, `tools`, `vision`, `embedding`, `thinking`,
...) in `/api/show`, which opens the model file: too slow to ask for every model on every
sampling cycle. So each answer is kept per (name, digest): a model is asked about once,
again only when it is pulled anew (a new digest), and forgotten once it leaves the disk.
A failed read leaves the model's capabilities unknown (None), is logged once, and is tried
again after `retry_seconds`; it never fails the catalogue. A cycle spends at most `budget`
seconds on these reads: models left over are read on the next cycles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import httpx

from worker.sampling.readings import ModelEntry

log = logging.getLogger("agent_net.sampler")
RETRY_SECONDS = 60.0
_MAX_REASON_CHARS = 160


class ShowFailed(Exception):
    """`/api/show` gave no answer to use; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Known:
    capabilities: tuple[str, ...] | None  # None: an Ollama too old to say
    failed_at: float | None = None  # set when the read failed (then retried later)


def parse_capabilities(body: object) -> tuple[str, ...] | None:
    """The `capabilities` of an `/api/show` answer; None when it has none (older Ollama).
    ShowFailed when the answer is not Ollama's."""
    if not isinstance(body, dict):
        raise ShowFailed("answer is not a JSON object")
    capabilities = body.get("capabilities")
    if capabilities is None:
        return None
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise ShowFailed("capabilities is not a list of strings")
    return tuple(capabilities)


class HttpShow:
    """`POST /api/show` with httpx, each call bounded by the time it is given."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def __call__(self, name: str, timeout: float) -> tuple[str, ...] | None:
        try:
            response = self._http.post("/api/show", json={"model": name}, timeout=timeout)
        except httpx.TimeoutException:
            raise ShowFailed(f"no answer within {timeout:.2g} s") from None
        except httpx.HTTPError as error:
            raise ShowFailed(f"{type(error).__name__}") from None
        if response.status_code != httpx.codes.OK:
            raise ShowFailed(f"HTTP {response.status_code}: {short_text(_error_text(response))}")
        try:
            body = response.json()
        except ValueError:
            raise ShowFailed("answer is not JSON") from None
        return parse_capabilities(body)


class CapabilityCache:
    """Fills ModelEntry.capabilities from `show(name, timeout)`, asking once per version."""

    def __init__(
        self,
        show: Callable[[str, float], tuple[str, ...] | None],
        *,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._show = show
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._known: dict[tuple[str, str | None], _Known] = {}

    def fill(self, models: Iterable[ModelEntry], budget: float) -> tuple[ModelEntry, ...]:
        """`models` with their capabilities: known ones at once, unknown ones read within
        `budget` seconds (the rest stay None until a later call)."""
        models = tuple(models)
        deadline = self._clock() + budget
        keys = {(model.name, model.digest) for model in models}
        for gone in set(self._known) - keys:
            del self._known[gone]
        return tuple(self._filled(model, deadline) for model in models)

    def _filled(self, model: ModelEntry, deadline: float) -> ModelEntry:
        key = (model.name, model.digest)
        known = self._known.get(key)
        now = self._clock()
        due = known is None or (
            known.failed_at is not None and now - known.failed_at >= self._retry_seconds
        )
        if due and now < deadline:
            known = self._read(model.name, deadline - now, known)
            self._known[key] = known
        if known is None:
            return model
        return replace(model, capabilities=known.capabilities)

    def _read(self, name: str, timeout: float, before: _Known | None) -> _Known:
        try:
            capabilities = self._show(name, timeout)
        except ShowFailed as failure:
            if before is None:  # once per model version; retries fail quietly
                log.warning("model_capabilities_unread model=%s reason=%r", name, failure.reason)
            return _Known(None, failed_at=self._clock())
        shown = "unknown (Ollama does not say)" if capabilities is None else ",".join(capabilities)
        log.info("model_capabilities model=%s capabilities=%s", name, shown)
        return _Known(capabilities)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)


def short_text(text: object) -> str:
    """`text` on one line, cut to a length a log line or a reason can show."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_REASON_CHARS else flat[: _MAX_REASON_CHARS - 1] + "…"
