"""HTTP client for go-livepeer's dynamic live-runner registration (v0.9.0 and later).

As ai/runner/live_runner.go and server/ai_http.go (v0.9.1) implement it
(docs/live-runner-protocol.md): `POST /runners/heartbeat` with the orchestrator secret in
`Authorization` bootstraps a runner id and returns its heartbeat secret; later heartbeats
carry that secret; `POST /runners/{id}/unregister` with it removes the runner (204).
Errors are `http.Error` text; the heartbeat secret never leaves this module's objects
except in the one header that needs it.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from urllib3.exceptions import InsecureRequestWarning

from worker.registration.byoc import _short, describe_network_error

HEARTBEAT_PATH = "/runners/heartbeat"
TIMEOUT = (3.0, 5.0)  # (connect, read) seconds
NOT_SUPPORTED_BODY = "live runners are not supported"
NOT_FOUND_BODY = "runner not found"

_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9}
_DURATION_UNITS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration ("5s", "200ms", "1m30s") in seconds; ValueError if invalid."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string, not {type(text).__name__}")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, position = Fraction(0), 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += Fraction(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    seconds = float(total / 10**9)
    return -seconds if text.startswith("-") else seconds


def new_runner_id(capability: str) -> str:
    """A fresh id per bootstrap: go-livepeer refuses (401) to bootstrap an id it still
    holds, so a worker that crashed with its heartbeat secret is never locked out."""
    suffix = base64.b32encode(secrets.token_bytes(5)).decode().rstrip("=").lower()
    name = re.sub(r"[^a-z0-9-]+", "-", capability.lower()).strip("-") or "runner"
    return f"agent-net-{name}-{suffix}"


def price_literal(price: Decimal) -> str:
    """A JSON number literal for json.Number (a string holding one decodes too)."""
    text = format(price.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True)
class HeartbeatAnswer:
    """LiveRunnerHeartbeatResponse: `heartbeat_secret` only on the first registration."""

    runner_id: str
    interval: float  # seconds, from heartbeat_interval
    ttl: float | None
    heartbeat_secret: str | None = field(default=None, repr=False)
    session_ids: tuple[str, ...] = ()


class LiveRunnerError(Exception):
    """A heartbeat or unregistration that did not succeed; `str()` is safe to log."""


class Unreachable(LiveRunnerError):
    """No HTTP answer: refused, reset, DNS, TLS or timeout."""


class Refused(LiveRunnerError):
    """The orchestrator answered with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}" if reason else f"HTTP {status}")
        self.status = status
        self.reason = reason


class NotSupported(Refused):
    """404 without the runner: no -useLiveRunners (or a go-livepeer before v0.9.0)."""


class Forgotten(Refused):
    """404 runner not found, or 401 to a heartbeat: the orchestrator no longer holds this
    runner under this secret (restart, TTL expiry): bootstrap again with a fresh id."""


class Unauthorized(Refused):
    """401 to a bootstrap: ORCH_SECRET is not the orchestrator's -orchSecret."""


class Invalid(Refused):
    """400: the orchestrator refused the heartbeat body; repeating it cannot help."""


class BadAnswer(LiveRunnerError):
    """A 200 whose body is not the heartbeat answer go-livepeer sends."""


class LiveRunnerClient:
    """Heartbeat and unregister with one orchestrator over one `requests.Session`."""

    def __init__(
        self,
        url: str,
        orch_secret: str,
        *,
        verify: bool | str = False,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self._orch_secret = orch_secret
        self._timeout = timeout
        self._session = requests.Session()
        self._session.verify = verify
        self._session.trust_env = False
        if verify is False:
            urllib3.disable_warnings(InsecureRequestWarning)

    def __repr__(self) -> str:
        return f"LiveRunnerClient(url={self.url!r})"

    def bootstrap(self, body: dict[str, Any]) -> HeartbeatAnswer:
        """Register a new runner id with the orchestrator secret; the answer has the secret."""
        answer = self._heartbeat(body, self._orch_secret, bootstrap=True)
        if not answer.heartbeat_secret:
            raise BadAnswer("the bootstrap answer has no heartbeat_secret")
        return answer

    def heartbeat(self, body: dict[str, Any], heartbeat_secret: str) -> HeartbeatAnswer:
        """Refresh a registered runner with its heartbeat secret."""
        return self._heartbeat(body, heartbeat_secret, bootstrap=False)

    def unregister(
        self, runner_id: str, heartbeat_secret: str, *, timeout: tuple[float, float] | None = None
    ) -> None:
        """POST /runners/{id}/unregister; 204 is success, anything else LiveRunnerError."""
        path = f"/runners/{quote(runner_id, safe='')}/unregister"
        response = self._post(path, heartbeat_secret, None, timeout)
        if response.status_code == 204:
            return
        reason = self._reason(response, heartbeat_secret)
        if response.status_code == 404:
            raise Forgotten(404, reason)
        raise Refused(response.status_code, reason)

    def close(self) -> None:
        self._session.close()

    def _heartbeat(self, body: dict[str, Any], secret: str, *, bootstrap: bool) -> HeartbeatAnswer:
        response = self._post(HEARTBEAT_PATH, secret, body, None)
        status = response.status_code
        if status == 200:
            return self._answer(response)
        reason = self._reason(response, secret)
        if status == 404:
            if reason == NOT_FOUND_BODY:
                raise Forgotten(404, reason)
            raise NotSupported(404, reason)
        if status == 401:
            raise Unauthorized(401, reason) if bootstrap else Forgotten(401, reason)
        if status == 400:
            raise Invalid(400, reason)
        raise Refused(status, reason)

    def _post(
        self,
        path: str,
        secret: str,
        body: dict[str, Any] | None,
        timeout: tuple[float, float] | None,
    ) -> requests.Response:
        try:
            response = self._session.post(
                self.url + path,
                json=body,
                headers={"Authorization": secret},
                timeout=timeout or self._timeout,
                allow_redirects=False,
            )
            _ = response.content
        except requests.RequestException as exc:
            raise Unreachable(describe_network_error(exc)) from None
        return response

    def _reason(self, response: requests.Response, secret: str) -> str:
        return _short(response.text, (secret, self._orch_secret))

    @staticmethod
    def _answer(response: requests.Response) -> HeartbeatAnswer:
        try:
            data = response.json()
            interval = parse_go_duration(data["heartbeat_interval"])
            ttl_text = data.get("heartbeat_ttl")
            ttl = parse_go_duration(ttl_text) if isinstance(ttl_text, str) else None
            runner_id = data["runner_id"]
            secret = data.get("heartbeat_secret")
            sessions = tuple(str(s) for s in data.get("session_ids") or ())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadAnswer(f"unexpected heartbeat answer ({type(exc).__name__})") from None
        if not isinstance(runner_id, str) or interval <= 0:
            raise BadAnswer("unexpected heartbeat answer (runner_id or heartbeat_interval)")
        return HeartbeatAnswer(
            runner_id=runner_id,
            interval=interval,
            ttl=ttl,
            heartbeat_secret=secret if isinstance(secret, str) and secret else None,
            session_ids=sessions,
        )
