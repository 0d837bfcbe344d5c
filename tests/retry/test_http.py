"""trusswork.retry._http: Retry-After parsing, statuses and pushback of responses and errors."""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Any

import httpx
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from trusswork.core.errors import LimitExceeded
from trusswork.retry import CircuitOpen
from trusswork.retry._http import (
    DO_NOT_RETRY,
    MAX_RETRY_AFTER,
    parse_retry_after,
    retry_after_of,
    status_of,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Response:
    def __init__(self, headers: dict[str, Any] | None = None, **attributes: Any) -> None:
        self.headers = headers or {}
        for name, value in attributes.items():
            setattr(self, name, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (b"7", 7.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("99999999999999999999", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),
    ],
)
def test_delta_seconds_are_read_as_seconds_capped_at_a_day(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        formatdate(NOW + 30, usegmt=True),  # IMF-fixdate
        "Tuesday, 14-Nov-23 22:13:50 GMT",  # obsolete RFC 850
        "Tue Nov 14 22:13:50 2023",  # asctime
    ],
)
def test_http_dates_in_every_rfc_9110_form_are_measured_from_now(value: str) -> None:
    assert parse_retry_after(value, NOW) == 30.0


def test_a_date_in_the_past_means_no_wait_and_a_far_one_is_capped() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", NOW) == 0.0
    assert parse_retry_after("Fri, 01 Jan 9999 00:00:00 GMT", NOW) == MAX_RETRY_AFTER


def test_a_date_with_a_numeric_zone_is_converted_to_utc() -> None:
    assert parse_retry_after("Tue, 14 Nov 2023 23:14:20 +0100", NOW) == 60.0


@pytest.mark.parametrize(
    "value", ["", "soon", "-5", "+5", "1e3", "١٢", "Sun, 32 Nov 2023 99:99:99 GMT", b"\xff\xfe"]
)
def test_malformed_values_are_none(value: str | bytes) -> None:
    assert parse_retry_after(value, NOW) is None


@given(st.one_of(st.text(max_size=64), st.binary(max_size=64)), st.floats(allow_nan=False))
def test_parse_retry_after_never_raises_and_never_returns_a_negative_wait(
    value: str | bytes, now: float
) -> None:
    wait = parse_retry_after(value, now)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER


@given(
    st.from_regex(
        r"\A(Mon|Tue|Sun)?,? ?[0-9]{1,2}[ -](Nov|Jan|Foo)[ -][0-9]{2,5} "
        r"[0-9]{1,2}:[0-9]{2}:[0-9]{2}( GMT| [+-][0-9]{4})?\Z"
    )
)
def test_parse_retry_after_on_date_like_text_never_raises(value: str) -> None:
    wait = parse_retry_after(value, NOW)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER


def test_status_of_reads_responses_and_errors_of_both_clients() -> None:
    request = httpx.Request("GET", "http://example.test/")
    response = httpx.Response(503, request=request)
    assert status_of(response) == 503
    assert status_of(httpx.HTTPStatusError("no", request=request, response=response)) == 503
    requests_response = requests.Response()
    requests_response.status_code = 429
    assert status_of(requests_response) == 429
    assert status_of(requests.HTTPError(response=requests_response)) == 429
    assert status_of(Response(status=502)) == 502  # aiohttp, urllib3


def test_status_of_ignores_things_that_are_not_http_statuses() -> None:
    assert status_of(ValueError("x")) is None
    assert status_of(requests.HTTPError("no response")) is None
    assert status_of(Response(status=True)) is None
    assert status_of(Response(status=0)) is None
    assert status_of(Response(status="503")) is None


def test_status_of_survives_attributes_whose_getter_raises() -> None:
    class Exploding:
        @property
        def status_code(self) -> int:
            raise RuntimeError("not loaded")

    assert status_of(Exploding()) is None


def test_retry_after_of_reads_the_attribute_of_trusswork_errors() -> None:
    assert retry_after_of(LimitExceeded("slow down", retry_after=2.5), NOW) == 2.5
    assert retry_after_of(CircuitOpen("open", breaker="db", retry_after=4.0), NOW) == 4.0
    assert retry_after_of(LimitExceeded("slow down"), NOW) is None
    assert retry_after_of(Response(retry_after=-3.0), NOW) == 0.0
    assert retry_after_of(Response(retry_after=math.inf), NOW) == MAX_RETRY_AFTER
    assert retry_after_of(Response(retry_after=math.nan), NOW) is None


def test_retry_after_of_reads_the_header_of_responses_and_of_errors() -> None:
    request = httpx.Request("GET", "http://example.test/")
    response = httpx.Response(503, headers={"retry-after": "9"}, request=request)
    assert retry_after_of(response, NOW) == 9.0
    assert retry_after_of(httpx.HTTPStatusError("x", request=request, response=response), NOW) == 9
    requests_response = requests.Response()
    requests_response.headers["Retry-After"] = formatdate(NOW + 12, usegmt=True)
    assert retry_after_of(requests.HTTPError(response=requests_response), NOW) == 12.0
    assert retry_after_of(Response({"retry-after": "5"}), NOW) == 5.0  # a plain dict, lowercase
    assert retry_after_of(Response({"Retry-After": "nonsense"}), NOW) is None
    assert retry_after_of(Response(), NOW) is None
    assert retry_after_of(object(), NOW) is None


def test_grpc_pushback_is_milliseconds_and_a_bad_value_means_do_not_retry() -> None:
    assert retry_after_of(Response({"grpc-retry-pushback-ms": "250"}), NOW) == 0.25
    assert retry_after_of(Response({"grpc-retry-pushback-ms": "-1"}), NOW) == DO_NOT_RETRY
    assert retry_after_of(Response({"grpc-retry-pushback-ms": "later"}), NOW) == DO_NOT_RETRY
    assert DO_NOT_RETRY < 0
