/*
 * invert.h — turning a batch of documents into an inverted index in memory:
 * the sorted term dictionary, each term's (document, frequency) entries and
 * its token positions, in one pass of C over the texts.
 *
 * This is what an index segment stores (src/trusswork/search/_index.py), so
 * every array here has that file's meaning:
 *
 *   terms       distinct tokens (tokenize.h rules) sorted by their bytes
 *               (memcmp order, a prefix before its extensions), back to
 *               back in inv_term_bytes; term t is bytes
 *               [inv_term_offsets[t], inv_term_offsets[t + 1]).
 *   entries     per term, the documents holding it, ascending, with the
 *               number of times it occurs there: term t owns entries
 *               [inv_entry_starts[t], inv_entry_starts[t + 1]) of
 *               inv_entry_rows and inv_tfs.
 *   positions   per term, per entry in order, the 0-based token positions
 *               of its occurrences, ascending: term t owns
 *               [inv_position_starts[t], inv_position_starts[t + 1]).
 *   lengths     tokens per document.
 *
 * Documents are rows 0..n_docs-1 of a concatenated, already case-folded
 * buffer (tw_fold_ascii), as for tw_tokenize_many.
 *
 * Design. Tokens are interned through an open-addressing hash table whose
 * keys point into the caller's buffer (no copy), numbering terms as first
 * seen; the distinct terms are then sorted once (O(terms log terms)) and
 * the tokens scattered into term order by a counting sort, which keeps
 * their (document, position) order: O(bytes + tokens + terms log terms)
 * with 12 bytes of scratch per token.
 *
 * Ownership. Inputs are borrowed. tw_invert allocates every output array
 * (malloc) into *out, which the caller releases with tw_inverted_free, on
 * success or failure (free is safe on a zeroed or failed result). No
 * hidden state: thread safe.
 *
 * Statuses: TW_ERR_INVALID (offsets not non-decreasing, past len, or more
 * than 2^32 documents), TW_ERR_OVERFLOW (2^32 distinct terms or more, or a
 * document of 2^32 tokens or more), TW_ERR_NOMEM.
 */
#ifndef TW_INVERT_H
#define TW_INVERT_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct {
    size_t inv_docs;                /* documents */
    size_t inv_tokens;              /* tokens of all documents */
    size_t inv_terms;               /* distinct terms */
    size_t inv_entries;             /* (term, document) pairs */
    uint8_t *inv_term_bytes;        /* the sorted terms back to back */
    uint64_t *inv_term_offsets;     /* inv_terms + 1 */
    uint64_t *inv_entry_starts;     /* inv_terms + 1 */
    uint64_t *inv_position_starts;  /* inv_terms + 1 */
    uint32_t *inv_entry_rows;       /* inv_entries */
    uint32_t *inv_tfs;              /* inv_entries */
    uint32_t *inv_positions;        /* inv_tokens */
    uint32_t *inv_lengths;          /* inv_docs */
} tw_inverted;

/*
 * Inverts documents 0..n_docs-1 of text[0..len): document d is
 * text[offsets[d] .. offsets[d + 1]) (n_docs + 1 offsets). *out is
 * overwritten (its previous arrays are not freed).
 */
int tw_invert(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
              tw_inverted *out);

/*
 * tw_invert with every document one whole term, as it is (empty too): the
 * postings of keyword values. Each document is one entry of its term, with
 * tf 1 and position 0; lengths are all 1.
 */
int tw_invert_whole(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                    tw_inverted *out);

/* Frees every array of inv and zeroes it. */
void tw_inverted_free(tw_inverted *inv);

#endif
