"""The intake API's routes (``Intake``): ``POST /batches``, ``GET /batches/{id}``,
``POST /batches/{id}/retry`` and ``POST /batches/{id}/cancel``, each checking its input against
``limits`` and answering through ``apigateway``."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigurationError, RateLimitError, ThingSpaceError
from ..swap.model import Priority
from ..swap.orchestrator import BatchNotFoundError, Submission
from ..swap.ports import ConflictError
from ..swap.requests import ITEM_FIELDS, ItemError, SwapItem, SwapRequest
from . import limits
from .answers import PAGE, status_payload, with_report
from .apigateway import HttpError, Request, Response, bounded, json_object, optional, response
from .runtime import LambdaRuntime

__all__ = ["Intake"]

_BATCH_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROUTES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^/batches$"), "POST", "create"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)$"), "GET", "status"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)/retry$"), "POST", "retry"),
    (re.compile(r"^/batches/(?P<batch_id>[^/]+)/cancel$"), "POST", "cancel"),
)
_REQUEST_FIELDS = frozenset(
    {
        "account_name",
        "items",
        "target_plan",
        "priority",
        "actor",
        "dry_run",
        "require_all_valid",
        "restore_suspended",
    }
)
_MAX_PAGE = 1000

_Route = Callable[[Request, str], Response]


class Intake:
    """The intake's routes over one runtime; a refusal raises ``HttpError``."""

    def __init__(self, runtime: LambdaRuntime) -> None:
        self.runtime = runtime

    def handle(self, request: Request) -> Response:
        """The answer to ``request`` (404 or 405 when no route takes it)."""
        route, batch_id = self._route(request)
        return route(request, batch_id)

    def _route(self, request: Request) -> tuple[_Route, str]:
        allowed: list[str] = []
        for pattern, method, name in _ROUTES:
            found = pattern.match(request.path)
            if found is None:
                continue
            if request.method != method:
                allowed.append(method)
                continue
            batch_id = found.groupdict().get("batch_id") or ""
            if batch_id and not _BATCH_ID.match(batch_id):
                raise HttpError(404, "no such batch")
            handler: _Route = getattr(self, f"_{name}")
            return handler, batch_id
        if allowed:
            refused = HttpError(405, f"{request.method} is not allowed here")
            refused.headers["allow"] = ", ".join(allowed)
            raise refused
        raise HttpError(404, "no such route")

    def _create(self, request: Request, _: str) -> Response:
        body = json_object(request, required=True)
        swap = self._swap_request(body, request.caller)
        orchestrator = self.runtime.orchestrator
        try:
            if optional(body, "dry_run", bool):
                report = orchestrator.validate(swap)
                return with_report(200, {"dry_run": True, "ok": report.ok}, report)
            submission = orchestrator.submit(swap)
        except ThingSpaceError as error:
            raise _upstream(error) from None
        except ConflictError as error:
            why = str(error)[: limits.MAX_TEXT]
            raise HttpError(409, f"a line was taken meanwhile: {why}") from None
        return _created(submission)

    def _swap_request(self, body: Mapping[str, Any], caller: str | None) -> SwapRequest:
        """The batch request a body asks for (400 or 413 when it is not one)."""
        unknown = sorted(set(body) - _REQUEST_FIELDS)
        if unknown:
            raise HttpError(400, f"{unknown[0][:50]} is not a field of a batch request")
        named = optional(body, "account_name", str)
        account = (
            bounded(named, "account_name", limits.MAX_NAME_LENGTH) or self.runtime.account_name
        )
        if not account:
            raise HttpError(400, "account_name is required (no default account is configured)")
        items = optional(body, "items", list)
        if not items:
            raise HttpError(400, "items must be a non-empty list")
        most = min(self.runtime.max_items, limits.MAX_ITEMS)
        if len(items) > most:
            raise HttpError(413, f"at most {most} items per batch")
        priority = optional(body, "priority", str) or "normal"
        if priority not in ("normal", "high"):
            raise HttpError(400, "priority must be 'normal' or 'high'")
        plan = optional(body, "target_plan", str)
        return SwapRequest(
            account,
            tuple(_item(index, raw) for index, raw in enumerate(items)),
            target_plan=bounded(plan, "target_plan", limits.MAX_NAME_LENGTH) or None,
            priority=Priority.HIGH if priority == "high" else Priority.NORMAL,
            actor=_actor(optional(body, "actor", str), caller),
            require_all_valid=bool(optional(body, "require_all_valid", bool)),
            restore_suspended=bool(optional(body, "restore_suspended", bool)),
        )

    def _status(self, request: Request, batch_id: str) -> Response:
        offset, limit = _page(request.query)
        try:
            status = self.runtime.orchestrator.status(batch_id)
        except BatchNotFoundError:
            raise HttpError(404, "no such batch") from None
        return response(200, status_payload(status, offset, limit))

    def _retry(self, request: Request, batch_id: str) -> Response:
        body = json_object(request, required=False)
        orchestrator = self.runtime.orchestrator
        try:
            orchestrator.batch(batch_id)
        except BatchNotFoundError:
            raise HttpError(404, "no such batch") from None
        actor = _actor(optional(body, "actor", str), request.caller)
        force = optional(body, "force", bool) or False
        report = orchestrator.retry_failed(batch_id, actor=actor, force=force)
        return response(
            202 if report.retried else 200,
            {
                "batch_id": batch_id,
                "retried": list(report.retried),
                "refused": [{"change_id": c, "reason": r} for c, r in report.refused],
            },
        )

    def _cancel(self, request: Request, batch_id: str) -> Response:
        body = json_object(request, required=False)
        actor = _actor(optional(body, "actor", str), request.caller)
        try:
            status = self.runtime.orchestrator.cancel(batch_id, actor=actor)
        except BatchNotFoundError:
            raise HttpError(404, "no such batch") from None
        return response(200, status_payload(status))


def _created(submission: Submission) -> Response:
    """201 with the new batch, or 422 saying why nothing runs; both with the report."""
    report = submission.report
    if submission.batch is None:
        if report.problems:
            why = "the request cannot run: " + "; ".join(p.message for p in report.problems)
        elif not report.valid:
            why = "no device is valid"
        else:
            why = f"require_all_valid is set and {len(report.invalid)} device(s) are invalid"
        return with_report(422, {"error": why}, report)
    batch = submission.batch
    return with_report(
        201,
        {"batch_id": batch.batch_id, "state": batch.state.value},
        report,
        {"location": f"/batches/{batch.batch_id}"},
    )


def _item(index: int, raw: object) -> SwapItem:
    """Item ``index`` of a batch request
    ([SwapItem.from_fields][thingspace_swap.swap.SwapItem.from_fields], each field bounded)."""
    where = f"items[{index}]."
    if not isinstance(raw, dict):
        raise HttpError(400, f"items[{index}] must be an object")
    unknown = sorted(set(raw) - set(ITEM_FIELDS))
    if unknown:
        raise HttpError(400, f"{where}{unknown[0][:50]} is not a field of an item")

    def text(name: str, limit: int) -> str | None:
        return bounded(optional(raw, name, str, where), f"{where}{name}", limit)

    fields = {  # checked in this order
        "device": _identifier(raw, "device", where),
        "device_kind": text("device_kind", limits.MAX_KIND_LENGTH),
        "new_iccid": _identifier(raw, "new_iccid", where),
        "new_imei": _identifier(raw, "new_imei", where),
        "plan": text("plan", limits.MAX_NAME_LENGTH),
    }
    try:
        return SwapItem.from_fields(fields, source=f"item {index}")
    except ItemError as error:
        raise HttpError(400, f"{where}{error}") from None


def _identifier(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    value = optional(raw, name, str, where)
    most = limits.MAX_IDENTIFIER_LENGTH
    why = f"an identifier has at most {most} (an EID, the longest, has {most} digits)"
    return bounded(value, f"{where}{name}", most, why)


def _actor(named: str | None, caller: str | None) -> str:
    """Who asks, for the audit trail: the name given and the IAM caller API Gateway saw."""
    parts = [p[:200] for p in (named, caller) if p]
    return " via ".join(parts) or "api"


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    def number(name: str, default: int, low: int, high: int) -> int:
        raw = query.get(name, "")
        if not raw:
            return default
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise HttpError(400, f"{name} must be a whole number from {low} to {high}")
        return int(raw)

    return number("offset", 0, 0, 10**9), number("limit", PAGE, 1, _MAX_PAGE)


def _upstream(error: ThingSpaceError) -> HttpError:
    """A ThingSpace failure as the answer to our caller (the code, never a body or secret)."""
    if isinstance(error, RateLimitError):
        wait = max(1, math.ceil(error.retry_after or 5))
        refused = HttpError(503, "ThingSpace is throttling requests; try again later")
        refused.headers["retry-after"] = str(wait)
        return refused
    if isinstance(error, ConfigurationError):
        return HttpError(500, "the service is misconfigured")
    return HttpError(502, "ThingSpace failed", code=error.code, upstream_status=error.status_code)
