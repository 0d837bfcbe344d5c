# cython: boundscheck=False, wraparound=False
"""Compiled combined access log parsing over csrc/logparse.

:func:`parse_combined` reads a whole batch of nginx/Apache combined (or
common) lines in C without the GIL and returns them as columns: numbers as
int64 arrays with null masks, each string field dictionary-encoded (int32
codes into a list of distinct values in first-seen order).

The oracle is ``LogParser(format="combined")``: for a line with ``ok == 1``
the columns give exactly its record (:meth:`CombinedColumns.to_fields`,
:meth:`CombinedColumns.record`). ``ok == 0`` marks every line that parser
refuses, and also the few it accepts outside the C fast path (lines longer
than ``max_line_length`` bytes, a size beyond 2**63-1, a ``[time]`` with
non-ASCII characters, a ``str`` line that cannot be encoded to UTF-8): pass
those lines to the Python parser, which gives the record or the error.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t, INT64_MIN
from libc.stdlib cimport free, malloc

import numpy as np

from trusswork.core.errors import InvalidInput
from trusswork.logs._parsers import DEFAULT_MAX_LINE_LENGTH, LogRecord


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL


cdef extern from "common/status.h":
    int TW_OK
    int TW_ERR_NOMEM
    int TW_ERR_OVERFLOW


cdef extern from "logparse/logparse.h" nogil:
    enum:
        TW_LP_NFIELDS

    ctypedef struct tw_lp_dict:
        uint8_t *dict_bytes
        uint64_t *dict_offsets
        size_t dict_count

    ctypedef struct tw_lp_columns:
        uint8_t *col_ok
        uint8_t *col_invalid_utf8
        int64_t *col_time_ms
        int64_t *col_status
        uint8_t *col_status_null
        int64_t *col_bytes
        uint8_t *col_bytes_null
        int32_t *col_codes[12]

    void tw_lp_dict_init(tw_lp_dict *dict)
    void tw_lp_dict_free(tw_lp_dict *dict)
    int tw_lp_parse_combined(const uint8_t *const *lines, const size_t *lens, size_t n,
                             size_t max_line_length, tw_lp_dict *dicts,
                             const tw_lp_columns *out)
    size_t tw_lp_count_lines(const uint8_t *data, size_t length)
    void tw_lp_split_lines(const uint8_t *data, size_t length, const uint8_t **lines,
                           size_t *lens)


# In the order of enum TW_LP_* in logparse.h.
STRING_FIELDS = (
    "clientip", "ident", "user", "request", "method", "uri", "uri_path", "uri_query",
    "http_version", "referer", "useragent", "extra",
)
# Fields the Python parser sets (to None when absent) whenever the request
# is METHOD URI[ VERSION]; the other absent string fields are left out.
cdef tuple REQUEST_PARTS = ("method", "uri", "uri_path", "uri_query", "http_version")
cdef int MAX_LINES = 0x7FFFFFFF
cdef object INT32 = np.dtype(np.int32)
cdef object INT64 = np.dtype(np.int64)
cdef object UINT8 = np.dtype(np.uint8)

assert TW_LP_NFIELDS == len(STRING_FIELDS) == 12


cdef int check_status(int status) except -1:
    """The choke point: turn a csrc/logparse status into a trusswork error."""
    if status == TW_OK:
        return 0
    if status == TW_ERR_NOMEM:
        raise MemoryError("parse_combined: out of memory for the field dictionaries")
    if status == TW_ERR_OVERFLOW:
        raise InvalidInput("parse_combined: a field has more than 2**31-1 distinct values; "
                           "parse the lines in smaller batches")
    raise RuntimeError(f"parse_combined: internal error (status {status})")


cdef class EncodedStrings:
    """One dictionary-encoded string column.

    Attributes
    ----------
    codes:
        int32 array, one entry per line: an index into ``values``, or -1
        where the field is absent or ``None``.
    values:
        The distinct values (UTF-8 decoded, invalid bytes replaced) in the
        order they first occur.
    """

    cdef readonly object codes
    cdef readonly list values

    def __init__(self, codes, list values):
        self.codes = codes
        self.values = values

    def decode(self):
        """The column as one ``str`` or ``None`` per line."""
        cdef list values = self.values
        return [values[code] if code >= 0 else None for code in self.codes.tolist()]

    def __repr__(self):
        return f"EncodedStrings({len(self.codes)} lines, {len(self.values)} values)"


cdef class CombinedColumns:
    """A batch of combined access log lines as columns (see :func:`parse_combined`).

    Attributes
    ----------
    ok:
        uint8 per line: 1 when the line was parsed here, 0 when it must go
        through ``LogParser(format="combined")`` (refused, or outside the
        fast path); every other column is null/-1 on such lines.
    invalid_utf8:
        uint8 per line: 1 when the line's bytes are not valid UTF-8 (the
        record's ``invalid-utf8`` problem).
    time_ms:
        int64 per line: the ``[time]`` as Unix milliseconds (UTC), or
        ``INT64_MIN`` when it is not a valid date (``bad-timestamp``).
    status, bytes:
        int64 per line, 0 where ``status_null``/``bytes_null`` is 1 (``-``).
    strings:
        One :class:`EncodedStrings` per string field, by field name:
        ``clientip``, ``ident``, ``user``, ``request``, ``method``, ``uri``,
        ``uri_path``, ``uri_query``, ``http_version``, ``referer``,
        ``useragent``, ``extra``.
    """

    cdef readonly object ok
    cdef readonly object invalid_utf8
    cdef readonly object time_ms
    cdef readonly object status
    cdef readonly object status_null
    cdef readonly object bytes
    cdef readonly object bytes_null
    cdef readonly dict strings
    cdef object _source
    cdef object _starts
    cdef object _ends

    def __len__(self):
        return len(self.ok)

    cdef int _check_index(self, Py_ssize_t i) except -1:
        if not 0 <= i < len(self.ok):
            raise IndexError(f"line index {i} is out of range for {len(self.ok)} lines")
        if not self.ok[i]:
            raise InvalidInput(f"line {i} was not parsed by the fast path (ok == 0); "
                               f"parse it with LogParser(format='combined')")
        return 0

    def raw_line(self, Py_ssize_t i):
        """Line ``i`` decoded (invalid UTF-8 replaced), without its ``\\n``/``\\r\\n``.

        This is the ``raw`` (and ``message``) of the Python parser's record.
        """
        if not 0 <= i < len(self.ok):
            raise IndexError(f"line index {i} is out of range for {len(self.ok)} lines")
        cdef object line
        if self._starts is not None:
            line = self._source[self._starts[i]:self._ends[i]]
        else:
            line = self._source[i]
        if isinstance(line, bytes):
            line = (<bytes>line).decode("utf-8", "replace")
        if line.endswith("\n"):
            line = line[:len(line) - 1]
        if line.endswith("\r"):
            line = line[:len(line) - 1]
        return line

    def to_fields(self, Py_ssize_t i):
        """Line ``i``'s fields, equal to ``LogParser(format="combined")``'s.

        Raises
        ------
        IndexError
            When ``i`` is not a line index.
        InvalidInput
            When ``ok[i]`` is 0.
        """
        self._check_index(i)
        cdef dict fields = {}
        cdef dict strings = self.strings
        cdef EncodedStrings column
        cdef int32_t code
        cdef bint parts = (<EncodedStrings>strings["method"]).codes[i] >= 0
        for name in STRING_FIELDS[:4]:
            column = strings[name]
            fields[name] = column.values[column.codes[i]]
        if parts:
            for name in REQUEST_PARTS:
                column = strings[name]
                code = column.codes[i]
                fields[name] = column.values[code] if code >= 0 else None
        fields["status"] = None if self.status_null[i] else int(self.status[i])
        fields["bytes"] = None if self.bytes_null[i] else int(self.bytes[i])
        for name in STRING_FIELDS[9:]:
            column = strings[name]
            code = column.codes[i]
            if code >= 0:
                fields[name] = column.values[code]
        return fields

    def record(self, Py_ssize_t i):
        """Line ``i`` as the :class:`LogRecord` ``LogParser(format="combined")`` gives.

        Only for a parser without ``timestamp_field`` (which would replace
        the ``[time]`` as the record's time).

        Raises
        ------
        IndexError
            When ``i`` is not a line index.
        InvalidInput
            When ``ok[i]`` is 0.
        """
        fields = self.to_fields(i)
        problems = []
        if self.invalid_utf8[i]:
            problems.append("invalid-utf8")
        stamp = int(self.time_ms[i])
        if stamp == INT64_MIN:
            stamp = None
            problems.append("bad-timestamp")
        raw = self.raw_line(i)
        return LogRecord(stamp, raw, fields, raw, "combined", tuple(problems))

    def __repr__(self):
        return f"CombinedColumns({len(self.ok)} lines, {int(self.ok.sum())} parsed)"


cdef list dict_values(const tw_lp_dict *d):
    cdef list out = []
    cdef size_t v
    cdef uint64_t start
    for v in range(d.dict_count):
        start = d.dict_offsets[v]
        out.append(PyUnicode_DecodeUTF8(<const char *>d.dict_bytes + start,
                                        <Py_ssize_t>(d.dict_offsets[v + 1] - start), "replace"))
    return out


def parse_combined(lines, *, Py_ssize_t max_line_length=DEFAULT_MAX_LINE_LENGTH):
    """Parse a batch of combined/common access log lines into columns, without the GIL.

    Parameters
    ----------
    lines:
        One ``bytes`` or ``str`` block split at ``\\n`` (as
        ``LogParser.parse_lines`` splits it: a final ``\\n`` gives a last,
        empty line), or an iterable of lines, each ``bytes``, ``bytearray``
        or ``str``. A trailing ``\\n`` and then ``\\r`` of a line is
        ignored. Row ``i`` of the result is line ``i`` (blank lines are rows
        with ``ok == 0``).
    max_line_length:
        The ``max_line_length`` of the Python parser: longer lines (in
        bytes) are left to it, since it truncates them.

    Returns
    -------
    CombinedColumns
        The columns; ``ok`` says which rows hold a parsed line.

    Raises
    ------
    InvalidInput
        When a line is not ``bytes``/``bytearray``/``str``, or
        ``max_line_length`` is below 1.
    """
    if max_line_length < 1:
        raise InvalidInput(f"max_line_length must be at least 1, not {max_line_length}")
    cdef object source
    cdef object starts = None
    cdef object ends = None
    cdef size_t n, i
    cdef const uint8_t *data
    cdef size_t length
    cdef const uint8_t **ptrs = NULL
    cdef size_t *lens = NULL
    cdef Py_ssize_t size
    cdef const char *text
    cdef int64_t[::1] start_view
    cdef int64_t[::1] end_view
    if isinstance(lines, (bytearray, memoryview)):
        lines = bytes(lines)
    elif isinstance(lines, str):
        lines = lines.split("\n")
    if isinstance(lines, bytes):
        source = lines
        data = <const uint8_t *>PyBytes_AS_STRING(source)
        length = <size_t>PyBytes_GET_SIZE(source)
        n = tw_lp_count_lines(data, length)
    else:
        source = []
        for line in lines:
            if isinstance(line, bytearray):
                line = bytes(line)
            elif not isinstance(line, (bytes, str)):
                raise InvalidInput(f"a log line is str or bytes, not {type(line).__name__}")
            source.append(line)
        n = len(source)
    if n > <size_t>MAX_LINES:
        raise InvalidInput(f"parse_combined takes at most {MAX_LINES} lines at once, not {n}")

    cdef object ok = np.zeros(n, UINT8)
    cdef object invalid_utf8 = np.zeros(n, UINT8)
    cdef object time_ms = np.zeros(n, INT64)
    cdef object status = np.zeros(n, INT64)
    cdef object status_null = np.zeros(n, UINT8)
    cdef object nbytes = np.zeros(n, INT64)
    cdef object bytes_null = np.zeros(n, UINT8)
    cdef list codes = [np.zeros(n, INT32) for _ in range(TW_LP_NFIELDS)]
    cdef tw_lp_dict dicts[12]
    cdef tw_lp_columns out
    cdef int status_code = TW_OK
    cdef int f
    for f in range(TW_LP_NFIELDS):
        tw_lp_dict_init(&dicts[f])
    try:
        if n > 0:
            out.col_ok = <uint8_t *><size_t>ok.ctypes.data
            out.col_invalid_utf8 = <uint8_t *><size_t>invalid_utf8.ctypes.data
            out.col_time_ms = <int64_t *><size_t>time_ms.ctypes.data
            out.col_status = <int64_t *><size_t>status.ctypes.data
            out.col_status_null = <uint8_t *><size_t>status_null.ctypes.data
            out.col_bytes = <int64_t *><size_t>nbytes.ctypes.data
            out.col_bytes_null = <uint8_t *><size_t>bytes_null.ctypes.data
            for f in range(TW_LP_NFIELDS):
                out.col_codes[f] = <int32_t *><size_t>codes[f].ctypes.data
            ptrs = <const uint8_t **>malloc(n * sizeof(uint8_t *))
            lens = <size_t *>malloc(n * sizeof(size_t))
            if ptrs == NULL or lens == NULL:
                raise MemoryError("parse_combined: out of memory for the line table")
            if isinstance(source, bytes):
                tw_lp_split_lines(data, length, ptrs, lens)
                starts = np.empty(n, INT64)
                ends = np.empty(n, INT64)
                start_view = starts
                end_view = ends
                for i in range(n):
                    start_view[i] = <int64_t>(ptrs[i] - data)
                    end_view[i] = start_view[i] + <int64_t>lens[i]
            else:
                for i in range(n):
                    line = (<list>source)[i]
                    if isinstance(line, bytes):
                        ptrs[i] = <const uint8_t *>PyBytes_AS_STRING(line)
                        lens[i] = <size_t>PyBytes_GET_SIZE(line)
                        continue
                    try:
                        text = PyUnicode_AsUTF8AndSize(line, &size)
                    except UnicodeEncodeError:
                        ptrs[i] = NULL  # lone surrogates: left to the Python parser
                        lens[i] = 0
                        continue
                    ptrs[i] = <const uint8_t *>text
                    lens[i] = <size_t>size
            with nogil:
                status_code = tw_lp_parse_combined(ptrs, lens, n, <size_t>max_line_length,
                                                   dicts, &out)
            check_status(status_code)
        strings = {name: EncodedStrings(codes[f], dict_values(&dicts[f]))
                   for f, name in enumerate(STRING_FIELDS)}
    finally:
        free(ptrs)
        free(lens)
        for f in range(TW_LP_NFIELDS):
            tw_lp_dict_free(&dicts[f])

    cdef CombinedColumns result = CombinedColumns.__new__(CombinedColumns)
    result.ok = ok
    result.invalid_utf8 = invalid_utf8
    result.time_ms = time_ms
    result.status = status
    result.status_null = status_null
    result.bytes = nbytes
    result.bytes_null = bytes_null
    result.strings = strings
    result._source = source
    result._starts = starts
    result._ends = ends
    return result
