"""A stand-in Ollama server speaking the documented HTTP API, with switchable faults.

Endpoints (upstream `docs/api.md`, `server/routes.go`): `GET|HEAD /`, `GET /api/version`,
`GET /api/tags` (models on disk), `GET /api/ps` (the loaded set), `POST /api/show` (with
each model's `capabilities`), `POST /api/embed` (tests/standins/ollama_models.py: what each
model can do, and its vectors), `POST /api/chat` and `POST /api/generate` (NDJSON streams
by default, one object with `"stream": false`; an empty `messages`/`prompt` loads the
model, and with `keep_alive: 0` unloads it; a model without `completion` refuses them).
Modes, switchable while running, apply to every API route:
- `ok`: answers like a server with the catalogue in `models`;
- `slow`: every API answer waits `delay` seconds first;
- `hang`: API requests never get an answer (until the mode changes);
- `error`: every API call answers 500 `{"error": "..."}`;
- `nonjson`: every API call answers 200 with an HTML page.

Generation is scripted per test with `configure(...)` (see `Behaviour`): reply text or
token count, pace, time to first token, load time, failure after N tokens, a hang before
the first token, a thinking model's thinking text, the tool calls a model makes.
`/api/chat` checks a request against the model's capabilities (`ollama_models.CAPABILITIES`)
as upstream's ChatHandler does: 400 `... does not support tools` (or `thinking`, `chat`); a
thinking model thinks unless `think` is false; tool calls stream as one chunk holding
`message.tool_calls` (arguments a JSON object, an `id` each), then the done chunk with
`done_reason: "stop"`; `format` must be "json" or a schema object, and each message's
`images` base64. Every request body, generation and load/unload is recorded (monotonic
times) for assertions, always before the client can see what it records (a piece is
counted before it is sent); what happens as a request ends, as upstream (the model's
release, `ended_at`), comes just after the reply: wait with `wait_idle()` to read it.
`restart()` forgets the loaded set like a restarted server.

Use in-process (`OllamaStandIn().start()`) or as a script:
`python tests/standins/ollama_api.py --port 11434 [--mode ok] [--load-time 2]`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import math
import random
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.standins.ollama_models import (
    NO_EMBEDDINGS,
    capabilities_of,
    embed_inputs,
    embedding_length,
    embedding_model,
    float32_vector,
    show_answer,
    token_count,
    vectors_json,
)

MODES = ("ok", "slow", "hang", "error", "nonjson")
FAIL_MODES = ("close", "error")
VERSION = "0.12.6"
FOREVER = math.inf
# Upstream envconfig.KeepAlive(): OLLAMA_KEEP_ALIVE, default 5m.
DEFAULT_KEEP_ALIVE = 300.0
DEFAULT_CONTEXT_LENGTH = 4096
# Upstream llm/llama_server.go, when the runner dies mid-request.
RUNNER_STOPPED = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an "
    "internal error, check ollama server logs for details"
)
# Go's time.Now().Add(math.MaxInt64) saturates: a model kept "forever" expires ~292 years on.
_FOREVER_WALL = timedelta(microseconds=(2**63 - 1) // 1000)
_WORDS = ("the", "sky", "is", "blue", "because", "air", "scatters", "short", "waves")
_WORDS += ("more", "than", "long", "ones", "so", "we", "see", "red", "at", "dusk")
_POLL = 0.05  # how often a waiting generation looks at stop, restart and the peer

LoadedSet = frozenset[tuple[str, int]]


def default_models() -> list[dict[str, Any]]:
    """Two models on disk; the first is loaded, fully in VRAM.

    Per model: `loaded` (loaded at start, kept forever), `size_vram` (its VRAM once
    loaded; 0 means the whole `size`), optional `load_time` and `context_length`.
    """
    return [
        {
            "name": "codellama:34b-instruct-q4_k_m",
            "model": "codellama:34b-instruct-q4_k_m",
            "modified_at": "2026-11-20T10:12:43.123456789Z",
            "size": 20219745376,
            "digest": "a" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "34B",
                "quantization_level": "Q4_K_M",
            },
            "loaded": True,
            "size_vram": 20219745376,
        },
        {
            "name": "llama3.2:3b",
            "model": "llama3.2:3b",
            "modified_at": "2026-11-19T08:00:00Z",
            "size": 2019393189,
            "digest": "b" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
            "loaded": False,
            "size_vram": 0,
        },
    ]


@dataclass(frozen=True)
class Behaviour:
    """How generations go; change with `OllamaStandIn.configure(...)`."""

    reply: str | None = None  # the reply text; None: `tokens` words drawn from options.seed
    tokens: int = 8
    token_interval: float = 0.0  # seconds between tokens
    first_token_delay: float = 0.0  # seconds from model ready to the first token
    load_time: float = 0.0  # seconds to load a model not loaded (a model's `load_time` wins)
    fail_after: int | None = None  # fail once this many tokens went out
    fail_mode: str = "close"  # "close": reset the connection; "error": an {"error"} line
    error_message: str = RUNNER_STOPPED
    hang_before_first_token: bool = False  # never send a token (until the client leaves)
    # /api/chat with `tools`: the calls the model makes instead of its reply, in Ollama's
    # form {"function": {"name": ..., "arguments": {...}}} (an id is added); a request
    # whose last message is a tool's result gets the reply (a model reads the result).
    tool_calls: tuple[dict[str, Any], ...] = ()
    thinking: str | None = None  # a thinking model's thinking, streamed before the reply


@dataclass
class Recorded:
    """One request as received; `body` is the parsed JSON (or the raw text if not JSON)."""

    method: str
    path: str
    body: Any
    at: float  # time.monotonic()
    connection: int = 0  # which connection carried it: 1 for the first accepted, and so on


@dataclass
class ResidencyEvent:
    """A model entered (`load`) or left (`unload`) the loaded set."""

    kind: str  # "load" | "unload"
    model: str
    at: float  # time.monotonic()
    keep_alive: float | None  # seconds (inf: forever) of the request behind it; None: none
    reason: str  # load: "request"; unload: "keep_alive", "expired", "reload", "restart"


@dataclass
class Generation:
    """One /api/chat, /api/generate or /v1/chat/completions request that reached a model."""

    endpoint: str
    model: str
    body: dict[str, Any]
    stream: bool
    started_at: float
    keep_alive: float | None
    options: dict[str, Any] = field(default_factory=dict)
    ready_at: float | None = None  # the model was loaded and usable
    first_token_at: float | None = None
    last_token_at: float | None = None
    ended_at: float | None = None
    tokens_sent: int = 0
    text: str = ""
    done_reason: str | None = None
    # "done", "load", "client_gone", "failed", "aborted" (stop or restart); None: running
    outcome: str | None = None
    client_gone_at: float | None = None  # when the server noticed EOF or a failed write


@dataclass
class LoadedModel:
    """A model in (or on its way into) memory."""

    name: str
    size: int
    size_vram: int
    context_length: int
    keep_alive: float
    ready_at: float
    ready: bool = False
    refs: int = 0
    expires_at: float | None = None  # monotonic; None while in use or kept forever
    expires_wall: datetime | None = None  # what /api/ps reports: set when it went idle
    load_keep_alive: float | None = None


@dataclass
class StandInState:
    """What the stand-in serves and has seen; guarded by `changed` (a Condition)."""

    mode: str = "ok"
    delay: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=default_models)
    requests: int = 0
    connections: int = 0  # connections accepted, over the stand-in's life
    changed: threading.Condition = field(default_factory=threading.Condition)
    behaviour: Behaviour = field(default_factory=Behaviour)
    default_keep_alive: float = DEFAULT_KEEP_ALIVE
    recorded: list[Recorded] = field(default_factory=list)
    residency: list[ResidencyEvent] = field(default_factory=list)
    generations: list[Generation] = field(default_factory=list)
    loaded: dict[str, LoadedModel] = field(default_factory=dict)
    epoch: int = 0  # bumped by restart(): in-flight requests die
    stopping: bool = False

    def __post_init__(self) -> None:
        with self.changed:
            self.reset_loaded()

    # -- residency; callers hold `changed` ------------------------------------------

    def reset_loaded(self) -> None:
        """The loaded set from the models' `loaded` flags (kept forever, no events)."""
        now = time.monotonic()
        self.loaded = {}
        for model in self.models:
            if model.get("loaded"):
                entry = self._new_entry(model, FOREVER, None, now)
                entry.ready = True
                self.loaded[model["name"]] = entry
                self._go_idle(entry)

    def find_model(self, name: str) -> dict[str, Any] | None:
        """The model on disk named `name` (a name without a tag means `:latest`)."""
        wanted = {name} if ":" in name else {name, f"{name}:latest"}
        return next((m for m in self.models if m["name"] in wanted), None)

    def _new_entry(
        self, model: dict[str, Any], keep_alive: float, num_ctx: int | None, now: float
    ) -> LoadedModel:
        load_time = float(model.get("load_time", self.behaviour.load_time))
        return LoadedModel(
            name=model["name"],
            size=int(model["size"]),
            size_vram=int(model.get("size_vram") or model["size"]),
            context_length=int(num_ctx or model.get("context_length") or DEFAULT_CONTEXT_LENGTH),
            keep_alive=keep_alive,
            ready_at=now + load_time,
        )

    def acquire(
        self, model: dict[str, Any], keep_alive: float | None, num_ctx: int | None
    ) -> LoadedModel:
        """Use `model` (loading it if need be, reloading for another num_ctx)."""
        now = time.monotonic()
        entry = self.loaded.get(model["name"])
        if (
            entry is not None
            and entry.ready
            and entry.refs == 0
            and num_ctx
            and int(num_ctx) != entry.context_length
        ):
            self.unload(entry.name, "reload", keep_alive)
            entry = None
        if entry is None:
            ka = self.default_keep_alive if keep_alive is None else keep_alive
            entry = self._new_entry(model, ka, num_ctx, now)
            entry.load_keep_alive = keep_alive
            self.loaded[entry.name] = entry
        elif keep_alive is not None:
            entry.keep_alive = keep_alive
        entry.refs += 1
        entry.expires_at = None
        self.changed.notify_all()
        return entry

    def release(self, entry: LoadedModel) -> None:
        """A request is done with `entry`: start its keep_alive (0: unload now)."""
        if self.loaded.get(entry.name) is not entry:
            return
        entry.refs -= 1
        if entry.refs > 0:
            return
        self.tick()
        if entry.ready:  # else still loading: tick() starts its timer once loaded
            self._go_idle(entry)

    def _go_idle(self, entry: LoadedModel) -> None:
        """Upstream's refCount reaching 0: unload at keep_alive 0, else start its timer."""
        if entry.keep_alive <= 0:
            self.unload(entry.name, "keep_alive", entry.keep_alive)
            return
        wall = datetime.now(UTC)
        if entry.keep_alive == FOREVER:
            entry.expires_at, entry.expires_wall = None, wall + _FOREVER_WALL
        else:
            entry.expires_at = time.monotonic() + entry.keep_alive
            entry.expires_wall = wall + timedelta(seconds=entry.keep_alive)
        self.changed.notify_all()

    def request_unload(self, name: str) -> None:
        """`keep_alive: 0` with nothing to generate: unload now, or once no longer in use."""
        entry = self.loaded.get(name)
        if entry is None:
            return
        entry.keep_alive = 0.0
        if entry.refs == 0:
            self.unload(name, "keep_alive", 0.0)

    def unload(self, name: str, reason: str, keep_alive: float | None) -> None:
        entry = self.loaded.pop(name, None)
        if entry is not None and entry.ready:
            self.residency.append(
                ResidencyEvent("unload", name, time.monotonic(), keep_alive, reason)
            )
        self.changed.notify_all()

    def forget_all(self) -> None:
        """A restart: nothing is loaded any more."""
        for name in list(self.loaded):
            self.unload(name, "restart", None)

    def tick(self) -> float | None:
        """Finish due loads, unload expired idle models; the next deadline, if any."""
        now = time.monotonic()
        deadline: float | None = None
        for entry in list(self.loaded.values()):
            if not entry.ready and entry.ready_at <= now:
                entry.ready = True
                self.residency.append(
                    ResidencyEvent(
                        "load", entry.name, entry.ready_at, entry.load_keep_alive, "request"
                    )
                )
                self.changed.notify_all()
                if entry.refs == 0:
                    self._go_idle(entry)
                    if entry.name not in self.loaded:
                        continue
            if not entry.ready:
                deadline = min(deadline or entry.ready_at, entry.ready_at)
            elif entry.refs == 0 and entry.expires_at is not None:
                if entry.expires_at <= now:
                    self.unload(entry.name, "expired", entry.keep_alive)
                else:
                    deadline = min(deadline or entry.expires_at, entry.expires_at)
        return deadline

    def loaded_set(self) -> LoadedSet:
        """(model, size_vram) of every model loaded now."""
        self.tick()
        return frozenset((e.name, e.size_vram) for e in self.loaded.values() if e.ready)


def _rfc3339(moment: datetime) -> str:
    """Go's time.Time JSON form in UTC, e.g. 2026-11-23T19:00:00.123456Z."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _now_rfc3339() -> str:
    return _rfc3339(datetime.now(UTC))


def _ns(seconds: float) -> int:
    """Nanoseconds, at least 1 (upstream omits zero durations; the stand-in never sends 0)."""
    return max(1, int(seconds * 1e9))


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_keep_alive(value: Any) -> float | None:
    """Seconds from an api.Duration: a number is seconds, a string a Go duration ("5m",
    "1h30m", "0"); negative means forever (inf); None when absent. ValueError if invalid.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"Unsupported type: '{type(value).__name__}'")
    if isinstance(value, int | float):
        return FOREVER if value < 0 else float(value)
    text = value.strip()
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{value}"')
    total, pos = 0.0, 0
    while pos < len(body):
        match = _GO_PART.match(body, pos)
        if match is None:
            if re.fullmatch(r"\d+\.?\d*", body[pos:]):
                raise ValueError(f'time: missing unit in duration "{value}"')
            raise ValueError(f'time: invalid duration "{value}"')
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return FOREVER if sign < 0 else total


def plan_reply(behaviour: Behaviour, options: dict[str, Any]) -> tuple[list[str], str]:
    """The pieces a generation sends and its done_reason, after num_predict and stop."""
    if behaviour.reply is not None:
        pieces = re.findall(r"\s*\S+|\s+", behaviour.reply)
    else:
        seed = options.get("seed")
        rng = random.Random(seed if isinstance(seed, int) else random.getrandbits(64))
        pieces = [("" if i == 0 else " ") + rng.choice(_WORDS) for i in range(behaviour.tokens)]
    stops = options.get("stop") or []
    stops = [stops] if isinstance(stops, str) else [s for s in stops if s]
    num_predict = options.get("num_predict")
    limit = num_predict if isinstance(num_predict, int) and num_predict > 0 else None
    out: list[str] = []
    text = ""
    for piece in pieces:
        candidate = text + piece
        hits = [i for i in (candidate.find(s, max(0, len(text) - len(s))) for s in stops) if i >= 0]
        if hits:
            cut = candidate[len(text) : min(hits)]
            if cut:
                out.append(cut)
            return out, "stop"
        out.append(piece)
        text = candidate
        if limit is not None and len(out) >= limit:
            return out, "length"
    return out, "stop"


def _chat_problem(name: str, model: dict[str, Any], body: dict[str, Any]) -> tuple[int, str | None]:
    """Why upstream's ChatHandler would refuse `body` for `model` before generating:
    (status, error) with error None when it would not."""
    capabilities = capabilities_of(model)
    think = body.get("think")
    if think not in (None, False, "") and "thinking" not in capabilities:
        return 400, f"{json.dumps(name)} does not support thinking"
    if "completion" not in capabilities:
        return 400, f"{json.dumps(name)} does not support chat"
    if body.get("tools") and "tools" not in capabilities:
        return 400, f"{name} does not support tools"
    fmt = body.get("format")
    if fmt not in (None, "", "json") and not isinstance(fmt, dict):
        return (
            500,
            f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON Schema object',
        )
    for message in body.get("messages") or []:
        for image in (message.get("images") or []) if isinstance(message, dict) else []:
            try:
                base64.b64decode(image, validate=True)
            except (ValueError, TypeError):
                return 400, "illegal base64 data at input byte 0"
    return 200, None


def _chat_pieces(
    gen: Generation, behaviour: Behaviour, content: list[str], model: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(content, other message fields) of each streamed piece of a generation: a thinking
    model's thinking first (unless `think` is false), then the content, or (chat with
    tools, not answering a tool's result) one piece holding every tool call, with ids."""
    body = gen.body
    pieces: list[tuple[str, dict[str, Any]]] = []
    if gen.endpoint != "/api/chat":
        return [(text, {}) for text in content]
    thinks = "thinking" in capabilities_of(model)
    if behaviour.thinking and thinks and body.get("think") not in (False, ""):
        words = re.findall(r"\s*\S+|\s+", behaviour.thinking)
        pieces += [("", {"thinking": word}) for word in words]
    messages = body.get("messages") or [{}]
    answering_tool = isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
    if not (behaviour.tool_calls and body.get("tools")) or answering_tool:
        return pieces + [(text, {}) for text in content]
    calls = []
    for index, call in enumerate(behaviour.tool_calls):
        function = {"index": index, **call["function"]}
        calls.append({"id": call.get("id") or _tool_call_id(), "function": function})
    return [*pieces, ("", {"tool_calls": calls})]


def _tool_call_id() -> str:
    """Upstream's toolCallId: `call_` and 8 random lower-case letters and digits."""
    return "call_" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=8))


def _prompt_tokens(endpoint: str, body: dict[str, Any]) -> int:
    """A token count for the prompt: its whitespace-separated words (at least 1)."""
    if endpoint == "/api/generate":
        texts = [str(body.get("prompt") or ""), str(body.get("system") or "")]
    else:
        texts = [
            str(m.get("content") or "") for m in body.get("messages") or [] if isinstance(m, dict)
        ]
    return max(1, sum(len(t.split()) for t in texts))


def _public(model: dict[str, Any]) -> dict[str, Any]:
    private = (
        "loaded",
        "size_vram",
        "load_time",
        "context_length",
        "capabilities",
        "embedding_length",
        "show_error",
    )
    return {key: value for key, value in model.items() if key not in private}


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


class _ClientGone(Exception):
    """The client closed its connection (EOF seen, or a write failed)."""


class _Aborted(Exception):
    """The stand-in stops or restarts under a request: its connection is dropped."""


class _Reply:
    """Sends one generation's answer: an NDJSON chunked stream, or one JSON object."""

    def __init__(self, handler: _Handler, endpoint: str, model: str, stream: bool) -> None:
        self.handler, self.endpoint, self.model, self.stream = handler, endpoint, model, stream
        self.started = False
        self.parts: list[str] = []
        self.message_parts: dict[str, Any] = {}  # thinking and tool_calls, not streamed

    def shape(
        self, content: str, message: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Upstream's ChatResponse / GenerateResponse with `content` as the text (and
        `message`'s other fields: thinking, tool_calls)."""
        body: dict[str, Any] = {"model": self.model, "created_at": _now_rfc3339()}
        if self.endpoint == "/api/chat":
            body["message"] = {"role": "assistant", "content": content, **(message or {})}
        else:
            body["response"] = content
        return {**body, "done": False, **extra}

    def piece(self, content: str, **message: Any) -> None:
        """A piece of content, or (chat) of thinking or a chunk of tool calls."""
        if self.stream:
            self._line(self.shape(content, message))
            return
        self.parts.append(content)
        if "thinking" in message:
            self.message_parts["thinking"] = (
                self.message_parts.get("thinking", "") + message["thinking"]
            )
        if "tool_calls" in message:
            self.message_parts.setdefault("tool_calls", []).extend(message["tool_calls"])

    def finish(self, **final: Any) -> None:
        if self.stream:
            self._line(self.shape("", **final))
            self._write(b"0\r\n\r\n")
        else:
            whole = self.shape("".join(self.parts), self.message_parts, **final)
            self.handler.send_json(200, whole, strict=True)

    def error(self, message: str) -> None:
        """Like upstream's streamResponse: a status before any output, else a last line."""
        if self.stream and self.started:
            self._line({"error": message})
            self._write(b"0\r\n\r\n")
        else:
            self.handler.send_json(500, {"error": message}, strict=True)

    def _line(self, body: dict[str, Any]) -> None:
        if not self.started:
            self.started = True
            handler = self.handler
            try:
                handler.send_response(200)
                handler.send_header("Content-Type", "application/x-ndjson")
                handler.send_header("Transfer-Encoding", "chunked")
                handler.end_headers()
            except OSError as exc:
                raise _ClientGone from exc
        data = json.dumps(body).encode() + b"\n"
        self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _write(self, data: bytes) -> None:
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except OSError as exc:
            raise _ClientGone from exc


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    serial = 0  # this connection's number (Recorded.connection)
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        # Go's net package sets TCP_NODELAY on every TCP connection (Ollama is Go): a
        # header write then a piece write must not wait on Nagle and a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.state.changed:
            self.server.state.connections += 1
            self.serial = self.server.state.connections
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, open_=False)

    def do_HEAD(self) -> None:
        self._send(200, b"", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length))

    def _serve(self, raw: bytes) -> None:
        state = self.server.state
        body = _parse_body(raw)
        with state.changed:
            state.requests += 1
            state.recorded.append(
                Recorded(self.command, self.path, body, time.monotonic(), self.serial)
            )
        if self.path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
            return
        if not self._apply_fault(state):
            return
        routes = {
            "/api/version": lambda: {"version": VERSION},
            "/api/tags": lambda: {"models": [_public(m) for m in state.models]},
            "/api/ps": lambda: {"models": self._running(state)},
        }
        if self.path in routes:
            self.send_json(200, routes[self.path]())
        elif self.path == "/api/show" and self.command == "POST":
            self._show(body)
        elif self.path == "/api/embed" and self.command == "POST":
            self._embed(body)
        elif self.path in ("/api/chat", "/api/generate") and self.command == "POST":
            self._generation(self.path, body)
        else:
            self._send(404, b"404 page not found", "text/plain")

    @staticmethod
    def _running(state: StandInState) -> list[dict[str, Any]]:
        """Upstream PsHandler: the loaded models, longest time left first."""
        with state.changed:
            state.tick()
            rows = []
            for entry in state.loaded.values():
                if not entry.ready:
                    continue
                model = state.find_model(entry.name) or {"name": entry.name}
                expires = entry.expires_wall
                if expires is None:  # in use since it loaded: its keep_alive from now
                    ahead = entry.keep_alive
                    left = _FOREVER_WALL if ahead == FOREVER else timedelta(seconds=ahead)
                    expires = datetime.now(UTC) + left
                rows.append(
                    (
                        expires,
                        {
                            **_public(model),
                            "size": entry.size,
                            "expires_at": _rfc3339(expires),
                            "size_vram": entry.size_vram,
                            "context_length": entry.context_length,
                        },
                    )
                )
        rows.sort(key=lambda row: row[0], reverse=True)
        return [row for _, row in rows]

    def _show(self, body: Any) -> None:
        """Upstream ShowHandler: the model's details, model_info and capabilities."""
        name = body.get("model") or body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            self.send_json(400, {"error": "model is required"})
            return
        state = self.server.state
        with state.changed:
            model = state.find_model(name)
        if model is None:
            self.send_json(404, {"error": f"model '{name}' not found"})
            return
        if model.get("show_error"):  # a model file Ollama cannot read
            self.send_json(500, {"error": model["show_error"]})
            return
        self.send_json(200, show_answer(model, _public(model)))

    def _embed(self, body: Any) -> None:
        """Upstream EmbedHandler: load the model, then one unit vector per input."""
        state = self.server.state
        if not isinstance(body, dict):
            self.send_json(400, {"error": "missing request body"})
            return
        ok, keep_alive = self._keep_alive(body)
        if not ok:
            return
        dimensions = body.get("dimensions") or 0
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            kind = type(dimensions).__name__
            message = f"json: cannot unmarshal {kind} into Go struct field .dimensions of type int"
            self.send_json(400, {"error": message})
            return
        texts = embed_inputs(body.get("input"))
        if texts is None:
            self.send_json(400, {"error": "invalid input type"})
            return
        name = body.get("model")
        with state.changed:
            model = state.find_model(name) if isinstance(name, str) and name else None
        if model is None:
            self.send_json(404, {"error": f"model '{name or ''}' not found"})
            return
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        started = time.monotonic()
        with state.changed:
            entry = state.acquire(model, keep_alive, options.get("num_ctx"))
        self.server.publish()
        try:
            time.sleep(max(0.0, entry.ready_at - time.monotonic()))
            with state.changed:
                state.tick()
            self.server.publish()
            self._embeddings(model, name, texts, dimensions, body.get("truncate"), entry, started)
        finally:
            with state.changed:
                state.release(entry)
            self.server.publish()

    def _embeddings(
        self,
        model: dict[str, Any],
        name: str,
        texts: list[str],
        dimensions: int,
        truncate: Any,
        entry: LoadedModel,
        started: float,
    ) -> None:
        if not texts:
            self.send_json(200, {"model": name, "embeddings": []})
            return
        if "embedding" not in capabilities_of(model):
            self.send_json(501, {"error": NO_EMBEDDINGS})
            return
        counts = [token_count(text) for text in texts]
        if truncate is False and max(counts) > entry.context_length:
            self.send_json(400, {"error": "the input length exceeds the context length"})
            return
        length = embedding_length(model)
        vectors = [float32_vector(model["name"], text, length, dimensions) for text in texts]
        total = _ns(time.monotonic() - started)
        text = (
            f'{{"model":{json.dumps(name)},"embeddings":{vectors_json(vectors)},'
            f'"total_duration":{total},"load_duration":1,'
            f'"prompt_eval_count":{sum(min(c, entry.context_length) for c in counts)}}}'
        )
        self._send(200, text.encode(), "application/json; charset=utf-8")

    def _apply_fault(self, state: StandInState) -> bool:
        """Return True when the request should be answered normally."""
        with state.changed:
            mode, delay, epoch = state.mode, state.delay, state.epoch
            if mode == "hang":
                state.changed.wait_for(lambda: state.mode != "hang" or state.epoch != epoch)
                if state.epoch != epoch:
                    self._drop()
                    return False
                mode, delay = state.mode, state.delay
        if mode == "slow":
            time.sleep(delay)
        if mode == "error":
            self.send_json(500, {"error": "llama runner process has terminated: exit status 2"})
            return False
        if mode == "nonjson":
            self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return False
        return True

    def _generation(self, endpoint: str, body: Any) -> None:
        """/api/chat and /api/generate: load, unload, or generate (upstream's handlers)."""
        state = self.server.state
        if not isinstance(body, dict):
            self.send_json(400, {"error": "missing request body"})
            return
        name = body.get("model")
        if not isinstance(name, str) or not name:
            self.send_json(400, {"error": "model is required"})
            return
        with state.changed:
            model = state.find_model(name)
            behaviour, epoch = state.behaviour, state.epoch
        if model is None:
            self.send_json(404, {"error": f"model '{name}' not found"})
            return
        ok, keep_alive = self._keep_alive(body)
        if not ok:
            return
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        key = "prompt" if endpoint == "/api/generate" else "messages"
        empty = not body.get(key)
        reply = _Reply(self, endpoint, name, stream=body.get("stream") is not False)
        if empty and keep_alive == 0:
            with state.changed:
                state.request_unload(model["name"])
            self.server.publish()
            self.send_json(200, reply.shape("", done=True, done_reason="unload"))
            return
        if endpoint == "/api/chat":
            status, problem = _chat_problem(name, model, body)
            if problem is not None:
                self.send_json(status, {"error": problem})
                return
        elif "completion" not in capabilities_of(model):  # e.g. an embedding model
            self.send_json(400, {"error": f"{json.dumps(name)} does not support generate"})
            return
        gen = Generation(
            endpoint, model["name"], body, reply.stream, time.monotonic(), keep_alive, options
        )
        with state.changed:
            state.generations.append(gen)
            entry = state.acquire(model, keep_alive, options.get("num_ctx"))
        self.server.publish()
        try:
            self._run(gen, entry, reply, behaviour, epoch, empty)
        except _ClientGone:
            self.close_connection = True
            if state.stopping or state.epoch != epoch:  # our own restart cut the socket
                gen.outcome, gen.client_gone_at = "aborted", None
            else:
                gen.outcome = "client_gone"
                gen.client_gone_at = gen.client_gone_at or time.monotonic()
        except _Aborted:
            gen.outcome = "aborted"
            self._drop()
        finally:
            with state.changed:
                gen.ended_at = time.monotonic()
                state.release(entry)
                state.changed.notify_all()
            self.server.publish()

    def _run(
        self,
        gen: Generation,
        entry: LoadedModel,
        reply: _Reply,
        behaviour: Behaviour,
        epoch: int,
        empty: bool,
    ) -> None:
        state = self.server.state
        self._wait_until(entry.ready_at, gen, epoch)
        with state.changed:
            state.tick()
            gen.ready_at = time.monotonic()
        self.server.publish()
        if empty:
            gen.outcome = "load"
            self.send_json(200, reply.shape("", done=True, done_reason="load"), strict=True)
            return
        content, done_reason = plan_reply(behaviour, gen.options)
        with state.changed:
            model = state.find_model(gen.model) or {"name": gen.model}
        pieces = _chat_pieces(gen, behaviour, content, model)
        start = gen.ready_at
        for index in range(len(pieces) + 1):
            if index == 0 and behaviour.hang_before_first_token:
                self._wait_until(FOREVER, gen, epoch)
            due = start + behaviour.first_token_delay + index * behaviour.token_interval
            if index < len(pieces) or behaviour.fail_after == index:
                self._wait_until(due, gen, epoch)
            if behaviour.fail_after == index:
                with state.changed:
                    gen.outcome = "failed"
                if behaviour.fail_mode == "close":
                    self._drop()
                else:
                    reply.error(behaviour.error_message)
                return
            if index == len(pieces):
                break
            text, message = pieces[index]
            # Counted, then sent: a client holding the piece always finds it counted (a
            # test reads these while the generation runs; sent first, a busy machine
            # could let the client see the piece before the count).
            now = time.monotonic()
            with state.changed:
                gen.tokens_sent += 1
                gen.text += text
                gen.first_token_at = gen.first_token_at or now
                gen.last_token_at = now
            reply.piece(text, **message)
        end = time.monotonic()
        first, last = gen.first_token_at or end, gen.last_token_at or end
        with state.changed:  # recorded before the last line goes: a failed write overrides it
            gen.done_reason, gen.outcome = done_reason, "done"
        reply.finish(
            done=True,
            done_reason=done_reason,
            total_duration=_ns(end - gen.started_at),
            load_duration=_ns(start - gen.started_at),
            prompt_eval_count=_prompt_tokens(gen.endpoint, gen.body),
            prompt_eval_duration=_ns(first - start),
            eval_count=gen.tokens_sent,
            eval_duration=_ns(last - first),
            **(
                {"context": list(range(1, gen.tokens_sent + 1))}
                if gen.endpoint == "/api/generate"
                else {}
            ),
        )

    def _wait_until(self, deadline: float, gen: Generation, epoch: int) -> None:
        """Sleep until `deadline`, watching the peer (_ClientGone) and stop/restart (_Aborted)."""
        state = self.server.state
        while True:
            if state.stopping or state.epoch != epoch:
                raise _Aborted
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._peer_closed(min(left, _POLL)):
                gen.client_gone_at = time.monotonic()
                raise _ClientGone

    def _peer_closed(self, timeout: float) -> bool:
        """Wait up to `timeout` for the client to close its end (EOF or reset)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if not readable:
                return False
            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                return True
        except (OSError, ValueError):
            return True
        time.sleep(timeout)  # a pipelined request waits its turn: nothing to learn here
        return False

    def _drop(self) -> None:
        """Close the connection without a proper end, like a crashed server."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _keep_alive(self, body: dict[str, Any]) -> tuple[bool, float | None]:
        """(True, seconds) of the body's `keep_alive`, or (False, None) once a 400 naming
        the bad value has been answered, as upstream's handlers do."""
        try:
            return True, parse_keep_alive(body.get("keep_alive"))
        except ValueError as exc:
            self.send_json(400, {"error": str(exc)})
            return False, None

    def send_json(self, status: int, body: Any, strict: bool = False) -> None:
        """One JSON answer; with `strict`, a failed write raises _ClientGone."""
        sent = self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")
        if strict and not sent:
            raise _ClientGone

    def _send(self, status: int, body: bytes, content_type: str) -> bool:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # Go listens with the kernel's somaxconn, not socketserver's 5

    def __init__(
        self, address: tuple[str, int], state: StandInState, publish: Callable[[], None]
    ) -> None:
        self.state = state
        self.publish = publish
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def reset_connections(self) -> None:
        """Cut every open connection, as a dying server process does."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class OllamaStandIn:
    """The stand-in server in a background thread of this process.

    `on_loaded_change(frozenset[(model, size_vram)])` is called (outside the lock, in
    order, once per distinct set) whenever the loaded set changes: a load finishing, an
    unload, an expiry, a restart or `set_models`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "ok",
        load_time: float = 0.0,
        default_keep_alive: float = DEFAULT_KEEP_ALIVE,
        on_loaded_change: Callable[[LoadedSet], None] | None = None,
    ) -> None:
        self.state = StandInState(mode=mode, default_keep_alive=default_keep_alive)
        self.state.behaviour = Behaviour(load_time=load_time)
        self.on_loaded_change = on_loaded_change
        self._host = host
        self._publish_lock = threading.RLock()
        self._published: LoadedSet | None = None
        self._server: _Server | None = self._bind(port)
        self._port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None
        self._reaper = threading.Thread(
            target=self._reap, name="ollama-standin-reaper", daemon=True
        )
        self._restarter: threading.Timer | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        """Whether the stand-in accepts connections now (False while down in a restart)."""
        return self._server is not None

    def start(self) -> OllamaStandIn:
        self._serve()
        self._reaper.start()
        self.publish()
        return self

    def stop(self) -> None:
        """Stop serving; generations in flight, hanging ones too, are dropped."""
        self.set_mode("ok")
        with self.state.changed:
            self.state.stopping = True
            self.state.changed.notify_all()
        if self._restarter is not None:
            self._restarter.cancel()
        self._close(reset=False)

    def restart(self, down_for: float = 0.0, wait: bool = True) -> None:
        """Like a restarted `ollama serve`: cut every connection, forget the loaded set,
        refuse connections for `down_for` seconds, then listen again on the same port.

        With `wait=False` it returns once down and comes back up in the background.
        """
        with self.state.changed:
            self.state.epoch += 1
            self.state.forget_all()
            self.state.changed.notify_all()
        self.publish()
        self._close(reset=True)
        if down_for <= 0:
            self._serve()
        elif wait:
            time.sleep(down_for)
            self._serve()
        else:
            self._restarter = threading.Timer(down_for, self._serve)
            self._restarter.daemon = True
            self._restarter.start()

    def _bind(self, port: int) -> _Server:
        return _Server((self._host, port), self.state, self.publish)

    def _serve(self) -> None:
        if self.state.stopping:  # a restart timer firing after stop()
            return
        if self._server is None:
            self._server = self._bind(self._port)
        server = self._server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": _POLL}, daemon=True
        )
        self._thread.start()

    def _close(self, reset: bool) -> None:
        """Stop listening; with `reset`, also cut the open connections (a restart)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if reset:
            server.reset_connections()

    def _reap(self) -> None:
        """Finish loads and expire idle models on time, so the callback follows them."""
        state = self.state
        while True:
            with state.changed:
                if state.stopping:
                    return
                deadline = state.tick()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.publish()
            with state.changed:
                if state.stopping:
                    return
                state.changed.wait(timeout if timeout is None else timeout + 0.001)

    # -- configuration ----------------------------------------------------------------

    def set_mode(self, mode: str, delay: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self.state.changed:
            self.state.mode, self.state.delay = mode, delay
            self.state.changed.notify_all()

    def set_models(self, models: list[dict[str, Any]]) -> None:
        """The models on disk; the loaded set restarts from their `loaded` flags."""
        with self.state.changed:
            self.state.models = models
            self.state.reset_loaded()
            self.state.changed.notify_all()
        self.publish()

    def configure(self, **changes: Any) -> Behaviour:
        """Change generation behaviour (fields of `Behaviour`) for the next requests."""
        if "fail_mode" in changes and changes["fail_mode"] not in FAIL_MODES:
            raise ValueError(f"unknown fail_mode {changes['fail_mode']!r}")
        with self.state.changed:
            self.state.behaviour = dataclasses.replace(self.state.behaviour, **changes)
            return self.state.behaviour

    # -- what it has seen ---------------------------------------------------------------

    def bodies(self, path: str) -> list[Any]:
        """The bodies of the requests to `path`, oldest first."""
        with self.state.changed:
            return [r.body for r in self.state.recorded if r.path == path]

    def generations(self) -> list[Generation]:
        with self.state.changed:
            return list(self.state.generations)

    def residency(self) -> list[ResidencyEvent]:
        """Every load and unload so far, oldest first."""
        with self.state.changed:
            self.state.tick()
            return list(self.state.residency)

    @property
    def active_generations(self) -> int:
        """Generations still running (not yet ended for any reason)."""
        with self.state.changed:
            return sum(1 for g in self.state.generations if g.ended_at is None)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no generation runs; False on timeout."""
        with self.state.changed:
            return self.state.changed.wait_for(
                lambda: all(g.ended_at is not None for g in self.state.generations), timeout
            )

    def loaded(self) -> dict[str, LoadedModel]:
        """The loaded models now (finished loads only), by name (copies)."""
        with self.state.changed:
            self.state.tick()
            return {n: dataclasses.replace(e) for n, e in self.state.loaded.items() if e.ready}

    def loaded_set(self) -> LoadedSet:
        with self.state.changed:
            return self.state.loaded_set()

    def loaded_vram_bytes(self) -> int:
        """The VRAM the loaded models take now (sum of their size_vram)."""
        return sum(size for _, size in self.loaded_set())

    def publish(self) -> None:
        """Call on_loaded_change if the loaded set differs from the last one reported."""
        with self._publish_lock:
            current = self.loaded_set()
            if current == self._published:
                return
            self._published = current
            if self.on_loaded_change is not None:
                self.on_loaded_change(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--load-time", type=float, default=0.0)
    parser.add_argument("--token-interval", type=float, default=0.0)
    parser.add_argument("--reply", default=None)
    parser.add_argument(
        "--embedding-model", default=None, help="also an embedding model on disk, e.g. nomic"
    )
    parser.add_argument(
        "--tool-calls", type=json.loads, default=[], help="JSON: the calls a chat with tools gets"
    )
    args = parser.parse_args()
    server = OllamaStandIn(args.host, args.port, args.mode, load_time=args.load_time)
    if args.embedding_model:
        server.set_models([*default_models(), embedding_model(args.embedding_model, loaded=True)])
    server.set_mode(args.mode, args.delay)
    server.configure(
        token_interval=args.token_interval, reply=args.reply, tool_calls=tuple(args.tool_calls)
    )
    server.start()
    print(f"ollama stand-in listening on http://{args.host}:{server.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    server.stop()


if __name__ == "__main__":
    main()
