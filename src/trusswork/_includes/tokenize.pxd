# Declarations of csrc/postings/tokenize.h and bm25.h: terms and BM25 top k.
from libc.stdint cimport uint8_t, uint32_t


cdef extern from "postings/tokenize.h" nogil:
    size_t TW_TOKENS_MAX(size_t len)
    int tw_tokenize(const uint8_t *text, size_t len, size_t *starts, size_t *ends, size_t cap,
                    size_t *n_tokens)
    int tw_tokenize_many(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                         size_t first_doc, uint32_t *docs, size_t *starts, size_t *ends,
                         size_t cap, size_t *n_tokens, size_t *docs_done)
    void tw_fold_ascii(const uint8_t *src, size_t len, uint8_t *out)


cdef extern from "postings/bm25.h" nogil:
    int tw_bm25_top_k(const uint32_t *const *postings, const uint32_t *const *tfs,
                      const size_t *lens, const double *idf, size_t n_terms,
                      const uint32_t *doc_lengths, size_t n_docs, double avgdl, double k1,
                      double b, size_t k, size_t *cursors, uint32_t *out_ids,
                      double *out_scores, size_t *n_out)
