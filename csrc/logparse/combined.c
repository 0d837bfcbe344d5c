/*
 * combined.c — one left-to-right scan per combined access log line.
 *
 * Design. The Python pattern (see logparse.h) has no ambiguous part: each
 * \S+ is followed by a literal ' ', which \S cannot match, so a token is the
 * maximal non-blank run; a quoted part Q = (?:[^"\\]|\\.)* stops only at an
 * unescaped '"' (its iterations start with disjoint characters, so giving
 * one back can never expose a '"'); the optional referer and user agent are
 * taken whenever they are complete, because the trailing (.*) makes the
 * first attempt succeed. So the scan below is the regex's own first match,
 * without backtracking, and the kernel reads each byte a small constant
 * number of times.
 *
 * Invariants. Every read is guarded by `p < end` (or an explicit length
 * test) where end is the line's end after the '\n'/'\r' strip; scratch
 * buffers grow to the longest quoted part seen; a dictionary's slot table
 * stays at most half full, so probing always finds an empty slot.
 */
#include "logparse/logparse.h"

#include <stdlib.h>
#include <string.h>

#include "common/status.h"

#define LP_DAY_MS 86400000LL
#define LP_MAX_TIME_TEXT 200 /* _timestamps._parse refuses longer strings */

/* ASCII characters Python's str.isspace() and re's \s accept. */
static const uint8_t ascii_blank[128] = {
    ['\t'] = 1, ['\n'] = 1, [0x0B] = 1, [0x0C] = 1, ['\r'] = 1,
    [0x1C] = 1, [0x1D] = 1, [0x1E] = 1, [0x1F] = 1, [' '] = 1,
};

/* Length in bytes of the Unicode blank encoded at p, or 0. */
static size_t blank_at(const uint8_t *p, const uint8_t *end)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return ascii_blank[c];
    if (c == 0xC2)
        return (end - p >= 2 && (p[1] == 0x85 || p[1] == 0xA0)) ? 2 : 0;
    if (c < 0xE1 || c > 0xE3 || end - p < 3)
        return 0;
    uint8_t b1 = p[1], b2 = p[2];
    if (c == 0xE1)
        return (b1 == 0x9A && b2 == 0x80) ? 3 : 0;
    if (c == 0xE3)
        return (b1 == 0x80 && b2 == 0x80) ? 3 : 0;
    if (b1 == 0x80)
        return ((b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF) ? 3 : 0;
    return (b1 == 0x81 && b2 == 0x9F) ? 3 : 0;
}

/* End of the maximal run of non-blank characters starting at p. */
static const uint8_t *scan_token(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            if (ascii_blank[c])
                break;
        } else if ((c == 0xC2 || (c >= 0xE1 && c <= 0xE3)) && blank_at(p, end)) {
            break;
        }
        p++;
    }
    return p;
}

/* p is just after an opening '"': the closing '"' or NULL when there is
 * none; *escaped is set when a backslash occurs. */
static const uint8_t *scan_quoted(const uint8_t *p, const uint8_t *end, int *escaped)
{
    while (p < end) {
        uint8_t c = *p;
        if (c == '"')
            return p;
        if (c == '\\') {
            *escaped = 1;
            if (end - p < 2)
                return NULL;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static int has_high_byte(const uint8_t *p, size_t n)
{
    uint64_t acc = 0;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        acc |= w;
        p += 8;
        n -= 8;
    }
    while (n--)
        acc |= *p++;
    return (acc & 0x8080808080808080ULL) != 0;
}

/* Strict UTF-8 (Unicode table 3-7), what bytes.decode("utf-8") accepts. */
static int utf8_valid(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= need || p[1] < lo || p[1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if (p[k] < 0x80 || p[k] > 0xBF)
                return 0;
        p += need + 1;
    }
    return 1;
}

/* _QUOTE_ESCAPE.sub(r"\1", ...): \" -> ", \\ -> \, other backslashes kept.
 * out holds at least n bytes; returns the length written. */
static size_t unescape(const uint8_t *p, size_t n, uint8_t *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n && (p[i + 1] == '"' || p[i + 1] == '\\'))
            i++;
        out[w++] = p[i];
    }
    return w;
}

/* ---------------------------------------------------------------- time */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int digits_at(const uint8_t *t, size_t len, size_t i, size_t count, int *value)
{
    if (len - i < count)
        return 0;
    int v = 0;
    for (size_t k = 0; k < count; k++) {
        if (!is_digit(t[i + k]))
            return 0;
        v = v * 10 + (t[i + k] - '0');
    }
    *value = v;
    return 1;
}

int64_t tw_lp_httpdate_ms(const uint8_t *t, size_t len, int *fallback)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const unsigned month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    *fallback = 0;
    if (has_high_byte(t, len)) {
        *fallback = 1;
        return INT64_MIN;
    }
    if (len > LP_MAX_TIME_TEXT)
        return INT64_MIN;
    size_t i = 0;
    while (i < len && ascii_blank[t[i]])
        i++;
    int day, year, hour, minute, second, month = 0;
    if (!digits_at(t, len, i, 1, &day))
        return INT64_MIN;
    i++;
    if (i < len && is_digit(t[i]))
        day = day * 10 + (t[i++] - '0');
    if (len - i < 5 || t[i] != '/' || t[i + 4] != '/')
        return INT64_MIN;
    for (int m = 0; m < 12; m++)
        if (memcmp(t + i + 1, months + 3 * m, 3) == 0)
            month = m + 1;
    if (month == 0)
        return INT64_MIN;
    i += 5;
    if (!digits_at(t, len, i, 4, &year) || len - i < 5 || t[i + 4] != ':')
        return INT64_MIN;
    i += 5;
    if (!digits_at(t, len, i, 2, &hour) || len - i < 3 || t[i + 2] != ':')
        return INT64_MIN;
    i += 3;
    if (!digits_at(t, len, i, 2, &minute) || len - i < 3 || t[i + 2] != ':')
        return INT64_MIN;
    i += 3;
    if (!digits_at(t, len, i, 2, &second))
        return INT64_MIN;
    i += 2;
    size_t j = i;
    while (j < len && ascii_blank[t[j]])
        j++;
    int64_t offset = 0;
    if (j < len) {
        int off_h, off_m;
        if (j == i || (t[j] != '+' && t[j] != '-'))
            return INT64_MIN;
        int negative = t[j] == '-';
        j++;
        if (!digits_at(t, len, j, 2, &off_h))
            return INT64_MIN;
        j += 2;
        if (j < len && t[j] == ':')
            j++;
        if (!digits_at(t, len, j, 2, &off_m))
            return INT64_MIN;
        j += 2;
        while (j < len && ascii_blank[t[j]])
            j++;
        if (j < len || off_m > 59)
            return INT64_MIN;
        offset = off_h * 60 + off_m;
        if (negative)
            offset = -offset;
    }
    if (hour > 23 || minute > 59 || second > 60 || year < 1 || day < 1)
        return INT64_MIN;
    unsigned dim = month_days[month - 1] + (month == 2 && is_leap(year));
    if ((unsigned)day > dim)
        return INT64_MIN;
    int64_t seconds = (int64_t)hour * 3600 + minute * 60 + second - offset * 60;
    int64_t stamp = days_from_civil(year, (unsigned)month, (unsigned)day) * LP_DAY_MS +
                    seconds * 1000;
    int64_t min_ms = days_from_civil(1, 1, 1) * LP_DAY_MS;
    int64_t max_ms = (days_from_civil(9999, 12, 31) + 1) * LP_DAY_MS - 1;
    if (stamp < min_ms || stamp > max_ms)
        return INT64_MIN;
    return stamp;
}

/* ---------------------------------------------------------------- dictionaries */

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
    }
    h ^= h >> 32;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 31;
    return h;
}

void tw_lp_dict_init(tw_lp_dict *dict) { memset(dict, 0, sizeof *dict); }

void tw_lp_dict_free(tw_lp_dict *dict)
{
    free(dict->dict_bytes);
    free(dict->dict_offsets);
    free(dict->dict_hashes);
    free(dict->dict_slots);
    memset(dict, 0, sizeof *dict);
}

static int dict_grow_slots(tw_lp_dict *d)
{
    size_t cap = d->dict_slots ? (d->dict_mask + 1) * 2 : 64;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return TW_ERR_NOMEM;
    for (size_t v = 0; v < d->dict_count; v++) {
        size_t s = (size_t)d->dict_hashes[v] & (cap - 1);
        while (slots[s])
            s = (s + 1) & (cap - 1);
        slots[s] = (uint32_t)(v + 1);
    }
    free(d->dict_slots);
    d->dict_slots = slots;
    d->dict_mask = cap - 1;
    return TW_OK;
}

/* The code of p[0 .. n) in d, added at the end when new. */
static int dict_intern(tw_lp_dict *d, const uint8_t *p, size_t n, int32_t *code)
{
    if (!d->dict_slots || (d->dict_count + 1) * 2 > d->dict_mask + 1) {
        int status = dict_grow_slots(d);
        if (status != TW_OK)
            return status;
    }
    uint64_t h = hash_bytes(p, n);
    size_t s = (size_t)h & d->dict_mask;
    for (;;) {
        uint32_t v = d->dict_slots[s];
        if (!v)
            break;
        v--;
        if (d->dict_hashes[v] == h) {
            uint64_t start = d->dict_offsets[v];
            if (d->dict_offsets[v + 1] - start == n &&
                (n == 0 || memcmp(d->dict_bytes + start, p, n) == 0)) {
                *code = (int32_t)v;
                return TW_OK;
            }
        }
        s = (s + 1) & d->dict_mask;
    }
    if (d->dict_count >= INT32_MAX)
        return TW_ERR_OVERFLOW;
    if (d->dict_count + 1 >= d->dict_values_cap) {
        size_t cap = d->dict_values_cap ? d->dict_values_cap * 2 : 64;
        uint64_t *offsets = realloc(d->dict_offsets, (cap + 1) * sizeof *offsets);
        if (!offsets)
            return TW_ERR_NOMEM;
        d->dict_offsets = offsets;
        uint64_t *hashes = realloc(d->dict_hashes, cap * sizeof *hashes);
        if (!hashes)
            return TW_ERR_NOMEM;
        d->dict_hashes = hashes;
        if (d->dict_values_cap == 0)
            d->dict_offsets[0] = 0;
        d->dict_values_cap = cap;
    }
    if (d->dict_bytes_cap - d->dict_bytes_len < n) {
        size_t cap = d->dict_bytes_cap ? d->dict_bytes_cap : 1024;
        while (cap - d->dict_bytes_len < n)
            cap *= 2;
        uint8_t *bytes = realloc(d->dict_bytes, cap);
        if (!bytes)
            return TW_ERR_NOMEM;
        d->dict_bytes = bytes;
        d->dict_bytes_cap = cap;
    }
    if (n)
        memcpy(d->dict_bytes + d->dict_bytes_len, p, n);
    d->dict_bytes_len += n;
    size_t v = d->dict_count++;
    d->dict_hashes[v] = h;
    d->dict_offsets[v + 1] = d->dict_bytes_len;
    d->dict_slots[s] = (uint32_t)(v + 1);
    *code = (int32_t)v;
    return TW_OK;
}

/* ---------------------------------------------------------------- lines */

typedef struct lp_span {
    const uint8_t *sp_ptr; /* NULL: absent */
    size_t sp_len;
} lp_span;

typedef struct lp_line {
    lp_span ln_fields[TW_LP_NFIELDS];
    const uint8_t *ln_time;
    size_t ln_time_len;
    int64_t ln_status, ln_bytes; /* -1: '-' */
    int ln_escaped[TW_LP_NFIELDS];
} lp_line;

enum { LP_REJECT = 0, LP_OK = 1, LP_FALLBACK = 2 };

#define SET_SPAN(line, field, a, b) \
    ((line)->ln_fields[field].sp_ptr = (a), (line)->ln_fields[field].sp_len = (size_t)((b) - (a)))

/* The first three blank-separated tokens, each followed by one ' '. */
static const uint8_t *line_head(lp_line *ln, const uint8_t *p, const uint8_t *end)
{
    static const int fields[3] = {TW_LP_CLIENTIP, TW_LP_IDENT, TW_LP_USER};
    for (int k = 0; k < 3; k++) {
        const uint8_t *q = scan_token(p, end);
        if (q == p || q >= end || *q != ' ')
            return NULL;
        SET_SPAN(ln, fields[k], p, q);
        p = q + 1;
    }
    return p;
}

static int line_scan(lp_line *ln, const uint8_t *p, const uint8_t *end)
{
    const uint8_t *q;
    memset(ln, 0, sizeof *ln);
    p = line_head(ln, p, end);
    if (!p || p >= end || *p != '[')
        return LP_REJECT;
    p++;
    q = memchr(p, ']', (size_t)(end - p));
    if (!q)
        return LP_REJECT;
    ln->ln_time = p;
    ln->ln_time_len = (size_t)(q - p);
    p = q + 1;
    if (end - p < 2 || p[0] != ' ' || p[1] != '"')
        return LP_REJECT;
    p += 2;
    q = scan_quoted(p, end, &ln->ln_escaped[TW_LP_REQUEST]);
    if (!q)
        return LP_REJECT;
    SET_SPAN(ln, TW_LP_REQUEST, p, q);
    p = q + 1;
    if (p >= end || *p != ' ')
        return LP_REJECT;
    p++;
    if (end - p >= 3 && is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2])) {
        ln->ln_status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        p += 3;
    } else if (p < end && *p == '-') {
        ln->ln_status = -1;
        p++;
    } else {
        return LP_REJECT;
    }
    if (p >= end || *p != ' ')
        return LP_REJECT;
    p++;
    if (p < end && is_digit(*p)) {
        int64_t size = 0;
        int overflow = 0;
        for (; p < end && is_digit(*p); p++) {
            int digit = *p - '0';
            if (size > (INT64_MAX - digit) / 10)
                overflow = 1;
            else
                size = size * 10 + digit;
        }
        if (overflow)
            return LP_FALLBACK;
        ln->ln_bytes = size;
    } else if (p < end && *p == '-') {
        ln->ln_bytes = -1;
        p++;
    } else {
        return LP_REJECT;
    }
    static const int quoted[2] = {TW_LP_REFERER, TW_LP_USERAGENT};
    for (int k = 0; k < 2; k++) {
        if (end - p < 2 || p[0] != ' ' || p[1] != '"')
            break;
        int escaped = 0;
        q = scan_quoted(p + 2, end, &escaped);
        if (!q)
            break;
        SET_SPAN(ln, quoted[k], p + 2, q);
        ln->ln_escaped[quoted[k]] = escaped;
        p = q + 1;
    }
    size_t blank;
    while (p < end && (blank = blank_at(p, end)) != 0)
        p += blank;
    const uint8_t *last = p;
    for (q = p; q < end;) {
        blank = blank_at(q, end);
        if (blank) {
            q += blank;
        } else {
            q++;
            last = q;
        }
    }
    if (last > p)
        SET_SPAN(ln, TW_LP_EXTRA, p, last);
    return LP_OK;
}

/* _REQUEST.fullmatch on the unescaped request r[0 .. n):
 * ([A-Za-z]+) (\S+)(?: (HTTP/[0-9.]+))? */
static void request_parts(lp_line *ln, const uint8_t *r, size_t n)
{
    const uint8_t *end = r + n, *p = r;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
        p++;
    if (p == r || p >= end || *p != ' ')
        return;
    const uint8_t *uri = p + 1, *uri_end = scan_token(uri, end);
    if (uri_end == uri)
        return;
    const uint8_t *version = NULL;
    if (uri_end < end) {
        if (end - uri_end < 7 || memcmp(uri_end, " HTTP/", 6) != 0)
            return;
        for (const uint8_t *v = uri_end + 6; v < end; v++)
            if (!is_digit(*v) && *v != '.')
                return;
        version = uri_end + 1;
    }
    SET_SPAN(ln, TW_LP_METHOD, r, p);
    SET_SPAN(ln, TW_LP_URI, uri, uri_end);
    const uint8_t *question = memchr(uri, '?', (size_t)(uri_end - uri));
    if (question) {
        SET_SPAN(ln, TW_LP_URI_PATH, uri, question);
        SET_SPAN(ln, TW_LP_URI_QUERY, question + 1, uri_end);
    } else {
        SET_SPAN(ln, TW_LP_URI_PATH, uri, uri_end);
    }
    if (version)
        SET_SPAN(ln, TW_LP_HTTP_VERSION, version, end);
}

typedef struct lp_scratch {
    uint8_t *sc_buf;
    size_t sc_cap;
} lp_scratch;

static int scratch_reserve(lp_scratch *s, size_t n)
{
    if (n <= s->sc_cap)
        return TW_OK;
    size_t cap = s->sc_cap ? s->sc_cap : 256;
    while (cap < n)
        cap *= 2;
    uint8_t *buf = realloc(s->sc_buf, cap);
    if (!buf)
        return TW_ERR_NOMEM;
    s->sc_buf = buf;
    s->sc_cap = cap;
    return TW_OK;
}

/* Replace an escaped quoted span by its unescaped copy in its own scratch. */
static int line_unescape(lp_line *ln, int field, lp_scratch *s)
{
    lp_span *span = &ln->ln_fields[field];
    if (!span->sp_ptr || !ln->ln_escaped[field])
        return TW_OK;
    int status = scratch_reserve(s, span->sp_len);
    if (status != TW_OK)
        return status;
    span->sp_len = unescape(span->sp_ptr, span->sp_len, s->sc_buf);
    span->sp_ptr = s->sc_buf;
    return TW_OK;
}

static void row_reject(const tw_lp_columns *out, size_t i)
{
    out->col_ok[i] = 0;
    out->col_invalid_utf8[i] = 0;
    out->col_time_ms[i] = INT64_MIN;
    out->col_status[i] = 0;
    out->col_status_null[i] = 1;
    out->col_bytes[i] = 0;
    out->col_bytes_null[i] = 1;
    for (int f = 0; f < TW_LP_NFIELDS; f++)
        out->col_codes[f][i] = -1;
}

int tw_lp_parse_combined(const uint8_t *const *lines, const size_t *lens, size_t n,
                         size_t max_line_length, tw_lp_dict *dicts, const tw_lp_columns *out)
{
    lp_scratch scratch[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    static const int escapable[3] = {TW_LP_REQUEST, TW_LP_REFERER, TW_LP_USERAGENT};
    int status = TW_OK;
    lp_line ln;
    for (size_t i = 0; i < n; i++) {
        row_reject(out, i);
        const uint8_t *start = lines[i];
        if (!start)
            continue;
        const uint8_t *end = start + lens[i];
        if (end > start && end[-1] == '\n')
            end--;
        if (end > start && end[-1] == '\r')
            end--;
        if ((size_t)(end - start) > max_line_length || line_scan(&ln, start, end) != LP_OK)
            continue;
        int fallback;
        int64_t stamp = tw_lp_httpdate_ms(ln.ln_time, ln.ln_time_len, &fallback);
        if (fallback)
            continue;
        for (int k = 0; k < 3 && status == TW_OK; k++)
            status = line_unescape(&ln, escapable[k], &scratch[k]);
        if (status != TW_OK)
            break;
        const lp_span *request = &ln.ln_fields[TW_LP_REQUEST];
        request_parts(&ln, request->sp_ptr, request->sp_len);
        for (int f = 0; f < TW_LP_NFIELDS && status == TW_OK; f++) {
            const lp_span *span = &ln.ln_fields[f];
            if (span->sp_ptr)
                status = dict_intern(&dicts[f], span->sp_ptr, span->sp_len,
                                     &out->col_codes[f][i]);
        }
        if (status != TW_OK)
            break;
        out->col_ok[i] = 1;
        out->col_invalid_utf8[i] =
            has_high_byte(start, (size_t)(end - start)) && !utf8_valid(start, end);
        out->col_time_ms[i] = stamp;
        if (ln.ln_status >= 0) {
            out->col_status[i] = ln.ln_status;
            out->col_status_null[i] = 0;
        }
        if (ln.ln_bytes >= 0) {
            out->col_bytes[i] = ln.ln_bytes;
            out->col_bytes_null[i] = 0;
        }
    }
    for (int k = 0; k < 3; k++)
        free(scratch[k].sc_buf);
    return status;
}

size_t tw_lp_count_lines(const uint8_t *data, size_t len)
{
    size_t count = 1;
    const uint8_t *p = data, *end = data + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        count++;
        p++;
    }
    return count;
}

void tw_lp_split_lines(const uint8_t *data, size_t len, const uint8_t **lines, size_t *lens)
{
    const uint8_t *p = data, *end = data + len;
    size_t k = 0;
    for (;;) {
        const uint8_t *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        const uint8_t *stop = nl ? nl : end;
        lines[k] = p;
        lens[k] = (size_t)(stop - p);
        k++;
        if (!nl)
            break;
        p = nl + 1;
    }
}
