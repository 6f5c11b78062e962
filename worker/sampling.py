"""The per-process sampler: one SourceSampler for NVML and one for Ollama."""

from __future__ import annotations

from worker.config import Settings
from worker.gpu import GpuReader, GpuReport
from worker.ollama_reader import Catalogue, OllamaReader
from worker.snapshot import SourceSampler, SourceView


class Sampler:
    """Keeps the latest GPU and Ollama readings fresh in background threads."""

    def __init__(self, settings: Settings) -> None:
        self._gpu_reader = GpuReader()
        self._ollama_reader = OllamaReader(settings.ollama_host, settings.ollama_timeout_seconds)
        self._nvml_timeout = settings.nvml_timeout_seconds
        self._ollama_timeout = settings.ollama_timeout_seconds
        stale_after = settings.stale_after_seconds
        interval = settings.sample_interval_seconds
        self.nvml: SourceSampler[GpuReport] = SourceSampler(
            "nvml",
            self._gpu_reader.read,
            interval=interval,
            timeout=settings.nvml_timeout_seconds,
            stale_after=stale_after,
        )
        self.ollama: SourceSampler[Catalogue] = SourceSampler(
            "ollama",
            self._ollama_reader.read,
            interval=interval,
            timeout=settings.ollama_timeout_seconds,
            stale_after=stale_after,
        )

    def start(self) -> None:
        """Start both source threads (call in the serving process, after any fork)."""
        self.nvml.start()
        self.ollama.start()

    def wait_first_readings(self) -> None:
        """Wait (bounded by each source's timeout) until both sources have been read once.

        Called before a worker process takes requests, so that no client sees "no reading
        yet" from a process that has just booted; a hung source still lets it start.
        """
        self.nvml.wait_first_answer(self._nvml_timeout + 0.5)
        self.ollama.wait_first_answer(self._ollama_timeout + 0.5)

    def stop(self) -> None:
        self.nvml.stop()
        self.ollama.stop()

    def views(self) -> tuple[SourceView[GpuReport], SourceView[Catalogue]]:
        return self.nvml.view(), self.ollama.view()

    @property
    def ready(self) -> bool:
        """True once every source has finished its first read (successfully or not)."""
        return self.nvml.has_answered and self.ollama.has_answered
