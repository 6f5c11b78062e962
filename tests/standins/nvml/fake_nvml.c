/*
 * fake_nvml.c -- a stand-in libnvidia-ml.so.1 for tests on machines without a GPU
 * ==============================================================================
 *
 * The real NVIDIA binding (nvidia-ml-py, module `pynvml`) loads
 * CDLL("libnvidia-ml.so.1") and looks every function up by its C symbol. Build
 * this file into a directory as libnvidia-ml.so.1, start the process under
 * test with LD_LIBRARY_PATH pointing at that directory (the loader reads it
 * once, at process start), and pynvml runs its real code path against the
 * values below.  Build it with tests/standins/nvml/build.py:
 *
 *     cc -shared -fPIC -O2 -Wall -Werror -pthread -o DIR/libnvidia-ml.so.1 fake_nvml.c
 *
 * Symbols and what pynvml (nvidia-ml-py 13.615) calls them for
 * -----------------------------------------------------------
 *   pynvml.nvmlInit()                      -> nvmlInitWithFlags(0)   (never nvmlInit_v2)
 *   pynvml.nvmlShutdown()                  -> nvmlShutdown
 *   str(NVMLError)                         -> nvmlErrorString, only for codes the
 *                                             binding has no text for (e.g. 25)
 *   nvmlSystemGetDriverVersion()           -> nvmlSystemGetDriverVersion(buf, 80)
 *   nvmlSystemGetNVMLVersion()             -> nvmlSystemGetNVMLVersion(buf, 80)
 *   nvmlSystemGetCudaDriverVersion[_v2]()  -> same-named symbol, int*
 *   nvmlDeviceGetCount()                   -> nvmlDeviceGetCount_v2
 *   nvmlDeviceGetHandleByIndex(i)          -> nvmlDeviceGetHandleByIndex_v2
 *   nvmlDeviceGetName(h) / GetUUID(h)      -> same symbol, (h, buf, 96)
 *   nvmlDeviceGetMemoryInfo(h)             -> nvmlDeviceGetMemoryInfo    (nvmlMemory_t)
 *   nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
 *                                          -> nvmlDeviceGetMemoryInfo_v2 (nvmlMemory_v2_t,
 *                                             .version must be 0x02000028, else 25
 *                                             NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
 *   nvmlDeviceGetTemperature(h, 0)         -> nvmlDeviceGetTemperature (sensor 0 = GPU only)
 *   nvmlDeviceGetPowerUsage / GetEnforcedPowerLimit / GetUtilizationRates / GetIndex
 *                                          -> same-named symbols
 *   nvmlInit_v2 and nvmlInit are exported too (== nvmlInitWithFlags(0)).
 *
 * Return codes
 * ------------
 *   0 success; 1 UNINITIALIZED (any call but nvmlErrorString before init, or
 *   after as many nvmlShutdown calls as inits: init is reference-counted);
 *   2 INVALID_ARGUMENT (NULL pointer, bad index, bad/stale handle, sensor != 0);
 *   3 NOT_SUPPORTED; 7 INSUFFICIENT_SIZE (string buffer shorter than the text
 *   plus its NUL); 9 DRIVER_NOT_LOADED; 10 TIMEOUT (a `hang` that outlived
 *   FAKE_NVML_HANG_SECONDS); 15 GPU_IS_LOST; 25 ARGUMENT_VERSION_MISMATCH;
 *   999 UNKNOWN (unknown scenario name: every call but nvmlErrorString fails,
 *   and a warning goes to stderr once).
 *
 * Scenarios (read afresh on EVERY call, so a running process can be switched)
 * ---------------------------------------------------------------------------
 *   If env FAKE_NVML_CONTROL names a file, the scenario is the first line of
 *   that file (surrounding whitespace stripped; a missing or empty file means
 *   the default), and FAKE_NVML_SCENARIO is ignored.  Otherwise env
 *   FAKE_NVML_SCENARIO; unset/empty means the default, `two_gpus`.
 *   Rewrite the control file atomically (write a temp file, rename over it):
 *   a reader that catches a truncated file sees the default scenario.
 *
 *   two_gpus (default)  2 GPUs, driver "560.35.03", NVML "12.560.35.03", CUDA 12060.
 *       GPU 0 "NVIDIA H100 80GB HBM3", UUID GPU-00000000-1111-2222-3333-444444444444,
 *             total 85520809984 B (81559 MiB), used 21474836480 B (20480 MiB),
 *             reserved 0, free = total - used, 41 C, power 118500 mW,
 *             enforced limit 700000 mW, utilization gpu 37 % memory 12 %.
 *       GPU 1 "NVIDIA L4", UUID GPU-55555555-6666-7777-8888-999999999999,
 *             total 24152899584 B (23034 MiB), used 1073741824 B (1024 MiB),
 *             reserved 0, 55 C, 27250 mW, limit 72000 mW, utilization 3 % / 1 %.
 *   no_power          1 GPU: GPU 0's values but named "NVIDIA GeForce RTX 4090";
 *                     nvmlDeviceGetPowerUsage and nvmlDeviceGetEnforcedPowerLimit
 *                     return 3 NOT_SUPPORTED, everything else works.
 *   driver_not_loaded nvmlInitWithFlags returns 9.  A process that was already
 *                     initialised when switched here gets 9 from every call
 *                     except nvmlShutdown / nvmlErrorString (driver went away).
 *   gpu_lost          two_gpus, but GPU 1's per-device queries return 15.
 *   all_lost          two_gpus, but every GPU's per-device queries return 15.
 *   hang              init, count, handles and system queries work; per-device
 *                     queries block (a wedged driver) until the scenario changes:
 *                     with a control file it is polled every 50 ms and the call
 *                     is then answered under the new scenario; without one the
 *                     call sleeps FAKE_NVML_HANG_SECONDS (default 3600, may be
 *                     fractional).  Either way, once FAKE_NVML_HANG_SECONDS have
 *                     passed the call returns 10 TIMEOUT.
 *   no_gpus           init works, count is 0 (every index is invalid).
 *   eight_gpus        8 x "NVIDIA H100 80GB HBM3", UUID GPU-88888888-0000-0000-0000-00000000000<i>,
 *                     GPU 0's memory and limit; GPU i at 40 + i C, 100000 + 25000 i mW,
 *                     utilization 10 i % / i %; health as GPU 0 of two_gpus.
 *
 *   "Per-device queries" are GetName, GetUUID, GetMemoryInfo(_v2), GetTemperature,
 *   GetPowerUsage, GetEnforcedPowerLimit and GetUtilizationRates, and the health
 *   queries below (nvmlDeviceRegisterEvents included).
 *   GetHandleByIndex_v2 and GetIndex are handle bookkeeping: they succeed for
 *   lost/hung GPUs.  A handle whose index is not below the current scenario's
 *   count (e.g. GPU 1's handle after switching to no_power) gives 2.
 *
 * Health readings (per GPU; tests/standins/nvml/values.py has the defaults)
 * -----------------------------------------------------------------------
 *   nvmlDeviceGetCurrentClocksEventReasons / ...ThrottleReasons (older name, same
 *   value), GetClockInfo / GetMaxClockInfo (type 0 graphics = SM, 1 SM, 2 MEM),
 *   GetPerformanceState, GetFanSpeed, GetTemperatureThreshold (0 shutdown,
 *   1 slowdown, 2-7 NOT_SUPPORTED), GetEccMode, GetTotalEccErrors, GetRetiredPages
 *   (two-call protocol, page k at 0x10000 (k + 1), DBE + 1 << 40),
 *   GetRetiredPagesPendingStatus, GetRemappedRows, Get{Curr,Max}PcieLink{Generation,
 *   Width}, GetPcieReplayCounter, GetComputeRunningProcesses_v3 (two-call protocol,
 *   nvmlProcessInfo_v2_t layout), GetMigMode, GetSupportedEventTypes, and
 *   nvmlDeviceGetFieldValues (field 230, NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, answers the
 *   `recovery_action` reading, NOT_SUPPORTED by default as on drivers before the field
 *   existed; any other field id gets NOT_SUPPORTED in its own nvmlReturn).  They are
 *   per-device queries: lost GPUs give 15, `hang` blocks them.
 *
 *   If env FAKE_NVML_HEALTH names a file, it is read on every per-device call:
 *   lines "GPU FIELD VALUE" (GPU an index or '*'; '#' comments) override the
 *   defaults, later lines winning.  FIELD is one of FIELD_NAMES below; VALUE is an
 *   integer (decimal or 0x hex), `unsupported` (the call returns 3) or
 *   `no_permission` (4); a call reading several fields fails with the first failing
 *   one.  `processes` takes "PID:BYTES,PID:na,..." (na = NVML_VALUE_NOT_AVAILABLE)
 *   or `none`; `lost 1` makes every per-device query of that GPU return 15
 *   (`lost 0` finds it again); `temperature` also overrides GetTemperature and
 *   `memory_used` (bytes, at most the total) GetMemoryInfo(_v2)'s used (free follows).  A
 *   malformed line makes per-device queries return 999 (warning on stderr, once).
 *
 * XID events
 * ----------
 *   nvmlEventSetCreate, nvmlDeviceRegisterEvents (NOT_SUPPORTED for a type outside
 *   the GPU's supported_events), nvmlEventSetWait_v2, nvmlEventSetFree (2 for a set
 *   that is not live).  Env FAKE_NVML_EVENTS names a file of lines "GPU XID";
 *   appending a line raises that XID: every live set registered for XIDs
 *   (0x8, nvmlEventTypeXidCriticalError) on that GPU returns it once, from
 *   nvmlEventSetWait_v2 (the file is polled every 5 ms; nothing within timeoutms
 *   gives 10 TIMEOUT).  Lines already in the file when a set is created are not
 *   delivered to it.  eventData is the XID, device the GPU's handle.
 *
 * Builds without some symbols
 * ---------------------------
 *   build.py's omit= compiles with -D<symbol>=fake_nvml_omitted_<symbol>, so the
 *   library does not export <symbol> and pynvml raises NVMLError_FunctionNotFound.
 *
 * Memory v1 vs v2
 * ---------------
 *   Real NVML: v1 `used` includes reserved memory, v2 `used` excludes it and
 *   reports it in `reserved`.  Here reserved is 0, so v1 and v2 agree exactly:
 *   total, used and free (= total - used) are the same numbers in both.
 *
 * Call log
 * --------
 *   If env FAKE_NVML_CALL_LOG names a file, every exported call appends one
 *   line with its symbol name (written on entry, before any blocking), with
 *   O_APPEND so processes sharing the file do not interleave lines.  With
 *   FAKE_NVML_CALL_LOG_PID=1 the line is "<symbol> <pid>" instead.
 *   The log append and the init refcount are guarded by one mutex.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct nvmlDevice_st {
    unsigned int index;
} *nvmlDevice_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

#define NVML_STRUCT_VERSION(size, ver) ((unsigned int)(size) | ((unsigned int)(ver) << 24))
#define nvmlMemory_v2 NVML_STRUCT_VERSION(sizeof(nvmlMemory_v2_t), 2)
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t layout");
_Static_assert(nvmlMemory_v2 == 0x02000028, "nvmlMemory_v2 version");

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

/* ---- fixed data ---------------------------------------------------------- */

#define DRIVER_VERSION "560.35.03"
#define NVML_VERSION "12.560.35.03"
#define CUDA_DRIVER_VERSION 12060

typedef struct {
    const char *name;
    const char *uuid;
    unsigned long long total, used, reserved;
    unsigned int temperature_c;
    unsigned int power_mw, limit_mw;
    unsigned int util_gpu, util_mem;
} fake_gpu;

static const fake_gpu GPUS[2] = {
    {"NVIDIA H100 80GB HBM3", "GPU-00000000-1111-2222-3333-444444444444",
     85520809984ULL, 21474836480ULL, 0ULL, 41, 118500, 700000, 37, 12},
    {"NVIDIA L4", "GPU-55555555-6666-7777-8888-999999999999",
     24152899584ULL, 1073741824ULL, 0ULL, 55, 27250, 72000, 3, 1},
};
static const char NO_POWER_NAME[] = "NVIDIA GeForce RTX 4090";

/* eight_gpus: eight H100s, GPU i at 40 + i C, drawing 100 + 25 i W, i * 10 % busy */
#define H100_OF_EIGHT(i)                                                                   \
    {"NVIDIA H100 80GB HBM3", "GPU-88888888-0000-0000-0000-00000000000" #i, 85520809984ULL,   \
     21474836480ULL, 0ULL, 40 + (i), 100000 + 25000 * (i), 700000, 10 * (i), (i)}
static const fake_gpu EIGHT[8] = {H100_OF_EIGHT(0), H100_OF_EIGHT(1), H100_OF_EIGHT(2),
                                  H100_OF_EIGHT(3), H100_OF_EIGHT(4), H100_OF_EIGHT(5),
                                  H100_OF_EIGHT(6), H100_OF_EIGHT(7)};

#define MAX_GPUS 8
static struct nvmlDevice_st HANDLES[MAX_GPUS] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}};

/* ---- scenarios ----------------------------------------------------------- */

typedef enum {
    S_TWO_GPUS,
    S_NO_POWER,
    S_DRIVER_NOT_LOADED,
    S_GPU_LOST,
    S_ALL_LOST,
    S_HANG,
    S_NO_GPUS,
    S_EIGHT_GPUS,
    S_UNKNOWN,
} scenario_t;

static const struct {
    const char *name;
    scenario_t id;
} SCENARIOS[] = {
    {"two_gpus", S_TWO_GPUS}, {"no_power", S_NO_POWER},
    {"driver_not_loaded", S_DRIVER_NOT_LOADED}, {"gpu_lost", S_GPU_LOST},
    {"all_lost", S_ALL_LOST}, {"hang", S_HANG}, {"no_gpus", S_NO_GPUS},
    {"eight_gpus", S_EIGHT_GPUS},
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int init_refcount; /* guarded by lock */
static int warned_unknown; /* guarded by lock */

static void strip(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    if (lead)
        memmove(s, s + lead, n - lead + 1);
}

static scenario_t current_scenario(void) {
    char buf[128] = "";
    const char *control = getenv("FAKE_NVML_CONTROL");
    if (control && *control) {
        FILE *f = fopen(control, "re");
        if (f) {
            if (!fgets(buf, sizeof buf, f))
                buf[0] = '\0';
            fclose(f);
        }
    } else {
        const char *env = getenv("FAKE_NVML_SCENARIO");
        if (env) {
            strncpy(buf, env, sizeof buf - 1);
            buf[sizeof buf - 1] = '\0';
        }
    }
    strip(buf);
    if (!buf[0])
        return S_TWO_GPUS;
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++)
        if (strcmp(buf, SCENARIOS[i].name) == 0)
            return SCENARIOS[i].id;
    pthread_mutex_lock(&lock);
    if (!warned_unknown) {
        warned_unknown = 1;
        fprintf(stderr, "fake_nvml: unknown scenario '%s': every call returns 999\n", buf);
    }
    pthread_mutex_unlock(&lock);
    return S_UNKNOWN;
}

static unsigned int gpu_count(scenario_t s) {
    switch (s) {
    case S_NO_POWER:
        return 1;
    case S_NO_GPUS:
    case S_DRIVER_NOT_LOADED:
    case S_UNKNOWN:
        return 0;
    case S_EIGHT_GPUS:
        return 8;
    default:
        return 2;
    }
}

/* ---- call log ------------------------------------------------------------ */

static void log_call(const char *symbol) {
    const char *path = getenv("FAKE_NVML_CALL_LOG");
    if (!path || !*path)
        return;
    char line[160];
    const char *with_pid = getenv("FAKE_NVML_CALL_LOG_PID");
    int n;
    if (with_pid && strcmp(with_pid, "1") == 0)
        n = snprintf(line, sizeof line, "%s %ld\n", symbol, (long)getpid());
    else
        n = snprintf(line, sizeof line, "%s\n", symbol);
    if (n <= 0 || (size_t)n >= sizeof line)
        return;
    pthread_mutex_lock(&lock);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w;
        do {
            w = write(fd, line, (size_t)n);
        } while (w < 0 && errno == EINTR);
        close(fd);
    }
    pthread_mutex_unlock(&lock);
}

/* ---- common prologues ---------------------------------------------------- */

static int initialized(void) {
    pthread_mutex_lock(&lock);
    int r = init_refcount > 0;
    pthread_mutex_unlock(&lock);
    return r;
}

/* For every call but init/shutdown/errorString: initialised and driver present? */
static nvmlReturn_t check_state(scenario_t *out) {
    if (!initialized())
        return NVML_ERROR_UNINITIALIZED;
    scenario_t s = current_scenario();
    if (s == S_UNKNOWN)
        return NVML_ERROR_UNKNOWN;
    if (s == S_DRIVER_NOT_LOADED)
        return NVML_ERROR_DRIVER_NOT_LOADED;
    *out = s;
    return NVML_SUCCESS;
}

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds) {
    if (seconds <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double hang_seconds(void) {
    const char *env = getenv("FAKE_NVML_HANG_SECONDS");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (end != env && v >= 0)
            return v;
    }
    return 3600.0;
}

/* Block while the scenario is `hang`. Returns 0 with *s updated, or TIMEOUT. */
static nvmlReturn_t wait_out_hang(scenario_t *s) {
    if (*s != S_HANG)
        return NVML_SUCCESS;
    double limit = hang_seconds();
    double start = monotonic_seconds();
    const char *control = getenv("FAKE_NVML_CONTROL");
    if (!(control && *control)) {
        sleep_seconds(limit);
        return NVML_ERROR_TIMEOUT;
    }
    while (*s == S_HANG) {
        double left = limit - (monotonic_seconds() - start);
        if (left <= 0)
            return NVML_ERROR_TIMEOUT;
        sleep_seconds(left < 0.05 ? left : 0.05);
        *s = current_scenario();
    }
    return NVML_SUCCESS;
}

/* ---- health readings (FAKE_NVML_HEALTH overrides) ------------------------- */

typedef enum {
    F_TEMPERATURE,
    F_CLOCKS_EVENT_REASONS,
    F_CLOCK_SM,
    F_CLOCK_MEM,
    F_CLOCK_SM_MAX,
    F_CLOCK_MEM_MAX,
    F_PSTATE,
    F_FAN_SPEED,
    F_TEMP_SLOWDOWN,
    F_TEMP_SHUTDOWN,
    F_ECC_MODE_CURRENT,
    F_ECC_MODE_PENDING,
    F_ECC_CORRECTED_VOLATILE,
    F_ECC_CORRECTED_AGGREGATE,
    F_ECC_UNCORRECTED_VOLATILE,
    F_ECC_UNCORRECTED_AGGREGATE,
    F_RETIRED_SBE,
    F_RETIRED_DBE,
    F_RETIRED_PENDING,
    F_REMAP_CORR,
    F_REMAP_UNC,
    F_REMAP_PENDING,
    F_REMAP_FAILURE,
    F_PCIE_GEN,
    F_PCIE_GEN_MAX,
    F_PCIE_WIDTH,
    F_PCIE_WIDTH_MAX,
    F_PCIE_REPLAY,
    F_MIG_CURRENT,
    F_MIG_PENDING,
    F_SUPPORTED_EVENTS,
    F_PROCESSES,
    F_LOST,
    F_MEMORY_USED,
    F_RECOVERY_ACTION,
    N_FIELDS,
} field_t;

static const char *const FIELD_NAMES[N_FIELDS] = {
    "temperature", "clocks_event_reasons", "clock_sm", "clock_mem", "clock_sm_max",
    "clock_mem_max", "pstate", "fan_speed", "temp_slowdown", "temp_shutdown",
    "ecc_mode_current", "ecc_mode_pending", "ecc_corrected_volatile",
    "ecc_corrected_aggregate", "ecc_uncorrected_volatile", "ecc_uncorrected_aggregate",
    "retired_sbe", "retired_dbe", "retired_pending", "remap_corr", "remap_unc",
    "remap_pending", "remap_failure", "pcie_gen", "pcie_gen_max", "pcie_width",
    "pcie_width_max", "pcie_replay", "mig_current", "mig_pending", "supported_events",
    "processes", "lost", "memory_used", "recovery_action",
};

#define MAX_PROCS 32
#define NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFULL /* NVML_VALUE_NOT_AVAILABLE */

typedef struct {
    unsigned int pid;
    unsigned long long used; /* bytes, or NOT_AVAILABLE_ULL */
} fake_proc;

typedef struct {
    nvmlReturn_t state[N_FIELDS]; /* 0 = has a value, else the code the call returns */
    unsigned long long value[N_FIELDS];
    unsigned int nprocs;
    fake_proc procs[MAX_PROCS];
} health_t;

/* Per-GPU defaults: H100 (GPU 0, and every GPU of eight_gpus) and L4 (GPU 1). */
static void default_health(unsigned int index, scenario_t s, const fake_gpu *g, health_t *h) {
    memset(h, 0, sizeof *h);
    int l4 = index == 1 && s != S_EIGHT_GPUS;
    unsigned long long *v = h->value;
    v[F_TEMPERATURE] = g->temperature_c;
    v[F_MEMORY_USED] = g->used;
    v[F_CLOCKS_EVENT_REASONS] = l4 ? 0x1 : 0x0; /* L4 idle */
    v[F_CLOCK_SM] = l4 ? 210 : 1980;
    v[F_CLOCK_SM_MAX] = l4 ? 2040 : 1980;
    v[F_CLOCK_MEM] = l4 ? 6251 : 2619;
    v[F_CLOCK_MEM_MAX] = l4 ? 6251 : 2619;
    v[F_PSTATE] = l4 ? 8 : 0;
    v[F_FAN_SPEED] = 30;
    if (!l4)
        h->state[F_FAN_SPEED] = NVML_ERROR_NOT_SUPPORTED; /* passively cooled SXM board */
    v[F_TEMP_SLOWDOWN] = l4 ? 88 : 87;
    v[F_TEMP_SHUTDOWN] = l4 ? 93 : 92;
    v[F_ECC_MODE_CURRENT] = 1;
    v[F_ECC_MODE_PENDING] = 1;
    v[F_ECC_CORRECTED_VOLATILE] = l4 ? 0 : 3;
    v[F_ECC_CORRECTED_AGGREGATE] = l4 ? 0 : 12;
    v[F_ECC_UNCORRECTED_VOLATILE] = 0;
    v[F_ECC_UNCORRECTED_AGGREGATE] = 0;
    v[F_RETIRED_SBE] = 0;
    v[F_RETIRED_DBE] = 0;
    v[F_RETIRED_PENDING] = 0;
    if (!l4) { /* H100 remaps rows instead of retiring pages */
        h->state[F_RETIRED_SBE] = NVML_ERROR_NOT_SUPPORTED;
        h->state[F_RETIRED_DBE] = NVML_ERROR_NOT_SUPPORTED;
        h->state[F_RETIRED_PENDING] = NVML_ERROR_NOT_SUPPORTED;
    }
    v[F_REMAP_CORR] = l4 ? 0 : 2;
    v[F_REMAP_UNC] = 0;
    v[F_REMAP_PENDING] = 0;
    v[F_REMAP_FAILURE] = 0;
    v[F_PCIE_GEN] = l4 ? 4 : 5;
    v[F_PCIE_GEN_MAX] = l4 ? 4 : 5;
    v[F_PCIE_WIDTH] = 16;
    v[F_PCIE_WIDTH_MAX] = 16;
    v[F_PCIE_REPLAY] = 0;
    v[F_MIG_CURRENT] = 0;
    v[F_MIG_PENDING] = 0;
    if (l4) { /* no MIG on L4 */
        h->state[F_MIG_CURRENT] = NVML_ERROR_NOT_SUPPORTED;
        h->state[F_MIG_PENDING] = NVML_ERROR_NOT_SUPPORTED;
    }
    v[F_SUPPORTED_EVENTS] = 0x1F; /* SBE | DBE | PState | Xid | Clock */
    /* NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: newer drivers than 560 only (tests set it) */
    h->state[F_RECOVERY_ACTION] = NVML_ERROR_NOT_SUPPORTED;
    if (!l4) {
        h->nprocs = 1;
        h->procs[0].pid = 4242 + index;
        h->procs[0].used = 16106127360ULL; /* 15360 MiB */
    }
    v[F_PROCESSES] = h->nprocs;
}

static int warned_health; /* guarded by lock */

static void health_warning(const char *path, int line, const char *what) {
    pthread_mutex_lock(&lock);
    if (!warned_health) {
        warned_health = 1;
        fprintf(stderr, "fake_nvml: %s line %d: %s: per-device queries return 999\n", path,
                line, what);
    }
    pthread_mutex_unlock(&lock);
}

static int parse_ull(const char *text, unsigned long long *out) {
    if (!text || !*text || *text == '-')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

/* "PID:BYTES,PID:na,..." or "none" */
static int parse_procs(char *text, health_t *h) {
    h->nprocs = 0;
    if (strcmp(text, "none") == 0)
        return 1;
    char *save = NULL;
    for (char *item = strtok_r(text, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        unsigned long long pid, used;
        if (!colon || h->nprocs >= MAX_PROCS)
            return 0;
        *colon = '\0';
        if (!parse_ull(item, &pid) || pid > 0xFFFFFFFFULL)
            return 0;
        if (strcmp(colon + 1, "na") == 0)
            used = NOT_AVAILABLE_ULL;
        else if (!parse_ull(colon + 1, &used))
            return 0;
        h->procs[h->nprocs].pid = (unsigned int)pid;
        h->procs[h->nprocs].used = used;
        h->nprocs++;
    }
    return 1;
}

/*
 * Apply FAKE_NVML_HEALTH lines "GPU FIELD VALUE" (GPU an index or '*') for GPU
 * `index`; later lines win. Returns 0, or 999 for a malformed file.
 */
static nvmlReturn_t apply_overrides(unsigned int index, health_t *h) {
    const char *path = getenv("FAKE_NVML_HEALTH");
    if (!path || !*path)
        return NVML_SUCCESS;
    FILE *f = fopen(path, "re");
    if (!f)
        return NVML_SUCCESS;
    char line[1024];
    int lineno = 0;
    nvmlReturn_t r = NVML_SUCCESS;
    health_t scratch; /* a parsed process list, copied in when the line is for this GPU */
    while (fgets(line, sizeof line, f)) {
        lineno++;
        strip(line);
        if (!line[0] || line[0] == '#')
            continue;
        char *save = NULL;
        char *gpu = strtok_r(line, " \t", &save);
        char *name = strtok_r(NULL, " \t", &save);
        char *value = strtok_r(NULL, " \t", &save);
        if (!gpu || !name || !value || strtok_r(NULL, " \t", &save)) {
            health_warning(path, lineno, "expected 'GPU FIELD VALUE'");
            r = NVML_ERROR_UNKNOWN;
            break;
        }
        unsigned long long target = 0;
        if (strcmp(gpu, "*") != 0 && (!parse_ull(gpu, &target) || target >= MAX_GPUS)) {
            health_warning(path, lineno, "bad GPU index");
            r = NVML_ERROR_UNKNOWN;
            break;
        }
        int field = -1;
        for (int i = 0; i < N_FIELDS; i++)
            if (strcmp(name, FIELD_NAMES[i]) == 0)
                field = i;
        if (field < 0) {
            health_warning(path, lineno, "unknown field");
            r = NVML_ERROR_UNKNOWN;
            break;
        }
        /* Parse every line, whichever GPU it is for: a bad value fails all GPUs. */
        nvmlReturn_t state = NVML_SUCCESS;
        unsigned long long parsed = 0;
        int ok = 1;
        if (strcmp(value, "unsupported") == 0)
            state = NVML_ERROR_NOT_SUPPORTED;
        else if (strcmp(value, "no_permission") == 0)
            state = NVML_ERROR_NO_PERMISSION;
        else if (field == F_PROCESSES)
            ok = parse_procs(value, &scratch);
        else
            ok = parse_ull(value, &parsed);
        if (!ok) {
            health_warning(path, lineno, "bad value");
            r = NVML_ERROR_UNKNOWN;
            break;
        }
        if (strcmp(gpu, "*") != 0 && target != index)
            continue;
        h->state[field] = state;
        if (state != NVML_SUCCESS)
            continue;
        if (field == F_PROCESSES) {
            h->nprocs = scratch.nprocs;
            memcpy(h->procs, scratch.procs, sizeof h->procs);
            h->value[F_PROCESSES] = h->nprocs;
        } else {
            h->value[field] = parsed;
        }
    }
    fclose(f);
    return r;
}

/*
 * Prologue of a per-device query: state, handle, hang, loss. On success
 * *gpu points at the GPU's data and *scen is the scenario to answer under.
 */
static nvmlReturn_t device_query_h(nvmlDevice_t device, const fake_gpu **gpu, scenario_t *scen,
                                   health_t *health) {
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    uintptr_t p = (uintptr_t)device, base = (uintptr_t)&HANDLES[0];
    if (!device || p < base || p >= base + sizeof HANDLES ||
        (p - base) % sizeof HANDLES[0] != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int index = device->index;
    r = wait_out_hang(&s);
    if (r != NVML_SUCCESS)
        return r;
    /* the scenario may have changed while hung: check it all again */
    if (s == S_UNKNOWN)
        return NVML_ERROR_UNKNOWN;
    if (s == S_DRIVER_NOT_LOADED)
        return NVML_ERROR_DRIVER_NOT_LOADED;
    if (!initialized())
        return NVML_ERROR_UNINITIALIZED;
    if (index >= gpu_count(s))
        return NVML_ERROR_INVALID_ARGUMENT;
    const fake_gpu *g = s == S_EIGHT_GPUS ? &EIGHT[index] : &GPUS[index];
    health_t local;
    health_t *h = health ? health : &local;
    default_health(index, s, g, h);
    r = apply_overrides(index, h);
    if (r != NVML_SUCCESS)
        return r;
    if (s == S_ALL_LOST || (s == S_GPU_LOST && index == 1) ||
        (h->state[F_LOST] == NVML_SUCCESS && h->value[F_LOST] != 0))
        return NVML_ERROR_GPU_IS_LOST;
    *gpu = g;
    *scen = s;
    return NVML_SUCCESS;
}

static nvmlReturn_t device_query(nvmlDevice_t device, const fake_gpu **gpu, scenario_t *scen) {
    return device_query_h(device, gpu, scen, NULL);
}

static nvmlReturn_t copy_string(char *dst, unsigned int length, const char *src) {
    if (!dst)
        return NVML_ERROR_INVALID_ARGUMENT;
    size_t need = strlen(src) + 1;
    if (length < need)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, need);
    return NVML_SUCCESS;
}

/* ---- init / shutdown / errors ------------------------------------------- */

static nvmlReturn_t do_init(void) {
    scenario_t s = current_scenario();
    if (s == S_DRIVER_NOT_LOADED)
        return NVML_ERROR_DRIVER_NOT_LOADED;
    if (s == S_UNKNOWN)
        return NVML_ERROR_UNKNOWN;
    pthread_mutex_lock(&lock);
    init_refcount++;
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags; /* NVML_INIT_FLAG_NO_GPUS / _NO_ATTACH: accepted, ignored */
    log_call(__func__);
    return do_init();
}

EXPORT nvmlReturn_t nvmlInit_v2(void) {
    log_call(__func__);
    return do_init();
}

EXPORT nvmlReturn_t nvmlInit(void) {
    log_call(__func__);
    return do_init();
}

EXPORT nvmlReturn_t nvmlShutdown(void) {
    log_call(__func__);
    nvmlReturn_t r = NVML_SUCCESS;
    pthread_mutex_lock(&lock);
    if (init_refcount > 0)
        init_refcount--;
    else
        r = NVML_ERROR_UNINITIALIZED;
    pthread_mutex_unlock(&lock);
    return r;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    log_call(__func__);
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
        return "Version mismatch between the struct and the API (fake_nvml)";
    case NVML_ERROR_UNKNOWN: return "Unknown Error";
    default: return "Unknown Error (fake_nvml: unrecognised code)";
    }
}

/* ---- system queries ------------------------------------------------------ */

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    return r != NVML_SUCCESS ? r : copy_string(version, length, DRIVER_VERSION);
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    return r != NVML_SUCCESS ? r : copy_string(version, length, NVML_VERSION);
}

static nvmlReturn_t cuda_version(int *out) {
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    *out = CUDA_DRIVER_VERSION;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) {
    log_call(__func__);
    return cuda_version(cudaDriverVersion);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion) {
    log_call(__func__);
    return cuda_version(cudaDriverVersion);
}

/* ---- device enumeration -------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    if (!deviceCount)
        return NVML_ERROR_INVALID_ARGUMENT;
    *deviceCount = gpu_count(s);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    if (!device || index >= gpu_count(s))
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &HANDLES[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    uintptr_t p = (uintptr_t)device, base = (uintptr_t)&HANDLES[0];
    if (!device || !index || p < base || p >= base + sizeof HANDLES ||
        (p - base) % sizeof HANDLES[0] != 0 || device->index >= gpu_count(s))
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

/* ---- per-device queries -------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    if (r != NVML_SUCCESS)
        return r;
    return copy_string(name, length, s == S_NO_POWER ? NO_POWER_NAME : g->name);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    return r != NVML_SUCCESS ? r : copy_string(uuid, length, g->uuid);
}

/* Memory used: the GPU's default or the `memory_used` override, capped at what is free. */
static unsigned long long memory_used(const fake_gpu *g, const health_t *h) {
    unsigned long long used = h->value[F_MEMORY_USED];
    unsigned long long room = g->total - g->reserved;
    return used > room ? room : used;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    health_t h;
    nvmlReturn_t r = device_query_h(device, &g, &s, &h);
    if (r != NVML_SUCCESS)
        return r;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (h.state[F_MEMORY_USED] != NVML_SUCCESS)
        return h.state[F_MEMORY_USED];
    /* v1 semantics: used includes reserved (0 here) */
    memory->total = g->total;
    memory->used = memory_used(g, &h) + g->reserved;
    memory->free = g->total - memory->used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    health_t h;
    nvmlReturn_t r = device_query_h(device, &g, &s, &h);
    if (r != NVML_SUCCESS)
        return r;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (h.state[F_MEMORY_USED] != NVML_SUCCESS)
        return h.state[F_MEMORY_USED];
    memory->total = g->total;
    memory->reserved = g->reserved;
    memory->used = memory_used(g, &h);
    memory->free = g->total - g->reserved - memory->used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType,
                                             unsigned int *temp) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    health_t h;
    nvmlReturn_t r = device_query_h(device, &g, &s, &h);
    if (r != NVML_SUCCESS)
        return r;
    if (!temp || sensorType != 0) /* NVML_TEMPERATURE_GPU */
        return NVML_ERROR_INVALID_ARGUMENT;
    if (h.state[F_TEMPERATURE] != NVML_SUCCESS)
        return h.state[F_TEMPERATURE];
    *temp = (unsigned int)h.value[F_TEMPERATURE];
    return NVML_SUCCESS;
}

/* Power draw (limit = 0) or enforced limit (limit = 1), in mW; unsupported in no_power. */
static nvmlReturn_t power_reading(nvmlDevice_t device, unsigned int *out, int limit) {
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    if (r != NVML_SUCCESS)
        return r;
    if (s == S_NO_POWER)
        return NVML_ERROR_NOT_SUPPORTED;
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    *out = limit ? g->limit_mw : g->power_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    log_call(__func__);
    return power_reading(device, power, 0);
}

EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    log_call(__func__);
    return power_reading(device, limit, 1);
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                  nvmlUtilization_t *utilization) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    if (r != NVML_SUCCESS)
        return r;
    if (!utilization)
        return NVML_ERROR_INVALID_ARGUMENT;
    utilization->gpu = g->util_gpu;
    utilization->memory = g->util_mem;
    return NVML_SUCCESS;
}

/* ---- health queries (values: default_health + FAKE_NVML_HEALTH) ----------- */

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t; /* nvmlProcessInfo_v2_t == _v3 layout */
_Static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t layout");

static nvmlReturn_t health_query(nvmlDevice_t device, health_t *h) {
    const fake_gpu *g;
    scenario_t s;
    return device_query_h(device, &g, &s, h);
}

/* The first failing field's code, or 0 when every field has a value. */
static nvmlReturn_t fields_state(const health_t *h, const field_t *fields, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (h->state[fields[i]] != NVML_SUCCESS)
            return h->state[fields[i]];
    return NVML_SUCCESS;
}

/* The device's health record with `fields` readable, checked in NVML's order: the
   device's own failure, then NVML_ERROR_INVALID_ARGUMENT unless `args_ok`, then the first
   failing field's code. `fields` is read only when `args_ok`. */
static nvmlReturn_t health_fields(nvmlDevice_t device, health_t *h, int args_ok,
                                  const field_t *fields, size_t n) {
    nvmlReturn_t r = health_query(device, h);
    if (r != NVML_SUCCESS)
        return r;
    if (!args_ok)
        return NVML_ERROR_INVALID_ARGUMENT;
    return fields_state(h, fields, n);
}

static nvmlReturn_t ull_field(nvmlDevice_t device, field_t field, unsigned long long *out) {
    health_t h;
    nvmlReturn_t r = health_fields(device, &h, out != NULL, &field, 1);
    if (r == NVML_SUCCESS)
        *out = h.value[field];
    return r;
}

static nvmlReturn_t uint_field(nvmlDevice_t device, field_t field, unsigned int *out) {
    unsigned long long v = 0;
    nvmlReturn_t r = ull_field(device, field, out ? &v : NULL);
    if (r == NVML_SUCCESS)
        *out = (unsigned int)v;
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                           unsigned long long *reasons) {
    log_call(__func__);
    return ull_field(device, F_CLOCKS_EVENT_REASONS, reasons);
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                              unsigned long long *reasons) {
    log_call(__func__);
    return ull_field(device, F_CLOCKS_EVENT_REASONS, reasons);
}

/* clock types: 0 GRAPHICS (reported as the SM clock), 1 SM, 2 MEM; others invalid */
static nvmlReturn_t clock_reading(nvmlDevice_t device, int type, unsigned int *clock, int max) {
    field_t field;
    if (type == 0 || type == 1)
        field = max ? F_CLOCK_SM_MAX : F_CLOCK_SM;
    else if (type == 2)
        field = max ? F_CLOCK_MEM_MAX : F_CLOCK_MEM;
    else
        field = N_FIELDS;
    health_t h;
    nvmlReturn_t r = health_fields(device, &h, clock && field != N_FIELDS, &field, 1);
    if (r == NVML_SUCCESS)
        *clock = (unsigned int)h.value[field];
    return r;
}

EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, unsigned int *clock) {
    log_call(__func__);
    return clock_reading(device, type, clock, 0);
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, int type,
                                              unsigned int *clock) {
    log_call(__func__);
    return clock_reading(device, type, clock, 1);
}

EXPORT nvmlReturn_t nvmlDeviceGetPerformanceState(nvmlDevice_t device, int *pState) {
    log_call(__func__);
    return uint_field(device, F_PSTATE, (unsigned int *)pState);
}

EXPORT nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int *speed) {
    log_call(__func__);
    return uint_field(device, F_FAN_SPEED, speed);
}

/* thresholds: 0 SHUTDOWN, 1 SLOWDOWN; 2..7 not supported here; 8+ invalid */
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, int thresholdType,
                                                      unsigned int *temp) {
    log_call(__func__);
    health_t h;
    nvmlReturn_t r = health_query(device, &h);
    if (r != NVML_SUCCESS)
        return r;
    if (!temp || thresholdType < 0 || thresholdType >= 8)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (thresholdType > 1)
        return NVML_ERROR_NOT_SUPPORTED;
    field_t field = thresholdType == 0 ? F_TEMP_SHUTDOWN : F_TEMP_SLOWDOWN;
    if (h.state[field] != NVML_SUCCESS)
        return h.state[field];
    *temp = (unsigned int)h.value[field];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, int *current, int *pending) {
    log_call(__func__);
    health_t h;
    static const field_t fields[] = {F_ECC_MODE_CURRENT, F_ECC_MODE_PENDING};
    nvmlReturn_t r = health_fields(device, &h, current && pending, fields, 2);
    if (r != NVML_SUCCESS)
        return r;
    *current = (int)h.value[F_ECC_MODE_CURRENT];
    *pending = (int)h.value[F_ECC_MODE_PENDING];
    return NVML_SUCCESS;
}

/* errorType 0 CORRECTED / 1 UNCORRECTED; counterType 0 VOLATILE / 1 AGGREGATE */
EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int errorType,
                                                int counterType, unsigned long long *eccCounts) {
    log_call(__func__);
    static const field_t table[2][2] = {
        {F_ECC_CORRECTED_VOLATILE, F_ECC_CORRECTED_AGGREGATE},
        {F_ECC_UNCORRECTED_VOLATILE, F_ECC_UNCORRECTED_AGGREGATE},
    };
    int ok = eccCounts && errorType >= 0 && errorType <= 1 && counterType >= 0 &&
             counterType <= 1;
    field_t field = ok ? table[errorType][counterType] : N_FIELDS;
    health_t h;
    nvmlReturn_t r = health_fields(device, &h, ok, &field, 1);
    if (r == NVML_SUCCESS)
        *eccCounts = h.value[field];
    return r;
}

/* cause 0 MULTIPLE_SINGLE_BIT_ECC_ERRORS, 1 DOUBLE_BIT_ECC_ERROR; page k at 0x10000 * (k + 1) */
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, int cause,
                                              unsigned int *pageCount,
                                              unsigned long long *addresses) {
    log_call(__func__);
    field_t field = cause == 0 ? F_RETIRED_SBE : F_RETIRED_DBE;
    health_t h;
    nvmlReturn_t r = health_fields(device, &h, pageCount && cause >= 0 && cause <= 1, &field, 1);
    if (r != NVML_SUCCESS)
        return r;
    unsigned long long n = h.value[field];
    if (n > 4096)
        n = 4096;
    if (*pageCount < n || (!addresses && n > 0)) {
        *pageCount = (unsigned int)n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned long long k = 0; k < n; k++)
        addresses[k] = 0x10000ULL * (k + 1) + ((unsigned long long)cause << 40);
    *pageCount = (unsigned int)n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device,
                                                           int *isPending) {
    log_call(__func__);
    return uint_field(device, F_RETIRED_PENDING, (unsigned int *)isPending);
}

EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrRows,
                                              unsigned int *uncRows, unsigned int *isPending,
                                              unsigned int *failureOccurred) {
    log_call(__func__);
    health_t h;
    static const field_t fields[] = {F_REMAP_CORR, F_REMAP_UNC, F_REMAP_PENDING,
                                     F_REMAP_FAILURE};
    int ok = corrRows && uncRows && isPending && failureOccurred;
    nvmlReturn_t r = health_fields(device, &h, ok, fields, 4);
    if (r != NVML_SUCCESS)
        return r;
    *corrRows = (unsigned int)h.value[F_REMAP_CORR];
    *uncRows = (unsigned int)h.value[F_REMAP_UNC];
    *isPending = (unsigned int)h.value[F_REMAP_PENDING];
    *failureOccurred = (unsigned int)h.value[F_REMAP_FAILURE];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device,
                                                        unsigned int *currLinkGen) {
    log_call(__func__);
    return uint_field(device, F_PCIE_GEN, currLinkGen);
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device,
                                                       unsigned int *maxLinkGen) {
    log_call(__func__);
    return uint_field(device, F_PCIE_GEN_MAX, maxLinkGen);
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device,
                                                   unsigned int *currLinkWidth) {
    log_call(__func__);
    return uint_field(device, F_PCIE_WIDTH, currLinkWidth);
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device,
                                                  unsigned int *maxLinkWidth) {
    log_call(__func__);
    return uint_field(device, F_PCIE_WIDTH_MAX, maxLinkWidth);
}

EXPORT nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t device, unsigned int *value) {
    log_call(__func__);
    return uint_field(device, F_PCIE_REPLAY, value);
}

/* Real NVML's two-call protocol: too small a buffer (or none) gives 7 and the count. */
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                            unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
    log_call(__func__);
    health_t h;
    static const field_t fields[] = {F_PROCESSES};
    nvmlReturn_t r = health_fields(device, &h, infoCount != NULL, fields, 1);
    if (r != NVML_SUCCESS)
        return r;
    if (*infoCount < h.nprocs || (!infos && h.nprocs > 0)) {
        *infoCount = h.nprocs;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < h.nprocs; i++) {
        infos[i].pid = h.procs[i].pid;
        infos[i].usedGpuMemory = h.procs[i].used;
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *infoCount = h.nprocs;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode,
                                         unsigned int *pendingMode) {
    log_call(__func__);
    health_t h;
    static const field_t fields[] = {F_MIG_CURRENT, F_MIG_PENDING};
    nvmlReturn_t r = health_fields(device, &h, currentMode && pendingMode, fields, 2);
    if (r != NVML_SUCCESS)
        return r;
    *currentMode = (unsigned int)h.value[F_MIG_CURRENT];
    *pendingMode = (unsigned int)h.value[F_MIG_PENDING];
    return NVML_SUCCESS;
}

/* ---- field values (nvmlDeviceGetFieldValues) ------------------------------ */

#define NVML_FI_DEV_GET_GPU_RECOVERY_ACTION 230
#define NVML_VALUE_TYPE_UNSIGNED_INT 1

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;   /* microseconds since the epoch */
    long long latencyUsec;
    unsigned int valueType; /* nvmlValueType_t */
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;
_Static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t layout");

/* Each requested field gets its own nvmlReturn (the call succeeds for a readable GPU):
   field 230 (recovery action) answers the `recovery_action` reading, every other field
   NOT_SUPPORTED. A lost GPU fails the whole call with 15, as any per-device query. */
EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount,
                                             nvmlFieldValue_t *values) {
    log_call(__func__);
    health_t h;
    nvmlReturn_t r = health_fields(device, &h, values != NULL && valuesCount >= 0, NULL, 0);
    if (r != NVML_SUCCESS)
        return r;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < valuesCount; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = (long long)now.tv_sec * 1000000LL + now.tv_nsec / 1000;
        v->latencyUsec = 0;
        memset(&v->value, 0, sizeof v->value);
        if (v->fieldId != NVML_FI_DEV_GET_GPU_RECOVERY_ACTION) {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        v->nvmlReturn = h.state[F_RECOVERY_ACTION];
        if (v->nvmlReturn == NVML_SUCCESS) {
            v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
            v->value.uiVal = (unsigned int)h.value[F_RECOVERY_ACTION];
        }
    }
    return NVML_SUCCESS;
}

/* ---- events (XIDs injected through FAKE_NVML_EVENTS) ---------------------- */

#define EVENT_XID 0x8ULL /* nvmlEventTypeXidCriticalError */
#define MAX_EVENT_SETS 64

typedef struct {
    unsigned long long device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlEventData_t;

struct nvmlEventSet_st {
    unsigned long long registered[MAX_GPUS]; /* event types per GPU index */
    long consumed;                           /* lines of the events file already seen */
};
typedef struct nvmlEventSet_st *nvmlEventSet_t;

static nvmlEventSet_t LIVE_SETS[MAX_EVENT_SETS]; /* guarded by lock */

static int set_is_live(nvmlEventSet_t set) {
    int live = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_EVENT_SETS; i++)
        if (set && LIVE_SETS[i] == set)
            live = 1;
    pthread_mutex_unlock(&lock);
    return live;
}

/*
 * Read the events file ("GPU XID" per line). Count its complete lines into *lines;
 * when `want` is non-NULL, find the first complete line at or after line `from`
 * whose GPU is registered for XIDs in `set`; return its 0-based number, or -1.
 */
static long scan_events(nvmlEventSet_t set, long from, long *lines, unsigned int *gpu,
                        unsigned long long *xid) {
    *lines = 0;
    const char *path = getenv("FAKE_NVML_EVENTS");
    if (!path || !*path)
        return -1;
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[128];
    long found = -1;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n')
            break; /* a line still being written */
        long number = (*lines)++;
        if (found >= 0 || !set || number < from)
            continue;
        unsigned int g;
        unsigned long long code;
        if (sscanf(line, "%u %llu", &g, &code) == 2 && g < MAX_GPUS &&
            (set->registered[g] & EVENT_XID)) {
            found = number;
            *gpu = g;
            *xid = code;
        }
    }
    fclose(f);
    return found;
}

EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device,
                                                     unsigned long long *eventTypes) {
    log_call(__func__);
    return ull_field(device, F_SUPPORTED_EVENTS, eventTypes);
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    if (!set)
        return NVML_ERROR_INVALID_ARGUMENT;
    nvmlEventSet_t created = calloc(1, sizeof *created);
    if (!created)
        return NVML_ERROR_UNKNOWN;
    long lines;
    scan_events(NULL, 0, &lines, NULL, NULL);
    created->consumed = lines; /* events injected before the set existed are not seen */
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < MAX_EVENT_SETS && slot < 0; i++)
        if (!LIVE_SETS[i])
            slot = i;
    if (slot >= 0)
        LIVE_SETS[slot] = created;
    pthread_mutex_unlock(&lock);
    if (slot < 0) {
        free(created);
        return NVML_ERROR_UNKNOWN;
    }
    *set = created;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes,
                                             nvmlEventSet_t set) {
    log_call(__func__);
    health_t h;
    static const field_t fields[] = {F_SUPPORTED_EVENTS};
    nvmlReturn_t r = health_fields(device, &h, set_is_live(set), fields, 1);
    if (r != NVML_SUCCESS)
        return r;
    if ((eventTypes & ~h.value[F_SUPPORTED_EVENTS]) != 0)
        return NVML_ERROR_NOT_SUPPORTED;
    pthread_mutex_lock(&lock);
    set->registered[device->index] |= eventTypes;
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

/* Polls the events file every 5 ms until an XID for a registered GPU or timeoutms. */
EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data,
                                        unsigned int timeoutms) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS)
        return r;
    if (!data || !set_is_live(set))
        return NVML_ERROR_INVALID_ARGUMENT;
    double deadline = monotonic_seconds() + timeoutms / 1000.0;
    for (;;) {
        long lines;
        unsigned int gpu = 0;
        unsigned long long xid = 0;
        long found = scan_events(set, set->consumed, &lines, &gpu, &xid);
        if (found >= 0) {
            set->consumed = found + 1;
            data->device = (unsigned long long)(uintptr_t)&HANDLES[gpu];
            data->eventType = EVENT_XID;
            data->eventData = xid;
            data->gpuInstanceId = 0xFFFFFFFFu;
            data->computeInstanceId = 0xFFFFFFFFu;
            return NVML_SUCCESS;
        }
        set->consumed = lines > set->consumed ? lines : set->consumed;
        double left = deadline - monotonic_seconds();
        if (left <= 0)
            return NVML_ERROR_TIMEOUT;
        sleep_seconds(left < 0.005 ? left : 0.005);
    }
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    log_call(__func__);
    scenario_t s;
    nvmlReturn_t r = check_state(&s);
    if (r != NVML_SUCCESS && r != NVML_ERROR_DRIVER_NOT_LOADED)
        return r;
    int freed = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_EVENT_SETS; i++)
        if (set && LIVE_SETS[i] == set) {
            LIVE_SETS[i] = NULL;
            freed = 1;
        }
    pthread_mutex_unlock(&lock);
    if (!freed)
        return NVML_ERROR_INVALID_ARGUMENT;
    free(set);
    return NVML_SUCCESS;
}
