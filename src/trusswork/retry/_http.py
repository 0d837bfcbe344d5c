"""HTTP facts a retry needs: the status of a response or error, and server pushback.

These helpers read response-like objects by duck typing, so the retry core
and the integrations share them without importing any HTTP client:

* a *status* is an integer ``status_code`` attribute (httpx, requests) or
  an integer ``status`` attribute (aiohttp, urllib3, :mod:`urllib`), on the
  object itself or on the ``.response`` of an error that carries one
  (``httpx.HTTPStatusError``, ``requests.HTTPError``);
* *pushback* is an error's ``retry_after`` attribute in seconds
  (:class:`~trusswork.core.errors.LimitExceeded`,
  :class:`~trusswork.retry.CircuitOpen`), or the ``Retry-After`` header
  (RFC 9110, section 10.2.3), or gRPC's ``grpc-retry-pushback-ms`` header.

Guarantees: nothing here raises on odd input (a malformed header is
``None``, an attribute whose getter raises is ignored), and every wait
returned is ``>= 0`` and at most :data:`MAX_RETRY_AFTER`, except
:data:`DO_NOT_RETRY` (``-1.0``), which means the server asked not to retry
at all.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import datetime
from email.utils import parsedate_tz

MAX_RETRY_AFTER = 86_400.0
"""Longest wait :func:`parse_retry_after` reports (one day); longer values are capped to it.

A policy's ``max_pushback`` is far below it, so a capped value still makes
the policy give up instead of waiting: the cap only keeps absurd or
overflowing headers (``Retry-After: 99999999999``) finite.
"""

DO_NOT_RETRY = -1.0
"""What :func:`retry_after_of` returns when the server asked not to retry at all."""

_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_GRPC_PUSHBACK = re.compile(r"[0-9]+", re.ASCII)


def _attribute(obj: object, name: str) -> object:
    """``getattr(obj, name, None)``, also when the attribute's getter raises."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _http_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def parse_retry_after(value: str | bytes, now: float) -> float | None:
    """Seconds to wait that a ``Retry-After`` header value asks for.

    Parameters
    ----------
    value:
        The header value: delta-seconds (``"120"``; a decimal fraction such
        as ``"1.5"`` is accepted too) or an HTTP-date (IMF-fixdate
        ``"Sun, 06 Nov 1994 08:49:37 GMT"``, or the obsolete RFC 850 and
        asctime forms). Bytes are decoded as Latin-1, as HTTP headers are.
    now:
        The current wall-clock time, seconds since the epoch
        (``clock.time()``), which an HTTP-date is measured from.

    Returns
    -------
    float or None
        The wait in seconds: ``0.0`` for a date in the past, at most
        :data:`MAX_RETRY_AFTER`; ``None`` if the value is malformed
        (negative numbers included). Never raises.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif not isinstance(value, str):
        return None
    text = value.strip(" \t")
    if _DELTA_SECONDS.fullmatch(text):
        # float() of a long digit string is inf, never an error (int() would refuse it).
        return min(float(text), MAX_RETRY_AFTER)
    try:
        parts = parsedate_tz(text)
        if parts is None:
            return None
        # parsedate_tz does not check ranges ("32 Nov", "25:61:00"): datetime does.
        fields = datetime(*parts[:6]).timetuple()
        # A date without a zone is taken as GMT, the only zone HTTP-dates use.
        when = calendar.timegm(fields) - (parts[9] or 0)
        wait = float(when) - now
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if math.isnan(wait):
        return None
    return min(max(wait, 0.0), MAX_RETRY_AFTER)


def status_of(obj: object) -> int | None:
    """The HTTP status of a response-like object or of an error carrying one.

    Looks at ``obj.status_code``, then ``obj.status``, then the same two
    attributes of ``obj.response``; only integers from 100 to 599 count, so
    unrelated ``status`` attributes are not mistaken for HTTP statuses.

    Returns
    -------
    int or None
        The status, or ``None`` if there is none.
    """
    for holder in (obj, _attribute(obj, "response")):
        if holder is None:
            continue
        for name in ("status_code", "status"):
            status = _http_status(_attribute(holder, name))
            if status is not None:
                return status
    return None


def _header(headers: object, name: str) -> object:
    get = _attribute(headers, "get")
    if not callable(get):
        return None
    try:
        found = get(name)
        if found is None and not name.islower():
            # A plain dict is case-sensitive; HTTP clients lowercase names (HTTP/2 must).
            found = get(name.lower())
    except Exception:
        return None
    return found


def _pushback_from_headers(headers: object, now: float) -> float | None:
    value = _header(headers, "Retry-After")
    if isinstance(value, (str, bytes)):
        wait = parse_retry_after(value, now)
        if wait is not None:
            return wait
    value = _header(headers, "grpc-retry-pushback-ms")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        text = value.strip(" \t")
        # gRPC (proposal A6): a negative or malformed value means "do not retry".
        if not _GRPC_PUSHBACK.fullmatch(text):
            return DO_NOT_RETRY
        return min(float(text) / 1000.0, MAX_RETRY_AFTER)
    return None


def retry_after_of(obj: object, now: float) -> float | None:
    """The server pushback carried by an error or a response, in seconds.

    In order: a numeric ``retry_after`` attribute (negative values count as
    0, NaN is ignored); the ``Retry-After`` header of ``obj.headers`` or of
    ``obj.response.headers``; the ``grpc-retry-pushback-ms`` header there.

    Parameters
    ----------
    obj:
        An exception or a response-like object.
    now:
        The current wall-clock time (``clock.time()``), for HTTP-dates.

    Returns
    -------
    float or None
        Seconds to wait (``0 <= wait <= MAX_RETRY_AFTER``),
        :data:`DO_NOT_RETRY` (``-1.0``) if the server asked not to retry
        (a negative or malformed ``grpc-retry-pushback-ms``), or ``None``
        if ``obj`` carries no pushback. Never raises.
    """
    hint = _attribute(obj, "retry_after")
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and not math.isnan(hint):
        return min(max(float(hint), 0.0), MAX_RETRY_AFTER)
    for holder in (obj, _attribute(obj, "response")):
        if holder is None:
            continue
        headers = _attribute(holder, "headers")
        if headers is not None:
            wait = _pushback_from_headers(headers, now)
            if wait is not None:
                return wait
    return None
