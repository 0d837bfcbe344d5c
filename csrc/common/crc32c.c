/*
 * crc32c.c — CRC-32C, hardware-accelerated where the CPU allows.
 *
 * Design. A CRC register update is linear over GF(2): the register after a
 * message is f(register before) XOR g(message). Two consequences carry this
 * file:
 *
 *  1. Three independent streams. The x86-64 crc32 instruction has a latency
 *     of three cycles and a throughput of one per cycle, so a single chain
 *     runs at a third of the possible speed. Large buffers are cut into
 *     three adjacent blocks that are checksummed in one interleaved loop
 *     (the first stream continues the running register, the other two start
 *     from zero), and the three registers are then merged:
 *         reg(A||B) = shift(reg(A), len B) XOR reg_from_zero(B)
 *     where shift(r, n) is "feed n zero bytes", itself linear in r and so a
 *     lookup in four 256-entry tables built once per block size.
 *
 *  2. Combining without data (tw_crc32c_combine): the same shift, computed
 *     as a multiplication by x^(8n) modulo the polynomial.
 *
 * The portable path is slicing-by-8 over eight 256-entry tables. Both paths
 * are checked against each other and against known vectors by
 * test_common.c and by the Python property tests.
 *
 * Tables are built on first use under pthread_once; after that every
 * function is a pure function of its arguments.
 */
#include "crc32c.h"

#include <pthread.h>

#include "byteorder.h"

#define POLY 0x82F63B78u

/* Bytes per stream in the three-stream loops; the tail uses one stream. */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t table8[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static uint32_t x2n_table[32];
static int hardware;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int detect_hardware(void);

/* a * b modulo POLY, both in reflected bit order. */
static uint32_t multmodp(uint32_t a, uint32_t b) {
    uint32_t m = (uint32_t)1 << 31;
    uint32_t p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return p;
}

/* x^(n * 2^k) modulo POLY. */
static uint32_t x2nmodp(uint64_t n, unsigned k) {
    uint32_t p = (uint32_t)1 << 31; /* x^0 */
    while (n) {
        if (n & 1) p = multmodp(x2n_table[k & 31], p);
        n >>= 1;
        k++;
    }
    return p;
}

static void build_shift_table(uint32_t table[4][256], uint64_t nbytes) {
    uint32_t op = x2nmodp(nbytes, 3);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            table[k][b] = multmodp(op, b << (8 * k));
}

static void build_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table8[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table8[0][n];
        for (int k = 1; k < 8; k++) {
            c = table8[0][c & 0xff] ^ (c >> 8);
            table8[k][n] = c;
        }
    }
    uint32_t p = (uint32_t)1 << 30; /* x^1 */
    x2n_table[0] = p;
    for (int n = 1; n < 32; n++) x2n_table[n] = p = multmodp(p, p);
    build_shift_table(shift_long, LONG_BLOCK);
    build_shift_table(shift_short, SHORT_BLOCK);
    hardware = detect_hardware();
}

static inline void ensure_tables(void) { pthread_once(&tables_once, build_tables); }

static inline uint32_t shift(const uint32_t table[4][256], uint32_t reg) {
    return table[0][reg & 0xff] ^ table[1][(reg >> 8) & 0xff] ^
           table[2][(reg >> 16) & 0xff] ^ table[3][reg >> 24];
}

/* Raw register update, no pre/post inversion. */
static uint32_t software_update(uint32_t reg, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        reg = table8[0][(reg ^ *p++) & 0xff] ^ (reg >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t word = tw_load_le64(p) ^ reg;
        reg = table8[7][word & 0xff] ^ table8[6][(word >> 8) & 0xff] ^
              table8[5][(word >> 16) & 0xff] ^ table8[4][(word >> 24) & 0xff] ^
              table8[3][(word >> 32) & 0xff] ^ table8[2][(word >> 40) & 0xff] ^
              table8[1][(word >> 48) & 0xff] ^ table8[0][word >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) reg = table8[0][(reg ^ *p++) & 0xff] ^ (reg >> 8);
    return reg;
}

uint32_t tw_crc32c_software(uint32_t crc, const void *data, size_t len) {
    ensure_tables();
    return ~software_update(~crc, (const unsigned char *)data, len);
}

int tw_crc32c_hardware_available(void) {
    ensure_tables();
    return hardware;
}

uint32_t tw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    ensure_tables();
    return multmodp(x2nmodp(len_b, 3), crc_a) ^ crc_b;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_X86_HARDWARE 1

#define TARGET_SSE42 __attribute__((target("sse4.2")))

/* One interleaved pass over three adjacent blocks of `block` bytes. */
#define THREE_STREAMS(block, table)                                        \
    while (len >= 3 * (size_t)(block)) {                                   \
        uint64_t r1 = 0, r2 = 0;                                           \
        const unsigned char *end = p + (block);                            \
        do {                                                               \
            r0 = _mm_crc32_u64(r0, tw_load_le64(p));                       \
            r1 = _mm_crc32_u64(r1, tw_load_le64(p + (block)));             \
            r2 = _mm_crc32_u64(r2, tw_load_le64(p + 2 * (block)));         \
            p += 8;                                                        \
        } while (p < end);                                                 \
        r0 = shift(table, (uint32_t)r0) ^ (uint32_t)r1;                    \
        r0 = shift(table, (uint32_t)r0) ^ (uint32_t)r2;                    \
        p += 2 * (block);                                                  \
        len -= 3 * (size_t)(block);                                        \
    }

TARGET_SSE42 static uint32_t hardware_update(uint32_t reg, const unsigned char *p, size_t len) {
    while (len && ((uintptr_t)p & 7)) {
        reg = _mm_crc32_u8(reg, *p++);
        len--;
    }
    uint64_t r0 = reg;
    THREE_STREAMS(LONG_BLOCK, shift_long)
    THREE_STREAMS(SHORT_BLOCK, shift_short)
    while (len >= 8) {
        r0 = _mm_crc32_u64(r0, tw_load_le64(p));
        p += 8;
        len -= 8;
    }
    reg = (uint32_t)r0;
    while (len--) reg = _mm_crc32_u8(reg, *p++);
    return reg;
}

static int detect_hardware(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

uint32_t tw_crc32c(uint32_t crc, const void *data, size_t len) {
    ensure_tables();
    if (hardware)
        return ~hardware_update(~crc, (const unsigned char *)data, len);
    return ~software_update(~crc, (const unsigned char *)data, len);
}

#else

static int detect_hardware(void) { return 0; }

uint32_t tw_crc32c(uint32_t crc, const void *data, size_t len) {
    return tw_crc32c_software(crc, data, len);
}

#endif
