"""`agent-net doctor`: check the whole chain, one line per check, with the fix for each problem.

Order: settings, NVML and each GPU, Ollama and each configured model, the worker
(`/healthz`, `/readyz`) and the recovery action it chose for each GPU (`/metrics`), each
orchestrator (reachable, TLS), the worker's own
registration state per entry of `/readyz`'s `registration` list (read from the worker,
never by registering again), and pricing between `orchestrator_config/` and
`gateway_config/` when both files are here. Independent hosts are checked in parallel
threads, every network step has its own timeout and the whole run a budget, so a host
that accepts and never answers cannot hold it up. NVML runs in a child process that is
killed on timeout. Output never holds a secret.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pynvml

from worker.config import ConfigError, Settings, load_settings
from worker.dotenv import DotenvError, environ_with_dotenv

OK, WARNING, FAIL, SKIP = "ok", "warning", "fail", "skip"
CONNECT_TIMEOUT = 2.0  # TCP connect, and a TLS handshake
READ_TIMEOUT = 3.0  # an HTTP answer once connected
NVML_TIMEOUT = 5.0  # the NVML child process, start-up included
BUDGET_SECONDS = 8.0  # every check together; the doctor then reports what is left
AUTH_HINT = "ORCH_SECRET does not match the orchestrator's -orchSecret"  # keeper.AUTH_HINT
ORCHESTRATOR_FILE = Path("orchestrator_config") / "orchestrator.conf"
GATEWAY_FILE = Path("gateway_config") / "gateway.conf"
COMPOSE_OLLAMA_HOST = "ollama"  # the ollama service's name in docker-compose.yml
_SELF_SIGNED = (18, 19)  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, _SELF_SIGNED_CERT_IN_CHAIN


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, the verdict, what was seen, what to do."""

    check: str  # the kind: settings, nvml, gpu, ollama, model, worker, ...
    subject: str  # what it is about: a GPU index, a model, a URL; "" when one of a kind
    verdict: str  # ok, warning, fail or skip
    detail: str
    fix: str | None = None

    @property
    def name(self) -> str:
        return f"{self.check} {self.subject}".strip()


# --- HTTP, bounded ---------------------------------------------------------------------------
class Unanswered(Exception):
    """No HTTP answer; `str()` says why in words, `stage` where (connect, tls, answer)."""

    def __init__(self, reason: str, stage: str, kind: str, verify_code: int | None = None):
        super().__init__(reason)
        self.stage = stage
        self.kind = kind  # refused, timeout, dns, tls, certificate, not_http, other
        self.verify_code = verify_code  # OpenSSL's X509_V_ERR_* for kind "certificate"


def http_get(url: str, path: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """GET `url` + `path`: connect, TLS handshake and answer each bounded; (status, body).

    An https URL is fetched without verifying the certificate unless `context` says so.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{host}:{port}"
    stage = "connect"
    conn = http.client.HTTPConnection(host, port)
    try:
        sock: socket.socket = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        if parts.scheme == "https":
            stage = "tls"
            sock = (context or _unverified_context()).wrap_socket(sock, server_hostname=host)
        stage = "answer"
        sock.settimeout(READ_TIMEOUT)
        conn.sock = sock
        conn.request("GET", (parts.path.rstrip("/") + path) or "/", headers={"Host": where})
        response = conn.getresponse()
        return response.status, response.read(1 << 20)
    except ConnectionRefusedError:
        raise Unanswered(
            f"connection refused: nothing listens on {where}", "connect", "refused"
        ) from None
    except socket.gaierror:
        raise Unanswered(f"the name {host!r} does not resolve", "connect", "dns") from None
    except ssl.SSLCertVerificationError as exc:
        reason = f"certificate not trusted: {exc.verify_message}"
        raise Unanswered(reason, "tls", "certificate", exc.verify_code) from None
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        raise Unanswered(f"TLS handshake with {where} failed ({reason})", "tls", "tls") from None
    except TimeoutError:
        raise Unanswered(_timeout_reason(stage, where), stage, "timeout") from None
    except (http.client.HTTPException, ConnectionResetError, BrokenPipeError):
        raise Unanswered(f"{where} answered, but not with HTTP", "answer", "not_http") from None
    except OSError as exc:
        reason = f"{where}: {exc.strerror or type(exc).__name__}"
        raise Unanswered(reason, stage, "other") from None
    finally:
        conn.close()


def _timeout_reason(stage: str, where: str) -> str:
    if stage == "connect":
        return f"no answer to a connection to {where} within {CONNECT_TIMEOUT:g} s"
    if stage == "tls":
        return (
            f"{where} accepted the connection but did not complete a TLS handshake"
            f" within {CONNECT_TIMEOUT:g} s"
        )
    return f"{where} accepted the connection but sent no HTTP answer within {READ_TIMEOUT:g} s"


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


# --- Settings --------------------------------------------------------------------------------
def check_settings(environ: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """Settings valid, as the worker would load them (ConfigError names every bad variable)."""
    try:
        settings = load_settings(environ)
    except ConfigError as error:
        detail = " ".join(line.strip() for line in str(error).splitlines())
        fix = "correct the variables named (in .env for compose), then restart the worker"
        return Check("settings", "", FAIL, detail, fix), None
    orchestrators = len(settings.orch_urls)
    detail = (
        f"valid: worker port {settings.worker_port}, OLLAMA_HOST {settings.ollama_host},"
        f" OLLAMA_MODEL {settings.ollama_model}, {orchestrators} orchestrator"
        f"{'s' if orchestrators != 1 else ''}"
    )
    return Check("settings", "", OK, detail), settings


# --- NVML ------------------------------------------------------------------------------------
_NVML_FIXES: dict[int, tuple[str, str]] = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
        "NVIDIA driver library not found (libnvidia-ml.so.1)",
        "install the NVIDIA driver on the host; in Docker also install the NVIDIA Container"
        " Toolkit and give the worker the GPU (compose: deploy.resources.reservations.devices)",
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: (
        "the NVIDIA kernel driver is not loaded",
        "load it (sudo modprobe nvidia, or reboot after installing the driver) until"
        " nvidia-smi works on the host",
    ),
    pynvml.NVML_ERROR_NO_PERMISSION: (
        "no permission to use NVML (/dev/nvidia*)",
        "run the worker as a user that can open /dev/nvidia* (e.g. in the video group),"
        " or in a container started with the GPU",
    ),
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "the NVIDIA library and kernel driver versions differ",
        "reboot the host after the driver upgrade (or reload the nvidia kernel modules)",
    ),
}


def _nvml_error(error: Mapping[str, Any]) -> tuple[str, str]:
    code = error.get("code")
    if code in _NVML_FIXES:
        return _NVML_FIXES[code]
    return (
        f"NVML error {code} ({error.get('name')})",
        "run nvidia-smi on the host: it names the driver's problem",
    )


def check_nvml(timeout: float = NVML_TIMEOUT) -> list[Check]:
    """NVML loads (in a child process, killed on timeout) and each GPU answers."""
    package_root = str(Path(__file__).resolve().parent.parent)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {package_root!r}); "
                "from worker.nvml_probe import main; sys.exit(main())",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return [
            Check(
                "nvml",
                "",
                FAIL,
                f"NVML did not answer within {timeout:g} s (a wedged driver)",
                "run nvidia-smi on the host; if it hangs too, the GPU needs a reset or the"
                " host a reboot (dmesg shows the Xid)",
            )
        ]
    report = _json(result.stdout) if result.returncode == 0 else None
    if not isinstance(report, dict):
        detail = f"the NVML probe failed (exit {result.returncode})"
        return [Check("nvml", "", FAIL, detail, "run nvidia-smi on the host to see why")]
    if report.get("error"):
        reason, fix = _nvml_error(report["error"])
        return [Check("nvml", "", FAIL, reason, fix)]
    gpus = report.get("gpus") or []
    if not gpus:
        return [
            Check(
                "nvml",
                "",
                WARNING,
                f"NVML loads (driver {report.get('driver')}) but sees no GPU",
                "give the worker the GPU (NVIDIA_VISIBLE_DEVICES; compose: the device"
                " reservation) and check nvidia-smi -L",
            )
        ]
    checks = [Check("nvml", "", OK, f"driver {report.get('driver')}, {len(gpus)} GPU(s)")]
    for gpu in gpus:
        index = gpu.get("index")
        error = gpu.get("error")
        if error is None:
            memory = gpu.get("memory_total_bytes")
            size = f", {memory // 2**20} MiB" if isinstance(memory, int) else ""
            checks.append(Check("gpu", str(index), OK, f"{gpu.get('name')}{size}"))
        elif error.get("code") == pynvml.NVML_ERROR_GPU_IS_LOST:
            checks.append(
                Check(
                    "gpu",
                    str(index),
                    FAIL,
                    f"GPU {index} is lost (fell off the bus or stopped answering)",
                    "drain the host and reboot it: a GPU off the bus does not come back with"
                    " a reset (dmesg shows the Xid; if it recurs, contact support)",
                )
            )
        else:
            reason, fix = _nvml_error(error)
            checks.append(Check("gpu", str(index), FAIL, f"GPU {index}: {reason}", fix))
    return checks


# --- Ollama ----------------------------------------------------------------------------------
def configured_models(settings: Settings) -> list[str]:
    """Every model the worker is configured to use: OLLAMA_MODEL and each agent's."""
    from worker.agents import load_agents

    try:
        agents = load_agents(settings)
    except ConfigError:  # the settings check names a bad agents file
        agents = ()
    return list(dict.fromkeys([settings.ollama_model, *(agent.model for agent in agents)]))


def _model_key(name: str) -> str:
    """Ollama's name for comparing: a name without a tag means `:latest`."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def pull_command(settings: Settings, model: str) -> str:
    """The exact command that pulls `model` into the Ollama the worker uses."""
    host = urlsplit(settings.ollama_host).hostname
    if host == COMPOSE_OLLAMA_HOST:
        return f"docker compose exec ollama ollama pull {model}"
    if host in ("127.0.0.1", "localhost", "::1") and settings.ollama_host.endswith(":11434"):
        return f"ollama pull {model}"
    return f"OLLAMA_HOST={settings.ollama_host} ollama pull {model}"


def _models_unchecked(settings: Settings, why: str) -> list[Check]:
    return [
        Check("model", model, SKIP, f"not checked: {why}") for model in configured_models(settings)
    ]


def check_ollama(settings: Settings) -> list[Check]:
    """Ollama answers at OLLAMA_HOST and every configured model is pulled."""
    host = settings.ollama_host
    try:
        status, body = http_get(host, "/api/tags")
    except Unanswered as exc:
        fix = (
            "start Ollama (compose: docker compose up -d ollama; else ollama serve)"
            " or correct OLLAMA_HOST"
        )
        if exc.kind == "timeout":
            fix = "Ollama is hung or overloaded: restart it (docker compose restart ollama)"
        return [
            Check("ollama", "", FAIL, f"unreachable at {host}: {exc}", fix),
            *(_models_unchecked(settings, "Ollama does not answer")),
        ]
    document = _json(body)
    if status != 200 or not isinstance(document, dict):
        detail = f"{host} answered /api/tags with HTTP {status}, not Ollama's catalogue"
        return [
            Check("ollama", "", FAIL, detail, "check that OLLAMA_HOST is Ollama's address"),
            *(_models_unchecked(settings, "no catalogue from Ollama")),
        ]
    models = document.get("models") or []
    present = {
        _model_key(str(entry.get(key)))
        for entry in models
        if isinstance(entry, dict)
        for key in ("name", "model")
        if entry.get(key)
    }
    checks = [Check("ollama", "", OK, f"answering at {host}, {len(models)} model(s) on disk")]
    for model in configured_models(settings):
        if _model_key(model) in present:
            checks.append(Check("model", model, OK, "pulled"))
        else:
            checks.append(
                Check(
                    "model",
                    model,
                    FAIL,
                    f"{model} is not pulled into the Ollama at {host}",
                    f"pull it: {pull_command(settings, model)}",
                )
            )
    return checks


# --- The worker ------------------------------------------------------------------------------
def worker_url(settings: Settings) -> str:
    """Where this host reaches the worker (a wildcard bind is reached on loopback)."""
    from worker.registration.process import worker_health_url

    return worker_health_url(settings).removesuffix("/healthz")


def check_worker(settings: Settings) -> tuple[list[Check], dict[str, Any] | None]:
    """The worker answers /healthz and is ready (/readyz); returns /readyz's document too."""
    url = worker_url(settings)
    start_fix = (
        "start it (compose: docker compose up -d worker; else scripts/run.sh); its log says"
        " why it stopped (docker compose logs worker)"
    )
    try:
        status, body = http_get(url, "/healthz")
    except Unanswered as exc:
        return [Check("worker", "", FAIL, f"not answering at {url}: {exc}", start_fix)], None
    alive = _json(body)
    if status != 200 or not isinstance(alive, dict) or alive.get("status") != "alive":
        detail = f"{url}/healthz answered HTTP {status}, not the worker's health document"
        fix = f"another program holds port {settings.worker_port}: stop it or set WORKER_PORT"
        return [Check("worker", "", FAIL, detail, fix)], None
    checks = [Check("worker", "", OK, f"answering at {url}")]
    try:
        status, body = http_get(url, "/readyz")
    except Unanswered as exc:
        checks.append(Check("ready", "", FAIL, f"/readyz: {exc}", "restart the worker"))
        return checks, None
    document = _json(body)
    if not isinstance(document, dict):
        detail = f"/readyz answered HTTP {status} without the worker's document"
        fix = "restart the worker (docker compose restart worker)"
        checks.append(Check("ready", "", FAIL, detail, fix))
        return checks, None
    if status == 200:
        checks.append(Check("ready", "", OK, "ready (the sampler has read every source)"))
    else:
        checks.append(_not_ready(document))
    return checks, document


def _not_ready(document: Mapping[str, Any]) -> Check:
    sampler = document.get("sampler") or {}
    waiting = [
        f"{name} {view.get('status')}" + (f" ({view['reason']})" if view.get("reason") else "")
        for name, view in (document.get("sources") or {}).items()
        if isinstance(view, dict) and view.get("status") in ("pending", "stale")
    ]
    if document.get("status") == "sampler_down" or sampler.get("running") is False:
        return Check(
            "ready",
            "",
            FAIL,
            "not ready: the sampler process is not running",
            "the worker restarts it by itself; if this stays, its log says why"
            " (sampler_exited lines)",
        )
    detail = "not ready yet: " + ("; ".join(waiting) or str(document.get("status")))
    return Check("ready", "", WARNING, detail, "wait a few seconds and run the doctor again")


# --- What to do about each GPU, as the running worker judges it -------------------------------
ACTION_METRIC = "agent_net_gpu_recovery_action"
# action -> (verdict, what to do in words; {gpu} is the NVML index)
ACTION_WORDS: dict[str, tuple[str, str]] = {
    "none": (OK, "no recovery action needed"),
    "restart_app": (
        WARNING,
        "restart the application that hit the error: docker compose restart ollama worker",
    ),
    "reset_gpu": (
        FAIL,
        "stop its work and reset it: docker compose stop; sudo nvidia-smi -r -i {gpu};"
        " docker compose up -d",
    ),
    "drain_and_reset": (
        FAIL,
        "send it no new work, let running jobs finish, then reset it: docker compose stop;"
        " sudo nvidia-smi -r -i {gpu}; docker compose up -d",
    ),
    "reboot": (FAIL, "drain the host (docker compose stop) and reboot it"),
    "contact_support": (
        FAIL,
        "the board needs service: take it out of use and contact NVIDIA or the vendor"
        " (RMA), with the output of nvidia-bug-report.sh",
    ),
}


def check_gpu_actions(settings: Settings) -> list[Check]:
    """One line per GPU: the recovery action the worker's sampler chose, in words (read
    from the worker's /metrics: docs/gpu-health.md#recovery-action)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        status, body = http_get(worker_url(settings), "/metrics")
        families = list(text_string_to_metric_families(body.decode("utf-8", "replace")))
    except (Unanswered, ValueError) as exc:
        return [Check("action", "", SKIP, f"not checked: /metrics ({exc})")]
    if status != 200:
        return [Check("action", "", SKIP, f"not checked: /metrics answered HTTP {status}")]
    checks = []
    for family in families:
        if family.name != ACTION_METRIC:
            continue
        for sample in family.samples:
            gpu, action = sample.labels.get("gpu", "?"), sample.labels.get("action", "?")
            verdict, words = ACTION_WORDS.get(action, (FAIL, f"unknown action {action!r}"))
            name = sample.labels.get("name") or "unreadable"
            detail = f"GPU {gpu} ({name}): {action} (rule {sample.labels.get('rule')})"
            fix = None if verdict == OK else words.format(gpu=gpu)
            checks.append(Check("action", f"gpu {gpu}", verdict, detail, fix))
    return checks or [Check("action", "", SKIP, "the worker reports no GPU")]


# --- Orchestrators ---------------------------------------------------------------------------
def check_orchestrator(settings: Settings, url: str) -> list[Check]:
    """One orchestrator: reachable (answers HTTP at all), then its TLS as the worker sees it."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    try:
        status, body = http_get(url, "/")
    except Unanswered as exc:
        return [Check("orchestrator", url, FAIL, str(exc), _unreachable_fix(exc, url, where))]
    if b"HTTP request to an HTTPS server" in body:  # Go's answer to plain HTTP on a TLS port
        return [
            Check(
                "orchestrator",
                url,
                FAIL,
                f"{where} serves HTTPS only (it answered plain HTTP with HTTP {status})",
                f"use https://{where} in ORCH_URL",
            )
        ]
    checks = [Check("orchestrator", url, OK, f"answering (HTTP {status} at /)")]
    checks.append(check_tls(settings, url))
    return checks


def _unreachable_fix(exc: Unanswered, url: str, where: str) -> str:
    if exc.kind == "refused":
        return (
            "start the orchestrator (compose: docker compose up -d orchestrator) or correct"
            " ORCH_URL (the host and port of its -serviceAddr)"
        )
    if exc.kind == "dns":
        return "correct the host in ORCH_URL (in compose the service is named orchestrator)"
    if exc.kind == "timeout" and exc.stage == "connect":
        return f"check the address in ORCH_URL and any firewall between here and {where}"
    if exc.kind == "timeout":
        return (
            f"something at {where} accepts connections but does not answer: check that"
            " ORCH_URL names the orchestrator's service port and that it is not hung"
        )
    if exc.kind == "tls":
        return f"{where} does not speak TLS: use http:// in ORCH_URL or the orchestrator's port"
    if exc.kind == "not_http" and url.startswith("http:"):
        return f"{where} may serve TLS only (go-livepeer does by default): use https:// in ORCH_URL"
    return f"check that ORCH_URL ({url}) is the orchestrator's address"


# go-livepeer writes a new self-signed certificate at every start: a copy taken once goes
# stale, the file in its data directory does not (README: "TLS: why verification is off").
CA_BUNDLE_FIX = (
    "mount the orchestrator's <dataDir>/cert.pem into the worker and set ORCH_CA_BUNDLE to"
    " it, with ORCH_URL naming the host of its -serviceAddr"
)


def check_tls(settings: Settings, url: str) -> Check:
    """Plain http is noted; https is verified with the worker's own CA settings."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 443}"
    if parts.scheme != "https":
        return Check(
            "tls",
            url,
            WARNING,
            "plain http: registration and ORCH_SECRET travel unencrypted",
            f"use https:// in ORCH_URL unless the network to {where} is trusted",
        )
    verify = settings.tls_verify
    bundle = verify if isinstance(verify, str) else None
    try:
        context = ssl.create_default_context(cafile=bundle)
        http_get(url, "/", context)
    except Unanswered as exc:
        if exc.kind != "certificate":
            detail = f"could not verify the certificate: {exc}"
            return Check("tls", url, WARNING, detail, "run the doctor again once it answers")
        trust = f"the CA bundle {bundle}" if bundle else "the system's CAs"
        if verify is False:
            what = "self-signed certificate" if exc.verify_code in _SELF_SIGNED else str(exc)
            detail = (
                f"{what}, not verified by the worker (ORCH_TLS_VERIFY is off): a machine"
                " in the middle could read ORCH_SECRET"
            )
            return Check("tls", url, WARNING, detail, f"to verify it: {CA_BUNDLE_FIX}")
        detail = f"the worker verifies TLS with {trust} and it fails: {exc}"
        return Check("tls", url, FAIL, detail, CA_BUNDLE_FIX)
    if verify is False:
        return Check(
            "tls",
            url,
            WARNING,
            "the certificate is trusted here, but the worker does not verify it"
            " (ORCH_TLS_VERIFY is off)",
            "set ORCH_TLS_VERIFY=true",
        )
    trust = f"ORCH_CA_BUNDLE {bundle}" if bundle else "the system's CAs"
    return Check("tls", url, OK, f"certificate verified with {trust}")


# --- Registration, as the worker reports it ----------------------------------------------------
def check_registration(
    settings: Settings, readyz: Mapping[str, Any] | None, worker_answers: bool
) -> list[Check]:
    """One line per entry of /readyz's `registration` list (whatever protocols it holds)."""
    if not settings.orch_urls:
        return [
            Check("registration", "", SKIP, "ORCH_URL is not set: the worker runs unregistered")
        ]
    if readyz is None:
        reason = "the worker does not answer" if not worker_answers else "no /readyz document"
        return [Check("registration", "", SKIP, f"not checked: {reason}")]
    entries = [entry for entry in readyz.get("registration") or [] if isinstance(entry, dict)]
    checks = [_registration_entry(entry) for entry in entries]
    reported = {str(entry.get("orchestrator")) for entry in entries}
    for url in settings.orch_urls:
        if url not in reported:
            checks.append(
                Check(
                    "registration",
                    url,
                    WARNING,
                    "the running worker reports no registration with this orchestrator",
                    "the registrar may not have started yet, or the worker runs with other"
                    " settings: run the doctor where it runs (docker compose exec worker"
                    " agent-net doctor)",
                )
            )
    return checks


def _registration_entry(entry: Mapping[str, Any]) -> Check:
    orchestrator = str(entry.get("orchestrator") or "?")
    subject = f"{orchestrator} {entry.get('capability') or '?'}"
    if entry.get("protocol"):
        subject += f" ({entry['protocol']})"
    error = entry.get("last_error")
    if entry.get("registered"):
        return Check("registration", subject, OK, "registered")
    if error and (AUTH_HINT in str(error) or "invalid authorization" in str(error)):
        return Check(
            "registration",
            subject,
            FAIL,
            f"secret mismatch: the orchestrator rejected ORCH_SECRET ({_short(str(error))})",
            "set ORCH_SECRET to the orchestrator's -orchSecret (compose: both read ORCH_SECRET"
            " from .env), then restart both: docker compose up -d",
        )
    if error:
        failures = entry.get("consecutive_failures")
        count = f" after {failures} attempt(s)" if failures else ""
        return Check(
            "registration",
            subject,
            FAIL,
            f"not registered{count}: {_short(str(error))}",
            "fix what the orchestrator and tls lines say; the worker retries by itself",
        )
    return Check(
        "registration",
        subject,
        WARNING,
        "not registered yet (no attempt so far)",
        "the registrar starts once the worker answers: run the doctor again in a few seconds",
    )


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- Pricing ---------------------------------------------------------------------------------
def check_pricing(root: Path) -> Check:
    """The gateway accepts the orchestrator's price and tickets (payments.pricing_check)."""
    orch_file, gateway_file = root / ORCHESTRATOR_FILE, root / GATEWAY_FILE
    present = [path for path in (orch_file, gateway_file) if path.is_file()]
    if len(present) < 2:
        detail = (
            f"not checked: {ORCHESTRATOR_FILE} and {GATEWAY_FILE} are not both in {root}"
            if not present
            else f"not checked: only {present[0].relative_to(root)} is in {root}"
        )
        return Check("pricing", "", SKIP, detail)
    try:
        from payments import config_files
        from payments.pricing_check import Status
        from payments.pricing_check import check_pricing as compare
    except ImportError:
        return Check("pricing", "", SKIP, "not checked: the payments package is not installed")
    command = "python3 scripts/check_pricing.py (the table; docs/pricing.md explains each row)"
    try:
        orch = config_files.orchestrator_settings(config_files.read_config_file(orch_file))
        gateway = config_files.gateway_settings(config_files.read_config_file(gateway_file))
    except config_files.ConfigError as exc:
        return Check("pricing", "", FAIL, f"a config file is malformed: {exc}", command)
    report = compare(orch, gateway)
    mismatches = [row for row in report.rows if row.status is Status.MISMATCH]
    warnings = [row for row in report.rows if row.status is Status.WARN]
    if mismatches:
        detail = "gateway would refuse: " + "; ".join(
            f"{row.parameter}: {_short(row.reason, 160)}" for row in mismatches
        )
        return Check("pricing", "", FAIL, detail, f"align the two files; {command}")
    accepted = "the gateway accepts the orchestrator's price and tickets"
    if warnings:
        names = ", ".join(row.parameter for row in warnings)
        fixes = "; ".join(_pricing_fix(row.fix, row.file, root) for row in warnings)
        detail = f"{accepted}; warnings: {names}"
        return Check("pricing", "", WARNING, detail, f"{fixes}; every row: {command}")
    notes = sum(1 for row in report.rows if row.status is Status.INFO)
    return Check("pricing", "", OK, f"{accepted}" + (f" ({notes} note(s))" if notes else ""))


def _pricing_fix(fix: str, file: str, root: Path) -> str:
    """One warning's fix with the file to change, as the operator names it from `root`."""
    if not fix:
        return "see the table"
    path = Path(file)
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return f"in {shown}, {fix}"


# --- The whole run ---------------------------------------------------------------------------
@dataclass
class Report:
    checks: list[Check]
    elapsed_seconds: float
    dotenv: str | None

    @property
    def exit_code(self) -> int:
        return 1 if any(check.verdict == FAIL for check in self.checks) else 0

    def counts(self) -> dict[str, int]:
        return {
            verdict: sum(check.verdict == verdict for check in self.checks)
            for verdict in (OK, WARNING, FAIL, SKIP)
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == 0,
            "exit_code": self.exit_code,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "dotenv": self.dotenv,
            "counts": self.counts(),
            "checks": [{"name": check.name, **asdict(check)} for check in self.checks],
        }

    def as_text(self) -> str:
        width = max(len(check.name) for check in self.checks)
        lines = []
        for check in self.checks:
            line = f"{check.verdict:<7} {check.name:<{width}}  {check.detail}"
            if check.fix:
                line += f"  -> fix: {check.fix}"
            lines.append(line)
        counts = self.counts()
        lines.append(
            f"{counts[FAIL]} failed, {counts[WARNING]} warning(s), {counts[OK]} ok,"
            f" {counts[SKIP]} skipped in {self.elapsed_seconds:.1f} s"
        )
        return "\n".join(lines) + "\n"


class _Group:
    """Checks of one host, run in a daemon thread (abandoned when the budget is spent)."""

    def __init__(self, run: Callable[[], list[Check]], late: list[Check]) -> None:
        self.result: list[Check] | None = None
        self.late = late  # reported instead when the group does not finish in time
        self.thread = threading.Thread(target=self._run, args=(run,), daemon=True)
        self.thread.start()

    def _run(self, run: Callable[[], list[Check]]) -> None:
        try:
            self.result = run()
        except Exception as exc:  # a doctor bug must not hide the other checks
            self.result = [
                Check(
                    self.late[0].check,
                    self.late[0].subject,
                    FAIL,
                    f"the doctor's check failed: {type(exc).__name__}",
                    "report this as a bug in agent-net doctor",
                )
            ]

    def outcome(self, deadline: float) -> list[Check]:
        self.thread.join(max(0.0, deadline - time.monotonic()))
        return self.result if self.result is not None else self.late


def _late(budget: float, check: str, subject: str = "") -> list[Check]:
    detail = f"no result within the doctor's {budget:g} s budget"
    return [Check(check, subject, FAIL, detail, "the host does not answer: see its own log")]


def run_doctor(
    environ: Mapping[str, str],
    root: Path,
    dotenv_path: Path | None = None,
    budget: float = BUDGET_SECONDS,
) -> Report:
    """Every check, in order; independent hosts in parallel, all within `budget` seconds.

    Settings come from `environ` over the .env file at `dotenv_path` (if there is one),
    as compose reads them; pricing files are looked up under `root`.
    """
    started = time.monotonic()
    deadline = started + budget
    dotenv = None
    if dotenv_path is not None and dotenv_path.is_file():
        dotenv = str(dotenv_path)
        try:
            environ = environ_with_dotenv(environ, dotenv_path)
        except DotenvError as exc:
            fix = "write that line as NAME=value (compose refuses the file too)"
            checks = [Check("settings", "", FAIL, str(exc), fix)]
            return Report(checks, time.monotonic() - started, dotenv)
    settings_check, settings = check_settings(environ)
    nvml = _Group(check_nvml, _late(budget, "nvml"))
    pricing = _Group(lambda: [check_pricing(root)], _late(budget, "pricing"))
    checks = [settings_check]
    if settings is None:
        checks += nvml.outcome(deadline)
        checks.append(Check("ollama", "", SKIP, "not checked: the settings are invalid"))
        checks.append(Check("worker", "", SKIP, "not checked: the settings are invalid"))
        checks += pricing.outcome(deadline)
        return Report(_scrub(checks, environ, None), time.monotonic() - started, dotenv)
    ollama = _Group(lambda: check_ollama(settings), _late(budget, "ollama"))
    readyz: list[dict[str, Any] | None] = [None]

    def worker_checks() -> list[Check]:
        found, readyz[0] = check_worker(settings)
        if any(check.check == "worker" and check.verdict == OK for check in found):
            found += check_gpu_actions(settings)
        return found

    worker = _Group(worker_checks, _late(budget, "worker"))
    orchestrators = [
        _Group(
            lambda url=url: check_orchestrator(settings, url), _late(budget, "orchestrator", url)
        )
        for url in settings.orch_urls
    ]
    checks += nvml.outcome(deadline)
    checks += ollama.outcome(deadline)
    worker_found = worker.outcome(deadline)
    checks += worker_found
    for group in orchestrators:
        checks += group.outcome(deadline)
    answers = any(check.check == "worker" and check.verdict == OK for check in worker_found)
    checks += check_registration(settings, readyz[0], answers)
    checks += pricing.outcome(deadline)
    return Report(_scrub(checks, environ, settings), time.monotonic() - started, dotenv)


def _scrub(
    checks: list[Check], environ: Mapping[str, str], settings: Settings | None
) -> list[Check]:
    """Replace every secret value in the report with *** (they should never get there)."""
    secrets = {environ.get("ORCH_SECRET", ""), environ.get("WORKER_TOKEN", "")}
    if settings is not None:
        for secret in (settings.orchestrator_secret, settings.job_token):
            if secret is not None:
                secrets.add(secret.get_secret_value())
    secrets = {secret for secret in secrets if len(secret) >= 4}

    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return [
        Check(c.check, c.subject, c.verdict, clean(c.detail) or "", clean(c.fix)) for c in checks
    ]
