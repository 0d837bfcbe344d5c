"""Timestamp recognition for log lines: every result is Unix milliseconds (UTC).

Recognised forms, tried in this order by :func:`parse_timestamp`:

* ISO 8601 / RFC 3339: ``2003-10-11T22:14:15.003Z``, ``2003-10-11 22:14:15,003``,
  ``2003-08-24T05:14:15.000003-07:00``, ``20031011T221415Z`` is *not* accepted
  (basic format is rare in logs and collides with plain numbers). A time
  without a zone is read as UTC; a date alone is midnight UTC.
* HTTP / Apache date: ``10/Oct/2000:13:55:36 -0700``.
* BSD syslog (RFC 3164): ``Oct 11 22:14:15``. The line carries no year: the
  caller's ``reference_year`` is used, or, when none is given, the current
  UTC year, moved back one year if that puts the time more than a day in the
  future (a December line read in January).
* Unix epoch numbers (int, float or a numeric string): by magnitude, seconds
  (< 1e11), milliseconds (< 1e14), microseconds (< 1e17), else nanoseconds.

A value that looks like none of these, or names an impossible date
(``2023-02-30``), gives ``None``: a bad timestamp is a counted problem on the
record, never a rejected line. Fractions finer than a millisecond are
truncated toward the past.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, date, datetime
from typing import Final

from trusswork.core.errors import InvalidInput

__all__ = ["MONTHS", "check_timestamp_format", "civil_to_ms", "parse_timestamp"]

MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_DAY_MS: Final = 86_400_000
# Years 1..9999, the range of datetime: anything outside is a misread number.
_MIN_MS: Final = (date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY_MS
_MAX_MS: Final = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * _DAY_MS - 1

_ISO: Final = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?\s*"
)
_HTTP: Final = re.compile(
    r"\s*(\d{1,2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\s+([+-])(\d{2}):?(\d{2}))?\s*"
)
_SYSLOG: Final = re.compile(
    r"\s*([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*"
)
_NUMBER: Final = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*")
_NAMED_FORMATS: Final = frozenset({"iso8601", "rfc3339", "httpdate", "syslog", "unix", "unix_ms"})


def civil_to_ms(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    millis: int = 0,
    offset_minutes: int = 0,
) -> int | None:
    """Unix milliseconds of a civil time at a UTC offset, or ``None`` if it is impossible.

    A leap second (``:60``) is accepted and lands on the next second, as most
    log tooling does.
    """
    if not (1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    seconds = hour * 3600 + minute * 60 + second - offset_minutes * 60
    return days * _DAY_MS + seconds * 1000 + millis


def _fraction_ms(digits: str | None) -> int:
    if not digits:
        return 0
    return int((digits + "00")[:3])


def _iso(text: str) -> int | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, _zulu, sign, off_h, off_m = match.groups()
    offset = 0
    if sign is not None:
        hours, minutes = int(off_h), int(off_m or 0)
        if hours > 23 or minutes > 59:
            return None
        offset = hours * 60 + minutes
        if sign == "-":
            offset = -offset
    return civil_to_ms(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        _fraction_ms(frac),
        offset,
    )


def _http(text: str) -> int | None:
    match = _HTTP.fullmatch(text)
    if match is None:
        return None
    day, month_name, year, hour, minute, second, sign, off_h, off_m = match.groups()
    month = MONTHS.get(month_name)
    if month is None:
        return None
    offset = 0
    if sign is not None:
        if int(off_m) > 59:
            return None
        offset = int(off_h) * 60 + int(off_m)
        if sign == "-":
            offset = -offset
    return civil_to_ms(int(year), month, int(day), int(hour), int(minute), int(second), 0, offset)


def _syslog(text: str, reference_year: int | None) -> int | None:
    match = _SYSLOG.fullmatch(text)
    if match is None:
        return None
    month_name, day, hour, minute, second, frac = match.groups()
    month = MONTHS.get(month_name)
    if month is None:
        return None
    fields = (month, int(day), int(hour), int(minute), int(second), _fraction_ms(frac))
    if reference_year is not None:
        return civil_to_ms(reference_year, *fields)
    now_ms = int(time.time() * 1000)
    year = time.gmtime(now_ms // 1000).tm_year
    stamp = civil_to_ms(year, *fields)
    if stamp is not None and stamp > now_ms + _DAY_MS:
        return civil_to_ms(year - 1, *fields)
    return stamp


def _epoch(value: float) -> int | None:
    if not math.isfinite(value):
        return None
    magnitude = abs(value)
    if magnitude < 1e11:
        stamp = value * 1000
    elif magnitude < 1e14:
        stamp = value
    elif magnitude < 1e17:
        stamp = value / 1000
    else:
        stamp = value / 1_000_000
    return int(stamp // 1)


def _epoch_text(text: str) -> int | None:
    if _NUMBER.fullmatch(text) is None:
        return None
    stripped = text.strip()
    if "." in stripped:
        return _epoch(float(stripped))
    number = int(stripped)
    # Integers are exact: pick the unit by magnitude without going through float.
    magnitude = abs(number)
    if magnitude < 10**11:
        return number * 1000
    if magnitude < 10**14:
        return number
    if magnitude < 10**17:
        return number // 1000
    return number // 1_000_000


def parse_timestamp(
    value: object,
    *,
    timestamp_format: str | None = None,
    reference_year: int | None = None,
) -> int | None:
    """Unix milliseconds of a timestamp found in a log line, or ``None``.

    Parameters
    ----------
    value:
        A string in one of the recognised forms, or an epoch number. Anything
        else (``None``, a list, ``True``) gives ``None``.
    timestamp_format:
        ``None`` to recognise the form; one of ``"iso8601"``/``"rfc3339"``,
        ``"httpdate"``, ``"syslog"``, ``"unix"`` (seconds) or ``"unix_ms"``
        to accept only that form; or a :func:`time.strptime` format with
        ``%`` directives (a result without ``%z`` is read as UTC).
    reference_year:
        The year of syslog timestamps, which carry none.

    Returns
    -------
    int or None
        Milliseconds since the Unix epoch, ``None`` when the value is not a
        valid timestamp or falls outside the years 1..9999.
    """
    stamp = _parse(value, timestamp_format, reference_year)
    if stamp is None or not _MIN_MS <= stamp <= _MAX_MS:
        return None
    return stamp


def _parse(value: object, timestamp_format: str | None, reference_year: int | None) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if timestamp_format == "unix_ms":
            return int(value // 1)
        if timestamp_format == "unix":
            return int(value * 1000 // 1)
        if timestamp_format is None:
            return _epoch(value) if isinstance(value, float) else _epoch_text(str(value))
        return None
    if not isinstance(value, str) or len(value) > 200:
        return None
    if timestamp_format is None:
        if not value:
            return None
        first = value.lstrip()[:1]
        if first.isdigit():
            stamp = _iso(value)
            if stamp is None:
                stamp = _http(value)
            if stamp is None:
                stamp = _epoch_text(value)
            return stamp
        if first in "+-.":
            return _epoch_text(value)
        return _syslog(value, reference_year)
    return _with_format(value, timestamp_format, reference_year)


def _with_format(value: str, timestamp_format: str, reference_year: int | None) -> int | None:
    if timestamp_format in ("iso8601", "rfc3339"):
        return _iso(value)
    if timestamp_format == "httpdate":
        return _http(value)
    if timestamp_format == "syslog":
        return _syslog(value, reference_year)
    if timestamp_format == "unix":
        if _NUMBER.fullmatch(value) is None:
            return None
        return int(float(value) * 1000 // 1)
    if timestamp_format == "unix_ms":
        if _NUMBER.fullmatch(value) is None:
            return None
        return int(float(value) // 1)
    try:
        parsed = datetime.strptime(value.strip(), timestamp_format)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000 // 1)


def check_timestamp_format(timestamp_format: str | None) -> None:
    """Refuse a ``timestamp_format`` that is neither a known name nor a strptime format."""
    if timestamp_format is None or timestamp_format in _NAMED_FORMATS:
        return
    if "%" not in timestamp_format:
        raise InvalidInput(
            f"timestamp_format {timestamp_format!r} is not one of "
            f"{', '.join(sorted(_NAMED_FORMATS))} nor a strptime format with % directives"
        )
