/*
 * tokenize.h — splitting UTF-8 text into index terms, one document or many.
 *
 * The log search inverted index and BM25 ranking need the same terms at
 * index time and at query time, so both go through this kernel.
 *
 * Rules. A word byte is an ASCII letter, digit or '_', or any byte >= 0x80
 * (so a UTF-8 word stays whole; only ASCII bytes separate). A run is a
 * maximal stretch of word bytes. Tokens are runs, except for two shapes
 * kept whole across their separators:
 *
 *   UUID    36 bytes 8-4-4-4-12 ASCII hex digits joined by '-', starting a
 *           run and not followed by a word byte.
 *   chain   runs of ASCII digits joined by single '.' (a '.' followed by a
 *           run that starts a UUID ends the chain). A chain of two runs is
 *           a decimal number ("3.14"); a chain of four runs of 1-3 digits,
 *           each at most 255, is an IPv4 address ("10.0.0.1"); either is one
 *           token. Any other chain ("1.2.3", "1.2.3.4.5", "300.1.1.1") is
 *           split into its runs. A run with a non-digit ends a chain, so
 *           "v1.2" gives "v1" and "2".
 *
 * A port after an address ("10.0.0.1:8080") is its own token because ':' is
 * not a word byte. Offsets are bytes into the input; ASCII case folding is
 * tw_fold_ascii's job (token boundaries never depend on case).
 *
 * Bound. Tokens are at least one byte and separated by at least one byte,
 * so a buffer of len bytes holds at most TW_TOKENS_MAX(len) = len / 2 + 1
 * tokens; output arrays that large never give TW_ERR_NOSPACE.
 *
 * Ownership. Inputs are borrowed and only read inside [text, text + len);
 * the caller owns every output array and gives its capacity. Nothing here
 * allocates or keeps state: every function is thread safe.
 *
 * Statuses: TW_ERR_NOSPACE (an output array is full: the outputs hold the
 * tokens that fit, see each function), TW_ERR_INVALID (batch offsets not
 * non-decreasing).
 */
#ifndef TW_TOKENIZE_H
#define TW_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define TW_TOKENS_MAX(len) ((len) / 2 + 1)

/*
 * Tokenizes text[0..len): token i is text[starts[i] .. ends[i]). cap is
 * the length of both output arrays; *n_tokens gets the count. When cap is
 * short, returns TW_ERR_NOSPACE with the first cap tokens written and
 * *n_tokens = cap.
 */
int tw_tokenize(const uint8_t *text, size_t len, size_t *starts, size_t *ends, size_t cap,
                size_t *n_tokens);

/*
 * Tokenizes documents first_doc .. n_docs - 1 of a concatenated buffer:
 * document d is text[offsets[d] .. offsets[d + 1]) (offsets has n_docs + 1
 * entries, non-decreasing, the last at most len; else TW_ERR_INVALID).
 * Token i is (docs[i], starts[i], ends[i]) with offsets into text; tokens
 * come in document order. Whole documents only: when the next document's
 * tokens do not fit in cap, returns TW_ERR_NOSPACE having written the
 * tokens of documents first_doc .. *docs_done - 1 (*n_tokens of them), so
 * the caller can drain the arrays and call again from *docs_done. A cap of
 * at least TW_TOKENS_MAX of the longest document always makes progress.
 */
int tw_tokenize_many(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                     size_t first_doc, uint32_t *docs, size_t *starts, size_t *ends, size_t cap,
                     size_t *n_tokens, size_t *docs_done);

/* out[i] = in[i] with 'A'..'Z' lowered; other bytes copied. out may be in. */
void tw_fold_ascii(const uint8_t *in, size_t len, uint8_t *out);

#endif
