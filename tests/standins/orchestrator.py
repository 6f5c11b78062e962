"""A go-livepeer orchestrator stand-in for BYOC capability workers (standard library only).

It enforces what go-livepeer (byoc/job_orchestrator.go, core/external_capabilities.go,
core/ai_orchestrator.go) does with a worker:

- `POST /capability/register`: `Authorization` must equal the secret exactly (no
  "Bearer "), else `400 invalid authorization`. The body is decoded like Go's
  encoding/json into `core.ExternalCapability` (keys case-insensitive, unknown keys
  ignored, a wrong JSON type fails the whole registration with
  `400 Error registering capability: json: cannot unmarshal ...`). A currency other
  than "", "wei" or "eth" panics in go-livepeer without a price feed: the stand-in drops
  the connection without an answer. Registering a name again replaces it (load reset).
- `POST /capability/unregister`: the body is the name as plain text; always `200 ok`.
- `POST /process/request/<route>`: reads the base64 JSON `Livepeer` header, finds the
  capability by its `capability` field and forwards `POST <url>/<route>` with the body,
  `Content-Type` and `Authorization: Bearer <token>`. It forgets the capability when the
  worker cannot be reached (except a timeout) or answers 401, passes an error status back
  as Go's `http.Error` does (text/plain), and copies `Content-Type` and `X-Metadata`.
  A worker answer whose Content-Type contains `text/event-stream` is relayed line by
  line as it arrives (bufio.Scanner: 64 KiB lines), `data: {"balance": 0.000}` before
  a line holding `[DONE]`, until the job's timeout_seconds or the client leaves.
- Live runners (ai/runner/live_runner.go, server/ai_http.go; off unless enabled, as
  without -useLiveRunners): `POST /runners/heartbeat`, `POST /runners/{id}/unregister`,
  `GET /discovery` and the single-shot proxy `ANY /apps/{id}/app/{path}`, with the
  heartbeat TTL and expiry loop. Persistent sessions, trickle and payments are not
  emulated (501). See docs/live-runner-protocol.md.
- Everything lives in memory: a restart forgets it all.

Tests and operators can watch it: `GET /_standin/capabilities` lists what is registered
(never a token) with call counts and removals, `GET /_standin/jobs` the forwarded jobs,
`GET /_standin/live-runners` the runners and every heartbeat (never a secret). Run it:

    python tests/standins/orchestrator.py --port 8935 --self-signed --secret-env ORCH_SECRET
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import copy
import hashlib
import hmac
import http.client
import json
import logging
import os
import posixpath
import queue
import re
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger("standin.orchestrator")

MAX_BODY = 16 * 1024 * 1024
PROCESS_PREFIX = "/process/request/"
FIXED_PRICE_CURRENCIES = ("", "wei", "eth")


@dataclass(frozen=True)
class GoStruct:
    """A Go struct type for the decoder: its qualified name and {json key: Go type}.

    `pointer` makes JSON null decode to None; `index_shortcut` is LiveRunnerGPU's
    UnmarshalJSON (a bare integer is a device index, anything else decodes as gpuAlias).
    """

    name: str
    fields: dict[str, GoType]
    pointer: bool = False
    index_shortcut: bool = False


# A Go type: "string", "int", "int64", "bool", "json.Number", "time.Duration", "[]string"
# or a GoStruct. The order of a struct's fields is the Go struct's field order.
GoType = str | GoStruct

EXTERNAL_CAPABILITY: dict[str, GoType] = {
    "name": "string",
    "description": "string",
    "url": "string",
    "capacity": "int",
    "price_per_unit": "int64",
    "price_scaling": "int64",
    "currency": "string",
    "token": "string",
}
JOB_REQUEST: dict[str, GoType] = {
    "id": "string",
    "request": "string",
    "parameters": "string",
    "capability": "string",
    "capability_url": "string",
    "sender": "string",
    "sig": "string",
    "timeout_seconds": "int",
    "OrchSearchTimeout": "time.Duration",
    "OrchSearchRespTimeout": "time.Duration",
}
JOB_REQUEST_DETAILS: dict[str, GoType] = {"stream_id": "string"}
# ai/runner/live_runner.go (v0.9.1) lines 76-141.
LIVE_RUNNER_GPU = GoStruct(
    "runner.LiveRunnerGPU",
    {"id": "string", "name": "string", "vram_mb": "int"},
    pointer=True,
    index_shortcut=True,
)
LIVE_RUNNER_PRICE_INFO = GoStruct(
    "runner.LiveRunnerPriceInfo",
    {"price": "json.Number", "currency": "string", "unit": "string"},
)
LIVE_RUNNER_HEARTBEAT_REQUEST: dict[str, GoType] = {
    "runner_id": "string",
    "label": "string",
    "proxy": "bool",
    "runner_url": "string",
    "version": "string",
    "metadata": "string",
    "status": "string",
    "mode": "string",
    "gpu": LIVE_RUNNER_GPU,
    "app": "string",
    "capacity": "int",
    "price_info": LIVE_RUNNER_PRICE_INFO,
    "session_ids": "[]string",
}
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER_TYPES = ("int", "int64", "time.Duration")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")


# --- Go encoding/json, as far as these structs need it ------------------------------------
class GoJSONError(ValueError):
    """What Go's json.Unmarshal (or json.Decoder.Decode) would return, with Go's message."""


class _Number(str):
    """A JSON number kept as its literal text, as Go sees it."""


class _Object(list):
    """A JSON object kept as ordered (key, value) pairs, duplicates included."""


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


def _kind(value: Any) -> str:
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return "number"
    return "string"


def _fold(text: str) -> str:
    # Go's foldName: each rune through ToUpper then ToLower (so U+017F matches 's').
    return "".join(ch.upper().lower() if len(ch.upper()) == 1 else ch for ch in text)


def _zero(go_type: GoType) -> Any:
    if isinstance(go_type, GoStruct):
        return None if go_type.pointer else {k: _zero(t) for k, t in go_type.fields.items()}
    if go_type in _INTEGER_TYPES:
        return 0
    if go_type == "bool":
        return False
    if go_type == "[]string":
        return None
    return ""


class _Decoding:
    """One decode: Go keeps the first type error and carries on (saveError)."""

    def __init__(self) -> None:
        self.first: tuple[str, str, list[str], str] | None = None

    def type_error(self, value: str, owner: GoStruct, path: list[str], go_type: str) -> None:
        if self.first is None:
            self.first = (value, owner.name.rsplit(".", 1)[-1], path, go_type)

    def raise_first(self) -> None:
        if self.first is not None:
            value, owner, path, go_type = self.first
            raise GoJSONError(
                f"json: cannot unmarshal {value} into Go struct field"
                f" {owner}.{'.'.join(path)} of type {go_type}"
            )


def _decode_struct(
    obj: _Object, struct: GoStruct, path: list[str], state: _Decoding
) -> dict[str, Any]:
    result: dict[str, Any] = {key: _zero(kind) for key, kind in struct.fields.items()}
    exact = {key: key for key in struct.fields}
    folded = {_fold(key): key for key in struct.fields}
    for key, item in obj:
        field = exact.get(key) or folded.get(_fold(key))
        if field is not None:
            result[field] = _decode_value(
                item, struct.fields[field], struct, [*path, field], state, result[field]
            )
    return result


def _decode_value(
    item: Any, go_type: GoType, owner: GoStruct, path: list[str], state: _Decoding, current: Any
) -> Any:
    if item is None:
        return None if isinstance(go_type, GoStruct) and go_type.pointer else current
    if isinstance(go_type, GoStruct):
        if go_type.index_shortcut:
            return _decode_gpu(item, go_type, owner, path)
        if isinstance(item, _Object):
            return _decode_struct(item, go_type, path, state)
        state.type_error(_kind(item), owner, path, go_type.name)
        return current
    if go_type == "string":
        if isinstance(item, str) and not isinstance(item, _Number):
            return _SURROGATE.sub("\ufffd", item)  # Go decodes lone surrogates as U+FFFD
        state.type_error(_kind(item), owner, path, go_type)
        return current
    if go_type == "bool":
        if isinstance(item, bool):
            return item
        state.type_error(_kind(item), owner, path, go_type)
        return current
    if go_type == "json.Number":
        if isinstance(item, _Number):
            return str(item)
        if isinstance(item, str):
            if not _JSON_NUMBER.fullmatch(item):  # a hard error: it ends the decode at once
                raise GoJSONError(
                    "json: invalid number literal, trying to unmarshal"
                    f" {json.dumps(json.dumps(item))} into Number"
                )
            return item
        state.type_error(_kind(item), owner, path, go_type)
        return current
    if go_type == "[]string":
        if isinstance(item, list) and not isinstance(item, _Object):
            values = []
            for element in item:
                if element is None:
                    values.append("")
                elif isinstance(element, str) and not isinstance(element, _Number):
                    values.append(element)
                else:
                    state.type_error(_kind(element), owner, path, "string")
                    values.append("")
            return values
        state.type_error(_kind(item), owner, path, go_type)
        return current
    # Integers.
    if isinstance(item, _Number):
        try:
            number = int(item)
        except ValueError:
            number = None
        if number is not None and _INT64[0] <= number <= _INT64[1]:
            return number
        state.type_error(f"number {item}", owner, path, go_type)
        return current
    state.type_error(_kind(item), owner, path, go_type)
    return current


def _decode_gpu(item: Any, gpu: GoStruct, owner: GoStruct, path: list[str]) -> dict[str, Any]:
    # LiveRunnerGPU.UnmarshalJSON: an int is a device index (ghw then looks up the name,
    # which this stand-in cannot: only the id is set); else json.Unmarshal into gpuAlias.
    # Its error is returned at once, with the outer struct's context.
    if isinstance(item, _Number):
        with contextlib.suppress(ValueError):
            index = int(item)
            if _INT64[0] <= index <= _INT64[1]:
                return {"id": str(index), "name": "", "vram_mb": 0}
    alias = GoStruct("runner.gpuAlias", gpu.fields)
    if not isinstance(item, _Object):
        raise GoJSONError(
            f"json: cannot unmarshal {_kind(item)} into Go struct field"
            f" {owner.name.rsplit('.', 1)[-1]}.{'.'.join(path)} of type runner.gpuAlias"
        )
    inner = _Decoding()
    result = _decode_struct(item, alias, [], inner)
    if inner.first is not None:
        value, _, inner_path, go_type = inner.first
        inner.first = (value, owner.name.rsplit(".", 1)[-1], [*path, *inner_path], go_type)
        inner.raise_first()
    return result


def _parse_json(text: str, stream: bool) -> Any:
    decoder = json.JSONDecoder(
        parse_int=_Number,
        parse_float=_Number,
        parse_constant=_reject_constant,
        object_pairs_hook=_Object,
    )
    stripped = text.lstrip()
    if not stripped:
        raise GoJSONError("EOF" if stream else "unexpected end of JSON input")
    try:
        if stream:  # json.Decoder.Decode: the first value; whatever follows is not read
            return decoder.raw_decode(stripped)[0]
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        source = stripped if stream else text
        if exc.pos >= len(source.rstrip()):
            raise GoJSONError(
                "unexpected EOF" if stream else "unexpected end of JSON input"
            ) from None
        raise GoJSONError(
            f"invalid character {source[exc.pos]!r} looking for beginning of value"
        ) from None


def go_unmarshal(
    data: bytes, struct: str, fields: dict[str, GoType], stream: bool = False
) -> dict[str, Any]:
    """Decode `data` into a Go struct like json.Unmarshal, or raise GoJSONError.

    `struct` is the Go type name ("core.ExternalCapability"); missing fields and nulls
    keep their zero value, unknown keys are ignored, the first type error wins.
    `stream=True` is json.NewDecoder(body).Decode: "EOF" for an empty body, and
    anything after the first JSON value ignored.
    """
    value = _parse_json(data.decode("utf-8", errors="replace"), stream)
    target = GoStruct(struct, fields)
    if value is None:
        return {key: _zero(kind) for key, kind in fields.items()}
    if not isinstance(value, _Object):
        raise GoJSONError(f"json: cannot unmarshal {_kind(value)} into Go value of type {struct}")
    state = _Decoding()
    result = _decode_struct(value, target, [], state)
    state.raise_first()
    return result


# --- The orchestrator's memory -------------------------------------------------------------
class CapabilityStore:
    """Registered capabilities (go-livepeer's ExternalCapabilities) plus counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._capabilities: dict[str, dict[str, Any]] = {}
        self.counts: Counter[str] = Counter()
        self.removed: list[dict[str, Any]] = []
        self.started_at = time.time()
        self._jobs: list[dict[str, Any]] = []

    def register(self, capability: dict[str, Any]) -> bool:
        """Store (or replace, load reset) the capability; True when the name was new."""
        entry = dict(capability, load=0, registered_at=time.time())
        if entry["price_scaling"] == 0:
            entry["price_scaling"] = 1
        with self._lock:
            new = entry["name"] not in self._capabilities
            self._capabilities[entry["name"]] = entry
            self.counts["register_ok"] += 1
            return new

    def remove(self, name: str, reason: str) -> None:
        with self._lock:
            existed = self._capabilities.pop(name, None) is not None
            self.removed.append(
                {"name": name, "reason": reason, "existed": existed, "at": time.time()}
            )

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._capabilities.get(name)
            return None if entry is None else dict(entry)

    def reserve(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._capabilities.get(name)
            if entry is None:
                return None
            entry["load"] += 1
            return dict(entry)

    def free(self, name: str) -> None:
        with self._lock:
            entry = self._capabilities.get(name)
            if entry is not None:
                entry["load"] -= 1

    def count(self, event: str) -> None:
        with self._lock:
            self.counts[event] += 1

    def forget_all(self) -> None:
        """What a restart does to capabilities: all gone (counters and records stay)."""
        with self._lock:
            for name in list(self._capabilities):
                self._capabilities.pop(name)
                self.removed.append(
                    {"name": name, "reason": "restart", "existed": True, "at": time.time()}
                )

    def new_job(self, **fields: Any) -> dict[str, Any]:
        """Start the record of one forwarded job (see `jobs()`)."""
        job = {
            "started_at": time.time(),
            "worker_status": None,
            "content_type": None,
            "streamed": False,
            "lines": [],
            "done_seen": False,
            "balance_lines": 0,
            "worker_eof": False,
            "scanner_error": None,
            "end_reason": None,
            "ended_at": None,
            **fields,
        }
        with self._lock:
            self._jobs.append(job)
        return job

    def update_job(self, job: dict[str, Any], **fields: Any) -> None:
        with self._lock:
            job.update(fields)

    def add_line(self, job: dict[str, Any], line: bytes, done: bool) -> None:
        with self._lock:
            job["lines"].append({"line": line.decode("utf-8", "replace"), "at": time.time()})
            if done:
                job["done_seen"] = True
                job["balance_lines"] += 1

    def jobs(self) -> list[dict[str, Any]]:
        """Every job forwarded so far, oldest first: worker status, Content-Type, and for
        a streamed job each worker line relayed with its arrival time (`at`, time.time()),
        whether a [DONE] line was seen, how the relay ended ("timeout", "client_gone",
        or "complete" for a whole-body answer) and any bufio.Scanner error."""
        with self._lock:
            return copy.deepcopy(self._jobs)

    def view(self) -> dict[str, Any]:
        """Everything a test may look at; tokens appear only as `has_token`."""
        with self._lock:
            capabilities = [
                {
                    **{k: v for k, v in entry.items() if k != "token"},
                    "has_token": bool(entry["token"]),
                }
                for entry in self._capabilities.values()
            ]
            return {
                "capabilities": capabilities,
                "counts": dict(self.counts),
                "removed": list(self.removed),
                "started_at": self.started_at,
                "pid": os.getpid(),
            }


# --- Live runners (ai/runner/live_runner.go at v0.9.1) -----------------------------------
DEFAULT_HEARTBEAT_INTERVAL = "5s"  # live_runner.go:30
DEFAULT_HEARTBEAT_TTL = "20s"  # live_runner.go:31
MAX_METADATA_BYTES = 1024  # live_runner.go:40
_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_DURATION_UNITS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
GO_PATH_SAFE = "-_.~$&+,/:;=@"  # what URL.EscapedPath leaves as it is
GO_SEGMENT_SAFE = "-_.~$&+:=@"  # what url.PathEscape leaves as it is
_PRICE_UNIT_DIVISOR = {"hour": 3600, "720p": 3600 * 1280 * 720 * 30, "fixed": 1}
_CONVERTED_PRICE_UNIT = {"hour": "seconds", "720p": "720p-pixel-seconds", "fixed": "fixed"}
WEI_PER_ETH = 10**18


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration ("200ms", "1m30s") as nanoseconds; ValueError if invalid."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    total, position = Fraction(0), 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {json.dumps(text)}")
        total += Fraction(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body:
        raise ValueError(f"time: invalid duration {json.dumps(text)}")
    return -int(total) if text.startswith("-") else int(total)


def format_go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String(): "5s", "200ms", "1m30s", "1.5µs", "0s"."""

    def fraction(value: int, scale: int) -> str:
        whole, rest = divmod(value, scale)
        digits = str(rest).rjust(len(str(scale)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if nanoseconds == 0:
        return "0s"
    sign, value = ("-" if nanoseconds < 0 else ""), abs(nanoseconds)
    if value < 10**3:
        return f"{sign}{value}ns"
    if value < 10**6:
        return f"{sign}{fraction(value, 10**3)}µs"
    if value < 10**9:
        return f"{sign}{fraction(value, 10**6)}ms"
    text = fraction(value % (60 * 10**9), 10**9) + "s"
    minutes = value // (60 * 10**9)
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _duration_ns(value: str | float) -> int:
    return parse_go_duration(value) if isinstance(value, str) else round(value * 10**9)


def _random_str(n: int) -> str:
    # randomStr (live_runner.go:1649): lower-case unpadded base32 of n random bytes.
    return base64.b32encode(secrets.token_bytes(n)).decode().rstrip("=").lower()


def derive_secret(seed: bytes, label: str) -> str:
    """deriveSecret (live_runner.go:1697): lower-case unpadded base32 of HMAC-SHA256."""
    digest = hmac.new(seed, label.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()


def _valid_secret(got: str, want: str) -> bool:
    # hmac.Equal on the raw header bytes (http.server decodes headers as latin-1).
    return hmac.compare_digest(got.encode("latin-1", "replace"), want.encode())


def _go_url_error(raw: str) -> bool:
    """True where Go's url.ParseRequestURI fails or gives no host or a non-http(s) scheme."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        return True
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", raw, re.DOTALL)
    if match is None or match.group(1).lower() not in ("http", "https"):
        return True
    rest = match.group(2)
    if not rest.startswith("//"):
        return True
    authority = re.split(r"[/?]", rest[2:], maxsplit=1)[0].rpartition("@")[2]
    if not authority:
        return True
    if authority.startswith("["):
        host, _, port = authority.partition("]")
        port = port[1:] if port.startswith(":") else ("" if not port else "x")
    else:
        host, _, port = authority.partition(":")
    return not re.fullmatch(r"[0-9]*", port) or " " in host


def _join_url(base: str, *segments: str) -> str:
    """url.URL.JoinPath(...).String() for plain segments (escaped as a Go path)."""
    path = "/".join(quote(segment, safe=GO_PATH_SAFE) for segment in segments)
    return base.rstrip("/") + "/" + path


def _go_float_string(value: Fraction, places: int) -> str:
    """big.Rat.FloatString: rounded half away from zero to `places` decimals."""
    scaled = abs(value) * 10**places
    whole = int(scaled)
    if scaled - whole >= Fraction(1, 2):
        whole += 1
    sign = "-" if value < 0 and whole else ""
    if places == 0:
        return f"{sign}{whole}"
    digits = str(whole).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


class RunnerError(Exception):
    """runner.RunnerError: an HTTP status and the text http.Error sends."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LiveRunnerRegistry:
    """Dynamic live-runner registration as go-livepeer's LiveRunnerRegistry does it.

    Times are time.monotonic() inside; records carry time.time() as `at`. Secrets (the
    heartbeat secret, session tokens) never appear in `view()` or the records.
    """

    def __init__(
        self,
        secret: str,
        service_uri: str,
        live_runner_uri: str,
        heartbeat_interval: str | float = DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_ttl: str | float = DEFAULT_HEARTBEAT_TTL,
        onchain: bool = False,
        usd_per_eth: float | None = None,
        enabled: bool = False,
    ) -> None:
        self.secret = secret
        self.service_uri = service_uri.rstrip("/")
        self.live_runner_uri = live_runner_uri.rstrip("/")
        self.interval_ns = _duration_ns(heartbeat_interval)
        self.ttl_ns = _duration_ns(heartbeat_ttl)
        if self.interval_ns <= 0:
            raise ValueError("the heartbeat interval must be positive")
        self.onchain = onchain
        self.usd_per_eth = None if usd_per_eth is None else Fraction(str(usd_per_eth))
        self.enabled = enabled
        self._lock = threading.RLock()
        self._runners: dict[str, dict[str, Any]] = {}
        self._issued: set[str] = set()
        self.heartbeats: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.proxied: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # Lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Run the expiry loop (live_runner.go:1384): every heartbeat interval."""
        self._sweeper = threading.Thread(target=self._expiry_loop, name="expiry", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    def _expiry_loop(self) -> None:
        while not self._stop.wait(self.interval_ns / 1e9):
            self.remove_expired()

    def remove_expired(self) -> None:
        """removeExpiredRunners: forget (delete) every runner past its TTL."""
        with self._lock:
            for runner_id, runner in list(self._runners.items()):
                if self._expired(runner):
                    self._remove(runner_id, "heartbeat timeout")

    def forget_all(self, reason: str) -> None:
        with self._lock:
            for runner_id in list(self._runners):
                self._remove(runner_id, reason)

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            if not enabled:
                self.forget_all("live runners disabled")
            self.enabled = enabled

    def _remove(self, runner_id: str, reason: str) -> None:
        runner = self._runners.pop(runner_id)
        runner["removed"] = True
        runner["sessions"].clear()
        self.events.append({"event": "removed", "runner_id": runner_id, "reason": reason})
        self.events[-1]["at"] = time.time()
        log.info("live_runner_deregistered runner_id=%s reason=%s", runner_id, reason)

    def _expired(self, runner: dict[str, Any]) -> bool:
        # liveRunnerExpiredLocked (live_runner.go:1379): now - LastHeartbeat > TTL.
        return (time.monotonic() - runner["last_heartbeat"]) * 1e9 > self.ttl_ns

    # Heartbeats -------------------------------------------------------------------------
    def secret_kind(self, auth: str) -> str:
        """Which credential an Authorization value is: orch, heartbeat, none or unknown."""
        if not auth:
            return "none"
        if _valid_secret(auth, self.secret):
            return "orch"
        with self._lock:
            return "heartbeat" if auth in self._issued else "unknown"

    def record(self, body: bytes, auth: str, status: int, answer: Any) -> None:
        """Keep one heartbeat request (body, secret kind, time, answer) for the tests."""
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", errors="replace")
        entry = {
            "at": time.time(),
            "body": parsed,
            "secret": self.secret_kind(auth),
            "status": status,
            "runner_id": parsed.get("runner_id") if isinstance(parsed, dict) else None,
        }
        if isinstance(answer, dict):
            entry["response_runner_id"] = answer.get("runner_id")
            entry["secret_returned"] = "heartbeat_secret" in answer
        else:
            entry["error"] = answer
        with self._lock:
            self.heartbeats.append(entry)

    def heartbeat(self, request: dict[str, Any], auth: str) -> dict[str, Any]:
        """Heartbeat (live_runner.go:371): register or refresh; RunnerError on refusal."""
        runner_id = request["runner_id"].strip()
        if not runner_id:
            runner_id = "runner_" + _random_str(5)
        request = self._normalize(runner_id, request)  # 400 before any authorization
        with self._lock:
            runner = self._runners.get(runner_id)
            if runner is None:
                if not self.secret:
                    raise RunnerError(404, "dynamic live runner registration is disabled")
                if not _valid_secret(auth, self.secret):
                    raise RunnerError(401, "invalid registration authorization")
                seed = secrets.token_bytes(32)
                runner = {
                    "seed": seed,
                    "heartbeat_secret": derive_secret(seed, "heartbeat"),
                    "request": request,
                    "last_heartbeat": time.monotonic(),
                    "registered_at": time.time(),
                    "heartbeat_count": 1,
                    "removed": False,
                    "sessions": {},
                }
                self._runners[runner_id] = runner
                self._issued.add(runner["heartbeat_secret"])
                self.events.append({"event": "registered", "runner_id": runner_id})
                self.events[-1]["at"] = time.time()
                log.info(
                    "live_runner_registered runner_id=%s app=%s runner_url=%s",
                    runner_id,
                    request["app"],
                    request["runner_url"],
                )
                channel = f"{runner_id}-{derive_secret(seed, 'trickle:o2r')[:16]}-o2r"
                return self._answer(
                    runner_id,
                    runner,
                    heartbeat_secret=runner["heartbeat_secret"],
                    o2r={
                        "name": "o2r",
                        "channel_name": channel,
                        "url": _join_url(self.live_runner_uri, "ai", "trickle", channel),
                        "mime_type": "application/json",
                    },
                )
            if runner["removed"] or self._expired(runner):
                raise RunnerError(404, "runner not found")
            if not _valid_secret(auth, runner["heartbeat_secret"]):
                raise RunnerError(401, "invalid heartbeat authorization")
            runner["request"] = request
            runner["last_heartbeat"] = time.monotonic()
            runner["heartbeat_count"] += 1
            return self._answer(runner_id, runner)

    def _answer(self, runner_id: str, runner: dict[str, Any], **first: Any) -> dict[str, Any]:
        # LiveRunnerHeartbeatResponse, fields in Go's order; session_ids by creation time.
        answer: dict[str, Any] = {
            "runner_id": runner_id,
            "orchestrator": self.live_runner_uri,
            "heartbeat_interval": format_go_duration(self.interval_ns),
            "heartbeat_ttl": format_go_duration(self.ttl_ns),
        }
        if "heartbeat_secret" in first:
            answer["heartbeat_secret"] = first["heartbeat_secret"]
            answer["o2r"] = first["o2r"]
        sessions = sorted(runner["sessions"].items(), key=lambda item: (item[1], item[0]))
        answer["session_ids"] = [session_id for session_id, _ in sessions]
        return answer

    def _normalize(self, runner_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """normalizeHeartbeat (live_runner.go:858), in its order; RunnerError 400."""
        request = dict(request)

        def bad(message: str) -> RunnerError:
            return RunnerError(400, message)

        if _go_url_error(request["runner_url"]):
            raise bad("invalid runner_url")
        if not request["app"] or request["app"] != request["app"].strip():
            raise bad("app must be trimmed")
        if len(request["metadata"].encode()) > MAX_METADATA_BYTES:
            raise bad(f"metadata must be at most {MAX_METADATA_BYTES} bytes")
        if "\ufffd" in request["metadata"]:
            raise bad("metadata must not contain Unicode replacement character U+FFFD")
        if request["status"] != request["status"].strip().lower():
            raise bad("status must be lowercase and trimmed")
        mode = request["mode"] or "persistent"
        mode = "single-shot" if mode == "single_shot" else mode
        if mode not in ("persistent", "single-shot"):
            raise bad('mode must be "persistent" or "single-shot"')
        request["mode"] = mode
        if request["capacity"] < 0:
            raise bad("capacity must be >= 0")
        request["capacity"] = request["capacity"] or 1
        request["runner_id"] = runner_id
        if self.onchain:
            request["price_info"] = self._normalize_price(request["price_info"])
        return request

    @staticmethod
    def _normalize_price(price_info: dict[str, Any]) -> dict[str, Any]:
        # normalizeLiveRunnerPriceInfo (live_runner.go:88-125), on chain only.
        price = price_info["price"].strip()
        if not price:
            raise RunnerError(400, "price_info.price is required")
        try:
            positive = Fraction(price) > 0
        except (ValueError, ZeroDivisionError):
            positive = False
        if not positive:
            raise RunnerError(400, "price_info.price must be a positive decimal")
        currency = price_info["currency"].strip().lower() or "usd"
        if currency != "usd":
            raise RunnerError(400, "price_info.currency must be usd")
        unit = price_info["unit"].strip().lower() or "hour"
        if unit not in _PRICE_UNIT_DIVISOR:
            raise RunnerError(400, "price_info.unit must be hour, 720p, or fixed")
        return {**price_info, "currency": currency, "unit": unit}

    def unregister(self, runner_id: str, auth: str) -> None:
        """Unregister (live_runner.go:920): 404, then 401, else forget the runner."""
        with self._lock:
            runner = self._runners.get(runner_id)
            if runner is None or runner["removed"] or self._expired(runner):
                raise RunnerError(404, "runner not found")
            if not _valid_secret(auth, runner["heartbeat_secret"]):
                raise RunnerError(401, "invalid authorization")
            self._remove(runner_id, "unregister")

    # Discovery and sessions -------------------------------------------------------------
    def _routable(self, runner_id: str) -> dict[str, Any]:
        # lockLiveRunner + isReadyStatus: all "runner not found".
        runner = self._runners.get(runner_id)
        if runner is None or runner["removed"] or self._expired(runner):
            raise RunnerError(404, "runner not found")
        if runner["request"]["status"] not in ("", "ready"):
            raise RunnerError(404, "runner not found")
        return runner

    def _converted_price(self, request: dict[str, Any]) -> dict[str, Any] | None:
        # convertPrice: USD through the price feed to wei, truncated (PriceToInt64).
        if not self.onchain or self.usd_per_eth is None:
            return None
        unit = request["price_info"]["unit"]
        usd = Fraction(request["price_info"]["price"]) / _PRICE_UNIT_DIVISOR[unit]
        wei = int(usd / self.usd_per_eth * WEI_PER_ETH)
        if wei <= 0:
            return None  # "converted live runner price must be at least one wei"
        return {"price": wei, "currency": "wei", "unit": _CONVERTED_PRICE_UNIT[unit]}

    def discovery(self) -> list[dict[str, Any]]:
        """GET /discovery (server/ai_http.go:881): ready, unexpired runners only."""
        entries = []
        with self._lock:
            for runner_id, runner in self._runners.items():
                request = runner["request"]
                if runner["removed"] or self._expired(runner):
                    continue
                if request["status"] not in ("", "ready"):
                    continue
                entry: dict[str, Any] = {"url": self.discovery_url(runner_id, request)}
                if request["gpu"] is not None:
                    entry["gpu"] = {k: v for k, v in request["gpu"].items() if v}
                entry["app"] = request["app"]
                for key in ("version", "metadata", "mode"):
                    if request[key]:
                        entry[key] = request[key]
                used = len(runner["sessions"])
                entry["capacity"] = request["capacity"]
                entry["capacity_used"] = used
                entry["capacity_available"] = request["capacity"] - used
                price = self._converted_price(request)
                if price is not None:
                    entry["price_info"] = price
                entries.append(entry)
        answer: dict[str, Any] = {"address": self.service_uri}
        if entries:
            answer["runners"] = entries
        return [answer]

    def discovery_url(self, runner_id: str, request: dict[str, Any]) -> str:
        # discoveryRunnerURL (live_runner.go:1345): never the runner_url.
        if request["mode"] == "single-shot" and request["proxy"]:
            return f"{self.service_uri}/run/{quote(runner_id, safe=GO_SEGMENT_SAFE)}"
        tail = "app" if request["mode"] == "single-shot" else "session"
        return _join_url(self.service_uri, "apps", runner_id, tail)

    def reserve_single_shot(self, runner_id: str) -> dict[str, str]:
        """RunnerMode, PaymentInfo, ReserveSession and the session token, as
        ProxyLiveRunnerSingleShot (server/ai_http.go:755) calls them."""
        with self._lock:
            runner = self._routable(runner_id)
            request = runner["request"]
            if request["mode"] != "single-shot":
                raise RunnerError(400, "runner is not single-shot")
            if self.onchain:
                if self._converted_price(request) is None:
                    raise RunnerError(
                        503, "live runner price unavailable: price_info.price is required"
                    )
                raise RunnerError(402, "stand-in: on-chain payments are not emulated")
            if len(runner["sessions"]) >= request["capacity"]:
                raise RunnerError(503, "no capacity available for runner")
            session_id = "session_" + _random_str(5)
            while session_id in runner["sessions"]:
                session_id = "session_" + _random_str(5)
            runner["sessions"][session_id] = time.monotonic()
            return {
                "session_id": session_id,
                "token": derive_secret(runner["seed"], "session:" + session_id),
                "runner_url": request["runner_url"],
                "control": _join_url(
                    self.live_runner_uri, "runner", runner_id, "session", session_id
                ),
            }

    def release(self, runner_id: str, session_id: str) -> None:
        with self._lock:
            runner = self._runners.get(runner_id)
            if runner is not None:
                runner["sessions"].pop(session_id, None)

    def single_shot_proxy_route(self, route: str) -> bool:
        """ResolveSessionProxy's runner-level case: a proxy: true single-shot runner."""
        with self._lock:
            runner = self._runners.get(route)
            return (
                runner is not None
                and not runner["removed"]
                and runner["request"]["proxy"]
                and runner["request"]["mode"] == "single-shot"
            )

    def view(self) -> dict[str, Any]:
        """The registry as tests see it: no heartbeat secret, no seed, no session token."""
        with self._lock:
            now = time.monotonic()
            runners = []
            for runner_id, runner in self._runners.items():
                runners.append(
                    {
                        "runner_id": runner_id,
                        **copy.deepcopy(runner["request"]),
                        "registered_at": runner["registered_at"],
                        "seconds_since_heartbeat": now - runner["last_heartbeat"],
                        "heartbeat_count": runner["heartbeat_count"],
                        "expired": self._expired(runner),
                        "sessions": list(runner["sessions"]),
                    }
                )
            return {
                "enabled": self.enabled,
                "onchain": self.onchain,
                "heartbeat_interval": format_go_duration(self.interval_ns),
                "heartbeat_ttl": format_go_duration(self.ttl_ns),
                "runners": runners,
                "heartbeats": copy.deepcopy(self.heartbeats),
                "events": copy.deepcopy(self.events),
                "proxied": copy.deepcopy(self.proxied),
            }


# --- HTTP -------------------------------------------------------------------------------
MAX_SCAN_TOKEN = 64 * 1024  # bufio.MaxScanTokenSize: a line of 65536 bytes or more fails
HOP_BY_HOP = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_FORWARDED = {"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"}
_INJECTED = {
    "livepeer-runner-route",
    "livepeer-session-id",
    "livepeer-session-token",
    "livepeer-session-control",
}
_APPS = re.compile(r"/apps/([^/]+)/app(/.*)?")
_RUN = re.compile(r"/run/([^/]+)(/.*)?")
_UNREGISTER = re.compile(r"/runners/([^/]+)/unregister")
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError)


class _ClientGone(Exception):
    """The client closed its connection while a response was being streamed."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin-orchestrator"
    timeout = 60
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("access %s %s", self.address_string(), format % args)

    # Responses -------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _go_error(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        """Go's http.Error: text/plain, nosniff, the message and a newline."""
        self._send(
            status,
            (text + "\n").encode(),
            "text/plain; charset=utf-8",
            {"X-Content-Type-Options": "nosniff", **(headers or {})},
        )

    def _go_json(self, payload: Any) -> None:
        # respondJsonOk: json.Marshal (compact, <>& escaped as Go does) with a 200.
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        self._send(200, text.encode(), "application/json")

    def _start_chunked(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        """Write one chunk at once (what a Go handler's Write + Flush puts on the wire)."""
        if not data:
            return
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except (*_CLIENT_GONE, OSError) as exc:
            self.close_connection = True
            raise _ClientGone from exc

    def _end_chunked(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(b"0\r\n\r\n")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length)

    # Routing ---------------------------------------------------------------------------
    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._go_error(400, "Error reading request body")
            return
        path = urlsplit(self.path).path
        if path == "/capability/register":
            self._register(body)
        elif path == "/capability/unregister":
            self._unregister(body)
        elif path.startswith(PROCESS_PREFIX):
            self._process(path, body)
        elif path == "/runners/heartbeat":
            self._runner_heartbeat(body)
        elif match := _UNREGISTER.fullmatch(path):
            self._runner_unregister(unquote(match.group(1)))
        elif path == "/discovery":
            self._discovery()
        elif match := _APPS.fullmatch(path):
            self._single_shot(unquote(match.group(1)), match.group(2), body)
        elif (match := _RUN.fullmatch(path)) and self.server.live.single_shot_proxy_route(
            unquote(match.group(1)).lower()
        ):
            # The default -liveRunnerProxyUrl {service}/run/{proxy}: a proxy: true
            # single-shot runner is served as /apps/{route}/app/{path} (ai_http.go:824).
            self._single_shot(unquote(match.group(1)).lower(), match.group(2) or "/", body)
        elif path.startswith(("/apps/", "/runner/")):
            self._go_error(501, "stand-in: live-runner sessions are not emulated")
        elif path == "/_standin/capabilities" and self.command == "GET":
            self._send(200, json.dumps(self.server.store.view()).encode(), "application/json")
        elif path == "/_standin/jobs" and self.command == "GET":
            self._send(200, json.dumps(self.server.store.jobs()).encode(), "application/json")
        elif path == "/_standin/live-runners" and self.command == "GET":
            self._send(200, json.dumps(self.server.live.view()).encode(), "application/json")
        else:
            self._go_error(404, "404 page not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _mux_method(self, *allowed: str) -> bool:
        """Go 1.22 ServeMux method patterns: anything else is 405 with Allow."""
        if self.command in allowed or (self.command == "HEAD" and "GET" in allowed):
            return True
        shown = [*allowed, "HEAD"] if "GET" in allowed else list(allowed)
        self._go_error(405, "Method Not Allowed", {"Allow": ", ".join(shown)})
        return False

    def _authorised(self) -> bool:
        if self.command != "POST":
            self._go_error(405, "Method not allowed")
            return False
        if self.headers.get("Authorization", "") != self.server.secret:
            self.server.store.count("auth_rejected")
            log.warning("auth_rejected path=%s from=%s", self.path, self.client_address[0])
            self._go_error(400, "invalid authorization")
            return False
        return True

    # BYOC registration ---------------------------------------------------------------------
    def _register(self, body: bytes) -> None:
        if not self._authorised():
            return
        try:
            capability = go_unmarshal(body, "core.ExternalCapability", EXTERNAL_CAPABILITY)
        except GoJSONError as exc:
            self.server.store.count("register_rejected")
            log.warning("register_rejected error=%r", str(exc))
            self._send(400, f"Error registering capability: {exc}".encode(), "application/json")
            return
        if capability["currency"].lower() not in FIXED_PRICE_CURRENCIES:
            # go-livepeer panics ("PriceFeedWatcher is not initialized"): no answer at all.
            self.server.store.count("register_panicked")
            log.error(
                "register_panic currency=%r (go-livepeer drops the connection)",
                capability["currency"],
            )
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        new = self.server.store.register(capability)
        log.info(
            "%s capability=%s url=%s capacity=%d price=%d/%d%s token=%s",
            "registered" if new else "re_registered",
            capability["name"],
            capability["url"],
            capability["capacity"],
            capability["price_per_unit"],
            capability["price_scaling"] or 1,
            capability["currency"],
            "yes" if capability["token"] else "no",
        )
        self._send(200, b"ok", "application/json")

    def _unregister(self, body: bytes) -> None:
        if not self._authorised():
            return
        name = body.decode("utf-8", errors="replace")
        self.server.store.remove(name, "unregistered")
        self.server.store.count("unregister")
        log.info("unregistered capability=%s", name)
        self._send(200, b"ok", "application/json")

    # BYOC jobs (byoc/job_orchestrator.go processJob) ------------------------------------------
    def _process(self, path: str, body: bytes) -> None:
        if self.command != "POST":
            self._go_error(405, "Method not allowed")
            return
        store = self.server.store
        try:
            raw = base64.b64decode(self.headers.get("Livepeer", ""), validate=True)
            job = go_unmarshal(raw, "byoc.JobRequest", JOB_REQUEST)
        except (binascii.Error, GoJSONError):
            self._go_error(400, "Could not verify job creds")
            return
        if job["timeout_seconds"] == 0:
            self._go_error(400, "no timeout_seconds set with request, timeout_seconds is required")
            return
        sig = job["sig"][2:] if len(job["sig"]) > 130 else job["sig"]
        if len(sig) % 2 or not all(char in string.hexdigits for char in sig):
            self._go_error(400, "Could not verify job creds")  # hex.DecodeString failed
            return
        # Off-chain: every signature verifies and the price is zero, so no payment.
        name = job["capability"]
        capability = store.reserve(name)
        if capability is None:
            self._go_error(503, "No capacity available for capability")
            return
        try:
            go_unmarshal(job["request"].encode(), "byoc.JobRequestDetails", JOB_REQUEST_DETAILS)
        except GoJSONError as exc:
            # go-livepeer returns here without freeing the reserved load; so does this.
            self._go_error(400, f"Unable to unmarshal job request details err={exc}")
            return
        route = path[len(PROCESS_PREFIX) :]
        target = capability["url"] + ("/" + route if route else "")
        store.count("jobs")
        record = store.new_job(id=job["id"], capability=name, route=route)
        try:
            conn, response = _open_worker(
                target,
                body,
                self.headers.get("Content-Type", ""),
                capability["token"],
                job["timeout_seconds"],
            )
        except TimeoutError as exc:
            store.update_job(record, end_reason="worker_timeout", ended_at=time.time())
            self._go_error(
                500,
                f"job not able to be processed, removing capability"
                f' err=Post "{target}": context canceled ({exc})',
                {"Livepeer-Balance": "0"},
            )
            return
        except (OSError, http.client.HTTPException) as exc:
            store.remove(name, "connection_error")
            store.update_job(record, end_reason="connection_error", ended_at=time.time())
            log.warning(
                "capability_removed capability=%s reason=connection_error error=%r",
                name,
                f"{type(exc).__name__}: {exc}",
            )
            self._go_error(
                500,
                f"job not able to be processed, removing capability"
                f' err=Post "{target}": {type(exc).__name__}: {exc}',
                {"Livepeer-Balance": "0"},
            )
            return
        try:
            status = response.status
            content_type = response.getheader("Content-Type", "")
            store.update_job(record, worker_status=status, content_type=content_type)
            if status == 401:
                store.remove(name, "worker_401")
                store.update_job(record, end_reason="worker_401", ended_at=time.time())
                log.warning("capability_removed capability=%s reason=worker_401", name)
                self._go_error(
                    500,
                    "job not able to be processed, removing capability"
                    " err=worker auth token failed",
                    {"Livepeer-Balance": "0"},
                )
                return
            open_body = False
            try:
                if "text/event-stream" in content_type:
                    open_body = self._relay_stream(conn, response, record, job["timeout_seconds"])
                else:
                    self._relay_whole(response, record, route)
            finally:
                store.free(name)  # the deferred FreeExternalCapabilityCapacity
            if open_body:  # net/http ends a chunked body once the handler (defers run) returns
                self._end_chunked()
        finally:
            conn.close()

    def _relay_whole(
        self, response: http.client.HTTPResponse, record: dict[str, Any], route: str
    ) -> None:
        store = self.server.store
        metadata = response.getheader("X-Metadata", "")
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            store.update_job(record, end_reason="read_error", ended_at=time.time())
            self._go_error(500, str(exc), {"X-Metadata": metadata, "Livepeer-Balance": "0"})
            return
        status = response.status
        store.count(f"jobs_status_{status}")
        store.update_job(record, end_reason="complete", ended_at=time.time(), body_bytes=len(data))
        log.info(
            "job_forwarded capability=%s route=%s status=%d", record["capability"], route, status
        )
        extra = {"X-Metadata": metadata, "Livepeer-Balance": "0"}
        if status > 399:
            # http.Error replaces the worker's Content-Type and adds a newline.
            self._go_error(status, data.decode("utf-8", errors="replace"), extra)
            return
        # w.Write without WriteHeader: always 200, whatever 2xx/3xx the worker sent.
        self._send(200, data, response.getheader("Content-Type", ""), extra)

    def _relay_stream(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        record: dict[str, Any],
        timeout_seconds: int,
    ) -> bool:
        """The SSE branch of processJob (job_orchestrator.go:349-437); True when the
        chunked body is left for the caller to end, after the capacity is freed.

        A reader thread scans the worker's lines (bufio.Scanner: 64 KiB, CR LF -> LF) and
        queues each, the balance line before one containing [DONE]; this thread writes
        and flushes each as it comes. The relay ends only at timeout_seconds (counted from
        the worker's headers) or when the client goes away: after the worker's body ends
        (or a line is too long) go-livepeer reads a closed channel, writing "\n" in a busy
        loop; the stand-in writes one every `idle_newline_interval` seconds instead.
        """
        store = self.server.store
        store.update_job(record, streamed=True)
        if conn.sock is not None:
            conn.sock.settimeout(None)  # the relay has a deadline; the reads do not
        balance = _go_float_string(self.server.job_balance, 3)
        lines: queue.Queue[bytes | None] = queue.Queue()
        relay_over = threading.Event()  # set before the worker connection is cut

        def scan() -> None:
            try:
                while True:
                    raw = response.readline(MAX_SCAN_TOKEN + 1)
                    if not raw:
                        store.update_job(record, worker_eof=not relay_over.is_set())
                        return
                    content = raw[:-1] if raw.endswith(b"\n") else raw
                    if len(content) >= MAX_SCAN_TOKEN:
                        store.update_job(record, scanner_error="bufio.Scanner: token too long")
                        return
                    content = content.removesuffix(b"\r")
                    done = b"[DONE]" in content
                    if done:
                        lines.put(f'data: {{"balance": {balance}}}\n\n'.encode())
                    store.add_line(record, content, done)
                    lines.put(content)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                if not relay_over.is_set():
                    store.update_job(record, scanner_error=f"{type(exc).__name__}: {exc}")
            finally:
                lines.put(None)

        headers = [
            ("Content-Type", "text/event-stream"),
            ("X-Metadata", response.getheader("X-Metadata", "")),
            ("Cache-Control", "no-cache"),
            ("Connection", "keep-alive"),
            ("Livepeer-Payment-Balance", _go_float_string(self.server.job_balance, 0)),
        ]
        reader = threading.Thread(target=scan, name="sse-scan", daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout_seconds
        started = False
        finished = False
        end_reason = "timeout"
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                if finished:
                    time.sleep(min(self.server.idle_newline_interval, remaining))
                    line = b""
                else:
                    try:
                        item = lines.get(timeout=remaining)
                    except queue.Empty:
                        continue
                    if item is None:
                        finished = True
                        continue
                    line = item
                if not started:  # Go sends the headers with the first write
                    self._start_chunked(200, headers)
                    started = True
                self._chunk(line + b"\n")
        except _ClientGone:
            end_reason = "client_gone"
        relay_over.set()
        store.update_job(record, end_reason=end_reason, ended_at=time.time())  # then the end
        if end_reason == "timeout" and not started:
            self._send(200, b"", None, dict(headers))
        log.info(
            "job_streamed capability=%s lines=%d done=%s end=%s",
            record["capability"],
            len(record["lines"]),
            record["done_seen"],
            end_reason,
        )
        with contextlib.suppress(OSError):
            if conn.sock is not None:
                conn.sock.shutdown(socket.SHUT_RDWR)  # the request context is cancelled
        reader.join(timeout=5)
        return end_reason == "timeout" and started

    # Live runners (server/ai_http.go:139-175, 755-865, 881) ----------------------------------
    def _live_enabled(self) -> bool:
        if self.server.live.enabled:
            return True
        self._go_error(404, "live runners are not supported")
        return False

    def _runner_heartbeat(self, body: bytes) -> None:
        if not self._mux_method("POST") or not self._live_enabled():
            return
        live = self.server.live
        auth = self.headers.get("Authorization", "")
        try:
            request = go_unmarshal(
                body, "runner.LiveRunnerHeartbeatRequest", LIVE_RUNNER_HEARTBEAT_REQUEST, True
            )
            answer = live.heartbeat(request, auth)
        except GoJSONError as exc:
            live.record(body, auth, 400, str(exc))
            self._go_error(400, str(exc))
            return
        except RunnerError as exc:
            live.record(body, auth, exc.status, exc.message)
            log.info("heartbeat_refused status=%d error=%s", exc.status, exc.message)
            self._go_error(exc.status, exc.message)
            return
        live.record(body, auth, 200, answer)
        self._go_json(answer)

    def _runner_unregister(self, runner_id: str) -> None:
        if not self._mux_method("POST") or not self._live_enabled():
            return
        try:
            self.server.live.unregister(runner_id, self.headers.get("Authorization", ""))
        except RunnerError as exc:
            self._go_error(exc.status, exc.message)
            return
        self.send_response(204)
        self.end_headers()

    def _discovery(self) -> None:
        if not self._mux_method("GET") or not self._live_enabled():
            return
        self._go_json(self.server.live.discovery())

    def _single_shot(self, runner_id: str, tail: str | None, body: bytes) -> None:
        """ANY /apps/{runner_id}/app/{app_path...}: reserve, proxy, release."""
        if tail is None:
            # ServeMux redirects /apps/x/app to /apps/x/app/ (the pattern ends in {...}).
            query = urlsplit(self.path).query
            location = urlsplit(self.path).path + "/" + (f"?{query}" if query else "")
            self.send_response(301)
            self.send_header("Location", location)
            if self.command in ("GET", "HEAD"):
                page = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(page)
            else:
                self.send_header("Content-Length", "0")
                self.end_headers()
            return
        if not self._live_enabled():
            return
        live = self.server.live
        try:
            session = live.reserve_single_shot(runner_id)
        except RunnerError as exc:
            self._go_error(exc.status, exc.message)
            return
        try:
            self._reverse_proxy(runner_id, session, unquote(tail[1:]), body)
        finally:
            live.release(runner_id, session["session_id"])

    def _reverse_proxy(
        self, runner_id: str, session: dict[str, str], app_path: str, body: bytes
    ) -> None:
        """httputil.ReverseProxy as proxyLiveRunner (server/ai_http.go:835) sets it up."""
        target = urlsplit(session["runner_url"])
        # url.JoinPath("/", target.Path, appPath): cleaned, a trailing slash kept; the
        # result (already escaped) is then set as URL.Path, so it is escaped once more.
        joined = posixpath.normpath("/" + "/".join(p for p in (target.path, app_path) if p))
        joined = re.sub("/+", "/", joined)
        if app_path.endswith("/") and not joined.endswith("/"):
            joined += "/"
        wire_path = quote(quote(joined, safe=GO_PATH_SAFE), safe=GO_PATH_SAFE)
        query = urlsplit(self.path).query
        connection_named = {
            token.strip().lower()
            for value in self.headers.get_all("Connection", [])
            for token in value.split(",")
        }
        headers: list[tuple[str, str]] = []
        for name, value in self.headers.items():
            lowered = name.lower()
            dropped = HOP_BY_HOP | _FORWARDED | connection_named | {"host", "content-length"}
            if lowered not in dropped and lowered not in _INJECTED:
                headers.append((name, value))
        # Header.Set: these replace whatever the client sent under the same names.
        headers += [
            ("Livepeer-Runner-Route", runner_id),
            ("Livepeer-Session-Id", session["session_id"]),
            ("Livepeer-Session-Token", session["token"]),
            ("Livepeer-Session-Control", session["control"]),
        ]
        added_gzip = "Accept-Encoding" not in self.headers and "Range" not in self.headers
        if added_gzip and self.command != "HEAD":
            headers.append(("Accept-Encoding", "gzip"))  # Go's Transport does this
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        self.server.live.proxied.append(
            {
                "at": time.time(),
                "runner_id": runner_id,
                "session_id": session["session_id"],
                "method": self.command,
                "path": wire_path,
                "query": query,
            }
        )
        host = target.hostname or ""
        try:
            if target.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, target.port, timeout=300, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(host, target.port, timeout=300)
            conn.putrequest(
                self.command,
                wire_path + (f"?{query}" if query else ""),
                skip_host=True,
                skip_accept_encoding=True,
            )
            conn.putheader("Host", target.netloc.rpartition("@")[2])
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            port = target.port or (443 if target.scheme == "https" else 80)
            if isinstance(exc, ConnectionRefusedError):
                message = f"dial tcp {host}:{port}: connect: connection refused"
            else:
                message = f"{type(exc).__name__}: {exc}"
            self._go_error(502, message)
            return
        try:
            self._copy_response(response, added_gzip)
        finally:
            conn.close()

    def _copy_response(self, response: http.client.HTTPResponse, added_gzip: bool) -> None:
        gunzip = None
        if added_gzip and response.getheader("Content-Encoding", "").lower() == "gzip":
            gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)  # Transport's transparent gzip
        connection_named = {
            token.strip().lower()
            for value in response.headers.get_all("Connection", [])
            for token in value.split(",")
        }
        headers = [
            (name, value)
            for name, value in response.headers.items()
            if name.lower() not in HOP_BY_HOP | connection_named
            and not (gunzip and name.lower() in ("content-encoding", "content-length"))
        ]
        length = None if gunzip else response.getheader("Content-Length")
        no_body = self.command == "HEAD" or response.status in (204, 304)
        if length is not None or no_body:
            self.send_response(response.status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if no_body:
                return
            try:
                while data := response.read1(65536):
                    self.wfile.write(data)
            except (OSError, http.client.HTTPException):
                self.close_connection = True  # ReverseProxy aborts the response
            return
        self._start_chunked(response.status, headers)
        try:
            while data := response.read1(65536):
                self._chunk(gunzip.decompress(data) if gunzip else data)  # flushed at once
        except _ClientGone:
            return
        except (OSError, http.client.HTTPException, zlib.error):
            self.close_connection = True  # no final chunk: the client sees a cut stream
            return
        self._end_chunked()


def _open_worker(
    target: str, body: bytes, content_type: str, token: str, timeout: float
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """POST like go-livepeer's job client (TLS not verified); the response, unread."""
    parts = urlsplit(target)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    headers = {"User-Agent": "Go-http-client/1.1", "Content-Length": str(len(body))}
    if content_type:
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        path = parts.path or "/"
        conn.request("POST", path + (f"?{parts.query}" if parts.query else ""), body, headers)
        return conn, conn.getresponse()
    except BaseException:
        conn.close()
        raise


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], secret: str, ssl_context: ssl.SSLContext | None
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.secret = secret
        self.ssl_context = ssl_context
        self.store = CapabilityStore()
        self.live = LiveRunnerRegistry(secret, "", "")  # replaced by StandinOrchestrator
        self.job_balance = Fraction(0)
        self.idle_newline_interval = 0.05
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread, never in accept().
        if self.ssl_context is not None:
            request.settimeout(10)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("tls_handshake_failed from=%s error=%s", client_address[0], exc)
                return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            if self.ssl_context is not None:
                request.close()

    def close_connections(self) -> None:
        """Cut every open connection, as a process exit would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class StandinOrchestrator:
    """The stand-in, served from a background thread (for tests) or in the foreground.

    Live runners are off by default, as go-livepeer without -useLiveRunners; pass
    `live_runners=True`. `heartbeat_interval` / `heartbeat_ttl` take Go duration strings
    ("200ms") or seconds. `service_uri` (-serviceAddr) and `live_runner_addr`
    (-liveRunnerAddr) default to the stand-in's own URL. `onchain` requires price_info
    (-network other than offchain); `usd_per_eth` stands in for the price feed that
    converts it for discovery. `job_balance` is the balance streamed jobs report.
    """

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
        *,
        live_runners: bool = False,
        heartbeat_interval: str | float = DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_ttl: str | float = DEFAULT_HEARTBEAT_TTL,
        service_uri: str | None = None,
        live_runner_addr: str | None = None,
        onchain: bool = False,
        usd_per_eth: float | None = None,
        job_balance: Fraction | int = 0,
        idle_newline_interval: float = 0.05,
    ) -> None:
        if not secret:
            raise ValueError("the orchestrator secret must not be empty")
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        self._server = _Server((host, port), secret, context)
        self._thread: threading.Thread | None = None
        scheme = "https" if context else "http"
        bound_host, bound_port = self._server.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        shown = "[::1]" if shown == "::" else shown
        self.url = f"{scheme}://{shown}:{bound_port}"
        self.port = bound_port
        service = (service_uri or self.url).rstrip("/")
        self._server.live = LiveRunnerRegistry(
            secret,
            service,
            (live_runner_addr or service).rstrip("/"),
            heartbeat_interval,
            heartbeat_ttl,
            onchain,
            usd_per_eth,
            live_runners,
        )
        self._server.job_balance = Fraction(job_balance)
        self._server.idle_newline_interval = idle_newline_interval

    @property
    def store(self) -> CapabilityStore:
        return self._server.store

    @property
    def live(self) -> LiveRunnerRegistry:
        return self._server.live

    # Test helpers ---------------------------------------------------------------------
    def runners(self) -> list[dict[str, Any]]:
        """The live runners held now (expired ones until the expiry loop drops them)."""
        return self.live.view()["runners"]

    def heartbeats(self) -> list[dict[str, Any]]:
        """Every POST /runners/heartbeat: body, `secret` kind, `at`, status, answer."""
        return self.live.view()["heartbeats"]

    def discovery(self) -> list[dict[str, Any]]:
        """What GET /discovery answers now."""
        return self.live.discovery()

    def jobs(self) -> list[dict[str, Any]]:
        return self.store.jobs()

    def restart(self) -> None:
        """Forget every capability and live runner and cut open connections, as a
        go-livepeer restart would (the listener and the records stay)."""
        self.store.forget_all()
        self.live.forget_all("restart")
        self._server.close_connections()

    def set_live_runners_enabled(self, enabled: bool) -> None:
        """Run as with (True) or without (False: 404s, runners gone) -useLiveRunners."""
        self.live.set_enabled(enabled)

    # Serving --------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self.live.start()
        try:
            self._server.serve_forever(poll_interval=0.05)
        finally:
            self.live.stop()

    def start(self) -> StandinOrchestrator:
        self._thread = threading.Thread(target=self.serve_forever, name="standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a process exit: no listener, no open connection, memory gone."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandinOrchestrator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Certificates ------------------------------------------------------------------------
def make_self_signed_cert(directory: Path, names: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Write cert.pem and key.pem (a self-signed CA certificate for localhost, 127.0.0.1,
    this host and `names`) with the `openssl` command; return their paths."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is not installed: pass --tls-cert and --tls-key")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    alt = {"DNS:localhost", "IP:127.0.0.1", "IP:::1", f"DNS:{socket.gethostname()}"}
    for name in names:
        is_ip = all(part.isdigit() for part in name.split(".")) or ":" in name
        alt.add(f"{'IP' if is_ip else 'DNS'}:{name}")
    config = directory / "openssl.cnf"
    config.write_text(
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n"
        "[dn]\nCN = standin-orchestrator\n"
        "[ext]\nbasicConstraints = critical,CA:TRUE\n"
        "keyUsage = critical,digitalSignature,keyCertSign\n"
        f"subjectAltName = {','.join(sorted(alt))}\n"
    )
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-config",
            str(config),
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


# --- Command line ------------------------------------------------------------------------
def _secret_from(args: argparse.Namespace) -> str:
    if args.secret is not None:
        # Like go-livepeer's -orchSecret: a value, or the path of a file holding it.
        path = Path(args.secret)
        return path.read_text().strip() if path.is_file() else args.secret
    return os.environ.get(args.secret_env, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8935)
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--self-signed",
        action="store_true",
        help="serve HTTPS with a fresh self-signed certificate (needs openssl)",
    )
    tls.add_argument("--tls-cert", type=Path, help="certificate PEM (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, help="private key PEM (with --tls-cert)")
    parser.add_argument(
        "--cert-dir",
        type=Path,
        help="where --self-signed writes cert.pem/key.pem (default: a temp dir)",
    )
    parser.add_argument(
        "--cert-name",
        action="append",
        default=[],
        help="an extra DNS name or IP for the self-signed certificate",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret", help="the orchestrator secret, or a file holding it")
    secret.add_argument(
        "--secret-env",
        default="ORCH_SECRET",
        help="environment variable holding the secret (default ORCH_SECRET)",
    )
    live = parser.add_argument_group("live runners (go-livepeer v0.9.0 and later)")
    live.add_argument(
        "--live-runners", action="store_true", help="as -useLiveRunners: dynamic registration"
    )
    live.add_argument("--heartbeat-interval", default=DEFAULT_HEARTBEAT_INTERVAL)
    live.add_argument("--heartbeat-ttl", default=DEFAULT_HEARTBEAT_TTL)
    live.add_argument("--service-uri", help="as -serviceAddr (default: the stand-in's URL)")
    live.add_argument("--live-runner-addr", help="as -liveRunnerAddr (default: --service-uri)")
    live.add_argument(
        "--onchain", action="store_true", help="require price_info (a -network not offchain)"
    )
    live.add_argument("--usd-per-eth", type=float, help="the price feed, for discovery prices")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    for flag in ("heartbeat_interval", "heartbeat_ttl"):
        try:
            parse_go_duration(getattr(args, flag))
        except ValueError as exc:
            parser.error(f"--{flag.replace('_', '-')}: {exc}")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s standin %(message)s",
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    secret_value = _secret_from(args)
    if not secret_value:
        parser.error("no secret: pass --secret or set the variable --secret-env names")
    pair = (args.tls_cert, args.tls_key) if args.tls_cert else None
    with contextlib.ExitStack() as cleanup:
        if args.self_signed:
            # Without --cert-dir, a temporary directory removed when the stand-in stops.
            directory = args.cert_dir or Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="standin-tls-"))
            )
            try:
                pair = make_self_signed_cert(directory, tuple(args.cert_name))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                parser.error(f"cannot make a self-signed certificate: {exc}")
            log.info("self_signed_certificate cert=%s", pair[0])
        orchestrator = StandinOrchestrator(
            secret_value,
            args.host,
            args.port,
            pair,
            live_runners=args.live_runners,
            heartbeat_interval=args.heartbeat_interval,
            heartbeat_ttl=args.heartbeat_ttl,
            service_uri=args.service_uri,
            live_runner_addr=args.live_runner_addr,
            onchain=args.onchain,
            usd_per_eth=args.usd_per_eth,
        )
        signal.signal(
            signal.SIGTERM,
            lambda *_: threading.Thread(target=orchestrator._server.shutdown, daemon=True).start(),
        )
        log.info("listening url=%s (%s:%d)", orchestrator.url, args.host, orchestrator.port)
        try:
            orchestrator.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            orchestrator._server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
