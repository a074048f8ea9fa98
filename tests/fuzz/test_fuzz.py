"""Fuzz campaigns: whatever comes in, only the library's typed errors come out, a worker never
dies on one bad message, and nothing valid is dropped.

CI runs a few hundred examples each; ``nox -s fuzz`` runs 10,000 (``FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import thingspace_swap as ts
from tests.swap.harness import Harness
from thingspace_swap.errors import error_from_response
from thingspace_swap.identifiers import parse_identifier
from thingspace_swap.models import Account, DeviceListPage, RequestStatus, ServicePlan
from thingspace_swap.models._converter import structure
from thingspace_swap.swap import CallbackIntake, MemoryQueue, Phase, read_csv

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
KINDS = [
    "iccid",
    "imei",
    "eid",
    "meid",
    "esn",
    "mdn",
    "msisdn",
    "imsi",
    "ICCID",
    "iccId",
    "min",
    "x",
]


@FUZZ
@given(
    kind=st.sampled_from(KINDS),
    value=st.text(max_size=40) | st.from_regex(r"[0-9A-Fa-f]{0,34}", fullmatch=True),
)
def test_identifier_parsing_only_raises_identifier_errors(kind: str, value: str) -> None:
    try:
        parsed = parse_identifier(kind, value)
    except ts.IdentifierError as error:
        assert error.message
    else:
        assert str(parsed) == value.strip().upper() or str(parsed) == value.strip()


def _mutated_page() -> st.SearchStrategy[Any]:
    device = st.fixed_dictionaries(
        {
            "deviceIds": st.lists(
                st.fixed_dictionaries({"id": st.text(max_size=22), "kind": st.sampled_from(KINDS)}),
                max_size=4,
            ),
            "carrierInformations": st.lists(
                st.dictionaries(
                    st.sampled_from(["state", "servicePlan", "carrierName"]), json_values
                ),
                max_size=2,
            ),
            "extendedAttributes": st.lists(
                st.fixed_dictionaries({"key": st.just("DeviceId"), "value": json_values}),
                max_size=2,
            ),
        },
        optional={"extra": json_values, "connected": json_values, "groupNames": json_values},
    )
    page = st.fixed_dictionaries(
        {"hasMoreData": json_values, "devices": st.lists(device, max_size=4)},
        optional={"x": json_values},
    )
    return st.one_of(page, json_values)


@FUZZ
@given(
    data=_mutated_page(),
    target=st.sampled_from([DeviceListPage, Account, RequestStatus, list[ServicePlan]]),
)
def test_response_decoding_only_raises_decode_errors(data: Any, target: Any) -> None:
    try:
        structure(data, target)
    except ts.DecodeError as error:
        assert error.message


@FUZZ
@given(
    status=st.integers(400, 599),
    body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_error_bodies_always_map(status: int, body: bytes) -> None:
    assert isinstance(error_from_response(status, {}, body, idempotent=False), ts.ThingSpaceError)


@FUZZ
@given(
    body=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()),
    headers=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=4),
)
def test_callback_intake_answers_every_body(body: bytes, headers: dict[str, str]) -> None:
    accepted: list[Any] = []
    intake = CallbackIntake(
        lambda cb: accepted.append(cb) or "applied", username="u", password="p", max_bytes=1000
    )
    response = intake.handle(body, headers)
    assert response.status in (200, 400, 401, 413)
    assert (response.status == 200) == bool(accepted)


@FUZZ
@given(text=st.text(max_size=600))
def test_csv_input_only_reports_problems(text: str) -> None:
    items, problems = read_csv(text)
    for problem in problems:
        assert problem.line >= 1
        assert problem.message
    assert all(item.device.id and item.new for item in items)


@settings(
    max_examples=max(20, EXAMPLES // 20), deadline=None, suppress_health_check=list(HealthCheck)
)
@given(bodies=st.lists(st.text(max_size=80) | json_values.map(json.dumps), min_size=1, max_size=6))
def test_poison_messages_never_stop_a_worker_nor_lose_a_change(bodies: list[str]) -> None:
    h = Harness(devices=12, request_delay=0)
    queue = h.queue
    assert isinstance(queue, MemoryQueue)
    for body in bodies:
        queue.send_raw(body)
    status = h.run(h.sim_swaps(2))
    assert status.counts == {"completed": 2}
    assert all(c.phase is Phase.COMPLETED for c in status.changes)
    assert queue.stats().visible == 0


def test_a_huge_response_is_decoded_or_refused_cleanly() -> None:
    devices = [
        {
            "deviceIds": [{"id": str(n), "kind": "iccid"}],
            "extendedAttributes": [{"key": "DeviceId", "value": str(n)}],
        }
        for n in range(20_000)
    ]
    page = structure({"hasMoreData": False, "devices": devices}, DeviceListPage)
    assert len(page.devices) == 20_000
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"[" * 100_000))
    client = ts.ThingSpaceClient(
        ts.Credentials("k", "s", "u", "p"),
        base_url="https://x.test",
        transport=transport,
        retry=ts.NO_RETRY,
    )
    try:
        client.plans.list("acct")
    except ts.ThingSpaceError as error:
        assert isinstance(error, (ts.DecodeError, ts.LoginError, ts.TokenError))
