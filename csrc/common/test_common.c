/*
 * test_common.c — C tests for crc32c, varint/zigzag and bit I/O.
 *
 * Run by ctest (and under ASan/UBSan by `make sanitize`). Exits non-zero
 * on the first failed check, printing where it failed.
 */
#include "common/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitio.h"
#include "crc32c.h"
#include "varint.h"



static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void) {
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Bit-at-a-time reference CRC-32C. */
static uint32_t crc32c_reference(uint32_t crc, const uint8_t *p, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static void test_crc32c_vectors(void) {
    CHECK(tw_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(tw_crc32c_software(0, "123456789", 9) == 0xE3069283u);
    CHECK(tw_crc32c(0, "", 0) == 0);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    /* RFC 3720 B.4 */
    CHECK(tw_crc32c(0, zeros, 32) == 0x8A9136AAu);
    CHECK(tw_crc32c(0, ones, 32) == 0x62A8AB43u);
    uint8_t inc[32];
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    CHECK(tw_crc32c(0, inc, 32) == 0x46DD794Eu);
}

static void test_crc32c_paths_agree(void) {
    size_t cap = 3 * 8192 * 2 + 3 * 256 * 3 + 8704 * 3 + 77;
    uint8_t *buf = malloc(cap + 8);
    CHECK(buf != NULL);
    for (size_t i = 0; i < cap + 8; i++) buf[i] = (uint8_t)next_random();
    size_t lengths[] = {0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 3 * 8192 - 1, 3 * 8192,
                        3 * 8192 + 1, 8703, 8704, 8705, 2 * 8704 + 100, cap};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        for (size_t offset = 0; offset < 8; offset++) {
            size_t len = lengths[i];
            uint32_t seed = (uint32_t)next_random();
            uint32_t expect = crc32c_reference(seed, buf + offset, len);
            CHECK(tw_crc32c(seed, buf + offset, len) == expect);
            CHECK(tw_crc32c_software(seed, buf + offset, len) == expect);
            for (int impl = TW_CRC32C_SOFTWARE; impl <= TW_CRC32C_FUSED; impl++)
                CHECK(tw_crc32c_using(impl, seed, buf + offset, len) == expect);
        }
    }
    /* Continuation and combination. */
    for (int trial = 0; trial < 200; trial++) {
        size_t a = next_random() % 5000, b = next_random() % 30000;
        if (a + b > cap) continue;
        uint32_t whole = tw_crc32c(0, buf, a + b);
        uint32_t crc_a = tw_crc32c(0, buf, a);
        CHECK(tw_crc32c(crc_a, buf + a, b) == whole);
        CHECK(tw_crc32c_combine(crc_a, tw_crc32c(0, buf + a, b), b) == whole);
    }
    free(buf);
}

static void test_zigzag(void) {
    CHECK(tw_zigzag_encode(0) == 0);
    CHECK(tw_zigzag_encode(-1) == 1);
    CHECK(tw_zigzag_encode(1) == 2);
    CHECK(tw_zigzag_encode(INT64_MAX) == UINT64_MAX - 1);
    CHECK(tw_zigzag_encode(INT64_MIN) == UINT64_MAX);
    for (int i = 0; i < 10000; i++) {
        int64_t v = (int64_t)next_random();
        CHECK(tw_zigzag_decode(tw_zigzag_encode(v)) == v);
    }
}

static void test_varint_known(void) {
    uint8_t out[TW_VARINT_MAX_BYTES];
    CHECK(tw_varint_put(out, 0) == 1 && out[0] == 0);
    CHECK(tw_varint_put(out, 300) == 2 && out[0] == 0xAC && out[1] == 0x02);
    CHECK(tw_varint_put(out, UINT64_MAX) == 10 && out[9] == 0x01);
    CHECK(tw_varint_size(127) == 1 && tw_varint_size(128) == 2);

    uint64_t v;
    size_t used;
    const uint8_t truncated[] = {0x80, 0x80};
    CHECK(tw_varint_get(truncated, 2, &v, &used) == TW_ERR_TRUNCATED);
    const uint8_t too_long[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK(tw_varint_get(too_long, sizeof too_long, &v, &used) == TW_ERR_OVERFLOW);
    const uint8_t tenth_too_big[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    CHECK(tw_varint_get(tenth_too_big, sizeof tenth_too_big, &v, &used) == TW_ERR_OVERFLOW);
    const uint8_t non_minimal[] = {0x80, 0x00};
    CHECK(tw_varint_get(non_minimal, 2, &v, &used) == TW_OK && v == 0 && used == 2);
}

static void test_varint_arrays(void) {
    enum { N = 5000 };
    uint64_t *values = malloc(N * sizeof *values), *back = malloc(N * sizeof *back);
    uint8_t *buf = malloc(N * TW_VARINT_MAX_BYTES + 16);
    CHECK(values && back && buf);
    for (int zigzag = 0; zigzag < 2; zigzag++) {
        for (size_t i = 0; i < N; i++) values[i] = next_random() >> (next_random() % 64);
        size_t size = tw_varint_encoded_size(values, N, zigzag), written, n, used;
        CHECK(tw_varint_encode(values, N, zigzag, buf, size, &written) == TW_OK);
        CHECK(written == size);
        CHECK(tw_varint_count(buf, written) == N);
        CHECK(tw_varint_decode(buf, written, zigzag, back, N, &n, &used) == TW_OK);
        CHECK(n == N && used == written);
        CHECK(memcmp(values, back, N * sizeof *values) == 0);
        /* A cut inside the last varint is reported at that varint's start. */
        size_t last = tw_varint_size(zigzag ? tw_zigzag_encode((int64_t)values[N - 1]) : values[N - 1]);
        if (last > 1) {
            CHECK(tw_varint_decode(buf, size - 1, zigzag, back, N, &n, &used) == TW_ERR_TRUNCATED);
            CHECK(n == N - 1 && used == size - last);
        }
        /* Too small an output buffer is refused, not overrun (ASan watches). */
        uint8_t *exact = malloc(size - 1);
        CHECK(exact != NULL);
        CHECK(tw_varint_encode(values, N, zigzag, exact, size - 1, &written) == TW_ERR_NOSPACE);
        free(exact);
    }
    free(values);
    free(back);
    free(buf);
}

static void test_bitio(void) {
    enum { N = 4000 };
    uint64_t values[N];
    unsigned widths[N];
    uint8_t buf[N * 8 + 8];
    tw_bitwriter w;
    tw_bitwriter_init(&w, buf, sizeof buf);
    uint64_t total = 0;
    for (size_t i = 0; i < N; i++) {
        widths[i] = (unsigned)(next_random() % 65);
        values[i] = widths[i] == 64 ? next_random()
                    : widths[i] == 0 ? 0
                                     : next_random() & (((uint64_t)1 << widths[i]) - 1);
        CHECK(tw_bitwriter_write(&w, values[i], widths[i]) == TW_OK);
        total += widths[i];
    }
    CHECK(tw_bitwriter_bit_length(&w) == total);
    size_t nbytes;
    CHECK(tw_bitwriter_finish(&w, &nbytes) == TW_OK);
    CHECK(nbytes == (total + 7) / 8);

    tw_bitreader r;
    tw_bitreader_init(&r, buf, nbytes);
    for (size_t i = 0; i < N; i++) {
        uint64_t v;
        CHECK(tw_bitreader_read(&r, widths[i], &v) == TW_OK);
        CHECK(v == values[i]);
    }
    CHECK(tw_bitreader_remaining(&r) == nbytes * 8 - total);
    uint64_t v;
    CHECK(tw_bitreader_read(&r, (unsigned)(nbytes * 8 - total) + 1, &v) == TW_ERR_TRUNCATED);

    /* MSB-first layout: 1 then 0000001 gives 0x81. */
    uint8_t one[1];
    tw_bitwriter_init(&w, one, 1);
    CHECK(tw_bitwriter_write(&w, 1, 1) == TW_OK);
    CHECK(tw_bitwriter_write(&w, 1, 7) == TW_OK);
    CHECK(one[0] == 0x81);
    CHECK(tw_bitwriter_write(&w, 1, 1) == TW_OK);
    CHECK(tw_bitwriter_finish(&w, &nbytes) == TW_ERR_NOSPACE);
    CHECK(tw_bitwriter_write(&w, 4, 2) == TW_ERR_OVERFLOW);
    CHECK(tw_bitwriter_write(&w, 0, 65) == TW_ERR_INVALID);
}

int main(void) {
    test_crc32c_vectors();
    test_crc32c_paths_agree();
    test_zigzag();
    test_varint_known();
    test_varint_arrays();
    test_bitio();
    printf("test_common: %d checks passed (crc32c implementation %d)\n", checks,
           tw_crc32c_best_implementation());
    return 0;
}
