"""API Gateway proxy events: the request in an event (REST v1 or HTTP API v2), the answer (built to
fit ``RESPONSE_BUDGET``) and the checks of a JSON body whose failures are 4xx answers
(``HttpError``)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from . import limits
from .config import logger

__all__ = [
    "HttpError",
    "Request",
    "Response",
    "bounded",
    "clip",
    "fit",
    "json_object",
    "optional",
    "parse_request",
    "response",
]

Response = dict[str, Any]
_JSON = "application/json"


class HttpError(Exception):
    """An answer other than success: ``status``, ``{"error": message, **extra}`` and
    ``headers``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, Any] = {"error": message, **extra}
        self.headers: dict[str, str] = {}


@attrs.frozen
class Request:
    """The HTTP request of an event: headers lower-cased, the path without the stage."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    source_ip: str | None
    caller: str | None


def parse_request(event: object) -> Request:
    """The HTTP request in an API Gateway proxy event: REST (v1) or HTTP API (v2)."""
    if not isinstance(event, Mapping):
        raise HttpError(400, "not an API Gateway event")
    context = _mapping(event.get("requestContext"))
    if event.get("version") == "2.0":
        http = _mapping(context.get("http"))
        method, path = _text(http.get("method")), _text(event.get("rawPath"))
        stage = _text(context.get("stage"))
        if path and stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
        source_ip = _text(http.get("sourceIp"))
        caller = _text(_mapping(_mapping(context.get("authorizer")).get("iam")).get("userArn"))
    else:
        method, path = _text(event.get("httpMethod")), _text(event.get("path"))
        identity = _mapping(context.get("identity"))
        source_ip, caller = _text(identity.get("sourceIp")), _text(identity.get("userArn"))
    if method is None or path is None:
        raise HttpError(400, "not an API Gateway event")
    raw_headers = event.get("headers")
    headers = (
        {str(k).lower(): str(v) for k, v in raw_headers.items()}
        if isinstance(raw_headers, Mapping)
        else {}
    )
    raw_query = event.get("queryStringParameters")
    query = {str(k): str(v) for k, v in raw_query.items()} if isinstance(raw_query, Mapping) else {}
    return Request(
        method.upper(), path.rstrip("/") or "/", query, headers, _body(event), source_ip, caller
    )


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    text = body if isinstance(body, str) else ""
    if not event.get("isBase64Encoded"):
        return text.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(400, "body is not valid base64") from None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# The body ----------------------------------------------------------------------------------


def json_object(request: Request, *, required: bool) -> dict[str, Any]:
    """The request's body as a JSON object (``{}`` when empty and not ``required``)."""
    if len(request.body) > limits.MAX_BODY_BYTES:
        raise HttpError(
            413,
            f"the body has {len(request.body)} bytes: at most {limits.MAX_BODY_BYTES} "
            f"({limits.MAX_ITEMS} items of up to 300 bytes); split the request",
        )
    if not request.body.strip():
        if required:
            raise HttpError(400, "the body must be a JSON object")
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        raise HttpError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object")
    return body


def optional(body: Mapping[str, Any], name: str, kind: type, where: str = "") -> Any:
    """``body[name]``: None when absent, else a ``kind`` (``str``, ``bool`` or ``list``)."""
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        noun = {str: "a string", bool: "true or false", list: "a list"}[kind]
        raise HttpError(400, f"{where}{name} must be {noun}")
    return value


def bounded(value: str | None, name: str, limit: int, why: str = "") -> str | None:
    """``value``, refused with a 400 that says what to change when it is longer than ``limit``
    characters (surrounding whitespace aside)."""
    if value is not None and len(value.strip()) > limit:
        raise HttpError(
            400, f"{name} has {len(value.strip())} characters: {why or f'at most {limit}'}"
        )
    return value


# The answer --------------------------------------------------------------------------------


def response(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    """An API Gateway proxy answer (the same shape serves REST and HTTP APIs). Answers are
    built to fit ``RESPONSE_BUDGET``; one that would not is a 500 saying so, never an answer
    Lambda refuses."""
    body = _dumps(payload)
    if _wire_size(body) > limits.RESPONSE_BUDGET - limits.ENVELOPE:
        logger.error("an answer of %d bytes exceeds the budget", _wire_size(body))
        status, headers = 500, None
        body = _dumps({"error": "internal error: the answer would be too large"})
    return {
        "statusCode": status,
        "headers": {"content-type": _JSON, **(headers or {})},
        "body": body,
        "isBase64Encoded": False,
    }


def fit(
    payload: Mapping[str, Any],
    records: list[dict[str, Any]],
    first: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """The records that fit beside ``payload`` in an answer of at most ``RESPONSE_BUDGET``
    bytes, in their order, their long texts cut. Records for which ``first`` is true are kept
    first; otherwise the kept records are the first ones (so a page ends where the next one
    starts)."""
    records = [clip(record) for record in records]
    room = limits.RESPONSE_BUDGET - limits.ENVELOPE - _wire_size(_dumps(payload))
    sizes = [_wire_size(_dumps(record)) + 1 for record in records]
    if sum(sizes) <= room:
        return records
    order = sorted(range(len(records)), key=lambda i: not first(records[i])) if first else None
    kept: list[int] = []
    for index in order if order is not None else range(len(records)):
        if sizes[index] > room:
            break
        room -= sizes[index]
        kept.append(index)
    return [records[i] for i in sorted(kept)]


def clip(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with text longer than ``MAX_TEXT`` characters cut (saying so)."""
    most = limits.MAX_TEXT
    return {
        key: (
            f"{value[:most]}... ({len(value)} characters in all)"
            if isinstance(value, str) and len(value) > most
            else value
        )
        for key, value in record.items()
    }


def _dumps(payload: object) -> str:
    """``payload`` as the body of an answer (compact, ASCII-only JSON)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _wire_size(text: str) -> int:
    """Bytes ASCII JSON ``text`` takes once Lambda's runtime has put it in its answer as a JSON
    string (each quote and backslash escaped once more)."""
    return len(text) + text.count('"') + text.count("\\")
