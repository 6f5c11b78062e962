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
 *
 *   "Per-device queries" are GetName, GetUUID, GetMemoryInfo(_v2), GetTemperature,
 *   GetPowerUsage, GetEnforcedPowerLimit and GetUtilizationRates.
 *   GetHandleByIndex_v2 and GetIndex are handle bookkeeping: they succeed for
 *   lost/hung GPUs.  A handle whose index is not below the current scenario's
 *   count (e.g. GPU 1's handle after switching to no_power) gives 2.
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

#define MAX_GPUS 2
static struct nvmlDevice_st HANDLES[MAX_GPUS] = {{0}, {1}};

/* ---- scenarios ----------------------------------------------------------- */

typedef enum {
    S_TWO_GPUS,
    S_NO_POWER,
    S_DRIVER_NOT_LOADED,
    S_GPU_LOST,
    S_ALL_LOST,
    S_HANG,
    S_NO_GPUS,
    S_UNKNOWN,
} scenario_t;

static const struct {
    const char *name;
    scenario_t id;
} SCENARIOS[] = {
    {"two_gpus", S_TWO_GPUS}, {"no_power", S_NO_POWER},
    {"driver_not_loaded", S_DRIVER_NOT_LOADED}, {"gpu_lost", S_GPU_LOST},
    {"all_lost", S_ALL_LOST}, {"hang", S_HANG}, {"no_gpus", S_NO_GPUS},
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

/*
 * Prologue of a per-device query: state, handle, hang, loss. On success
 * *gpu points at the GPU's data and *scen is the scenario to answer under.
 */
static nvmlReturn_t device_query(nvmlDevice_t device, const fake_gpu **gpu, scenario_t *scen) {
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
    if (s == S_ALL_LOST || (s == S_GPU_LOST && index == 1))
        return NVML_ERROR_GPU_IS_LOST;
    *gpu = &GPUS[index];
    *scen = s;
    return NVML_SUCCESS;
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

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    if (r != NVML_SUCCESS)
        return r;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    /* v1 semantics: used includes reserved (0 here) */
    memory->total = g->total;
    memory->used = g->used + g->reserved;
    memory->free = g->total - memory->used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    if (r != NVML_SUCCESS)
        return r;
    if (!memory)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != nvmlMemory_v2)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = g->total;
    memory->reserved = g->reserved;
    memory->used = g->used;
    memory->free = g->total - g->reserved - g->used;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensorType,
                                             unsigned int *temp) {
    log_call(__func__);
    const fake_gpu *g;
    scenario_t s;
    nvmlReturn_t r = device_query(device, &g, &s);
    if (r != NVML_SUCCESS)
        return r;
    if (!temp || sensorType != 0) /* NVML_TEMPERATURE_GPU */
        return NVML_ERROR_INVALID_ARGUMENT;
    *temp = g->temperature_c;
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
