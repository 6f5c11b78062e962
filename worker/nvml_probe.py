"""`python -m worker.nvml_probe`: load NVML once, print what it says as one JSON document.

`agent-net doctor` runs this in a child process it can kill, so a wedged driver cannot
hang the doctor. Output: `{"error": {"code", "name"} | null, "driver": str | null,
"gpus": [{"index", "name", "uuid", "memory_total_bytes", "error": {...} | null}]}`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _error(exc: Exception) -> dict[str, Any]:
    return {"code": getattr(exc, "value", None), "name": type(exc).__name__}


def probe() -> dict[str, Any]:
    """Initialise NVML and read each GPU's identity and memory (a lost GPU fails that)."""
    import pynvml

    def text(call: Callable[..., T], *args: Any) -> T:
        value = call(*args)
        return value.decode() if isinstance(value, bytes) else value  # type: ignore[return-value]

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"error": _error(exc), "driver": None, "gpus": []}
    try:
        count = pynvml.nvmlDeviceGetCount()
        driver = text(pynvml.nvmlSystemGetDriverVersion)
        gpus = []
        for index in range(count):
            gpu: dict[str, Any] = {"index": index, "name": None, "uuid": None, "error": None}
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                gpu["name"] = text(pynvml.nvmlDeviceGetName, handle)
                gpu["uuid"] = text(pynvml.nvmlDeviceGetUUID, handle)
                gpu["memory_total_bytes"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            except pynvml.NVMLError as exc:
                gpu["error"] = _error(exc)
            gpus.append(gpu)
    except pynvml.NVMLError as exc:
        return {"error": _error(exc), "driver": None, "gpus": []}
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    return {"error": None, "driver": driver, "gpus": gpus}


def main() -> int:
    json.dump(probe(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
