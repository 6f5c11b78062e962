"""HTTP client for one go-livepeer orchestrator: register and unregister a BYOC capability.

Matches go-livepeer's handlers (byoc/job_orchestrator.go): the raw orchestrator secret
in `Authorization` (no "Bearer "), the capability as JSON with integers as JSON
integers, and the capability name as the plain-text body of an unregistration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from urllib3.exceptions import InsecureRequestWarning

from worker.agents import Agent
from worker.config import OrchestratorTarget, Settings

REGISTER_PATH = "/capability/register"
UNREGISTER_PATH = "/capability/unregister"
TIMEOUT = (3.0, 5.0)  # (connect, read) seconds
AUTH_REJECTED_BODY = "invalid authorization"
_MAX_REASON = 200


@dataclass(frozen=True)
class Capability:
    """go-livepeer's `core.ExternalCapability`, as this worker registers it."""

    name: str
    description: str
    url: str
    capacity: int
    price_per_unit: int
    price_scaling: int
    currency: str
    token: str = field(default="", repr=False)

    def payload(self) -> dict[str, Any]:
        """The JSON document go-livepeer decodes (every field; `token` "" means none)."""
        return {
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "capacity": int(self.capacity),
            "price_per_unit": int(self.price_per_unit),
            "price_scaling": int(self.price_scaling),
            "currency": self.currency,
            "token": self.token,
        }


def capability_for(settings: Settings, target: OrchestratorTarget) -> Capability:
    """The capability this worker registers with `target`."""
    return _capability(
        settings,
        target.capability_name,
        settings.capability_description,
        settings.capability_capacity,
        (
            settings.capability_price_per_unit,
            settings.capability_price_scaling,
            settings.capability_currency,
        ),
    )


def agent_capability(settings: Settings, agent: Agent) -> Capability:
    """The capability an agent is registered as (the same with every orchestrator)."""
    return _capability(
        settings,
        agent.name,
        agent.summary,
        agent.capacity,
        (agent.price_per_unit, agent.price_scaling, agent.currency),
    )


def _capability(
    settings: Settings, name: str, description: str, capacity: int, price: tuple[int, int, str]
) -> Capability:
    """A capability at this worker's URL, with its job token; `price` is (per unit,
    scaling, currency)."""
    token = settings.job_token
    per_unit, scaling, currency = price
    return Capability(
        name=name,
        description=description,
        url=settings.advertised_url,
        capacity=capacity,
        price_per_unit=per_unit,
        price_scaling=scaling,
        currency=currency,
        token="" if token is None else token.get_secret_value(),
    )


def capabilities_for(
    settings: Settings, target: OrchestratorTarget, agents: tuple[Agent, ...]
) -> list[Capability]:
    """Everything registered with `target`: the GPU-check capability, then each agent."""
    return [capability_for(settings, target), *(agent_capability(settings, a) for a in agents)]


class RegistrationError(Exception):
    """A registration or unregistration that did not succeed; `str()` is safe to log."""

    #: True when repeating the same request cannot succeed until an operator acts.
    permanent = False


class Unreachable(RegistrationError):
    """No HTTP answer: connection refused or reset, DNS, TLS, timeout."""


class Rejected(RegistrationError):
    """The orchestrator answered with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}" if reason else f"HTTP {status}")
        self.status = status
        self.permanent = status == 400


class AuthRejected(Rejected):
    """`400 invalid authorization`: ORCH_SECRET differs from the orchestrator's -orchSecret."""


def describe_network_error(exc: BaseException) -> str:
    """`ClassName: short reason` for a requests exception, without URL noise or traceback."""
    text = str(exc)
    reason = ""
    for pattern in (
        r"\[SSL: [A-Z_]+\][^'\"(]*",
        r"\[Errno -?\d+\] [^'\")]+",
        r"(?:Read|Connect) timed out\.?",
        r"RemoteDisconnected\([^)]*\)",
        r"Connection aborted\.?",
    ):
        match = re.search(pattern, text)
        if match:
            reason = match.group(0).strip()
            break
    name = type(exc).__name__
    return f"{name}: {reason}" if reason else name


def _short(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


class OrchestratorClient:
    """Register and unregister with one orchestrator over one `requests.Session`."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        verify: bool | str = False,
        timeout: tuple[float, float] = TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._timeout = timeout
        self._session = requests.Session()
        self._session.verify = verify
        self._session.trust_env = False  # no proxies from the environment for a LAN peer
        if verify is False:
            # The registrar logs one warning of its own; urllib3 would warn per request.
            urllib3.disable_warnings(InsecureRequestWarning)

    def __repr__(self) -> str:
        return f"OrchestratorClient(url={self.url!r})"

    def register(self, capability: Capability) -> None:
        """POST the capability; raise RegistrationError unless the orchestrator says 200."""
        self._post(REGISTER_PATH, json=capability.payload(), secrets=(capability.token,))

    def unregister(self, name: str, *, timeout: tuple[float, float] | None = None) -> None:
        """POST the capability name as plain text; raise RegistrationError on failure."""
        self._post(
            UNREGISTER_PATH,
            data=name.encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._session.close()

    def _post(
        self,
        path: str,
        *,
        secrets: tuple[str, ...] = (),
        timeout: tuple[float, float] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        all_headers = {"Authorization": self._secret, **(headers or {})}
        try:
            response = self._session.post(
                self.url + path,
                headers=all_headers,
                timeout=timeout or self._timeout,
                allow_redirects=False,
                **kwargs,
            )
            body = response.text
        except requests.RequestException as exc:
            raise Unreachable(describe_network_error(exc)) from None
        if response.status_code == 200:
            return
        reason = _short(body, (self._secret, *secrets))
        if response.status_code == 400 and reason == AUTH_REJECTED_BODY:
            raise AuthRejected(400, reason)
        raise Rejected(response.status_code, reason)
