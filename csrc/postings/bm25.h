/*
 * bm25.h — the top k documents of a disjunctive query by BM25.
 *
 * Each query term brings its posting list (strictly increasing uint32 doc
 * ids), the term frequency of each posting, and its idf. A document that
 * holds any term scores
 *
 *   sum over its terms t, in term order, of
 *     idf[t] * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * dl / avgdl))
 *
 * with dl = doc_lengths[doc]. The sum runs in term order with exactly the
 * operations above so that a plain re-implementation gets the same doubles.
 *
 * Method: document at a time. The term cursors are merged by doc id (a
 * linear scan of the k heads per step, which is fastest for the few terms
 * of a real query: O(total postings * terms)), and a size-k min-heap keeps
 * the best documents. Results are ordered by score descending, then doc id
 * ascending; a tie at the k-th place keeps the lower doc id.
 *
 * Ownership: all inputs are borrowed; cursors is the caller's scratch of
 * n_terms entries (its contents on entry do not matter); out_ids and
 * out_scores belong to the caller and hold k entries; *n_out gets the
 * count (min(k, matching docs)).
 * The heap is built in the output arrays: nothing is allocated.
 *
 * Statuses: TW_ERR_INVALID when avgdl is not positive and finite, k1 is
 * negative or not finite, b is outside [0, 1], or a posting names a doc id
 * >= n_docs (the outputs then hold garbage). With k == 0 nothing is
 * checked but the parameters. Posting lists that are not
 * strictly increasing give an unspecified ranking but never an
 * out-of-bounds access.
 */
#ifndef TW_BM25_H
#define TW_BM25_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

int tw_bm25_top_k(const uint32_t *const *postings, const uint32_t *const *tfs,
                  const size_t *lens, const double *idf, size_t n_terms,
                  const uint32_t *doc_lengths, size_t n_docs, double avgdl, double k1, double b,
                  size_t k, size_t *cursors, uint32_t *out_ids, double *out_scores,
                  size_t *n_out);

#endif
