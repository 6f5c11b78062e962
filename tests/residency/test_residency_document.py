"""/gpu-check's models carry the residency loop's view, through the published readings."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from worker.config import load_settings
from worker.http.document import ReportBuilder
from worker.residency.report import ActionCount, ModelResidency, ResidencyReport
from worker.runtime import write_json_atomically
from worker.sampling.published import FORMAT_VERSION, READINGS_FILE, Readings
from worker.sampling.readings import Catalogue, ModelEntry


def publish(runtime: Path, residency: ResidencyReport | None) -> None:
    now = time.monotonic()
    catalogue = Catalogue("0.12.6", (ModelEntry("a:1", 10), ModelEntry("b:1", 20)))
    source = {"ok_at": now, "ok_at_wall": time.time(), "error": None, "attempts": 1}
    document: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "sampler_pid": os.getpid(),
        "published_at": now,
        "sources": {
            "nvml": {**source, "data": None, "error": "NVML unavailable", "timeout": 2},
            "ollama": {**source, "data": catalogue.as_json(), "timeout": 2},
        },
    }
    if residency is not None:
        document["residency"] = residency.as_json()
    write_json_atomically(runtime / READINGS_FILE, document)


def report(**fields: Any) -> ResidencyReport:
    return ResidencyReport(
        enabled=True,
        interval_seconds=10,
        hot_requests=3,
        hot_window_seconds=900,
        budget_setting="0.9",
        **fields,
    )


def models(builder: ReportBuilder) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in json.loads(builder.render("agent"))["models"]}


def test_models_gain_hot_pinned_requests_and_last_use(tmp_path: Path) -> None:
    readings = Readings(tmp_path, stale_after=5)
    builder = ReportBuilder(load_settings({}), readings)
    publish(tmp_path, None)  # an older sampler, or before the loop's first run
    before = models(builder)
    assert [
        (m["hot"], m["pinned"], m["requests_last_hour"], m["last_used"]) for m in before.values()
    ] == [(False, False, 0, None)] * 2
    assert json.loads(builder.render("agent"))["residency"] is None

    time.sleep(0.01)  # a new mtime for the new file
    publish(
        tmp_path,
        report(
            budget_bytes=90 * 2**20,
            models=(
                ModelResidency(
                    "a:1", hot=True, pinned=True, requests_last_hour=7, last_used=1_800_000_000.5
                ),
            ),
            counts=(ActionCount("load", "pinned", "ok", 1),),
        ),
    )
    after = models(builder)
    assert after["a:1"]["hot"] is True and after["a:1"]["pinned"] is True
    assert after["a:1"]["requests_last_hour"] == 7
    assert after["a:1"]["last_used"] == 1_800_000_000.5
    assert after["b:1"]["hot"] is False  # not in the report: the defaults
    section = json.loads(builder.render("agent"))["residency"]
    assert section["vram_budget_mb"] == 90.0 and section["vram_budget"] == "0.9"
