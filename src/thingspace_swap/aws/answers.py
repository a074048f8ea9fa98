"""The intake's answers that carry records: a validation report (``with_report``) and a
page of a batch's status (``status_payload``), each cut to the answer's budget."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..swap.reports import BatchStatus, ValidationReport
from . import limits
from .apigateway import Response, clip, fit, response

__all__ = ["PAGE", "status_payload", "with_report"]

PAGE = 100
"""Changes in a page of a batch's status unless the caller asks for another number."""


def with_report(
    status: int,
    head: Mapping[str, Any],
    report: ValidationReport,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An answer carrying the per-device report (``ValidationReport.to_records``, problems as
    code and message). The first ``PROBLEMS_LISTED`` problems of devices have their message,
    later ones their code only; ``problem_summary`` counts them all by code. When the report
    would not fit the budget, invalid devices are kept first and ``report_omitted`` says how
    many devices were left out (the batch's status pages have them all)."""
    listed = 0
    by_code: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    for check, record in zip(report.checks, report.to_records(), strict=True):
        problems: list[dict[str, str]] = []
        for problem in check.problems:
            by_code[problem.code] += 1
            if listed < limits.PROBLEMS_LISTED:
                problems.append({"code": problem.code, "message": problem.message})
                listed += 1
            else:
                problems.append({"code": problem.code})
        records.append({**record, "problems": problems})
    payload: dict[str, Any] = {
        **head,
        "valid": len(report.valid),
        "invalid": len(report.invalid),
        "problems": [{"code": p.code, "message": p.message} for p in report.problems],
        "problem_summary": {
            "total": sum(by_code.values()),
            "listed": listed,
            "by_code": dict(sorted(by_code.items())),
        },
    }
    kept = fit({**payload, "report": [], "report_omitted": len(records)}, records, _invalid)
    payload["report"] = kept
    if len(kept) < len(records):
        payload["report_omitted"] = len(records) - len(kept)
    return response(status, payload, headers)


def _invalid(record: Mapping[str, Any]) -> bool:
    return not record.get("ok")


def status_payload(status: BatchStatus, offset: int = 0, limit: int = PAGE) -> dict[str, Any]:
    """A page of the batch's changes. A page that would not fit the answer's budget holds fewer
    changes (``limit`` then says how many); ``next_offset`` is always where the next one
    starts."""
    batch = status.batch
    records = status.to_records()
    payload: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "account_name": batch.account_name,
        "state": batch.state.value,
        "size": batch.size,
        "priority": batch.priority.name.lower(),
        "target_plan": batch.target_plan,
        "actor": batch.actor,
        "created_at": batch.created_at,
        "completed_at": batch.completed_at,
        "rollback_of": batch.rollback_of,
        "summary": batch.summary,
        "counts": status.counts,
        "progress": status.progress,
        "done": status.done,
        "total": len(records),
        "offset": offset,
        "limit": limit,
        "next_offset": None,
        "changes": [],
    }
    page = records[offset : offset + limit]
    changes = fit({**payload, "next_offset": len(records)}, page)
    if page and not changes:  # one change cannot be larger than the budget: never stall
        changes = [clip(page[0])]
    if len(changes) < len(page):
        payload["limit"] = len(changes)
    end = offset + len(changes)
    payload["next_offset"] = end if end < len(records) else None
    payload["changes"] = changes
    return payload
