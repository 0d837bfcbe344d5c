# Declarations of csrc/http: the strict HTTP/1.1 request parser, chunked
# decoder and response head writer.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "http/http.h" nogil:
    int TW_HTTP_INCOMPLETE
    enum tw_http_error:
        TW_HTTP_E_METHOD
        TW_HTTP_E_TARGET
        TW_HTTP_E_VERSION
        TW_HTTP_E_VERSION_UNSUPPORTED
        TW_HTTP_E_BARE_CR
        TW_HTTP_E_BARE_LF
        TW_HTTP_E_LEADING_WS
        TW_HTTP_E_OBS_FOLD
        TW_HTTP_E_HEADER_NAME
        TW_HTTP_E_WS_BEFORE_COLON
        TW_HTTP_E_HEADER_VALUE
        TW_HTTP_E_REQUEST_LINE_TOO_LONG
        TW_HTTP_E_HEADER_LINE_TOO_LONG
        TW_HTTP_E_HEAD_TOO_LARGE
        TW_HTTP_E_TOO_MANY_HEADERS
        TW_HTTP_E_CONTENT_LENGTH
        TW_HTTP_E_CONTENT_LENGTH_DUP
        TW_HTTP_E_CL_AND_TE
        TW_HTTP_E_TE_NOT_CHUNKED
        TW_HTTP_E_TE_CHUNKED_TWICE
        TW_HTTP_E_TE_SYNTAX
        TW_HTTP_E_TE_HTTP10
        TW_HTTP_E_HOST_DUP
        TW_HTTP_E_BODY_TOO_LARGE
        TW_HTTP_E_CHUNK_SIZE
        TW_HTTP_E_CHUNK_EXT
        TW_HTTP_E_CHUNK_EXT_TOO_LONG
        TW_HTTP_E_CHUNK_DATA_CRLF
        TW_HTTP_E_TRAILERS_TOO_LARGE
        TW_HTTP_E_STATUS
        TW_HTTP_E_REASON

    const char *tw_http_strerror(int status)

    ctypedef struct tw_http_limits:
        uint32_t max_request_line
        uint32_t max_header_line
        uint32_t max_head
        uint32_t max_headers
        uint32_t max_chunk_ext
        uint64_t max_body

    void tw_http_limits_default(tw_http_limits *limits)

    ctypedef struct tw_span:
        uint32_t off
        uint32_t len

    ctypedef struct tw_http_header:
        tw_span name
        tw_span value

    enum tw_http_method:
        TW_HTTP_OTHER
        TW_HTTP_GET
        TW_HTTP_HEAD
        TW_HTTP_POST
        TW_HTTP_PUT
        TW_HTTP_DELETE
        TW_HTTP_CONNECT
        TW_HTTP_OPTIONS
        TW_HTTP_TRACE
        TW_HTTP_PATCH

    enum tw_http_target_form:
        TW_HTTP_ORIGIN_FORM
        TW_HTTP_ABSOLUTE_FORM
        TW_HTTP_AUTHORITY_FORM
        TW_HTTP_ASTERISK_FORM

    unsigned int TW_HTTP_F_CHUNKED
    unsigned int TW_HTTP_F_KEEP_ALIVE
    unsigned int TW_HTTP_F_CLOSE
    unsigned int TW_HTTP_F_UPGRADE
    unsigned int TW_HTTP_F_EXPECT_CONTINUE
    unsigned int TW_HTTP_F_HAS_TE
    unsigned int TW_HTTP_F_HAS_HOST
    unsigned int TW_HTTP_F_TE_OTHER

    ctypedef struct tw_http_head:
        tw_span method
        int method_id
        tw_span target
        int target_form
        uint8_t version_major
        uint8_t version_minor
        uint32_t nheaders
        int64_t content_length
        uint32_t flags
        uint32_t error_offset

    int tw_http_parse_head(const uint8_t *buf, size_t len, size_t prev_len, tw_http_head *out,
                           tw_http_header *headers, uint32_t max_headers,
                           const tw_http_limits *limits)

    ctypedef struct tw_http_chunked:
        uint64_t error_offset

    void tw_http_chunked_init(tw_http_chunked *st, const tw_http_limits *limits)
    int64_t tw_http_chunked_decode(tw_http_chunked *st, uint8_t *buf, size_t len,
                                   size_t *data_len)

    ctypedef struct tw_http_header_in:
        const uint8_t *name
        size_t name_len
        const uint8_t *value
        size_t value_len

    const char *tw_http_reason(int status)
    int tw_http_format_head(uint8_t *out, size_t cap, int minor, int status,
                            const uint8_t *reason, size_t reason_len,
                            const tw_http_header_in *headers, size_t n, size_t *written,
                            int64_t *bad_index)
