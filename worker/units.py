"""Units shared by every reading: MiB as nvidia-smi shows it, watts from milliwatts."""

from __future__ import annotations

MIB = 1024 * 1024


def to_mib(value: int | None) -> float | None:
    """Bytes as MiB (bytes / 2**20), one decimal; None stays None."""
    return None if value is None else round(value / MIB, 1)


def milliwatts_to_watts(value: int | None) -> float | None:
    """NVML's milliwatts as watts; None stays None."""
    return None if value is None else round(value / 1000, 3)
