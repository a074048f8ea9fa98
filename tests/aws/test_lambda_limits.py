"""The Lambda intake bounds its input and keeps every answer under a size budget (issue 13,
item 10), driven with API Gateway events through the real handlers on moto's server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import events
from tests.aws.support import Aws
from tests.aws.test_lambda_handlers import Stack
from thingspace_swap.aws import lambda_handlers as lh
from thingspace_swap.aws import limits

#: Lambda refuses a synchronous answer over 6 MB (a 5xx at API Gateway).
LAMBDA_LIMIT = 6 * 1024 * 1024
MEGABYTE = 1_000_000
#: Every answer stays under this many bytes, well below Lambda's limit.
BUDGET = 4 * MEGABYTE


def wire_size(answer: dict[str, Any]) -> int:
    """What the Lambda runtime sends for ``answer`` (the whole dict, JSON-encoded)."""
    return len(json.dumps(answer).encode("utf-8"))


def call(stack: Stack, body: Any, version: str = "http") -> tuple[int, dict[str, Any], int]:
    event = events.http(f"apigw_{version}_create_batch.json", body=body)
    answer = stack.handlers.intake(event, events.LambdaContext())
    assert answer["headers"]["content-type"] == "application/json"
    size = wire_size(answer)
    assert size <= BUDGET, size
    return int(answer["statusCode"]), json.loads(answer["body"]), size


def test_the_budget_is_well_below_lambdas_limit() -> None:
    assert lh.RESPONSE_BUDGET <= BUDGET < LAMBDA_LIMIT
    assert lh.MAX_ITEMS == 10_000
    assert lh.MAX_IDENTIFIER_LENGTH == 32


@pytest.mark.parametrize("pad", ["\u00ad", "0"])
def test_a_request_of_identifiers_padded_to_2_4_mb_is_a_small_400(aws: Aws, pad: str) -> None:
    """The request that came back as 8.4 MB: 1,000 items whose device is an ICCID padded with
    1,155 soft hyphens (2 bytes each in the request, 7 in the answer as it was: ``\\u00ad``
    in the body, its backslash escaped again by Lambda's runtime), or with zeros."""
    stack = Stack(aws)
    spares = stack.population.spare_iccids
    device = stack.items(1)[0]["device"]
    width = len(device) + (1_155 if pad != "0" else 2_310)
    items = [
        {"device": device.ljust(width, pad), "device_kind": "iccid", "new_iccid": spares[i % 40]}
        for i in range(1_000)
    ]
    body = json.dumps({"items": items}, ensure_ascii=False)
    assert 2_400_000 <= len(body.encode()) < 2_500_000
    for version in ("http", "rest"):
        status, answer, size = call(stack, body, version)
        assert status == 400, answer
        assert size < 1_000
        assert answer["error"] == (
            f"items[0].device has {width} characters: an identifier has at most 32 "
            "(an EID, the longest, has 32 digits)"
        )
    assert list(stack.orchestrator.store.batches()) == []


def test_whitespace_padding_is_stripped_before_it_is_echoed(aws: Aws) -> None:
    """Padding that is only whitespace is not part of the identifier: the answer echoes the
    identifier, not the 2.4 MB."""
    stack = Stack(aws)
    spares = stack.population.spare_iccids
    pad = " " * 590
    items = [
        {"device": f"{pad}{spares[i]}{pad}", "new_iccid": f"{pad}{spares[20 + i]}{pad}"}
        for i in range(20)
    ] * 50
    body = json.dumps({"items": items, "dry_run": True})
    assert 2_400_000 <= len(body) < 2_500_000
    status, answer, size = call(stack, body)
    assert status == 200, answer
    assert size < 2_400_000 / 4
    assert answer["report"][0]["device"] == spares[0]
    assert answer["report"][0]["new"] == f"iccid:{spares[20]}"


@pytest.mark.parametrize("extra", [0, 1])
def test_10_000_invalid_items_are_summarised_under_the_budget(aws: Aws, extra: int) -> None:
    stack = Stack(aws, max_items=10_000)
    bad = "8914800000080013970" + "9" * 13  # 32 digits, not an ICCID
    items = [{"device": bad, "device_kind": "iccid", "new_iccid": bad}] * (10_000 + extra)
    status, answer, _ = call(stack, {"items": items})
    if extra:
        assert status == 413, answer
        assert answer == {"error": "at most 10000 items per batch"}
        return
    assert status == 422, answer
    assert (answer["valid"], answer["invalid"]) == (0, 10_000)
    summary = answer["problem_summary"]
    assert summary["total"] == 30_000  # two malformed identifiers and a duplicate new one
    assert summary["listed"] == lh.PROBLEMS_LISTED
    assert summary["by_code"] == {"identifier.invalid": 20_000, "new_id.duplicate": 10_000}
    records = answer["report"]
    detailed = [p for r in records for p in r["problems"] if "message" in p]
    assert len(detailed) == lh.PROBLEMS_LISTED
    assert all(set(p) == {"code"} for r in records[lh.PROBLEMS_LISTED :] for p in r["problems"])
    assert len(records) + answer.get("report_omitted", 0) == 10_000


def test_the_item_limit_never_exceeds_thingspaces(aws: Aws) -> None:
    stack = Stack(aws, max_items=50_000)
    items = [{"device": "1", "device_kind": "iccid", "new_iccid": "1"}] * 10_001
    status, answer, _ = call(stack, {"items": items})
    assert status == 413
    assert "at most 10000 items" in answer["error"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed(stack_small: Stack) -> None:
    body = '{"items": [' + " " * lh.MAX_BODY_BYTES + "]}"
    status, answer, _ = call(stack_small, body)
    assert status == 413
    assert answer["error"].startswith(f"the body has {len(body)} bytes: at most")


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"device": "8" * 33}, "items[0].device has 33 characters: an identifier has at most 32"),
        (
            {"device": "89148000000800139708", "new_imei": "3" * 40},
            "items[0].new_imei has 40 characters",
        ),
        (
            {"device": "89148000000800139708", "device_kind": "k" * 17},
            "items[0].device_kind has 17 characters: at most 16",
        ),
        (
            {"device": "89148000000800139708", "plan": "P" * 65},
            "items[0].plan has 65 characters: at most 64",
        ),
    ],
)
def test_long_fields_are_400_naming_the_field(
    stack_small: Stack, item: dict[str, str], fragment: str
) -> None:
    status, answer, _ = call(stack_small, {"items": [item]})
    assert status == 400, answer
    assert fragment in answer["error"]


def test_long_request_fields_are_400(stack_small: Stack) -> None:
    item = {"device": "89148000000800139708", "new_iccid": "89148000000842590078"}
    for field in ("target_plan", "account_name"):
        status, answer, _ = call(stack_small, {"items": [item], field: "x" * 65})
        assert status == 400, answer
        assert answer["error"] == f"{field} has 65 characters: at most 64"


def test_a_status_page_is_cut_to_the_budget_and_says_where_to_go_on(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(aws)
    status, created = stack.call(
        "apigw_http_create_batch.json", body={"items": stack.items(30), "actor": "tests"}
    )
    assert status == 201, created
    batch_id = created["batch_id"]
    monkeypatch.setattr(limits, "RESPONSE_BUDGET", 6_000)
    seen: list[str] = []
    offset = 0
    while True:
        query = {"offset": str(offset), "limit": "1000"}
        event = events.http("apigw_http_get_batch.json", batch_id=batch_id, query=query)
        answer = stack.handlers.intake(event, events.LambdaContext())
        assert answer["statusCode"] == 200
        assert wire_size(answer) <= 6_000
        page = json.loads(answer["body"])
        assert 0 < len(page["changes"]) < 30
        seen += [c["change_id"] for c in page["changes"]]
        if page["next_offset"] is None:
            break
        offset = page["next_offset"]
    assert len(seen) == len(set(seen)) == 30


def test_a_created_batch_always_names_itself_even_when_its_report_is_cut(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(aws)
    monkeypatch.setattr(limits, "RESPONSE_BUDGET", 3_000)
    items = stack.items(20)
    status, answer, _ = call(stack, {"items": items})
    assert status == 201, answer
    assert answer["batch_id"]
    assert answer["valid"] == 20
    assert 0 < len(answer["report"]) < 20
    assert answer["report_omitted"] == 20 - len(answer["report"])


@pytest.fixture
def stack_small(aws: Aws) -> Stack:
    return Stack(aws, devices=4)
