"""The residency loop: a thread of the sampler process that keeps hot models loaded.

Each RESIDENCY_INTERVAL_SECONDS it takes the sampler's latest NVML and Ollama readings
and the usage database, asks `decide()` what to do, and does it: unloads inline
(`keep_alive: 0`, quick), loads in a thread per model (a 20 GB model takes minutes; the
loop goes on meanwhile and counts the load's size as already used). It decides only on
readings taken after its last action finished, so it never acts twice on one picture.
Each load and unload is one log line with its reason, and the last run is published
with the readings (`report`), counts of loads and unloads by reason included.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from worker.config import Settings, budget_bytes, keep_alive_value, parse_vram_budget
from worker.residency.decide import Action, Inputs, ModelState, Plan, decide, is_hot
from worker.residency.report import ActionCount, ModelResidency, ResidencyReport
from worker.residency.served import served_models
from worker.residency.usage import ModelUsage, UsageStore, model_key
from worker.sampling.readings import Catalogue, GpuReport, embeds_only
from worker.sampling.source import SourceState

log = logging.getLogger("agent_net.residency")
PRUNE_EVERY_SECONDS = 3600.0
GENERATE_PATH = "/api/generate"  # loads and unloads a model
EMBED_PATH = "/api/embed"  # loads an embedding model (/api/generate refuses to)
States = tuple[SourceState[GpuReport], SourceState[Catalogue]]


def _expires_in(expires_at: str | None, now_wall: float) -> float | None:
    if not expires_at:
        return None
    try:
        return datetime.fromisoformat(expires_at).timestamp() - now_wall
    except (ValueError, OverflowError, OSError):
        return None


def _vram(report: GpuReport | None) -> tuple[int | None, int | None]:
    """(used, total) bytes summed over the GPUs that answered; None when none did."""
    gpus = [g for g in (report.gpus if report else ()) if g.error is None]
    if not gpus or any(g.memory_used_bytes is None or g.memory_total_bytes is None for g in gpus):
        return None, None
    return sum(g.memory_used_bytes or 0 for g in gpus), sum(g.memory_total_bytes or 0 for g in gpus)


class ResidencyLoop:
    """Started and stopped by the sampler; `run_once()` is one interval's work."""

    def __init__(
        self,
        settings: Settings,
        states: Callable[[], States],
        on_change: Callable[[], None] = lambda: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._states = states
        self._on_change = on_change
        self._clock, self._wall = clock, wall
        self._budget = parse_vram_budget(settings.vram_budget)
        self._keep_alive = keep_alive_value(settings.residency_keep_alive)
        self._interval = settings.residency_interval_seconds
        self._stale_after = settings.stale_after_seconds
        self._http = httpx.Client(
            base_url=settings.ollama_host, timeout=max(settings.ollama_timeout_seconds, 10.0)
        )
        self._store: UsageStore | None = None
        self._pruned_at: float | None = None
        self._lock = threading.Lock()
        self._report_lock = threading.Lock()  # the loop and load threads both publish
        self._loading: dict[str, float] = {}  # model -> size estimate of a load in flight
        self._acted_at = float("-inf")  # monotonic: when the last action finished
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="residency", daemon=True)
        self.report = ResidencyReport(
            enabled=settings.residency_enabled,
            interval_seconds=self._interval,
            hot_requests=settings.hot_requests,
            hot_window_seconds=settings.hot_window_seconds,
            budget_setting=settings.vram_budget,
        )

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop the loop, waiting up to `wait` s for a run in flight; close the Ollama
        client and the usage database only once nothing uses them any more (a load still
        running is left to end with the process)."""
        self._stop.set()
        if self._thread.is_alive() and wait > 0:
            self._thread.join(wait)
        if self._thread.is_alive():
            return
        if self._store is not None:
            self._store.close()
        with self._lock:
            loading = bool(self._loading)
        if not loading:
            self._http.close()

    def as_json(self) -> dict[str, Any]:
        return self.report.as_json()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            try:
                self.run_once()
            except Exception as unexpected:  # a bug must not end residency for good
                log.exception("residency_run_failed error=%s", type(unexpected).__name__)
                self._publish(error=f"unexpected {type(unexpected).__name__}")
            self._stop.wait(max(0.0, self._interval - (self._clock() - started)))

    # --- one interval ------------------------------------------------------------------
    def run_once(self) -> Plan | None:
        """Decide and act on the latest readings; the plan, or None if it had to wait."""
        started, now_wall = self._clock(), self._wall()
        nvml, ollama = self._states()
        catalogue = self._fresh(ollama, started)
        if catalogue is None:
            self._publish(error="waiting for a fresh Ollama catalogue", started=started)
            return None
        if self._recent(nvml, started) and not self._newer(nvml):
            self._publish(error="waiting for a fresh NVML reading", started=started)
            return None
        gpu_report = self._fresh(nvml, started)  # None: VRAM unknown (no GPU, NVML down)
        used, total = _vram(gpu_report)
        budget = None if used is None else budget_bytes(self._budget, total)
        usage, usage_error = self._usage(now_wall)
        served = served_models(self.settings)
        with self._lock:
            loading = dict(self._loading)
        states = self._model_states(catalogue, served, usage, loading, now_wall)
        plan = decide(
            Inputs(
                models=tuple(states.values()),
                hot_requests=self.settings.hot_requests,
                vram_used_bytes=used,
                budget_bytes=budget,
                refresh_within=2 * self._interval + 5.0,
            )
        )
        if self.settings.residency_enabled:
            embedders = {m.name for m in catalogue.models if embeds_only(m.capabilities)}
            for action in plan.actions:
                self._act(action, states[action.model], action.model in embedders)
        models = self._report_models(states, usage, plan)
        self._publish(
            error=usage_error,
            started=started,
            at=now_wall,
            budget=budget,
            used=used,
            total=total,
            models=models,
            run=True,
        )
        return plan

    def _newer(self, state: SourceState[Any]) -> bool:
        started = state.read_started_at
        return started is not None and started > self._acted_at

    def _recent(self, state: SourceState[Any], now: float) -> bool:
        """The source answered its last read, not long ago."""
        if state.data is None or state.error is not None or state.ok_at is None:
            return False
        return now - state.ok_at <= self._stale_after

    def _fresh(self, state: SourceState[Any], now: float) -> Any | None:
        """The state's data if it is ok, recent, and read after the last action."""
        return state.data if self._recent(state, now) and self._newer(state) else None

    def _usage(self, now_wall: float) -> tuple[dict[str, ModelUsage], str | None]:
        try:
            if self._store is None:
                self._store = UsageStore(self.settings.usage_db_path)
            if self._pruned_at is None or now_wall - self._pruned_at > PRUNE_EVERY_SECONDS:
                self._store.prune(now_wall)
                self._pruned_at = now_wall
            # Only the windows shown per interval: the hot one and the last hour.
            hot_window = self.settings.hot_window_seconds
            return self._store.models(hot_window, now_wall, {"1h": 3600.0}), None
        except Exception as error:  # sqlite3.Error, OSError: decide on pins alone
            reason = f"usage database: {type(error).__name__}: {error}"
            if self.report.error != reason:
                log.warning("residency_usage_unavailable path=%s error=%r", self._db(), reason)
            self._store = None
            return {}, reason

    def _db(self) -> str:
        return str(self.settings.usage_db_path)

    def _model_states(
        self,
        catalogue: Catalogue,
        served: dict[str, bool],
        usage: dict[str, ModelUsage],
        loading: dict[str, float],
        now_wall: float,
    ) -> dict[str, ModelState]:
        manage_all = self.settings.residency_manage_all
        on_disk = {model_key(m.name): m for m in catalogue.models}
        states: dict[str, ModelState] = {}
        for name in sorted({*on_disk, *served, *usage}):
            entry, used = on_disk.get(name), usage.get(name) or ModelUsage(name)
            states[name] = ModelState(
                name=entry.name if entry is not None else name,
                managed=name in served or manage_all,
                pinned=served.get(name, False),
                on_disk=entry is not None,
                loaded=entry is not None and entry.loaded,
                loading=name in loading,
                size_bytes=None if entry is None else entry.size_bytes,
                vram_bytes=None if entry is None else entry.vram_bytes,
                expires_in=None if entry is None else _expires_in(entry.expires_at, now_wall),
                requests=used.requests_in("hot"),
                last_used=used.last_used,
                running_jobs=used.running_jobs,
            )
        return {state.name: state for state in states.values()}

    def _report_models(
        self, states: dict[str, ModelState], usage: dict[str, ModelUsage], plan: Plan
    ) -> tuple[ModelResidency, ...]:
        rows = []
        for state in states.values():
            used = usage.get(model_key(state.name)) or ModelUsage(state.name)
            hot = is_hot(state, self.settings.hot_requests)
            note = plan.notes.get(state.name)
            if hot and not state.on_disk:
                note = "not on disk: pull it into Ollama"
            elif hot and not state.managed:
                note = "served by no agent: left alone (RESIDENCY_MANAGE_ALL=false)"
            rows.append(
                ModelResidency(
                    name=state.name,
                    hot=hot,
                    pinned=state.pinned,
                    managed=state.managed,
                    requests_last_hour=used.requests_in("1h"),
                    requests_hot_window=state.requests,
                    last_used=state.last_used,
                    running_jobs=state.running_jobs,
                    note=note,
                )
            )
        return tuple(rows)

    # --- actions -----------------------------------------------------------------------
    def _act(self, action: Action, state: ModelState, embedder: bool = False) -> None:
        """Unload now, or load in a thread: an embedding model through /api/embed (Ollama's
        /api/generate refuses to load a model without `completion`)."""
        if action.kind == "unload":
            self._unload(action)
            return
        with self._lock:
            if action.model in self._loading:
                return
            self._loading[action.model] = float(state.size_bytes or 0)
        threading.Thread(
            target=self._load,
            args=(action, EMBED_PATH if embedder else GENERATE_PATH),
            name=f"residency-load-{action.model}",
            daemon=True,
        ).start()

    def _post(
        self, body: dict[str, Any], timeout: float | None = None, path: str = GENERATE_PATH
    ) -> str | None:
        """POST to Ollama (/api/generate by default); None on success, else a reason."""
        try:
            response = self._http.post(
                path,
                json={**body, "stream": False} if path == GENERATE_PATH else body,
                timeout=timeout or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as error:
            return f"{type(error).__name__}"
        except RuntimeError:  # the client was closed by stop()
            return "stopped"
        if response.status_code != httpx.codes.OK:
            return f"HTTP {response.status_code}"
        return None

    def _load(self, action: Action, path: str = GENERATE_PATH) -> None:
        started = self._clock()
        error = self._post(
            {"model": action.model, "keep_alive": self._keep_alive},
            timeout=self.settings.residency_load_timeout_seconds,
            path=path,
        )
        seconds = self._clock() - started
        self._finished(action, error, f"seconds={seconds:.2f}")
        with self._lock:
            self._loading.pop(action.model, None)
        self._publish(error=self.report.error)  # its count, at once

    def _unload(self, action: Action) -> None:
        error = self._post({"model": action.model, "keep_alive": 0})
        self._finished(action, error, "")

    def _finished(self, action: Action, error: str | None, extra: str) -> None:
        result = "ok" if error is None else "failed"
        with self._lock:
            self._counts[(action.kind, action.reason, result)] += 1
            self._acted_at = self._clock()
        level = logging.INFO if error is None else logging.WARNING
        log.log(
            level,
            "residency_%s model=%s reason=%s result=%s%s%s detail=%r",
            action.kind,
            action.model,
            action.reason,
            result,
            f" error={error!r}" if error else "",
            f" {extra}" if extra else "",
            action.detail,
        )

    # --- publishing --------------------------------------------------------------------
    def _publish(
        self,
        *,
        error: str | None,
        started: float | None = None,
        at: float | None = None,
        budget: int | None = None,
        used: int | None = None,
        total: int | None = None,
        models: tuple[ModelResidency, ...] | None = None,
        run: bool = False,
    ) -> None:
        with self._report_lock:
            self._replace_report(error, started, at, budget, used, total, models, run)
        self._on_change()

    def _replace_report(
        self,
        error: str | None,
        started: float | None,
        at: float | None,
        budget: int | None,
        used: int | None,
        total: int | None,
        models: tuple[ModelResidency, ...] | None,
        run: bool,
    ) -> None:
        previous = self.report
        with self._lock:
            counts = tuple(
                ActionCount(kind, reason, result, count)
                for (kind, reason, result), count in sorted(self._counts.items())
            )
        # The settings stay; a run's own figures change only when it ran.
        changed: dict[str, Any] = {"error": error, "counts": counts}
        if models is not None:
            changed["models"] = models
        if run:
            changed |= {
                "budget_bytes": budget,
                "vram_used_bytes": used,
                "vram_total_bytes": total,
                "runs": previous.runs + 1,
                "last_run_at": at,
            }
            if started is not None:
                changed["last_run_seconds"] = self._clock() - started
        self.report = dataclasses.replace(previous, **changed)
