/*
 * test_logparse.c — combined access log parsing against hand-checked
 * answers of the Python parser (trusswork.logs._parsers, format="combined").
 */
#include <stdint.h>
#include <string.h>

#include "common/check.h"
#include "common/status.h"
#include "logparse/logparse.h"

#define MAX_LINES 16

typedef struct parsed {
    tw_lp_dict dicts[TW_LP_NFIELDS];
    uint8_t ok[MAX_LINES], bad_utf8[MAX_LINES], status_null[MAX_LINES], bytes_null[MAX_LINES];
    int64_t time_ms[MAX_LINES], status[MAX_LINES], bytes[MAX_LINES];
    int32_t codes[TW_LP_NFIELDS][MAX_LINES];
} parsed;

static void parse(parsed *r, const char *const *text, size_t n)
{
    const uint8_t *lines[MAX_LINES];
    size_t lens[MAX_LINES];
    tw_lp_columns out = {r->ok, r->bad_utf8, r->time_ms, r->status, r->status_null,
                         r->bytes, r->bytes_null, {0}};
    for (int f = 0; f < TW_LP_NFIELDS; f++) {
        tw_lp_dict_init(&r->dicts[f]);
        out.col_codes[f] = r->codes[f];
    }
    for (size_t i = 0; i < n; i++) {
        lines[i] = (const uint8_t *)text[i];
        lens[i] = text[i] ? strlen(text[i]) : 0;
    }
    CHECK(tw_lp_parse_combined(lines, lens, n, 65536, r->dicts, &out) == TW_OK);
}

static void release(parsed *r)
{
    for (int f = 0; f < TW_LP_NFIELDS; f++)
        tw_lp_dict_free(&r->dicts[f]);
}

/* Field f of line i equals want (NULL: absent). */
static int field_is(const parsed *r, int f, size_t i, const char *want)
{
    int32_t code = r->codes[f][i];
    if (!want)
        return code == -1;
    if (code < 0)
        return 0;
    const tw_lp_dict *d = &r->dicts[f];
    uint64_t start = d->dict_offsets[code], len = d->dict_offsets[code + 1] - start;
    return len == strlen(want) && (len == 0 || memcmp(d->dict_bytes + start, want, len) == 0);
}

static void test_full_line(void)
{
    const char *text[] = {
        "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /a.gif?x=1&y HTTP/1.0\" 200 "
        "2326 \"http://ex.com/\" \"Mozilla/4.08\"\r\n",
    };
    parsed r;
    parse(&r, text, 1);
    CHECK(r.ok[0] == 1 && r.bad_utf8[0] == 0);
    CHECK(r.time_ms[0] == 971211336000LL);
    CHECK(r.status[0] == 200 && !r.status_null[0] && r.bytes[0] == 2326 && !r.bytes_null[0]);
    CHECK(field_is(&r, TW_LP_CLIENTIP, 0, "127.0.0.1"));
    CHECK(field_is(&r, TW_LP_IDENT, 0, "-"));
    CHECK(field_is(&r, TW_LP_USER, 0, "frank"));
    CHECK(field_is(&r, TW_LP_REQUEST, 0, "GET /a.gif?x=1&y HTTP/1.0"));
    CHECK(field_is(&r, TW_LP_METHOD, 0, "GET"));
    CHECK(field_is(&r, TW_LP_URI, 0, "/a.gif?x=1&y"));
    CHECK(field_is(&r, TW_LP_URI_PATH, 0, "/a.gif"));
    CHECK(field_is(&r, TW_LP_URI_QUERY, 0, "x=1&y"));
    CHECK(field_is(&r, TW_LP_HTTP_VERSION, 0, "HTTP/1.0"));
    CHECK(field_is(&r, TW_LP_REFERER, 0, "http://ex.com/"));
    CHECK(field_is(&r, TW_LP_USERAGENT, 0, "Mozilla/4.08"));
    CHECK(field_is(&r, TW_LP_EXTRA, 0, NULL));
    release(&r);
}

static void test_variants(void)
{
    const char *text[] = {
        /* 0: common format, '-' status and size, no version, empty query */
        "::1 - - [01/Jan/2024:00:00:00 +0000] \"POST /x?\" - -",
        /* 1: escapes, extra fields with blanks around them */
        "h i u [1/Feb/2024:00:00:00] \"GET /q\\\"x\\\\y\\z\" 404 0 \"r\\\"\" \"a\" \t x 1 \xc2\xa0",
        /* 2: a request that is not METHOD URI, an unterminated user agent */
        "h i u [1/Feb/2024:00:00:00 +0000] \"\" 500 12abc \"ref\" \"agent",
        /* 3: bad date (Feb 30), invalid UTF-8 in the user */
        "h i u\xff [30/Feb/2024:00:00:00 +0000] \"GET / HTTP/2\" 200 1",
        /* 4: a non-breaking space ends a token: rejected */
        "h\xc2\xa0x i u [1/Feb/2024:00:00:00] \"GET /\" 200 1",
        /* 5-9: rejected */
        "h i u [1/Feb/2024:00:00:00] \"GET /\" 2000 1",
        "h i u [1/Feb/2024:00:00:00 \"GET /\" 200 1",
        "h i [1/Feb/2024:00:00:00] \"GET /\" 200 1",
        "h i u [1/Feb/2024:00:00:00] \"GET /\\\" 200 1",
        "",
        /* 10: not handled here */
        NULL,
        /* 11: same client as line 0 */
        "::1 - - [01/Jan/2024:00:00:00 +0000] \"GET a  HTTP/1.1\" 200 99999999999999999999",
        /* 12: Unicode digit in the time: left to Python */
        "h i u [\xd9\xa1/Feb/2024:00:00:00] \"GET /\" 200 1",
    };
    parsed r;
    parse(&r, text, 13);
    CHECK(r.ok[0] && r.status_null[0] && r.bytes_null[0]);
    CHECK(r.time_ms[0] == 1704067200000LL);
    CHECK(field_is(&r, TW_LP_URI_PATH, 0, "/x") && field_is(&r, TW_LP_URI_QUERY, 0, ""));
    CHECK(field_is(&r, TW_LP_HTTP_VERSION, 0, NULL) && field_is(&r, TW_LP_REFERER, 0, NULL));
    CHECK(r.ok[1] && r.status[1] == 404 && r.bytes[1] == 0);
    CHECK(field_is(&r, TW_LP_REQUEST, 1, "GET /q\"x\\y\\z"));
    CHECK(field_is(&r, TW_LP_URI, 1, "/q\"x\\y\\z"));
    CHECK(field_is(&r, TW_LP_REFERER, 1, "r\""));
    CHECK(field_is(&r, TW_LP_EXTRA, 1, "x 1"));
    CHECK(r.ok[2] && r.bytes[2] == 12);
    CHECK(field_is(&r, TW_LP_REQUEST, 2, "") && field_is(&r, TW_LP_METHOD, 2, NULL));
    CHECK(field_is(&r, TW_LP_REFERER, 2, NULL) && field_is(&r, TW_LP_USERAGENT, 2, NULL));
    CHECK(field_is(&r, TW_LP_EXTRA, 2, "abc \"ref\" \"agent"));
    CHECK(r.ok[3] && r.time_ms[3] == INT64_MIN && r.bad_utf8[3]);
    CHECK(field_is(&r, TW_LP_HTTP_VERSION, 3, "HTTP/2"));
    for (int i = 4; i <= 12; i++)
        if (i != 11)
            CHECK(r.ok[i] == 0 && r.time_ms[i] == INT64_MIN && r.codes[TW_LP_CLIENTIP][i] == -1);
    CHECK(r.ok[11] == 0); /* the size passes INT64_MAX */
    CHECK(r.codes[TW_LP_CLIENTIP][0] == 0 && r.codes[TW_LP_CLIENTIP][1] == 1);
    CHECK(r.codes[TW_LP_IDENT][0] == 0 && r.dicts[TW_LP_IDENT].dict_count == 2);
    release(&r);
}

static void test_many_values(void)
{
    /* More distinct values than the first table holds, each found again. */
    tw_lp_dict dicts[TW_LP_NFIELDS];
    enum { N = 3000 };
    static char storage[N][96];
    static const uint8_t *lines[2 * N];
    static size_t lens[2 * N];
    static uint8_t ok[2 * N], bad[2 * N], sn[2 * N], bn[2 * N];
    static int64_t tm[2 * N], st[2 * N], by[2 * N];
    static int32_t codes[TW_LP_NFIELDS][2 * N];
    tw_lp_columns out = {ok, bad, tm, st, sn, by, bn, {0}};
    for (int f = 0; f < TW_LP_NFIELDS; f++) {
        tw_lp_dict_init(&dicts[f]);
        out.col_codes[f] = codes[f];
    }
    for (int i = 0; i < N; i++) {
        snprintf(storage[i], sizeof storage[i],
                 "10.0.%d.%d - - [10/Oct/2000:13:55:36 +0000] \"GET /i/%d HTTP/1.1\" 200 %d",
                 i / 256, i % 256, i, i);
        lines[i] = lines[N + i] = (const uint8_t *)storage[i];
        lens[i] = lens[N + i] = strlen(storage[i]);
    }
    CHECK(tw_lp_parse_combined(lines, lens, 2 * N, 65536, dicts, &out) == TW_OK);
    CHECK(dicts[TW_LP_URI].dict_count == N && dicts[TW_LP_METHOD].dict_count == 1);
    for (int i = 0; i < N; i++) {
        CHECK(ok[i] && ok[N + i] && codes[TW_LP_URI][i] == i && codes[TW_LP_URI][N + i] == i);
        CHECK(codes[TW_LP_CLIENTIP][N + i] == i && by[N + i] == i);
    }
    for (int f = 0; f < TW_LP_NFIELDS; f++)
        tw_lp_dict_free(&dicts[f]);
}

static int64_t httpdate(const char *text)
{
    int fallback;
    int64_t ms = tw_lp_httpdate_ms((const uint8_t *)text, strlen(text), &fallback);
    CHECK(!fallback);
    return ms;
}

static void test_httpdate(void)
{
    CHECK(httpdate("10/Oct/2000:13:55:36 -0700") == 971211336000LL);
    CHECK(httpdate(" 10/Oct/2000:13:55:36\t+07:00 ") == 971160936000LL);
    CHECK(httpdate("29/Feb/2000:00:00:60") == 951782460000LL);
    CHECK(httpdate("01/Jan/1970:00:00:00 +0000") == 0);
    CHECK(httpdate("01/Jan/0001:00:00:00 +0000") == -62135596800000LL);
    CHECK(httpdate("01/Jan/0001:00:00:00 +0001") == INT64_MIN);
    CHECK(httpdate("31/Dec/9999:23:59:59 -0001") == INT64_MIN);
    CHECK(httpdate("29/Feb/1900:00:00:00") == INT64_MIN);
    CHECK(httpdate("10/Oct/2000:13:55:36+0000") == INT64_MIN);
    CHECK(httpdate("10/Oct/2000:13:55:36 +0060") == INT64_MIN);
    CHECK(httpdate("10/Oct/2000:13:55:36 +9959") == 970826196000LL);
    CHECK(httpdate("10/oct/2000:13:55:36") == INT64_MIN);
    CHECK(httpdate("10/Oct/2000:24:00:00") == INT64_MIN);
    CHECK(httpdate("100/Oct/2000:13:55:36") == INT64_MIN);
    CHECK(httpdate("") == INT64_MIN);
}

static void test_split(void)
{
    const uint8_t *data = (const uint8_t *)"a\n\nbc\n";
    const uint8_t *lines[4];
    size_t lens[4];
    CHECK(tw_lp_count_lines(data, 6) == 4);
    tw_lp_split_lines(data, 6, lines, lens);
    CHECK(lines[0] == data && lens[0] == 1 && lens[1] == 0);
    CHECK(lines[2] == data + 3 && lens[2] == 2 && lines[3] == data + 6 && lens[3] == 0);
    CHECK(tw_lp_count_lines(data, 0) == 1);
}

int main(void)
{
    test_full_line();
    test_variants();
    test_many_values();
    test_httpdate();
    test_split();
    printf("test_logparse: %d checks passed\n", checks);
    return 0;
}
