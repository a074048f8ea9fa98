"""``THINGSPACE_BASE_URL``: where a client created without a ``base_url`` goes."""

from __future__ import annotations

import pytest

from thingspace_swap import ConfigurationError
from thingspace_swap.config import BASE_URL_ENV, PRODUCTION_URL, check_base_url, default_base_url


def test_production_unless_set() -> None:
    assert default_base_url({}) == PRODUCTION_URL
    assert default_base_url({BASE_URL_ENV: "  "}) == PRODUCTION_URL


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://staging.thingspace.verizon.com/", "https://staging.thingspace.verizon.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_https_or_loopback_http(value: str, expected: str) -> None:
    assert default_base_url({BASE_URL_ENV: value}) == expected


@pytest.mark.parametrize(
    "value", ["http://thingspace.example.com", "ftp://127.0.0.1", "127.0.0.1:8080", "https://"]
)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match=BASE_URL_ENV):
        default_base_url({BASE_URL_ENV: value})


def test_a_refusal_never_echoes_the_url() -> None:
    with pytest.raises(ConfigurationError) as caught:
        default_base_url({BASE_URL_ENV: "ftp://user:hunter2@127.0.0.1"})
    assert "hunter2" not in str(caught.value)


def test_read_when_called_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9")
    assert default_base_url() == "http://127.0.0.1:9"
    monkeypatch.delenv(BASE_URL_ENV)
    assert default_base_url() == PRODUCTION_URL


def test_one_rule_for_every_source() -> None:
    assert check_base_url("http://localhost:8080/") == "http://localhost:8080"
    with pytest.raises(
        ConfigurationError, match=r"^--base-url: refusing plain HTTP to example\.com"
    ):
        check_base_url("http://user:hunter2@example.com", name="--base-url")
    for value in ("http://[::1", "", "thingspace.verizon.com"):
        with pytest.raises(ConfigurationError, match=r"^the base URL must be an http"):
            check_base_url(value)
