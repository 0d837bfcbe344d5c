/*
 * test_http.c — C tests for the HTTP/1.1 parser: a table of good and bad
 * request heads (each also fed byte by byte, which must give the same
 * result as one call), the chunked decoder split at every offset, and the
 * response head writer. Run by ctest and under ASan/UBSan.
 */
#include "common/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"



#define MAXH 128

typedef struct {
    const char *text;
    size_t len;
    int expect; /* > 0: complete (head length = strlen unless body), else the error */
    int offset; /* error offset, or -1 not checked */
} head_case;

#define HC(text, expect, offset) {text, sizeof(text) - 1, expect, offset}

static const head_case CASES[] = {
    HC("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, -1),
    HC("GET /x?y=1 HTTP/1.0\r\n\r\n", 1, -1),
    HC("\r\nGET / HTTP/1.1\r\n\r\n", 1, -1),
    HC("OPTIONS * HTTP/1.1\r\n\r\n", 1, -1),
    HC("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 1, -1),
    HC("GET http://a/b HTTP/1.1\r\n\r\n", 1, -1),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 1, -1),
    HC("POST / HTTP/1.1\r\nContent-Length: 0005\r\n\r\n", 1, -1),
    HC("GET / HTTP/1.1\r\nX:\r\nY: \t a b \t\r\nZ: \xff\x80\r\n\r\n", 1, -1),
    /* request line */
    HC("G@T / HTTP/1.1\r\n\r\n", TW_HTTP_E_METHOD, 1),
    HC(" GET / HTTP/1.1\r\n\r\n", TW_HTTP_E_METHOD, 0),
    HC("GET  / HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 4),
    HC("GET /a\x7f HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 6),
    HC("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 5),
    HC("GET /a\tb HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 6),
    HC("GET * HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 4),
    HC("GET a_b:80 HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 5),
    HC("GET www.a HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 8),
    HC("CONNECT /x HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, 8),
    HC("CONNECT a.com HTTP/1.1\r\n\r\n", TW_HTTP_E_TARGET, -1),
    HC("GET / HTTP/1.1 \r\n\r\n", TW_HTTP_E_VERSION, 14),
    HC("GET / http/1.1\r\n\r\n", TW_HTTP_E_VERSION, 6),
    HC("GET / HTTP/11\r\n\r\n", TW_HTTP_E_VERSION, 12),
    HC("GET / HTTP/2.0\r\n\r\n", TW_HTTP_E_VERSION_UNSUPPORTED, 6),
    HC("GET / HTTP/1.2\r\n\r\n", TW_HTTP_E_VERSION_UNSUPPORTED, 6),
    HC("GET /\r\n\r\n", TW_HTTP_E_TARGET, 5),
    HC("GET / HTTP/1.1\n\r\n", TW_HTTP_E_BARE_LF, 14),
    HC("GET / HTTP/1.1\rX\r\n", TW_HTTP_E_BARE_CR, 14),
    HC("\nGET / HTTP/1.1\r\n\r\n", TW_HTTP_E_BARE_LF, 0),
    /* fields */
    HC("GET / HTTP/1.1\r\nHost: a\n\r\n", TW_HTTP_E_BARE_LF, 23),
    HC("GET / HTTP/1.1\r\nHost: a\r\n\n", TW_HTTP_E_BARE_LF, 25),
    HC("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", TW_HTTP_E_BARE_CR, 23),
    HC("GET / HTTP/1.1\r\nHost : a\r\n\r\n", TW_HTTP_E_WS_BEFORE_COLON, 20),
    HC("GET / HTTP/1.1\r\nHo st: a\r\n\r\n", TW_HTTP_E_HEADER_NAME, 18),
    HC("GET / HTTP/1.1\r\n: a\r\n\r\n", TW_HTTP_E_HEADER_NAME, 16),
    HC("GET / HTTP/1.1\r\nHost\r\n\r\n", TW_HTTP_E_HEADER_NAME, 20),
    HC("GET / HTTP/1.1\r\n Host: a\r\n\r\n", TW_HTTP_E_LEADING_WS, 16),
    HC("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", TW_HTTP_E_OBS_FOLD, 22),
    HC("GET / HTTP/1.1\r\nA: b\x00" "c\r\n\r\n", TW_HTTP_E_HEADER_VALUE, 20),
    HC("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", TW_HTTP_E_HEADER_VALUE, 20),
    HC("GET / HTTP/1.1\r\nA: \x01\r\n\r\n", TW_HTTP_E_HEADER_VALUE, 19),
    HC("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", TW_HTTP_E_HOST_DUP, 25),
    /* framing */
    HC("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
     TW_HTTP_E_CONTENT_LENGTH_DUP, 36),
    HC("POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", TW_HTTP_E_CONTENT_LENGTH_DUP, 34),
    HC("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", TW_HTTP_E_CONTENT_LENGTH, 33),
    HC("POST / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\n", TW_HTTP_E_CONTENT_LENGTH, 34),
    HC("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", TW_HTTP_E_CONTENT_LENGTH, 33),
    HC("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", TW_HTTP_E_CONTENT_LENGTH, 34),
    HC("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     TW_HTTP_E_BODY_TOO_LARGE, -1),
    HC("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
     TW_HTTP_E_CL_AND_TE, 36),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
     TW_HTTP_E_CL_AND_TE, 45),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", TW_HTTP_E_TE_NOT_CHUNKED,
     -1),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", TW_HTTP_E_TE_NOT_CHUNKED, 17),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     TW_HTTP_E_TE_CHUNKED_TWICE, -1),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: chunked;a=b\r\n\r\n", TW_HTTP_E_TE_SYNTAX, -1),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n", TW_HTTP_E_TE_SYNTAX, -1),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", TW_HTTP_E_TE_SYNTAX, -1),
    HC("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TW_HTTP_E_TE_HTTP10, 17),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: a;b=c ; d = \"e,\\\"f\", chunked\r\n\r\n", 1, -1),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: a;b=\"c, chunked\r\n\r\n", TW_HTTP_E_TE_SYNTAX, 51),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: a;, chunked\r\n\r\n", TW_HTTP_E_TE_SYNTAX, 38),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: a;b, chunked\r\n\r\n", TW_HTTP_E_TE_SYNTAX, 39),
    HC("POST / HTTP/1.1\r\nTransfer-Encoding: a;b=, chunked\r\n\r\n", TW_HTTP_E_TE_SYNTAX, 40),
};

static void check_head_case(const head_case *c) {
    size_t len = c->len; /* some cases hold NUL */
    const uint8_t *buf = (const uint8_t *)c->text;
    tw_http_head one, inc;
    tw_http_header h1[MAXH], h2[MAXH];
    int r = tw_http_parse_head(buf, len, 0, &one, h1, MAXH, NULL);
    if (c->expect > 0) {
        if (r != (int)len) fprintf(stderr, "case %s -> %d (%s)\n", c->text, r, tw_http_strerror(r));
        CHECK(r == (int)len);
    } else {
        if (r != c->expect || (c->offset >= 0 && (int)one.error_offset != c->offset))
            fprintf(stderr, "case %s -> %d (%s) at %u\n", c->text, r, tw_http_strerror(r),
                    one.error_offset);
        CHECK(r == c->expect);
        if (c->offset >= 0) CHECK((int)one.error_offset == c->offset);
    }
    /* byte by byte, with prev_len, must agree */
    int r2 = TW_HTTP_INCOMPLETE;
    size_t prev = 0;
    for (size_t n = 1; n <= len && r2 == TW_HTTP_INCOMPLETE; n++) {
        r2 = tw_http_parse_head(buf, n, prev, &inc, h2, MAXH, NULL);
        prev = n;
    }
    CHECK(r2 == r);
    if (r < 0) {
        CHECK(inc.error_offset == one.error_offset);
    } else {
        CHECK(inc.nheaders == one.nheaders && inc.flags == one.flags);
        CHECK(inc.content_length == one.content_length);
        CHECK(memcmp(h1, h2, one.nheaders * sizeof h1[0]) == 0);
    }
}

static void test_head_table(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_head_case(&CASES[i]);
}

static void test_head_fields(void) {
    const char *req = "POST /p?q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                      "Connection: Keep-Alive, Upgrade\r\nUpgrade: ws\r\n"
                      "Expect: 100-continue\r\nX-E:   \r\n\r\nabc";
    tw_http_head h;
    tw_http_header f[MAXH];
    int r = tw_http_parse_head((const uint8_t *)req, strlen(req), 0, &h, f, MAXH, NULL);
    CHECK(r == (int)strlen(req) - 3);
    CHECK(h.method_id == TW_HTTP_POST && h.method.off == 0 && h.method.len == 4);
    CHECK(h.target.off == 5 && h.target.len == 4 && h.target_form == TW_HTTP_ORIGIN_FORM);
    CHECK(h.version_major == 1 && h.version_minor == 1);
    CHECK(h.nheaders == 6 && h.content_length == 3);
    CHECK(h.flags == (TW_HTTP_F_KEEP_ALIVE | TW_HTTP_F_UPGRADE | TW_HTTP_F_EXPECT_CONTINUE |
                      TW_HTTP_F_HAS_HOST));
    CHECK(f[0].name.len == 4 && memcmp(req + f[0].name.off, "Host", 4) == 0);
    CHECK(f[0].value.len == 1 && req[f[0].value.off] == 'x');
    CHECK(f[5].value.len == 0);

    const char *r10 = "GET / HTTP/1.0\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)r10, strlen(r10), 0, &h, f, MAXH, NULL) > 0);
    CHECK(h.flags == 0 && h.content_length == -1);
    const char *r11c = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)r11c, strlen(r11c), 0, &h, f, MAXH, NULL) > 0);
    CHECK(h.flags == TW_HTTP_F_CLOSE);
    const char *te = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)te, strlen(te), 0, &h, f, MAXH, NULL) > 0);
    CHECK(h.flags == (TW_HTTP_F_CHUNKED | TW_HTTP_F_HAS_TE | TW_HTTP_F_TE_OTHER |
                      TW_HTTP_F_KEEP_ALIVE));
    const char *conn = "CONNECT a.b:443 HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)conn, strlen(conn), 0, &h, f, MAXH, NULL) > 0);
    CHECK(h.method_id == TW_HTTP_CONNECT && h.target_form == TW_HTTP_AUTHORITY_FORM);
    CHECK(h.flags == (TW_HTTP_F_UPGRADE | TW_HTTP_F_KEEP_ALIVE) && h.content_length == 2);
    const char *up10 = "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)up10, strlen(up10), 0, &h, f, MAXH, NULL) > 0);
    CHECK(h.flags == 0);
    /* pipelined: the head length stops at the first request */
    const char *two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)two, strlen(two), 0, &h, f, MAXH, NULL) == 19);
    CHECK(tw_http_parse_head((const uint8_t *)two + 19, 19, 0, &h, f, MAXH, NULL) == 19);
}

static void test_limits(void) {
    tw_http_limits lim;
    tw_http_limits_default(&lim);
    lim.max_request_line = 20;
    lim.max_header_line = 10;
    lim.max_head = 60;
    lim.max_headers = 2;
    lim.max_body = 100;
    tw_http_head h;
    tw_http_header f[MAXH];
    struct {
        const char *text;
        int expect;
    } cases[] = {
        {"GET /0123456 HTTP/1.1\r\n\r\n", TW_HTTP_E_REQUEST_LINE_TOO_LONG},
        {"GET /012345 HTTP/1.1\r\n\r\n", 0}, /* exactly 20 */
        {"GET / HTTP/1.1\r\nA: 12345678\r\n\r\n", TW_HTTP_E_HEADER_LINE_TOO_LONG},
        {"GET / HTTP/1.1\r\nA: 1234567\r\n\r\n", 0}, /* exactly 10 */
        {"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", TW_HTTP_E_TOO_MANY_HEADERS},
        {"GET / HTTP/1.1\r\nAa: 1234\r\nBb: 1234\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", TW_HTTP_E_HEADER_LINE_TOO_LONG},
        {"GET / HTTP/1.1\r\nAa: 123\r\nBb: 123\r\nCcc: 1234\r\n\r\n", TW_HTTP_E_TOO_MANY_HEADERS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *b = (const uint8_t *)cases[i].text;
        size_t len = strlen(cases[i].text);
        int r = tw_http_parse_head(b, len, 0, &h, f, MAXH, &lim);
        if (cases[i].expect == 0) CHECK(r == (int)len);
        else CHECK(r == cases[i].expect);
        /* byte by byte: same outcome, and a limit is hit without the rest of the line */
        int r2 = TW_HTTP_INCOMPLETE;
        for (size_t n = 1; n <= len && r2 == TW_HTTP_INCOMPLETE; n++)
            r2 = tw_http_parse_head(b, n, n - 1, &h, f, MAXH, &lim);
        CHECK(r2 == r);
    }
    lim.max_header_line = 100;
    lim.max_headers = 100;
    const char *big = "GET / HTTP/1.1\r\nA: 1234567890123456789012345678901234567890\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)big, strlen(big), 0, &h, f, MAXH, &lim) ==
          TW_HTTP_E_HEAD_TOO_LARGE);
    CHECK(h.error_offset == 60);
    const char *cl = "GET / HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)cl, strlen(cl), 0, &h, f, MAXH, &lim) ==
          TW_HTTP_E_BODY_TOO_LARGE);
    /* the caller's array is a limit too */
    const char *two = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
    CHECK(tw_http_parse_head((const uint8_t *)two, strlen(two), 0, &h, f, 1, NULL) ==
          TW_HTTP_E_TOO_MANY_HEADERS);
    /* incomplete input */
    CHECK(tw_http_parse_head((const uint8_t *)two, 0, 0, &h, f, MAXH, NULL) ==
          TW_HTTP_INCOMPLETE);
    CHECK(tw_http_parse_head((const uint8_t *)two, strlen(two) - 1, 0, &h, f, MAXH, NULL) ==
          TW_HTTP_INCOMPLETE);
}

/* Decodes text split at every pair of offsets; every split must give the
 * same status, data and consumed count as one call. */
static void check_chunked(const char *text, size_t len, int64_t expect, const char *data,
                          const tw_http_limits *lim) {
    uint8_t *buf = malloc(len + 1), *got = malloc(len + 1);
    tw_http_chunked st;
    size_t dl;
    memcpy(buf, text, len);
    tw_http_chunked_init(&st, lim);
    int64_t r = tw_http_chunked_decode(&st, buf, len, &dl);
    if (r != expect) fprintf(stderr, "chunked %s -> %lld (%s)\n", text, (long long)r, tw_http_strerror((int)r));
    CHECK(r == expect);
    uint64_t err_off = st.error_offset;
    if (r >= 0) CHECK(dl == strlen(data) && memcmp(buf, data, dl) == 0);
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            size_t parts[3] = {a, b - a, len - b}, at = 0, gl = 0;
            int64_t rr = TW_HTTP_INCOMPLETE;
            memcpy(buf, text, len);
            tw_http_chunked_init(&st, lim);
            for (int k = 0; k < 3 && rr == TW_HTTP_INCOMPLETE; k++) {
                rr = tw_http_chunked_decode(&st, buf + at, parts[k], &dl);
                memcpy(got + gl, buf + at, dl);
                gl += dl;
                if (rr >= 0) rr += (int64_t)at;
                at += parts[k];
            }
            CHECK(rr == r);
            if (r < 0 && r != TW_HTTP_INCOMPLETE) CHECK(st.error_offset == err_off);
            if (r >= 0) CHECK(gl == strlen(data) && memcmp(got, data, gl) == 0);
        }
    }
    free(buf);
    free(got);
}

#define CHUNKED(text, expect, data) check_chunked(text, sizeof(text) - 1, expect, data, NULL)

static void test_chunked(void) {
    CHUNKED("5\r\nhello\r\n0\r\n\r\n", 15, "hello");
    CHUNKED("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET", 26, "hello world");
    CHUNKED("A\r\n0123456789\r\n0\r\n\r\n", 20, "0123456789");
    CHUNKED("a;x=1;y=\"q\\\"s\" ; z\r\n0123456789\r\n0\r\n\r\n", 37, "0123456789");
    CHUNKED("1 ;x\r\na\r\n0\r\n\r\n", 14, "a");
    CHUNKED("0\r\nX-Sum: 1\r\nY:\r\n\r\n", 19, "");
    CHUNKED("000\r\n\r\n", 7, "");
    CHUNKED("5\r\nhel", TW_HTTP_INCOMPLETE, "");
    CHUNKED("\r\n", TW_HTTP_E_CHUNK_SIZE, "");
    CHUNKED("-1\r\n", TW_HTTP_E_CHUNK_SIZE, "");
    CHUNKED("0x5\r\n", TW_HTTP_E_CHUNK_SIZE, "");
    CHUNKED(" 5\r\n", TW_HTTP_E_CHUNK_SIZE, "");
    CHUNKED("5 \r\nhello\r\n", TW_HTTP_E_CHUNK_SIZE, "");
    CHUNKED("5\nhello\r\n", TW_HTTP_E_BARE_LF, "");
    CHUNKED("5\rhello\r\n", TW_HTTP_E_BARE_CR, "");
    CHUNKED("5\r\nhelloXX0\r\n\r\n", TW_HTTP_E_CHUNK_DATA_CRLF, "");
    CHUNKED("5\r\nhello\n0\r\n\r\n", TW_HTTP_E_CHUNK_DATA_CRLF, "");
    CHUNKED("5;\r\nhello\r\n", TW_HTTP_E_CHUNK_EXT, "");
    CHUNKED("5;a=\r\nhello\r\n", TW_HTTP_E_CHUNK_EXT, "");
    CHUNKED("5;a b\r\nhello\r\n", TW_HTTP_E_CHUNK_EXT, "");
    CHUNKED("5;a=\"x\ny\"\r\n", TW_HTTP_E_BARE_LF, "");
    CHUNKED("5;a=\"x\x01\"\r\n", TW_HTTP_E_CHUNK_EXT, "");
    CHUNKED("5;a\x01\r\n", TW_HTTP_E_CHUNK_EXT, "");
    CHUNKED("00000000000000001\r\n", TW_HTTP_E_CHUNK_SIZE, "");
    CHUNKED("0000000000000001\r\nx\r\n0\r\n\r\n", 26, "x");
    CHUNKED("FFFFFFFFFFFFFFFF\r\n", TW_HTTP_E_BODY_TOO_LARGE, "");
    CHUNKED("0\r\n X: 1\r\n\r\n", TW_HTTP_E_OBS_FOLD, "");
    CHUNKED("0\r\nX : 1\r\n\r\n", TW_HTTP_E_WS_BEFORE_COLON, "");
    CHUNKED("0\r\nX: \x00\r\n\r\n", TW_HTTP_E_HEADER_VALUE, "");
    CHUNKED("0\r\nX: 1\n\r\n", TW_HTTP_E_BARE_LF, "");
    CHUNKED("0\r\n\n", TW_HTTP_E_BARE_LF, "");
    CHUNKED("0\r\n\rX", TW_HTTP_E_BARE_CR, "");

    tw_http_limits lim;
    tw_http_limits_default(&lim);
    lim.max_body = 10;
    lim.max_chunk_ext = 4;
    const char t1[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    check_chunked(t1, sizeof t1 - 1, 25, "helloworld", &lim);
    const char t2[] = "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n";
    check_chunked(t2, sizeof t2 - 1, TW_HTTP_E_BODY_TOO_LARGE, "", &lim);
    const char t3[] = "1;abc\r\nx\r\n0\r\n\r\n";
    check_chunked(t3, sizeof t3 - 1, 15, "x", &lim);
    const char t4[] = "1;abcd\r\nx\r\n0\r\n\r\n";
    check_chunked(t4, sizeof t4 - 1, TW_HTTP_E_CHUNK_EXT_TOO_LONG, "", &lim);

    lim.max_header_line = 4;
    const char t5[] = "0\r\nA: b\r\n\r\n";
    check_chunked(t5, sizeof t5 - 1, 11, "", &lim);
    const char t6[] = "0\r\nA: bc\r\n\r\n";
    check_chunked(t6, sizeof t6 - 1, TW_HTTP_E_HEADER_LINE_TOO_LONG, "", &lim);

    /* error offsets are from the start of the body, across calls */
    tw_http_chunked st;
    uint8_t b[] = "5\r\nhello\r\nZ";
    size_t dl;
    tw_http_chunked_init(&st, NULL);
    CHECK(tw_http_chunked_decode(&st, b, 10, &dl) == TW_HTTP_INCOMPLETE && dl == 5);
    CHECK(tw_http_chunked_decode(&st, b + 10, 1, &dl) == TW_HTTP_E_CHUNK_SIZE);
    CHECK(st.error_offset == 10);
    /* once done, further calls consume nothing */
    uint8_t d[] = "0\r\n\r\nrest";
    tw_http_chunked_init(&st, NULL);
    CHECK(tw_http_chunked_decode(&st, d, 9, &dl) == 5);
    CHECK(tw_http_chunked_decode(&st, d + 5, 4, &dl) == 0 && dl == 0);
}

static void test_format_head(void) {
    uint8_t out[256];
    size_t w;
    int64_t bad;
    tw_http_header_in hs[2] = {
        {(const uint8_t *)"Content-Type", 12, (const uint8_t *)"text/plain", 10},
        {(const uint8_t *)"Content-Length", 14, (const uint8_t *)"5", 1},
    };
    CHECK(tw_http_format_head(out, sizeof out, 1, 200, NULL, 0, hs, 2, &w, &bad) == TW_OK);
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
    CHECK(w == strlen(want) && memcmp(out, want, w) == 0);
    CHECK(tw_http_format_head(out, w, 1, 200, NULL, 0, hs, 2, &w, &bad) == TW_OK);
    CHECK(tw_http_format_head(out, w - 1, 1, 200, NULL, 0, hs, 2, &w, &bad) == TW_ERR_NOSPACE);
    CHECK(tw_http_format_head(out, sizeof out, 0, 599, NULL, 0, NULL, 0, &w, &bad) == TW_OK);
    CHECK(w == 17 && memcmp(out, "HTTP/1.0 599 \r\n\r\n", 17) == 0);
    CHECK(tw_http_format_head(out, sizeof out, 1, 404, (const uint8_t *)"Nope", 4, NULL, 0, &w,
                              &bad) == TW_OK);
    CHECK(memcmp(out, "HTTP/1.1 404 Nope\r\n\r\n", w) == 0);
    CHECK(tw_http_format_head(out, sizeof out, 1, 99, NULL, 0, NULL, 0, &w, &bad) ==
          TW_HTTP_E_STATUS);
    CHECK(tw_http_format_head(out, sizeof out, 1, 1000, NULL, 0, NULL, 0, &w, &bad) ==
          TW_HTTP_E_STATUS);
    CHECK(tw_http_format_head(out, sizeof out, 2, 200, NULL, 0, NULL, 0, &w, &bad) ==
          TW_ERR_INVALID);
    CHECK(tw_http_format_head(out, sizeof out, 1, 200, (const uint8_t *)"O\r\nK", 4, NULL, 0, &w,
                              &bad) == TW_HTTP_E_REASON);
    tw_http_header_in evil[2] = {
        {(const uint8_t *)"A", 1, (const uint8_t *)"ok", 2},
        {(const uint8_t *)"B", 1, (const uint8_t *)"x\r\nSet-Cookie: y", 16},
    };
    CHECK(tw_http_format_head(out, sizeof out, 1, 200, NULL, 0, evil, 2, &w, &bad) ==
          TW_HTTP_E_HEADER_VALUE);
    CHECK(bad == 1 && w == 0);
    evil[1].name = (const uint8_t *)"B\r\n";
    evil[1].name_len = 3;
    evil[1].value_len = 1;
    CHECK(tw_http_format_head(out, sizeof out, 1, 200, NULL, 0, evil, 2, &w, &bad) ==
          TW_HTTP_E_HEADER_NAME);
    CHECK(bad == 1);
    evil[1].name_len = 0;
    CHECK(tw_http_format_head(out, sizeof out, 1, 200, NULL, 0, evil, 2, &w, &bad) ==
          TW_HTTP_E_HEADER_NAME);
    CHECK(strcmp(tw_http_strerror(TW_HTTP_E_CL_AND_TE), "Content-Length with Transfer-Encoding") ==
          0);
}

int main(void) {
    test_head_table();
    test_head_fields();
    test_limits();
    test_chunked();
    test_format_head();
    printf("test_http: %d checks passed\n", checks);
    return 0;
}
