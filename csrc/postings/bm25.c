/*
 * bm25.c — document-at-a-time BM25 top k (see bm25.h).
 *
 * The heap lives in out_ids / out_scores: a min-heap whose root is the
 * worst kept document (lowest score, and for equal scores the highest doc
 * id). Documents arrive in increasing id order, so a later document with a
 * score equal to the root never displaces it, which is the tie rule the
 * header promises. The heap is sorted in place at the end.
 */
#include "postings/bm25.h"

#include <math.h>

/* Whether (sa, da) ranks below (sb, db): lower score, or equal and higher id. */
static int worse(double sa, uint32_t da, double sb, uint32_t db) {
    return sa < sb || (sa == sb && da > db);
}

static void sift_down(uint32_t *ids, double *scores, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(scores[l], ids[l], scores[m], ids[m])) m = l;
        if (r < n && worse(scores[r], ids[r], scores[m], ids[m])) m = r;
        if (m == i) return;
        uint32_t ti = ids[i];
        double ts = scores[i];
        ids[i] = ids[m];
        scores[i] = scores[m];
        ids[m] = ti;
        scores[m] = ts;
        i = m;
    }
}

static void sift_up(uint32_t *ids, double *scores, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(scores[i], ids[i], scores[p], ids[p])) return;
        uint32_t ti = ids[i];
        double ts = scores[i];
        ids[i] = ids[p];
        scores[i] = scores[p];
        ids[p] = ti;
        scores[p] = ts;
        i = p;
    }
}

int tw_bm25_top_k(const uint32_t *const *postings, const uint32_t *const *tfs,
                  const size_t *lens, const double *idf, size_t n_terms,
                  const uint32_t *doc_lengths, size_t n_docs, double avgdl, double k1, double b,
                  size_t k, size_t *cursors, uint32_t *out_ids, double *out_scores,
                  size_t *n_out) {
    *n_out = 0;
    if (!(avgdl > 0 && isfinite(avgdl)) || !(k1 >= 0 && isfinite(k1)) || !(b >= 0 && b <= 1))
        return TW_ERR_INVALID;
    if (k == 0) return TW_OK;
    for (size_t t = 0; t < n_terms; t++) cursors[t] = 0;
    const double k1p1 = k1 + 1;
    size_t kept = 0;
    for (;;) {
        uint64_t doc = UINT64_MAX;
        for (size_t t = 0; t < n_terms; t++)
            if (cursors[t] < lens[t] && postings[t][cursors[t]] < doc)
                doc = postings[t][cursors[t]];
        if (doc == UINT64_MAX) break;
        if (doc >= n_docs) return TW_ERR_INVALID;
        const double norm = k1 * (1 - b + b * (double)doc_lengths[doc] / avgdl);
        double score = 0;
        for (size_t t = 0; t < n_terms; t++) {
            size_t p = cursors[t];
            if (p < lens[t] && postings[t][p] == doc) {
                double tf = (double)tfs[t][p];
                score += idf[t] * (tf * k1p1) / (tf + norm);
                cursors[t] = p + 1;
            }
        }
        if (kept < k) {
            out_ids[kept] = (uint32_t)doc;
            out_scores[kept] = score;
            sift_up(out_ids, out_scores, kept);
            kept++;
        } else if (worse(out_scores[0], out_ids[0], score, (uint32_t)doc)) {
            out_ids[0] = (uint32_t)doc;
            out_scores[0] = score;
            sift_down(out_ids, out_scores, kept, 0);
        }
    }
    /* Heap sort: move the worst to the back until the heap is empty. */
    for (size_t n = kept; n > 1; n--) {
        uint32_t ti = out_ids[0];
        double ts = out_scores[0];
        out_ids[0] = out_ids[n - 1];
        out_scores[0] = out_scores[n - 1];
        out_ids[n - 1] = ti;
        out_scores[n - 1] = ts;
        sift_down(out_ids, out_scores, n - 1, 0);
    }
    *n_out = kept;
    return TW_OK;
}
