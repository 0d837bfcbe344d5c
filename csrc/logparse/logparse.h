/*
 * logparse.h — nginx/Apache combined (or common) access log lines parsed in
 * batches into columns, string fields dictionary-encoded.
 *
 * The oracle is trusswork.logs._parsers.LogParser(format="combined"): a line
 * this kernel accepts (ok = 1) gives exactly the fields, time and status of
 * that parser; every line that parser refuses gets ok = 0. A few lines it
 * accepts also get ok = 0 because they fall outside this fast path, and the
 * caller parses them in Python: lines longer than max_line_length bytes (the
 * Python parser may truncate them), a size beyond INT64_MAX, and a [time]
 * holding a non-ASCII byte (Python's \d and \s accept Unicode digits and
 * blanks there).
 *
 * Matching. The Python pattern is
 *
 *   (\S+) (\S+) (\S+) \[([^\]]*)\] "(Q)" ([0-9]{3}|-) ([0-9]+|-)
 *   (?: "(Q)"(?: "(Q)")?)?(.*)          with Q = (?:[^"\\]|\\.)*
 *
 * applied to the line decoded from UTF-8 (invalid bytes replaced). Every
 * part of it is deterministic (no alternative parse exists once a greedy
 * part stops), so one left-to-right scan over the bytes decides it. \S is
 * "not a Unicode blank": ASCII 0x09-0x0D, 0x1C-0x20 and the multi-byte
 * blanks U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000 are recognised in their UTF-8 form. Invalid UTF-8 never
 * hides an ASCII byte, so each invalid byte counts as one non-blank
 * character, which is what U+FFFD is to the pattern. Field boundaries are
 * ASCII bytes, so decoding a field's bytes equals slicing the decoded line.
 *
 * Fields. clientip, ident, user; request (\" and \\ unescaped); when the
 * request is `METHOD URI[ HTTP/x.y]`: method, uri, uri_path (before the
 * first '?'), uri_query (after it, absent without '?'), http_version
 * (absent when missing); referer and useragent (unescaped, absent in the
 * common format); extra (the rest of the line stripped of Unicode blanks,
 * absent when empty). Each string field is a column of int32 codes (-1 for
 * absent or None) into a dictionary of distinct byte strings kept in
 * first-seen order; equal bytes get equal codes across every call that
 * shares the dictionary.
 *
 * time_ms. The [time] read as the Python "httpdate" form: Unix
 * milliseconds (UTC), INT64_MIN when it is not a valid date of years
 * 1..9999 (the record's bad-timestamp problem).
 *
 * Lines. Each line is its bytes without the separator; one trailing '\n'
 * and then one trailing '\r' are dropped, as the Python parser does.
 *
 * Ownership. Lines are borrowed and read only inside [ptr, ptr + len); the
 * caller owns every output array (n entries each). A dictionary owns its
 * memory from tw_lp_dict_init to tw_lp_dict_free. Nothing else is kept, so
 * calls on distinct dictionaries are thread safe.
 *
 * Statuses: TW_ERR_NOMEM (a dictionary could not grow: outputs are
 * incomplete), TW_ERR_OVERFLOW (a dictionary would pass INT32_MAX values).
 */
#ifndef TW_LOGPARSE_H
#define TW_LOGPARSE_H

#include <stddef.h>
#include <stdint.h>

enum {
    TW_LP_CLIENTIP,
    TW_LP_IDENT,
    TW_LP_USER,
    TW_LP_REQUEST,
    TW_LP_METHOD,
    TW_LP_URI,
    TW_LP_URI_PATH,
    TW_LP_URI_QUERY,
    TW_LP_HTTP_VERSION,
    TW_LP_REFERER,
    TW_LP_USERAGENT,
    TW_LP_EXTRA,
    TW_LP_NFIELDS
};

/* Distinct byte strings in first-seen order: value i is
 * dict_bytes[dict_offsets[i] .. dict_offsets[i + 1]). */
typedef struct tw_lp_dict {
    uint8_t *dict_bytes;
    size_t dict_bytes_len, dict_bytes_cap;
    uint64_t *dict_offsets; /* dict_count + 1 entries */
    uint64_t *dict_hashes;  /* dict_count entries */
    size_t dict_count, dict_values_cap;
    uint32_t *dict_slots; /* open addressing: value index + 1, 0 = empty */
    size_t dict_mask;
} tw_lp_dict;

/* Caller-owned output columns, n entries each. *_null is 1 for '-' and for
 * lines with ok = 0 (whose value is then 0). */
typedef struct tw_lp_columns {
    uint8_t *col_ok;
    uint8_t *col_invalid_utf8; /* 1: the line is not valid UTF-8 */
    int64_t *col_time_ms;
    int64_t *col_status;
    uint8_t *col_status_null;
    int64_t *col_bytes;
    uint8_t *col_bytes_null;
    int32_t *col_codes[TW_LP_NFIELDS];
} tw_lp_columns;

void tw_lp_dict_init(tw_lp_dict *dict);
void tw_lp_dict_free(tw_lp_dict *dict);

/* Parse lines[i] (lens[i] bytes) for i < n into out, interning strings into
 * dicts[TW_LP_NFIELDS]. A NULL lines[i] is a line that is not handled here
 * (ok = 0). */
int tw_lp_parse_combined(const uint8_t *const *lines, const size_t *lens, size_t n,
                         size_t max_line_length, tw_lp_dict *dicts, const tw_lp_columns *out);

/* Number of pieces of data[0 .. len) split at '\n' (like bytes.split). */
size_t tw_lp_count_lines(const uint8_t *data, size_t len);

/* Fill lines/lens with those pieces; both hold tw_lp_count_lines entries. */
void tw_lp_split_lines(const uint8_t *data, size_t len, const uint8_t **lines, size_t *lens);

/* Unix milliseconds of an HTTP date ("10/Oct/2000:13:55:36 -0700") as the
 * Python "httpdate" form reads it, or INT64_MIN. *fallback is set to 1 (and
 * INT64_MIN returned) for text this kernel leaves to Python. */
int64_t tw_lp_httpdate_ms(const uint8_t *text, size_t len, int *fallback);

#endif
