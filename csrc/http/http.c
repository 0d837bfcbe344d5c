/*
 * http.c — strict HTTP/1.1 request head parser, chunked body decoder and
 * response head writer. The rules are listed in http.h.
 *
 * Design. The head parser is one forward pass over the bytes with a lookup
 * table for tchar; every check is made on the byte that decides it, so the
 * first error in the buffer is found no matter how the bytes arrived. The
 * pass stops at a per-line end, end = min(len, line start + line limit + 2,
 * max_head): running into it means "need more bytes" when it is len and a
 * limit error otherwise, which is why an over-long line is reported with
 * the same code and offset whether it came in one read or byte by byte.
 *
 * Incremental use re-parses the head from its first byte when new bytes
 * may have finished a line (they hold an LF or a byte that is an error
 * anyway). Heads are small (64 KiB at most) and the pass is a few cycles a
 * byte, so re-parsing costs less than keeping a resumable state would, and
 * nothing outside the caller's buffer has to stay alive between reads.
 *
 * The chunked decoder is a byte-level state machine (one state per grammar
 * position) because chunk boundaries may fall anywhere in a read; it keeps
 * only counters, and decodes in place by moving data bytes towards the
 * front of the caller's buffer, never past the bytes already consumed.
 *
 * Invariants: no allocation, no global mutable state, no read outside
 * buf[0..len), offsets fit 32 bits because max_head < 2^31.
 */
#include "http/http.h"

#include <string.h>

/* ---------------------------------------------------------------- tables */

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
static const uint8_t TCHAR[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* field-vchar / obs-text / SP / HTAB: what may stand in a field value. */
static inline int field_byte(uint8_t c) { return c >= 0x20 ? c != 0x7f : c == '\t'; }

/* field_byte() as a table, for the value loop: 0x00-0x1F but HTAB, and DEL, are 0. */
static const uint8_t FIELD[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static inline int is_ws(uint8_t c) { return c == ' ' || c == '\t'; }

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static inline int is_alpha(uint8_t c) { return (uint8_t)((c | 0x20) - 'a') < 26; }

static inline int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Case-insensitive compare of buf[0..len) with the lower-case literal s. */
static int ieq(const uint8_t *buf, size_t len, const char *s, size_t slen) {
    if (len != slen) return 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        if (c >= 'A' && c <= 'Z') c |= 0x20;
        if (c != (uint8_t)s[i]) return 0;
    }
    return 1;
}

#define IEQ(p, n, lit) ieq((p), (n), lit, sizeof(lit) - 1)

/* ---------------------------------------------------------------- strerror */

const char *tw_http_strerror(int status) {
    switch (status) {
    case TW_OK: return "ok";
    case TW_ERR_NOSPACE: return "output buffer too small";
    case TW_ERR_INVALID: return "invalid argument";
    case TW_HTTP_INCOMPLETE: return "incomplete request";
    case TW_HTTP_E_METHOD: return "invalid method token";
    case TW_HTTP_E_TARGET: return "invalid request-target";
    case TW_HTTP_E_VERSION: return "malformed HTTP version";
    case TW_HTTP_E_VERSION_UNSUPPORTED: return "unsupported HTTP version (only 1.0 and 1.1)";
    case TW_HTTP_E_BARE_CR: return "bare CR (CR not followed by LF)";
    case TW_HTTP_E_BARE_LF: return "bare LF line ending (LF without CR)";
    case TW_HTTP_E_LEADING_WS: return "whitespace before the first header line";
    case TW_HTTP_E_OBS_FOLD: return "obsolete line folding (header line starts with whitespace)";
    case TW_HTTP_E_HEADER_NAME: return "invalid header name";
    case TW_HTTP_E_WS_BEFORE_COLON: return "whitespace before the header colon";
    case TW_HTTP_E_HEADER_VALUE: return "control character in a header value";
    case TW_HTTP_E_REQUEST_LINE_TOO_LONG: return "request line too long";
    case TW_HTTP_E_HEADER_LINE_TOO_LONG: return "header line too long";
    case TW_HTTP_E_HEAD_TOO_LARGE: return "request head too large";
    case TW_HTTP_E_TOO_MANY_HEADERS: return "too many header fields";
    case TW_HTTP_E_CONTENT_LENGTH: return "malformed Content-Length";
    case TW_HTTP_E_CONTENT_LENGTH_DUP: return "duplicate Content-Length";
    case TW_HTTP_E_CL_AND_TE: return "Content-Length with Transfer-Encoding";
    case TW_HTTP_E_TE_NOT_CHUNKED: return "final transfer coding is not chunked";
    case TW_HTTP_E_TE_CHUNKED_TWICE: return "chunked transfer coding applied twice";
    case TW_HTTP_E_TE_SYNTAX: return "malformed Transfer-Encoding";
    case TW_HTTP_E_TE_HTTP10: return "Transfer-Encoding in an HTTP/1.0 request";
    case TW_HTTP_E_HOST_DUP: return "more than one Host header";
    case TW_HTTP_E_BODY_TOO_LARGE: return "request body too large";
    case TW_HTTP_E_CHUNK_SIZE: return "invalid chunk size";
    case TW_HTTP_E_CHUNK_EXT: return "invalid chunk extension";
    case TW_HTTP_E_CHUNK_EXT_TOO_LONG: return "chunk extension too long";
    case TW_HTTP_E_CHUNK_DATA_CRLF: return "missing CRLF after chunk data";
    case TW_HTTP_E_TRAILERS_TOO_LARGE: return "trailer section too large";
    case TW_HTTP_E_STATUS: return "status code not in 100..999";
    case TW_HTTP_E_REASON: return "control character in reason phrase";
    default: return "unknown error";
    }
}

void tw_http_limits_default(tw_http_limits *limits) {
    limits->max_request_line = 8192;
    limits->max_header_line = 8192;
    limits->max_head = 65536;
    limits->max_headers = 100;
    limits->max_chunk_ext = 4096;
    limits->max_body = (uint64_t)1 << 30;
}

/* ---------------------------------------------------------------- head */

static int method_id(const uint8_t *m, size_t n) {
    switch (n) {
    case 3:
        if (!memcmp(m, "GET", 3)) return TW_HTTP_GET;
        if (!memcmp(m, "PUT", 3)) return TW_HTTP_PUT;
        break;
    case 4:
        if (!memcmp(m, "POST", 4)) return TW_HTTP_POST;
        if (!memcmp(m, "HEAD", 4)) return TW_HTTP_HEAD;
        break;
    case 5:
        if (!memcmp(m, "PATCH", 5)) return TW_HTTP_PATCH;
        if (!memcmp(m, "TRACE", 5)) return TW_HTTP_TRACE;
        break;
    case 6:
        if (!memcmp(m, "DELETE", 6)) return TW_HTTP_DELETE;
        break;
    case 7:
        if (!memcmp(m, "CONNECT", 7)) return TW_HTTP_CONNECT;
        if (!memcmp(m, "OPTIONS", 7)) return TW_HTTP_OPTIONS;
        break;
    }
    return TW_HTTP_OTHER;
}

/* Classifies the target t[0..n) (already checked to be visible ASCII);
 * returns its form or -1 with *bad the offending index. */
static int target_form(const uint8_t *t, size_t n, int method, size_t *bad) {
    *bad = 0;
    if (t[0] == '/') {
        if (method == TW_HTTP_CONNECT) return -1;
        return TW_HTTP_ORIGIN_FORM;
    }
    if (n == 1 && t[0] == '*') return method == TW_HTTP_OPTIONS ? TW_HTTP_ASTERISK_FORM : -1;
    if (method == TW_HTTP_CONNECT) {
        /* authority-form: host ":" port, no userinfo, path, query or fragment */
        size_t colon = n;
        for (size_t i = 0; i < n; i++) {
            uint8_t c = t[i];
            if (c == '/' || c == '?' || c == '#' || c == '@') {
                *bad = i;
                return -1;
            }
            if (c == ':') colon = i;
        }
        if (colon == 0 || colon == n || colon + 1 == n) {
            *bad = colon < n ? colon : n - 1;
            return -1;
        }
        for (size_t i = colon + 1; i < n; i++)
            if (!is_digit(t[i])) {
                *bad = i;
                return -1;
            }
        return TW_HTTP_AUTHORITY_FORM;
    }
    /* absolute-form: scheme ":" ... with scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    if (!is_alpha(t[0])) return -1;
    for (size_t i = 1; i < n; i++) {
        uint8_t c = t[i];
        if (c == ':') return TW_HTTP_ABSOLUTE_FORM;
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
            *bad = i;
            return -1;
        }
    }
    *bad = n - 1;
    return -1;
}

/* What the semantic headers said so far. */
typedef struct {
    int64_t content_length;
    uint32_t cl_off, te_off; /* offsets of the fields' names; 0 = not seen */
    int cl_seen, te_seen, chunked_seen, te_other, hosts;
    int conn_close, conn_keep_alive, conn_upgrade, upgrade, expect_continue;
} head_state;

/* Applies one field line's meaning; returns 0 or an error with *where set. */
static int header_meaning(head_state *h, const uint8_t *buf, const tw_http_header *f,
                          const tw_http_limits *limits, uint32_t *where) {
    const uint8_t *name = buf + f->name.off, *v = buf + f->value.off;
    size_t nlen = f->name.len, vlen = f->value.len;
    switch (nlen) {
    case 4:
        if (IEQ(name, nlen, "host")) {
            if (h->hosts++) {
                *where = f->name.off;
                return TW_HTTP_E_HOST_DUP;
            }
        }
        return 0;
    case 6:
        if (IEQ(name, nlen, "expect") && IEQ(v, vlen, "100-continue")) h->expect_continue = 1;
        return 0;
    case 7:
        if (IEQ(name, nlen, "upgrade")) h->upgrade = 1;
        return 0;
    case 10:
        if (!IEQ(name, nlen, "connection")) return 0;
        /* a comma list of tokens; elements are compared OWS-trimmed */
        for (size_t i = 0; i <= vlen; i++) {
            size_t es = i, ee;
            while (i < vlen && v[i] != ',') i++;
            ee = i;
            while (es < ee && is_ws(v[es])) es++;
            while (ee > es && is_ws(v[ee - 1])) ee--;
            if (IEQ(v + es, ee - es, "close")) h->conn_close = 1;
            else if (IEQ(v + es, ee - es, "keep-alive")) h->conn_keep_alive = 1;
            else if (IEQ(v + es, ee - es, "upgrade")) h->conn_upgrade = 1;
        }
        return 0;
    case 14: {
        if (!IEQ(name, nlen, "content-length")) return 0;
        if (h->cl_seen) {
            *where = f->name.off;
            return TW_HTTP_E_CONTENT_LENGTH_DUP;
        }
        h->cl_seen = 1;
        h->cl_off = f->name.off;
        if (vlen == 0) {
            *where = f->value.off;
            return TW_HTTP_E_CONTENT_LENGTH;
        }
        uint64_t n = 0, max = limits->max_body;
        for (size_t i = 0; i < vlen; i++) {
            uint8_t c = v[i];
            if (!is_digit(c)) {
                *where = f->value.off + (uint32_t)i;
                return c == ',' ? TW_HTTP_E_CONTENT_LENGTH_DUP : TW_HTTP_E_CONTENT_LENGTH;
            }
            if (n > max / 10 || n * 10 + (uint64_t)(c - '0') > max) {
                *where = f->value.off + (uint32_t)i;
                return TW_HTTP_E_BODY_TOO_LARGE;
            }
            n = n * 10 + (uint64_t)(c - '0');
        }
        h->content_length = (int64_t)n;
        return 0;
    }
    case 17: {
        if (!IEQ(name, nlen, "transfer-encoding")) return 0;
        if (!h->te_seen) h->te_off = f->name.off;
        h->te_seen = 1;
        size_t i = 0;
        for (;;) {
            while (i < vlen && is_ws(v[i])) i++;
            size_t ts = i;
            while (i < vlen && TCHAR[v[i]]) i++;
            if (i == ts) {
                *where = f->value.off + (uint32_t)i;
                return TW_HTTP_E_TE_SYNTAX;
            }
            int chunked = IEQ(v + ts, i - ts, "chunked");
            if (h->chunked_seen) {
                *where = f->value.off + (uint32_t)ts;
                return chunked ? TW_HTTP_E_TE_CHUNKED_TWICE : TW_HTTP_E_TE_NOT_CHUNKED;
            }
            while (i < vlen && is_ws(v[i])) i++;
            /* transfer-parameter = token BWS "=" BWS ( token / quoted-string ),
             * each after OWS ";" OWS; checked so that every reader splits the
             * list the same way, then ignored. chunked takes none. */
            while (i < vlen && v[i] == ';') {
                if (chunked) {
                    *where = f->value.off + (uint32_t)i;
                    return TW_HTTP_E_TE_SYNTAX;
                }
                i++;
                while (i < vlen && is_ws(v[i])) i++;
                size_t ps = i;
                while (i < vlen && TCHAR[v[i]]) i++;
                if (i == ps) goto te_bad;
                while (i < vlen && is_ws(v[i])) i++;
                if (i == vlen || v[i] != '=') goto te_bad;
                i++;
                while (i < vlen && is_ws(v[i])) i++;
                if (i < vlen && v[i] == '"') {
                    for (i++;; i++) {
                        if (i == vlen) goto te_bad;
                        if (v[i] == '"') break;
                        if (v[i] == '\\' && ++i == vlen) goto te_bad;
                    }
                    i++;
                } else {
                    ps = i;
                    while (i < vlen && TCHAR[v[i]]) i++;
                    if (i == ps) goto te_bad;
                }
                while (i < vlen && is_ws(v[i])) i++;
            }
            if (chunked) h->chunked_seen = 1;
            else h->te_other = 1;
            if (i == vlen) break;
            if (v[i] != ',') goto te_bad;
            i++;
        }
        return 0;
    te_bad:
        *where = f->value.off + (uint32_t)i;
        return TW_HTTP_E_TE_SYNTAX;
    }
    }
    return 0;
}

/* Can the bytes b[0..n) be skipped without a re-parse: no LF (no line
 * ends) and no byte that is an error wherever it stands? */
static int plain_bytes(const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (c < 0x20 && c != '\t' && c != '\r') return 0;
        if (c == 0x7f) return 0;
    }
    return 1;
}

int tw_http_parse_head(const uint8_t *buf, size_t len, size_t prev_len, tw_http_head *out,
                       tw_http_header *headers, uint32_t max_headers,
                       const tw_http_limits *limits) {
    tw_http_limits defaults;
    if (!limits) {
        tw_http_limits_default(&defaults);
        limits = &defaults;
    }
    uint32_t line_limit = limits->max_request_line < limits->max_header_line
                              ? limits->max_request_line
                              : limits->max_header_line;
    if (prev_len > 0 && prev_len < len && len < limits->max_head &&
        plain_bytes(buf + prev_len, len - prev_len)) {
        /* A CR followed by something else than LF is an error: the byte
         * before prev_len must be checked with the first new one. */
        size_t ls = prev_len;
        while (ls > 0 && buf[ls - 1] != '\n') ls--;
        int cr_inside = 0;
        for (size_t i = prev_len > 0 ? prev_len - 1 : 0; i + 1 < len; i++)
            if (buf[i] == '\r') cr_inside = 1;
        if (!cr_inside && len - ls < line_limit) return TW_HTTP_INCOMPLETE;
    }

    memset(out, 0, sizeof *out);
    out->content_length = -1;
    uint32_t maxh = max_headers < limits->max_headers ? max_headers : limits->max_headers;
    size_t head_cap = limits->max_head;
    size_t pos = 0, line_cap = 0, end = 0, i;
    int line_err = TW_HTTP_E_REQUEST_LINE_TOO_LONG;
    int err;
    uint32_t where = 0;
    head_state h;
    memset(&h, 0, sizeof h);

#define LINE(start, maxlen)                               \
    do {                                                  \
        line_cap = (start) + (size_t)(maxlen) + 2;        \
        end = len < line_cap ? len : line_cap;            \
        if (end > head_cap) end = head_cap;               \
    } while (0)
#define NEED(p) \
    if ((p) >= end) goto incomplete
#define FAIL(code, at)                  \
    do {                                \
        err = (code);                   \
        where = (uint32_t)(at);         \
        goto fail;                      \
    } while (0)

    /* empty lines before the request line */
    for (int empties = 0;; empties++) {
        LINE(pos, limits->max_request_line);
        NEED(pos);
        if (buf[pos] == '\n') FAIL(TW_HTTP_E_BARE_LF, pos);
        if (buf[pos] != '\r') break;
        if (empties == 16) FAIL(TW_HTTP_E_METHOD, pos);
        NEED(pos + 1);
        if (buf[pos + 1] != '\n') FAIL(TW_HTTP_E_BARE_CR, pos);
        pos += 2;
    }

    /* method SP */
    size_t ms = pos;
    while (pos < end && TCHAR[buf[pos]]) pos++;
    NEED(pos);
    if (pos == ms || buf[pos] != ' ') FAIL(TW_HTTP_E_METHOD, pos);
    out->method.off = (uint32_t)ms;
    out->method.len = (uint32_t)(pos - ms);
    out->method_id = method_id(buf + ms, pos - ms);
    pos++;

    /* request-target SP */
    size_t ts = pos;
    while (pos < end && buf[pos] > 0x20 && buf[pos] < 0x7f) pos++;
    NEED(pos);
    if (pos == ts || buf[pos] != ' ') FAIL(TW_HTTP_E_TARGET, pos);
    {
        size_t bad;
        int form = target_form(buf + ts, pos - ts, out->method_id, &bad);
        if (form < 0) FAIL(TW_HTTP_E_TARGET, ts + bad);
        out->target_form = form;
    }
    out->target.off = (uint32_t)ts;
    out->target.len = (uint32_t)(pos - ts);
    pos++;

    /* HTTP-version CRLF */
    size_t vs = pos;
    for (i = 0; i < 8; i++, pos++) {
        NEED(pos);
        uint8_t c = buf[pos];
        if (i == 5 || i == 7 ? !is_digit(c) : c != (uint8_t)"HTTP/?.?"[i])
            FAIL(TW_HTTP_E_VERSION, pos);
    }
    NEED(pos);
    if (buf[pos] == '\n') FAIL(TW_HTTP_E_BARE_LF, pos);
    if (buf[pos] != '\r') FAIL(TW_HTTP_E_VERSION, pos);
    NEED(pos + 1);
    if (buf[pos + 1] != '\n') FAIL(TW_HTTP_E_BARE_CR, pos);
    pos += 2;
    out->version_major = (uint8_t)(buf[vs + 5] - '0');
    out->version_minor = (uint8_t)(buf[vs + 7] - '0');
    if (out->version_major != 1 || out->version_minor > 1)
        FAIL(TW_HTTP_E_VERSION_UNSUPPORTED, vs);

    /* field lines, then the empty line */
    line_err = TW_HTTP_E_HEADER_LINE_TOO_LONG;
    uint32_t n = 0;
    for (;;) {
        LINE(pos, limits->max_header_line);
        NEED(pos);
        uint8_t c = buf[pos];
        if (c == '\r') {
            NEED(pos + 1);
            if (buf[pos + 1] != '\n') FAIL(TW_HTTP_E_BARE_CR, pos);
            pos += 2;
            break;
        }
        if (c == '\n') FAIL(TW_HTTP_E_BARE_LF, pos);
        if (is_ws(c)) FAIL(n == 0 ? TW_HTTP_E_LEADING_WS : TW_HTTP_E_OBS_FOLD, pos);
        size_t ns = pos;
        while (pos < end && TCHAR[buf[pos]]) pos++;
        NEED(pos);
        if (buf[pos] != ':' || pos == ns) {
            if (pos > ns && is_ws(buf[pos])) {
                /* "Name :" is the smuggling case; "Na me:" just a bad name */
                size_t q = pos;
                while (q < end && is_ws(buf[q])) q++;
                NEED(q);
                FAIL(buf[q] == ':' ? TW_HTTP_E_WS_BEFORE_COLON : TW_HTTP_E_HEADER_NAME, pos);
            }
            FAIL(TW_HTTP_E_HEADER_NAME, pos);
        }
        size_t ne = pos++;
        while (pos < end && is_ws(buf[pos])) pos++;
        size_t fs = pos, fe;
        while (pos < end && FIELD[buf[pos]]) pos++;
        NEED(pos);
        c = buf[pos];
        if (c == '\n') FAIL(TW_HTTP_E_BARE_LF, pos);
        if (c != '\r') FAIL(TW_HTTP_E_HEADER_VALUE, pos);
        for (fe = pos; fe > fs && is_ws(buf[fe - 1]); fe--) {
        }
        NEED(pos + 1);
        if (buf[pos + 1] != '\n') FAIL(TW_HTTP_E_BARE_CR, pos);
        pos += 2;
        if (n >= maxh) FAIL(TW_HTTP_E_TOO_MANY_HEADERS, ns);
        tw_http_header *f = &headers[n++];
        f->name.off = (uint32_t)ns;
        f->name.len = (uint32_t)(ne - ns);
        f->value.off = (uint32_t)fs;
        f->value.len = (uint32_t)(fe - fs);
        err = header_meaning(&h, buf, f, limits, &where);
        if (err) goto fail;
    }
    out->nheaders = n;

    /* message framing (RFC 9112 6.1, 6.3) */
    if (h.te_seen) {
        if (h.cl_seen) FAIL(TW_HTTP_E_CL_AND_TE, h.cl_off > h.te_off ? h.cl_off : h.te_off);
        if (out->version_minor == 0) FAIL(TW_HTTP_E_TE_HTTP10, h.te_off);
        if (!h.chunked_seen) FAIL(TW_HTTP_E_TE_NOT_CHUNKED, h.te_off);
        out->flags |= TW_HTTP_F_CHUNKED | TW_HTTP_F_HAS_TE;
        if (h.te_other) out->flags |= TW_HTTP_F_TE_OTHER;
    }
    out->content_length = h.cl_seen ? h.content_length : -1;
    if (h.conn_close) out->flags |= TW_HTTP_F_CLOSE;
    if (!h.conn_close && (out->version_minor == 1 || h.conn_keep_alive))
        out->flags |= TW_HTTP_F_KEEP_ALIVE;
    /* RFC 9110 7.8: Upgrade in an HTTP/1.0 request is ignored */
    if ((h.upgrade && h.conn_upgrade && out->version_minor == 1) ||
        out->method_id == TW_HTTP_CONNECT)
        out->flags |= TW_HTTP_F_UPGRADE;
    if (h.expect_continue && out->version_minor == 1) out->flags |= TW_HTTP_F_EXPECT_CONTINUE;
    if (h.hosts == 1) out->flags |= TW_HTTP_F_HAS_HOST;
    return (int)pos;

incomplete:
    /* end = min(len, line_cap, head_cap): which one stopped us? */
    if (end == line_cap) FAIL(line_err, end);
    if (end == head_cap) FAIL(TW_HTTP_E_HEAD_TOO_LARGE, end);
    return TW_HTTP_INCOMPLETE;

fail:
    out->error_offset = where;
    return err;
#undef LINE
#undef NEED
#undef FAIL
}

/* ---------------------------------------------------------------- chunked */

enum {
    S_SIZE_FIRST, S_SIZE, S_SIZE_WS, S_EXT_NAME_START, S_EXT_NAME, S_EXT_AFTER_NAME,
    S_EXT_VALUE_START, S_EXT_TOKEN, S_EXT_QUOTED, S_EXT_QUOTED_ESC, S_EXT_AFTER_VALUE,
    S_SIZE_LF, S_DATA, S_DATA_CR, S_DATA_LF, S_TRAILER_START, S_TRAILER_NAME,
    S_TRAILER_VALUE, S_TRAILER_LF, S_END_LF, S_DONE
};

void tw_http_chunked_init(tw_http_chunked *st, const tw_http_limits *limits) {
    tw_http_limits defaults;
    if (!limits) {
        tw_http_limits_default(&defaults);
        limits = &defaults;
    }
    memset(st, 0, sizeof *st);
    st->state = S_SIZE_FIRST;
    st->max_body = limits->max_body;
    st->max_chunk_ext = limits->max_chunk_ext;
    st->max_header_line = limits->max_header_line;
    st->max_head = limits->max_head;
}

int64_t tw_http_chunked_decode(tw_http_chunked *st, uint8_t *buf, size_t len, size_t *data_len) {
    size_t i = 0, o = 0;
    int err = 0, back = 0;
    int s = st->state;
    *data_len = 0;
    if (s == S_DONE) return 0;
    while (i < len) {
        uint8_t c = buf[i];
        if (s == S_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > st->remaining) n = (size_t)st->remaining;
            if (o != i) memmove(buf + o, buf + i, n);
            o += n;
            i += n;
            st->remaining -= n;
            if (st->remaining == 0) s = S_DATA_CR;
            continue;
        }
        if (s >= S_EXT_NAME_START && s <= S_EXT_AFTER_VALUE && ++st->line > st->max_chunk_ext) {
            err = TW_HTTP_E_CHUNK_EXT_TOO_LONG;
            goto fail;
        }
        if (s >= S_TRAILER_START && s <= S_TRAILER_LF) {
            if (++st->trailers > st->max_head) {
                err = TW_HTTP_E_TRAILERS_TOO_LARGE;
                goto fail;
            }
            /* the line's bytes and its CR: max_header_line + 1, as in the head */
            if (s != S_TRAILER_LF && ++st->line > (uint64_t)st->max_header_line + 1) {
                err = TW_HTTP_E_HEADER_LINE_TOO_LONG;
                goto fail;
            }
        }
        /* the states that end a line on CR */
        if (c == '\n' && s != S_SIZE_LF && s != S_DATA_LF && s != S_TRAILER_LF && s != S_END_LF) {
            err = s == S_DATA_CR ? TW_HTTP_E_CHUNK_DATA_CRLF : TW_HTTP_E_BARE_LF;
            goto fail;
        }
        switch (s) {
        case S_SIZE_FIRST:
        case S_SIZE: {
            int d = hex_value(c);
            if (d >= 0) {
                if (s == S_SIZE_FIRST) {
                    st->remaining = 0;
                    st->digits = 0;
                    st->line = 0;
                }
                if (++st->digits > 16) {
                    err = TW_HTTP_E_CHUNK_SIZE;
                    goto fail;
                }
                uint64_t limit = st->max_body - st->total;
                if (st->remaining > limit >> 4 ||
                    (st->remaining << 4) + (uint64_t)d > limit) {
                    err = TW_HTTP_E_BODY_TOO_LARGE;
                    goto fail;
                }
                st->remaining = (st->remaining << 4) + (uint64_t)d;
                s = S_SIZE;
            } else if (s == S_SIZE_FIRST) {
                err = TW_HTTP_E_CHUNK_SIZE;
                goto fail;
            } else if (c == ';') {
                s = S_EXT_NAME_START;
            } else if (is_ws(c)) {
                s = S_SIZE_WS;
            } else if (c == '\r') {
                s = S_SIZE_LF;
            } else {
                err = TW_HTTP_E_CHUNK_SIZE;
                goto fail;
            }
            break;
        }
        case S_SIZE_WS:
            if (c == ';') s = S_EXT_NAME_START;
            else if (!is_ws(c)) {
                err = TW_HTTP_E_CHUNK_SIZE;
                goto fail;
            }
            break;
        case S_EXT_NAME_START:
        case S_EXT_VALUE_START:
            if (is_ws(c)) break;
            if (s == S_EXT_VALUE_START && c == '"') s = S_EXT_QUOTED;
            else if (TCHAR[c]) s = s == S_EXT_NAME_START ? S_EXT_NAME : S_EXT_TOKEN;
            else {
                err = TW_HTTP_E_CHUNK_EXT;
                goto fail;
            }
            break;
        case S_EXT_NAME:
        case S_EXT_AFTER_NAME:
        case S_EXT_TOKEN:
        case S_EXT_AFTER_VALUE:
            if (TCHAR[c] && (s == S_EXT_NAME || s == S_EXT_TOKEN)) break;
            if (is_ws(c)) s = s == S_EXT_NAME || s == S_EXT_AFTER_NAME ? S_EXT_AFTER_NAME
                                                                       : S_EXT_AFTER_VALUE;
            else if (c == ';') s = S_EXT_NAME_START;
            else if (c == '=' && (s == S_EXT_NAME || s == S_EXT_AFTER_NAME)) s = S_EXT_VALUE_START;
            else if (c == '\r') s = S_SIZE_LF;
            else {
                err = TW_HTTP_E_CHUNK_EXT;
                goto fail;
            }
            break;
        case S_EXT_QUOTED:
            if (c == '"') s = S_EXT_AFTER_VALUE;
            else if (c == '\\') s = S_EXT_QUOTED_ESC;
            else if (!field_byte(c)) {
                err = TW_HTTP_E_CHUNK_EXT;
                goto fail;
            }
            break;
        case S_EXT_QUOTED_ESC:
            if (!field_byte(c)) {
                err = TW_HTTP_E_CHUNK_EXT;
                goto fail;
            }
            s = S_EXT_QUOTED;
            break;
        case S_SIZE_LF:
            if (c != '\n') {
                back = 1; /* point at the CR, maybe in an earlier call */
                err = TW_HTTP_E_BARE_CR;
                goto fail;
            }
            st->line = 0;
            st->total += st->remaining;
            s = st->remaining ? S_DATA : S_TRAILER_START;
            break;
        case S_DATA_CR:
            if (c != '\r') {
                err = TW_HTTP_E_CHUNK_DATA_CRLF;
                goto fail;
            }
            s = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (c != '\n') {
                err = TW_HTTP_E_CHUNK_DATA_CRLF;
                goto fail;
            }
            s = S_SIZE_FIRST;
            break;
        case S_TRAILER_START:
            if (c == '\r') s = S_END_LF;
            else if (is_ws(c)) {
                err = TW_HTTP_E_OBS_FOLD;
                goto fail;
            } else if (TCHAR[c]) s = S_TRAILER_NAME;
            else {
                err = TW_HTTP_E_HEADER_NAME;
                goto fail;
            }
            break;
        case S_TRAILER_NAME:
            if (c == ':') s = S_TRAILER_VALUE;
            else if (!TCHAR[c]) {
                err = is_ws(c) ? TW_HTTP_E_WS_BEFORE_COLON : TW_HTTP_E_HEADER_NAME;
                goto fail;
            }
            break;
        case S_TRAILER_VALUE:
            if (c == '\r') s = S_TRAILER_LF;
            else if (!field_byte(c)) {
                err = TW_HTTP_E_HEADER_VALUE;
                goto fail;
            }
            break;
        case S_TRAILER_LF:
        case S_END_LF:
            if (c != '\n') {
                back = 1;
                err = TW_HTTP_E_BARE_CR;
                goto fail;
            }
            if (s == S_END_LF) {
                st->state = S_DONE;
                st->offset += i + 1;
                *data_len = o;
                return (int64_t)(i + 1);
            }
            st->line = 0;
            s = S_TRAILER_START;
            break;
        }
        i++;
    }
    st->state = s;
    st->offset += len;
    *data_len = o;
    return TW_HTTP_INCOMPLETE;

fail:
    st->error_offset = st->offset + i - (uint64_t)back;
    st->state = s;
    *data_len = o;
    return err;
}

/* ---------------------------------------------------------------- response head */

const char *tw_http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

int tw_http_format_head(uint8_t *out, size_t cap, int minor, int status, const uint8_t *reason,
                        size_t reason_len, const tw_http_header_in *headers, size_t n,
                        size_t *written, int64_t *bad_index) {
    *written = 0;
    if (bad_index) *bad_index = -1;
    if (minor != 0 && minor != 1) return TW_ERR_INVALID;
    if (status < 100 || status > 999) return TW_HTTP_E_STATUS;
    if (!reason) {
        reason = (const uint8_t *)tw_http_reason(status);
        reason_len = strlen((const char *)reason);
    }
    for (size_t i = 0; i < reason_len; i++)
        if (!field_byte(reason[i])) return TW_HTTP_E_REASON;
    size_t total = 13 + reason_len + 2 + 2; /* "HTTP/1.1 200 " reason CRLF ... CRLF */
    for (size_t k = 0; k < n; k++) {
        const tw_http_header_in *f = &headers[k];
        if (f->name_len == 0) goto bad_name;
        for (size_t i = 0; i < f->name_len; i++)
            if (!TCHAR[f->name[i]]) goto bad_name;
        for (size_t i = 0; i < f->value_len; i++)
            if (!field_byte(f->value[i])) {
                if (bad_index) *bad_index = (int64_t)k;
                return TW_HTTP_E_HEADER_VALUE;
            }
        total += f->name_len + 2 + f->value_len + 2;
        continue;
    bad_name:
        if (bad_index) *bad_index = (int64_t)k;
        return TW_HTTP_E_HEADER_NAME;
    }
    if (total > cap) return TW_ERR_NOSPACE;
    uint8_t *p = out;
    memcpy(p, "HTTP/1.", 7);
    p[7] = (uint8_t)('0' + minor);
    p[8] = ' ';
    p[9] = (uint8_t)('0' + status / 100);
    p[10] = (uint8_t)('0' + status / 10 % 10);
    p[11] = (uint8_t)('0' + status % 10);
    p[12] = ' ';
    p += 13;
    if (reason_len) memcpy(p, reason, reason_len);
    p += reason_len;
    *p++ = '\r';
    *p++ = '\n';
    for (size_t k = 0; k < n; k++) {
        const tw_http_header_in *f = &headers[k];
        memcpy(p, f->name, f->name_len);
        p += f->name_len;
        *p++ = ':';
        *p++ = ' ';
        if (f->value_len) memcpy(p, f->value, f->value_len);
        p += f->value_len;
        *p++ = '\r';
        *p++ = '\n';
    }
    *p++ = '\r';
    *p++ = '\n';
    *written = (size_t)(p - out);
    return TW_OK;
}
