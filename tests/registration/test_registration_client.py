"""The orchestrator HTTP client against go-livepeer's wire format (mocked with `responses`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses

from worker.config import load_settings
from worker.registration.byoc import (
    AuthRejected,
    Capability,
    OrchestratorClient,
    Rejected,
    Unreachable,
    capability_for,
    describe_network_error,
)

ORCH = "https://orch.example:8935"
SECRET = "orch-secret-value"
TOKEN = "worker-token-value"
CAPABILITY = Capability(
    name="agent-net",
    description="GPU health",
    url="http://worker:9876",
    capacity=10,
    price_per_unit=1_000_000_000_000,
    price_scaling=1,
    currency="wei",
    token=TOKEN,
)


def client(verify: bool | str = False) -> OrchestratorClient:
    return OrchestratorClient(ORCH, SECRET, verify=verify)


@responses.activate
def test_register_sends_go_livepeer_wire_format() -> None:
    responses.post(f"{ORCH}/capability/register", body="ok", status=200)
    client().register(CAPABILITY)

    request = responses.calls[0].request
    assert request.headers["Authorization"] == SECRET  # raw secret, no "Bearer "
    assert request.headers["Content-Type"] == "application/json"
    raw = request.body.decode() if isinstance(request.body, bytes) else request.body
    document = json.loads(raw)
    assert list(document) == [
        "name",
        "description",
        "url",
        "capacity",
        "price_per_unit",
        "price_scaling",
        "currency",
        "token",
    ]
    for field in ("capacity", "price_per_unit", "price_scaling"):
        assert type(document[field]) is int, field
    assert '"capacity": 10' in raw and '"price_per_unit": 1000000000000' in raw
    assert document["token"] == TOKEN


@responses.activate
def test_unregister_sends_the_name_as_plain_text() -> None:
    responses.post(f"{ORCH}/capability/unregister", body="ok", status=200)
    client().unregister("agent-net-nyc")

    request = responses.calls[0].request
    assert request.body == b"agent-net-nyc"
    assert request.headers["Authorization"] == SECRET
    assert request.headers["Content-Type"].startswith("text/plain")


@responses.activate
def test_requests_use_the_tls_setting_and_bounded_timeouts(tls_pair: tuple[Path, Path]) -> None:
    responses.post(f"{ORCH}/capability/register", body="ok")
    OrchestratorClient(ORCH, SECRET, verify=str(tls_pair[0])).register(CAPABILITY)
    kwargs = responses.calls[0].request.req_kwargs
    assert kwargs["verify"] == str(tls_pair[0])
    assert kwargs["timeout"] == (3.0, 5.0)


@responses.activate
def test_wrong_secret_is_an_auth_rejection() -> None:
    # go-livepeer answers with http.Error: the message and a newline.
    responses.post(f"{ORCH}/capability/register", body="invalid authorization\n", status=400)
    with pytest.raises(AuthRejected) as caught:
        client().register(CAPABILITY)
    assert caught.value.permanent
    assert str(caught.value) == "HTTP 400: invalid authorization"


@responses.activate
def test_a_refused_capability_is_permanent_but_not_an_auth_problem() -> None:
    body = (
        "Error registering capability: json: cannot unmarshal string into Go struct"
        " field ExternalCapability.capacity of type int"
    )
    responses.post(f"{ORCH}/capability/register", body=body, status=400)
    with pytest.raises(Rejected) as caught:
        client().register(CAPABILITY)
    assert not isinstance(caught.value, AuthRejected)
    assert caught.value.permanent
    assert "cannot unmarshal" in str(caught.value)


@pytest.mark.parametrize("status", [404, 405, 500, 502, 503])
@responses.activate
def test_other_statuses_are_transient(status: int) -> None:
    responses.post(f"{ORCH}/capability/register", body="busy", status=status)
    with pytest.raises(Rejected) as caught:
        client().register(CAPABILITY)
    assert not caught.value.permanent
    assert caught.value.status == status


@responses.activate
def test_redirects_are_not_followed_so_the_secret_stays_home() -> None:
    responses.post(
        f"{ORCH}/capability/register",
        status=307,
        headers={"Location": "https://elsewhere.example/capability/register"},
    )
    responses.post("https://elsewhere.example/capability/register", body="ok")
    with pytest.raises(Rejected) as caught:
        client().register(CAPABILITY)
    assert caught.value.status == 307
    assert len(responses.calls) == 1


@responses.activate
def test_echoed_secrets_never_reach_the_error_text() -> None:
    responses.post(
        f"{ORCH}/capability/register",
        status=500,
        body=f"bad request from {SECRET} with token {TOKEN}",
    )
    with pytest.raises(Rejected) as caught:
        client().register(CAPABILITY)
    text = str(caught.value)
    assert SECRET not in text and TOKEN not in text
    assert "***" in text


@responses.activate
def test_a_connection_error_is_unreachable_with_a_short_reason() -> None:
    refused = requests.ConnectionError(
        "HTTPSConnectionPool(host='orch.example', port=8935): Max retries exceeded with url:"
        " /capability/register (Caused by NewConnectionError('<urllib3.connection."
        "HTTPSConnection object at 0x7f>: Failed to establish a new connection:"
        " [Errno 111] Connection refused'))"
    )
    responses.post(f"{ORCH}/capability/register", body=refused)
    with pytest.raises(Unreachable) as caught:
        client().register(CAPABILITY)
    assert str(caught.value) == "ConnectionError: [Errno 111] Connection refused"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            requests.exceptions.SSLError(
                "HTTPSConnectionPool(host='o', port=8935): Max retries exceeded (Caused by"
                " SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]"
                " certificate verify failed: self-signed certificate (_ssl.c:1006)')))"
            ),
            "SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:"
            " self-signed certificate",
        ),
        (
            requests.exceptions.ReadTimeout(
                "HTTPSConnectionPool(host='o', port=8935): Read timed out. (read timeout=5.0)"
            ),
            "ReadTimeout: Read timed out.",
        ),
        (requests.exceptions.ConnectTimeout("something opaque"), "ConnectTimeout"),
    ],
)
def test_network_errors_are_described_briefly(error: Exception, expected: str) -> None:
    assert describe_network_error(error) == expected


def test_capability_repr_hides_the_token() -> None:
    assert TOKEN not in repr(CAPABILITY)
    assert SECRET not in repr(client())


def test_capability_follows_settings_per_orchestrator() -> None:
    settings = load_settings(
        {
            "ORCH_URL": "https://nyc:8935,https://tokyo:8935",
            "ORCH_SECRET": SECRET,
            "CAPABILITY_NAME": "agent-net-nyc,agent-net-tokyo",
            "CAPABILITY_URL": "http://worker:9876",
            "CAPABILITY_CAPACITY": "3",
            "CAPABILITY_PRICE_PER_UNIT": "7",
            "CAPABILITY_PRICE_SCALING": "1000",
            "CAPABILITY_CURRENCY": "eth",
            "CAPABILITY_DESCRIPTION": "desc",
            "WORKER_TOKEN": TOKEN,
        }
    )
    nyc, tokyo = (capability_for(settings, target) for target in settings.orchestrators)
    assert nyc.payload() == {
        "name": "agent-net-nyc",
        "description": "desc",
        "url": "http://worker:9876",
        "capacity": 3,
        "price_per_unit": 7,
        "price_scaling": 1000,
        "currency": "eth",
        "token": TOKEN,
    }
    assert tokyo.name == "agent-net-tokyo"


def test_no_worker_token_registers_an_empty_token() -> None:
    settings = load_settings({"ORCH_URL": "http://orch:8935", "ORCH_SECRET": SECRET})
    capability = capability_for(settings, settings.orchestrators[0])
    assert capability.payload()["token"] == ""
    assert capability.payload()["name"] == "agent-net"
