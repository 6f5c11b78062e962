"""What the stand-in libnvidia-ml.so.1 reports, for assertions in tests.

Mirrors the tables in ``fake_nvml.c`` (tests/nvml_standin checks they agree
with the library).  Memory is in bytes, power in milliwatts, temperature in
degrees C, utilization in percent.  ``reserved`` is 0, so NVML's v1 and v2
memory structs give the same total/used/free.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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

# eight_gpus: eight H100s; GPU i at 40 + i C, 100 + 25 i W, utilization 10 i % / i %.
EIGHT_GPUS = tuple(
    FakeGpu(
        index=i,
        name=H100.name,
        uuid=f"GPU-88888888-0000-0000-0000-00000000000{i}",
        memory_total=H100.memory_total,
        memory_used=H100.memory_used,
        memory_reserved=0,
        temperature_c=40 + i,
        power_mw=100000 + 25000 * i,
        power_limit_mw=H100.power_limit_mw,
        util_gpu=10 * i,
        util_memory=i,
    )
    for i in range(8)
)


@dataclass(frozen=True)
class FakeHealth:
    """A GPU's default health readings; None = the call returns NOT_SUPPORTED.

    Field names are the stand-in's health fields (build.HEALTH_FIELDS); clocks in
    MHz, temperatures in degrees C, fan in percent, process memory in bytes.
    Retired pages are listed at 0x10000 * (k + 1), DBE ones plus 1 << 40.
    """

    clocks_event_reasons: int | None
    clock_sm: int | None
    clock_sm_max: int | None
    clock_mem: int | None
    clock_mem_max: int | None
    pstate: int | None
    fan_speed: int | None
    temp_slowdown: int | None
    temp_shutdown: int | None
    ecc_mode_current: int | None
    ecc_mode_pending: int | None
    ecc_corrected_volatile: int | None
    ecc_corrected_aggregate: int | None
    ecc_uncorrected_volatile: int | None
    ecc_uncorrected_aggregate: int | None
    retired_sbe: int | None
    retired_dbe: int | None
    retired_pending: int | None
    remap_corr: int | None
    remap_unc: int | None
    remap_pending: int | None
    remap_failure: int | None
    pcie_gen: int | None
    pcie_gen_max: int | None
    pcie_width: int | None
    pcie_width_max: int | None
    pcie_replay: int | None
    mig_current: int | None
    mig_pending: int | None
    supported_events: int | None
    processes: tuple[tuple[int, int], ...]
    # NVML_FI_DEV_GET_GPU_RECOVERY_ACTION (nvmlDeviceGetFieldValues): None = the field's
    # own nvmlReturn is NOT_SUPPORTED, as on drivers that predate it (560 included)
    recovery_action: int | None = None


H100_HEALTH = FakeHealth(
    clocks_event_reasons=0x0,
    clock_sm=1980,
    clock_sm_max=1980,
    clock_mem=2619,
    clock_mem_max=2619,
    pstate=0,
    fan_speed=None,  # passively cooled SXM board
    temp_slowdown=87,
    temp_shutdown=92,
    ecc_mode_current=1,
    ecc_mode_pending=1,
    ecc_corrected_volatile=3,
    ecc_corrected_aggregate=12,
    ecc_uncorrected_volatile=0,
    ecc_uncorrected_aggregate=0,
    retired_sbe=None,  # remaps rows instead of retiring pages
    retired_dbe=None,
    retired_pending=None,
    remap_corr=2,
    remap_unc=0,
    remap_pending=0,
    remap_failure=0,
    pcie_gen=5,
    pcie_gen_max=5,
    pcie_width=16,
    pcie_width_max=16,
    pcie_replay=0,
    mig_current=0,
    mig_pending=0,
    supported_events=0x1F,
    processes=((4242, 16106127360),),  # 15360 MiB
)
L4_HEALTH = FakeHealth(
    clocks_event_reasons=0x1,  # idle
    clock_sm=210,
    clock_sm_max=2040,
    clock_mem=6251,
    clock_mem_max=6251,
    pstate=8,
    fan_speed=30,
    temp_slowdown=88,
    temp_shutdown=93,
    ecc_mode_current=1,
    ecc_mode_pending=1,
    ecc_corrected_volatile=0,
    ecc_corrected_aggregate=0,
    ecc_uncorrected_volatile=0,
    ecc_uncorrected_aggregate=0,
    retired_sbe=0,
    retired_dbe=0,
    retired_pending=0,
    remap_corr=0,
    remap_unc=0,
    remap_pending=0,
    remap_failure=0,
    pcie_gen=4,
    pcie_gen_max=4,
    pcie_width=16,
    pcie_width_max=16,
    pcie_replay=0,
    mig_current=None,  # no MIG on L4
    mig_pending=None,
    supported_events=0x1F,
    processes=(),
)
TWO_GPUS_HEALTH = (H100_HEALTH, L4_HEALTH)
# eight_gpus: every GPU has H100_HEALTH, but GPU i's process has pid 4242 + i.
EIGHT_GPUS_HEALTH = tuple(
    replace(H100_HEALTH, processes=((4242 + i, 16106127360),)) for i in range(8)
)
