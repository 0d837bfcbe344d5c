/*
 * http.h — strict HTTP/1.1 request parser and response-head writer.
 *
 * The parser is incremental and zero-copy: it reports spans (offset, length)
 * into the caller's buffer and allocates nothing. The caller owns every
 * buffer; the parser only reads the request bytes, except the chunked
 * decoder, which compacts decoded data in place at the front of the buffer
 * it is given. All functions are reentrant and safe to call without the GIL.
 *
 * Strictness (RFC 9110 / RFC 9112). Everything a proxy and this server could
 * read differently is an error, so the request-smuggling cases get a 400 and
 * the connection is closed:
 *   - lines end in CRLF only; a bare CR or a bare LF anywhere is an error;
 *   - method = token; exactly one SP between the request-line parts;
 *   - request-target: visible ASCII only (0x21-0x7E: no controls, space,
 *     DEL or bytes >= 0x80); origin-form ("/..."), absolute-form
 *     ("scheme:..."), authority-form ("host:port") only with CONNECT and
 *     asterisk-form ("*") only with OPTIONS;
 *   - version: "HTTP/" DIGIT "." DIGIT, and only HTTP/1.0 and HTTP/1.1 are
 *     served (other well-formed versions get TW_HTTP_E_VERSION_UNSUPPORTED,
 *     which a server answers with 505);
 *   - up to 16 empty lines (CRLF) before the request line are skipped
 *     (RFC 9112 2.2: clients send one after a POST body);
 *   - field name = token, no whitespace before the colon, no whitespace
 *     before the first field line, no obs-fold (a line starting with SP/HTAB);
 *   - field value: OWS around it is trimmed; inside, VCHAR, obs-text
 *     (0x80-0xFF), SP and HTAB; every other control byte (NUL, DEL, ...) is
 *     an error;
 *   - Content-Length: 1*DIGIT; a second Content-Length field or a comma list
 *     is rejected even when the values agree (stricter than RFC 9112 6.3, as
 *     llhttp); a value above limits.max_body is TW_HTTP_E_BODY_TOO_LARGE;
 *   - Transfer-Encoding: a list of codings whose final coding is "chunked",
 *     applied once, without parameters; the parameters of other codings must
 *     follow the grammar (token BWS "=" BWS token / quoted-string); empty
 *     list elements are rejected;
 *     Transfer-Encoding together with Content-Length, or in an HTTP/1.0
 *     request, is rejected; codings before chunked set TW_HTTP_F_TE_OTHER
 *     (the server answers 501 for codings it does not implement);
 *   - Host: a second Host field is rejected; a missing Host is NOT an error
 *     here (TW_HTTP_F_HAS_HOST tells the server, which answers 400);
 *   - limits (tw_http_limits): request line, each field line, the whole head,
 *     the number of fields, the body, and chunk extensions.
 *
 * Chunked bodies (tw_http_chunked_decode): chunk-size is 1*HEXDIG with no
 * sign, prefix or leading whitespace, at most 16 digits, and the sizes add
 * up to at most limits.max_body; BWS is allowed only between the size and a
 * ';' extension (RFC 9112 7.1.1 grammar); extensions are checked against
 * their grammar (token [= token / quoted-string]) and ignored, at most
 * max_chunk_ext bytes per line; CRLF after each chunk's data is required;
 * trailer fields are checked with the header rules and discarded.
 */
#ifndef TW_HTTP_H
#define TW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* ---------------------------------------------------------------- statuses */

/* More bytes are needed (same value as TW_ERR_TRUNCATED). */
#define TW_HTTP_INCOMPLETE (-2)

/* Errors: each means "400 and close" unless noted. */
enum tw_http_error {
    TW_HTTP_E_METHOD = -100,              /* method is not a token / missing */
    TW_HTTP_E_TARGET = -101,              /* bad byte or form of request-target */
    TW_HTTP_E_VERSION = -102,             /* malformed HTTP-version */
    TW_HTTP_E_VERSION_UNSUPPORTED = -103, /* well-formed but not 1.0/1.1 (505) */
    TW_HTTP_E_BARE_CR = -104,             /* CR not followed by LF */
    TW_HTTP_E_BARE_LF = -105,             /* LF not preceded by CR */
    TW_HTTP_E_LEADING_WS = -106,          /* whitespace before the first field line */
    TW_HTTP_E_OBS_FOLD = -107,            /* field line starts with SP/HTAB */
    TW_HTTP_E_HEADER_NAME = -108,         /* field name is not a token / missing */
    TW_HTTP_E_WS_BEFORE_COLON = -109,     /* whitespace between name and ':' */
    TW_HTTP_E_HEADER_VALUE = -110,        /* control byte in a field value */
    TW_HTTP_E_REQUEST_LINE_TOO_LONG = -111, /* 414 */
    TW_HTTP_E_HEADER_LINE_TOO_LONG = -112,  /* 431 */
    TW_HTTP_E_HEAD_TOO_LARGE = -113,        /* 431 */
    TW_HTTP_E_TOO_MANY_HEADERS = -114,      /* 431 */
    TW_HTTP_E_CONTENT_LENGTH = -115,        /* malformed Content-Length */
    TW_HTTP_E_CONTENT_LENGTH_DUP = -116,    /* second Content-Length / list */
    TW_HTTP_E_CL_AND_TE = -117,             /* Content-Length with Transfer-Encoding */
    TW_HTTP_E_TE_NOT_CHUNKED = -118,        /* final transfer coding is not chunked */
    TW_HTTP_E_TE_CHUNKED_TWICE = -119,      /* chunked applied more than once */
    TW_HTTP_E_TE_SYNTAX = -120,             /* malformed Transfer-Encoding list */
    TW_HTTP_E_TE_HTTP10 = -121,             /* Transfer-Encoding in HTTP/1.0 */
    TW_HTTP_E_HOST_DUP = -122,              /* more than one Host field */
    TW_HTTP_E_BODY_TOO_LARGE = -123,        /* 413 */
    TW_HTTP_E_CHUNK_SIZE = -124,            /* bad chunk-size */
    TW_HTTP_E_CHUNK_EXT = -125,             /* bad chunk extension */
    TW_HTTP_E_CHUNK_EXT_TOO_LONG = -126,    /* chunk extension over the limit */
    TW_HTTP_E_CHUNK_DATA_CRLF = -127,       /* no CRLF after chunk data */
    TW_HTTP_E_TRAILERS_TOO_LARGE = -128,    /* trailer section over max_head (431) */
    TW_HTTP_E_STATUS = -129,                /* writer: status not in 100..999 */
    TW_HTTP_E_REASON = -130                 /* writer: control byte in reason */
};

/* A short English reason for any status above ("bare LF in a line"). */
const char *tw_http_strerror(int status);

/* ---------------------------------------------------------------- limits */

typedef struct {
    uint32_t max_request_line; /* bytes, CRLF excluded; default 8192 */
    uint32_t max_header_line;  /* bytes per field line, CRLF excluded; default 8192 */
    uint32_t max_head;         /* bytes from the first byte to the final CRLF; default 65536;
                                  also bounds the trailer section; at most 2^31 */
    uint32_t max_headers;      /* field lines; default 100 */
    uint32_t max_chunk_ext;    /* bytes of extensions on one chunk-size line; default 4096 */
    uint64_t max_body;         /* body bytes (decoded, for chunked); default 1 GiB;
                                  at most 2^62 */
} tw_http_limits;

void tw_http_limits_default(tw_http_limits *limits);

/* ---------------------------------------------------------------- head */

typedef struct {
    uint32_t off, len; /* into the caller's buffer */
} tw_span;

typedef struct {
    tw_span name, value; /* value has OWS trimmed */
} tw_http_header;

enum tw_http_method {
    TW_HTTP_OTHER = 0,
    TW_HTTP_GET, TW_HTTP_HEAD, TW_HTTP_POST, TW_HTTP_PUT, TW_HTTP_DELETE,
    TW_HTTP_CONNECT, TW_HTTP_OPTIONS, TW_HTTP_TRACE, TW_HTTP_PATCH
};

enum tw_http_target_form {
    TW_HTTP_ORIGIN_FORM = 0, TW_HTTP_ABSOLUTE_FORM, TW_HTTP_AUTHORITY_FORM,
    TW_HTTP_ASTERISK_FORM
};

#define TW_HTTP_F_CHUNKED 0x01u         /* body is chunked */
#define TW_HTTP_F_KEEP_ALIVE 0x02u      /* persistent: 1.1 without close, 1.0 with keep-alive */
#define TW_HTTP_F_CLOSE 0x04u           /* Connection: close */
#define TW_HTTP_F_UPGRADE 0x08u         /* HTTP/1.1 with an Upgrade field and Connection:
                                           upgrade (HTTP/1.0 ignores Upgrade; after the
                                           body the bytes may belong to another protocol),
                                           or CONNECT: no content at all, whatever
                                           Content-Length says (RFC 9110 9.3.6, as
                                           llhttp); the tunnel starts after the head */
#define TW_HTTP_F_EXPECT_CONTINUE 0x10u /* Expect: 100-continue */
#define TW_HTTP_F_HAS_TE 0x20u          /* a Transfer-Encoding field was present */
#define TW_HTTP_F_HAS_HOST 0x40u        /* exactly one Host field */
#define TW_HTTP_F_TE_OTHER 0x80u        /* codings other than chunked precede it */

typedef struct {
    tw_span method;
    int method_id;   /* enum tw_http_method */
    tw_span target;
    int target_form; /* enum tw_http_target_form */
    uint8_t version_major, version_minor;
    uint32_t nheaders;
    int64_t content_length; /* -1: no Content-Length */
    uint32_t flags;         /* TW_HTTP_F_* */
    uint32_t error_offset;  /* on error: offset of the offending byte */
} tw_http_head;

/*
 * Parses the request head at the start of buf[0..len).
 *   > 0                 the head (request line, fields and the empty line) is
 *                       complete; the value is its length, the body starts there
 *   TW_HTTP_INCOMPLETE  more bytes are needed; call again with the longer buffer
 *   TW_HTTP_E_*         the request is invalid; out->error_offset says where
 * prev_len is the length passed to the previous call for this same head
 * (0 on the first); when the new bytes buf[prev_len..len) cannot finish a
 * line, the call returns INCOMPLETE at once without rescanning. Every
 * error is still reported, at the latest when its line ends or a limit is
 * passed, and always with the same code and offset as a one-shot parse;
 * when the stream ends inside a head, call once more with prev_len 0 to
 * learn whether the held bytes are merely incomplete or already invalid.
 * headers has room for max_headers entries; the effective limit is the
 * smaller of max_headers and limits->max_headers. limits may be NULL for
 * the defaults. out and headers are written; buf is only read.
 */
int tw_http_parse_head(const uint8_t *buf, size_t len, size_t prev_len, tw_http_head *out,
                       tw_http_header *headers, uint32_t max_headers,
                       const tw_http_limits *limits);

/* ---------------------------------------------------------------- chunked body */

typedef struct {
    int state;
    uint64_t remaining; /* bytes of chunk data still to come in this chunk */
    uint64_t total;     /* decoded body bytes so far */
    uint64_t offset;    /* bytes consumed so far, across calls */
    uint32_t line;      /* bytes of the current extension / trailer line */
    uint32_t trailers;  /* bytes of the trailer section */
    uint32_t digits;    /* hex digits of the current chunk-size */
    uint64_t max_body;
    uint32_t max_chunk_ext, max_header_line, max_head;
    uint64_t error_offset; /* on error: offset from the start of the body */
} tw_http_chunked;

void tw_http_chunked_init(tw_http_chunked *st, const tw_http_limits *limits);

/*
 * Decodes the next part of a chunked body in place. buf[0..len) are the
 * next bytes of the body stream; the decoded data of this call is moved to
 * buf[0..*data_len) (memmove; never past what was consumed).
 *   >= 0                the body is complete, trailers included; the value is
 *                       the number of bytes of buf consumed (the next request
 *                       starts there, untouched)
 *   TW_HTTP_INCOMPLETE  all of buf was consumed; call again with more
 *   TW_HTTP_E_*         invalid; st->error_offset is the offset from the
 *                       start of the body
 */
int64_t tw_http_chunked_decode(tw_http_chunked *st, uint8_t *buf, size_t len, size_t *data_len);

/* ---------------------------------------------------------------- response head */

typedef struct {
    const uint8_t *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
} tw_http_header_in;

/* The standard reason phrase of a status ("Not Found"), or "" if none. */
const char *tw_http_reason(int status);

/*
 * Formats "HTTP/1.<minor> <status> <reason>\r\n" + "name: value\r\n"... +
 * "\r\n" into out[0..cap) and sets *written. reason NULL = the standard
 * phrase. Names must be tokens and values and the reason may hold no control
 * byte other than HTAB (so CR/LF injection is impossible).
 *   TW_OK, TW_ERR_NOSPACE (nothing useful written), TW_ERR_INVALID (minor
 *   not 0/1), TW_HTTP_E_STATUS, TW_HTTP_E_REASON, TW_HTTP_E_HEADER_NAME,
 *   TW_HTTP_E_HEADER_VALUE; *bad_index is the offending header's index
 *   (or -1) for the last two.
 */
int tw_http_format_head(uint8_t *out, size_t cap, int minor, int status, const uint8_t *reason,
                        size_t reason_len, const tw_http_header_in *headers, size_t n,
                        size_t *written, int64_t *bad_index);

#endif
