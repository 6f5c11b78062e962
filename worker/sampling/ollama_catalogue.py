"""The Ollama model catalogue, read with the official `ollama` client.

`/api/tags` gives the models on disk, `/api/ps` the ones loaded now (with the bytes they
hold in GPU memory), `/api/version` the server version, and `/api/show` each model's
capabilities (read once per model version: worker/sampling/model_capabilities.py). Every
failure of the first three becomes SourceUnavailable with a short reason; nothing from
Ollama's error bodies is trusted as more than a short, truncated string. Only the sampler
process imports this module.
"""

from __future__ import annotations

from typing import Any

import httpx
import ollama

from worker.sampling.model_capabilities import CapabilityCache, HttpShow
from worker.sampling.model_capabilities import short_text as _short
from worker.sampling.readings import Catalogue, ModelEntry, SourceUnavailable

# The share of a read's timeout that /api/show calls may take (new models wait a cycle).
SHOW_BUDGET_SHARE = 0.5


def _iso(value: object) -> str | None:
    if value is None:
        return None
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


class OllamaReader:
    """Reads the catalogue from one Ollama server, each call bounded by `timeout` seconds."""

    def __init__(self, host: str, timeout: float) -> None:
        self.host = host
        self.timeout = timeout
        self._client = ollama.Client(host=host, timeout=timeout)
        self._http = httpx.Client(base_url=host, timeout=timeout)
        self.capabilities = CapabilityCache(HttpShow(self._http))

    def read(self) -> Catalogue:
        """Return the catalogue, or raise SourceUnavailable with the reason."""
        try:
            on_disk = self._client.list().models
            loaded = {entry.model: entry for entry in self._client.ps().models if entry.model}
            version = self._version()
        except (ConnectionError, httpx.ConnectError):
            raise SourceUnavailable(f"Ollama unreachable at {self.host}") from None
        except httpx.TimeoutException:
            raise SourceUnavailable(
                f"Ollama at {self.host} did not answer within {self.timeout:g} s"
            ) from None
        except ollama.ResponseError as error:
            raise SourceUnavailable(
                f"Ollama at {self.host} answered HTTP {error.status_code}: {_short(error.error)}"
            ) from None
        except httpx.HTTPError as error:
            raise SourceUnavailable(
                f"Ollama at {self.host}: {type(error).__name__}: {_short(error)}"
            ) from None
        except ValueError:  # invalid JSON, or JSON that is not Ollama's schema
            raise SourceUnavailable(
                f"Ollama at {self.host} answered with something that is not its API"
            ) from None
        models = (self._entry(model, loaded.get(model.model or "")) for model in on_disk)
        budget = self.timeout * SHOW_BUDGET_SHARE
        return Catalogue(version=version, models=self.capabilities.fill(models, budget))

    def close(self) -> None:
        self._http.close()

    def _version(self) -> str | None:
        response = self._http.get("/api/version")
        if response.status_code != httpx.codes.OK:
            return None
        body = response.json()
        version = body.get("version") if isinstance(body, dict) else None
        return version if isinstance(version, str) else None

    @staticmethod
    def _entry(model: Any, running: Any | None) -> ModelEntry:
        details = model.details
        return ModelEntry(
            name=model.model or "",
            size_bytes=model.size,
            parameter_size=details.parameter_size if details else None,
            quantization=details.quantization_level if details else None,
            family=details.family if details else None,
            digest=model.digest,
            modified_at=_iso(model.modified_at),
            loaded=running is not None,
            vram_bytes=None if running is None else running.size_vram,
            expires_at=None if running is None else _iso(running.expires_at),
        )
