"""The pure mapping from ThingSpace error responses and transport failures to exceptions."""

from __future__ import annotations

import json
import pickle
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from thingspace_swap.errors import (
    APIError,
    AuthenticationError,
    GatewayError,
    IdentifierError,
    InvalidRequestError,
    LoginError,
    M2MError,
    RateLimitError,
    ServerError,
    SessionTokenError,
    ThingSpaceError,
    TokenError,
    TransportError,
    error_from_response,
    error_from_transport,
    split_code,
)

CLASSES = ("INPUT_INVALID", "REQUEST_FAILED", "REQUEST_ONHOLD", "REQUEST_CANCELLED")


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def fault(code: str, message: str = "Invalid Credentials") -> bytes:
    return body({"fault": {"code": code, "message": message, "description": "d"}})


def m2m(code: str, message: str = "msg") -> bytes:
    return body({"errorCode": code, "errorMessage": message})


def respond(status: int, content: bytes, headers: dict[str, str] | None = None, **kw: Any):
    return error_from_response(
        status, headers or {}, content, idempotent=kw.get("idempotent", True)
    )


# --- gateway faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["900901", "900902"])
@pytest.mark.parametrize("idempotent", [True, False])
def test_gateway_401_is_authentication_error(code: str, idempotent: bool):
    error = respond(401, fault(code), idempotent=idempotent)
    assert type(error) is AuthenticationError
    assert isinstance(error, GatewayError)
    assert (error.code, error.status_code, error.message) == (code, 401, "Invalid Credentials")
    assert not error.retryable
    assert not error.outcome_unknown


def test_401_without_fault_body_is_authentication_error():
    assert type(respond(401, b"<html>nope</html>")) is AuthenticationError


def test_other_gateway_fault_is_gateway_error():
    error = respond(403, fault("900908", "Resource forbidden"))
    assert type(error) is GatewayError
    assert (error.code, error.message, error.retryable) == ("900908", "Resource forbidden", False)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (fault("900800", "Message throttled out"), "900800"),
        (b"", None),
        (b"Too Many Requests", None),
        (m2m("UnifiedWebService.INPUT_INVALID.MaxRequestsExceeded"), None),
    ],
)
@pytest.mark.parametrize("idempotent", [True, False])
def test_429_is_retryable_rate_limit(content: bytes, code: str | None, idempotent: bool):
    error = respond(429, content, idempotent=idempotent)
    assert type(error) is RateLimitError
    assert error.retryable
    assert not error.outcome_unknown
    assert (error.status_code, error.code, error.retry_after) == (429, code, None)


# --- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("0", 0.0), ("2.5", 2.5), ("-3", 0.0)])
def test_retry_after_seconds(value: str, seconds: float):
    assert respond(429, b"", {"Retry-After": value}).retry_after == seconds
    assert respond(503, b"", {"retry-after": value}).retry_after == seconds


def _imf_fixdate(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def _rfc850(moment: datetime) -> str:
    return moment.strftime("%A, %d-%b-%y %H:%M:%S GMT")


def _asctime(moment: datetime) -> str:
    return time.asctime(moment.timetuple())


@pytest.mark.parametrize("fmt", [_imf_fixdate, _rfc850, _asctime], ids=["imf", "rfc850", "asctime"])
def test_retry_after_http_date(fmt: Any):
    """RFC 9110: a recipient must accept all three HTTP-date formats (all are in GMT)."""
    future = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=120)
    error = respond(429, b"", {"Retry-After": fmt(future)})
    assert error.retry_after is not None
    assert 100 <= error.retry_after <= 120
    past = datetime.now(timezone.utc) - timedelta(days=1)
    assert respond(503, b"", {"Retry-After": fmt(past)}).retry_after == 0.0


@pytest.mark.parametrize("value", ["soon", "", "Mon, 99 Foo 2024"])
def test_unparseable_retry_after_is_ignored(value: str):
    assert respond(429, b"", {"Retry-After": value}).retry_after is None


# --- 5xx ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<html>Bad Gateway</html>",
        m2m("UnifiedWebService.REQUEST_FAILED.UnexpectedError"),
        fault("101503", "Runtime Error"),
    ],
    ids=["empty", "html", "m2m", "fault"],
)
def test_5xx_retryable_only_when_idempotent(status: int, content: bytes):
    read = respond(status, content, idempotent=True)
    write = respond(status, content, idempotent=False)
    assert type(read) is ServerError
    assert type(write) is ServerError
    assert (read.retryable, read.outcome_unknown) == (True, False)
    assert (write.retryable, write.outcome_unknown) == (False, True)
    assert read.status_code == write.status_code == status


# --- M2M errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired",
        "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid",
        "REQUEST_FAILED.SessionToken.Expired",
    ],
)
def test_session_token_errors(code: str):
    error = respond(400, m2m(code, "Session token expired"))
    assert type(error) is SessionTokenError
    assert isinstance(error, M2MError)
    assert (error.code, error.message, error.status_code) == (code, "Session token expired", 400)


def test_m2m_error_code_parts():
    error = respond(400, m2m("UnifiedWebService.REQUEST_FAILED.DeviceNotFound", "not found"))
    assert type(error) is M2MError
    assert error.code == "UnifiedWebService.REQUEST_FAILED.DeviceNotFound"
    assert error.short_code == "REQUEST_FAILED.DeviceNotFound"
    assert error.error_class == "REQUEST_FAILED"
    assert error.has_code("DeviceNotFound")
    assert error.has_code("REQUEST_FAILED.DeviceNotFound")
    assert not error.has_code("NotFound")
    assert not error.has_code("DeviceAlreadyActive")
    assert error.message == "not found"
    assert not error.retryable


def test_m2m_error_with_dotted_detail():
    error = respond(400, m2m("UnifiedWebService.INPUT_INVALID.Device.Kind.Invalid"))
    assert (error.short_code, error.error_class) == (
        "INPUT_INVALID.Device.Kind.Invalid",
        "INPUT_INVALID",
    )
    assert error.has_code("Kind.Invalid")
    assert error.has_code("Device.Kind.Invalid")
    assert not error.has_code("Password.Invalid")


def test_m2m_error_with_unknown_class():
    error = respond(400, m2m("Svc.SOMETHING.Else"))
    assert type(error) is M2MError
    assert (error.short_code, error.error_class) == ("Svc.SOMETHING.Else", None)


def test_error_without_code_has_no_code_parts():
    error = respond(418, b"teapot")
    assert type(error) is APIError
    assert (error.code, error.short_code, error.error_class) == (None, None, None)
    assert not error.has_code("teapot")


def test_m2m_error_message_falls_back_to_code():
    error = respond(400, body({"errorCode": "X.REQUEST_FAILED.AccountNotFound"}))
    assert error.message == "X.REQUEST_FAILED.AccountNotFound"


# --- OAuth and other bodies --------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401])
def test_oauth_error_is_token_error(status: int):
    content = body({"error": "invalid_client", "error_description": "Client Authentication failed"})
    error = respond(status, content)
    assert type(error) is TokenError
    assert (error.code, error.message, error.status_code) == (
        "invalid_client",
        "Client Authentication failed",
        status,
    )


def test_oauth_error_without_description():
    error = respond(400, body({"error": "unsupported_grant_type"}))
    assert type(error) is TokenError
    assert error.message == "unsupported_grant_type"


@pytest.mark.parametrize(
    "content", [b"", b"not json", b"\xff\xfe\x00", b"[1, 2]", b"42", b'"text"', b"null", b"{}"]
)
def test_non_json_or_unexpected_bodies(content: bytes):
    error = respond(400, content)
    assert type(error) is APIError
    assert error.status_code == 400
    assert error.code is None
    assert "400" in str(error)


def test_long_bodies_are_cut_in_messages():
    error = respond(400, b"x" * 10_000)
    assert len(error.message) < 300


def test_408_is_retryable_only_when_idempotent():
    assert respond(408, b"", idempotent=True).retryable
    assert not respond(408, b"", idempotent=False).retryable


# --- split_code --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "parts"),
    [
        ("UnifiedWebService.REQUEST_FAILED.X", ("UnifiedWebService", "REQUEST_FAILED.X")),
        ("Svc.INPUT_INVALID.SessionToken.Invalid", ("Svc", "INPUT_INVALID.SessionToken.Invalid")),
        ("REQUEST_ONHOLD.Y", (None, "REQUEST_ONHOLD.Y")),
        ("REQUEST_CANCELLED", (None, "REQUEST_CANCELLED")),
        ("900901", (None, "900901")),
        ("", (None, "")),
    ],
)
def test_split_code(code: str, parts: tuple[str | None, str]):
    assert split_code(code) == parts


segment = st.text(st.characters(blacklist_characters="."), min_size=1)
services = st.one_of(segment, st.builds("".join, st.tuples(st.sampled_from(CLASSES), segment)))
details = st.lists(st.one_of(st.text(), st.sampled_from(CLASSES)), max_size=4).map(".".join)


@given(service=services, error_class=st.sampled_from(CLASSES), detail=details)
@example(service="UnifiedWebService", error_class="REQUEST_FAILED", detail="Upstream.INPUT_INVALID")
def test_split_code_round_trips(service: str, error_class: str, detail: str):
    assert split_code(f"{service}.{error_class}.{detail}") == (service, f"{error_class}.{detail}")


@given(error_class=st.sampled_from(CLASSES), detail=st.text())
def test_split_code_without_prefix(error_class: str, detail: str):
    code = f"{error_class}.{detail}"
    assert split_code(code) == (None, code)


# --- transport failures ------------------------------------------------------------------------

REQUEST = httpx.Request("PUT", "https://thingspace.test/x")


@pytest.mark.parametrize("exc_type", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
@pytest.mark.parametrize("idempotent", [True, False])
def test_transport_failure_before_sending_is_retryable(exc_type: type[Exception], idempotent: bool):
    error = error_from_transport(exc_type("boom", request=REQUEST), idempotent=idempotent)
    assert type(error) is TransportError
    assert (error.retryable, error.outcome_unknown) == (True, False)
    assert error.status_code is None


@pytest.mark.parametrize(
    "exc_type",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError],
)
def test_transport_failure_after_sending(exc_type: type[Exception]):
    read = error_from_transport(exc_type("boom", request=REQUEST), idempotent=True)
    write = error_from_transport(exc_type("boom", request=REQUEST), idempotent=False)
    assert (read.retryable, read.outcome_unknown) == (True, False)
    assert (write.retryable, write.outcome_unknown) == (False, True)
    assert exc_type.__name__ in str(write)


# --- the exception objects ---------------------------------------------------------------------

ERRORS = [
    respond(400, m2m("UnifiedWebService.REQUEST_FAILED.DeviceNotFound")),
    respond(400, m2m("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired")),
    respond(429, fault("900800"), {"Retry-After": "3"}),
    respond(503, b"down", idempotent=False),
    respond(401, fault("900901")),
    respond(400, body({"error": "invalid_client"})),
    error_from_transport(httpx.ReadTimeout("t", request=REQUEST), idempotent=False),
    LoginError("login failed", status_code=400, code="X.INPUT_INVALID.Password.Invalid"),
    IdentifierError("ICCID check digit should be 7, got 3"),
    InvalidRequestError("npa_nxx must be 6 digits"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_round_trip(error: ThingSpaceError):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert (copy.short_code, copy.error_class) == (error.short_code, error.error_class)


def test_str_contains_code_and_status():
    error = respond(400, m2m("UnifiedWebService.REQUEST_FAILED.DeviceNotFound", "gone"))
    text = str(error)
    assert "gone" in text
    assert "UnifiedWebService.REQUEST_FAILED.DeviceNotFound" in text
    assert "400" in text
    assert str(ThingSpaceError("plain")) == "plain"


def test_value_errors_stay_value_errors():
    assert issubclass(IdentifierError, ValueError)
    assert issubclass(InvalidRequestError, ValueError)


@given(
    status=st.integers(400, 599),
    content=st.binary(max_size=512),
    idempotent=st.booleans(),
)
@example(status=400, content=b'{"errorCode": 7, "fault": [], "error": {}}', idempotent=False)
@example(status=429, content=b'{"fault": {"code": {"a": 1}, "message": ["m"]}}', idempotent=True)
@example(status=401, content=b'{"fault": "x", "errorCode": ""}', idempotent=True)
def test_error_from_response_never_raises(status: int, content: bytes, idempotent: bool):
    error = error_from_response(status, {}, content, idempotent=idempotent)
    assert isinstance(error, ThingSpaceError)
    assert error.status_code == status
    str(error)


@pytest.mark.parametrize("status", [400, 500])
def test_deeply_nested_json_body_still_maps(status: int):
    """A few KB of nesting (hostile proxy, garbage) must not escape as RecursionError."""
    error = error_from_response(status, {}, b"[" * 5_000, idempotent=True)
    assert isinstance(error, ThingSpaceError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "fault": json_values | st.dictionaries(st.sampled_from(["code", "message"]), json_values),
        "errorCode": json_values,
        "errorMessage": json_values,
        "error": json_values,
        "error_description": json_values,
    },
)


@given(status=st.integers(400, 599), data=shaped, idempotent=st.booleans())
def test_error_from_response_never_raises_on_odd_json(status: int, data: Any, idempotent: bool):
    error = error_from_response(status, {}, body(data), idempotent=idempotent)
    assert isinstance(error, ThingSpaceError)
    str(error)
