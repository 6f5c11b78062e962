"""What the stand-in libnvidia-ml.so.1 reports, for assertions in tests.

Mirrors the tables in ``fake_nvml.c`` (tests/nvml_standin checks they agree
with the library).  Memory is in bytes, power in milliwatts, temperature in
degrees C, utilization in percent.  ``reserved`` is 0, so NVML's v1 and v2
memory structs give the same total/used/free.
"""

from __future__ import annotations

from dataclasses import dataclass

DRIVER_VERSION = "560.35.03"
NVML_VERSION = "12.560.35.03"
CUDA_DRIVER_VERSION = 12060
MIB = 1024 * 1024


@dataclass(frozen=True)
class FakeGpu:
    index: int
    name: str
    uuid: str
    memory_total: int
    memory_used: int
    memory_reserved: int
    temperature_c: int
    power_mw: int
    power_limit_mw: int
    util_gpu: int
    util_memory: int

    @property
    def memory_free(self) -> int:
        return self.memory_total - self.memory_reserved - self.memory_used


H100 = FakeGpu(
    index=0,
    name="NVIDIA H100 80GB HBM3",
    uuid="GPU-00000000-1111-2222-3333-444444444444",
    memory_total=85520809984,  # 81559 MiB
    memory_used=21474836480,  # 20480 MiB
    memory_reserved=0,
    temperature_c=41,
    power_mw=118500,
    power_limit_mw=700000,
    util_gpu=37,
    util_memory=12,
)
L4 = FakeGpu(
    index=1,
    name="NVIDIA L4",
    uuid="GPU-55555555-6666-7777-8888-999999999999",
    memory_total=24152899584,  # 23034 MiB
    memory_used=1073741824,  # 1024 MiB
    memory_reserved=0,
    temperature_c=55,
    power_mw=27250,
    power_limit_mw=72000,
    util_gpu=3,
    util_memory=1,
)

TWO_GPUS = (H100, L4)
# no_power: one GPU, H100's values under a consumer name; power usage and the
# enforced limit raise NVMLError_NotSupported.
NO_POWER_NAME = "NVIDIA GeForce RTX 4090"
