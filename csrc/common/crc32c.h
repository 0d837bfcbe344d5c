/*
 * crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * The checksum that frames every record trusswork writes: WAL records,
 * B+tree pages, time-series chunks. It is the CRC that iSCSI, ext4, SCTP
 * and Kafka use, and the one CPUs accelerate (SSE4.2 crc32 on x86-64).
 *
 * Values are the finished checksums a user sees: CRC32C("123456789") is
 * 0xE3069283. The `crc` argument continues a previous checksum, so
 * tw_crc32c(tw_crc32c(0, a, n), b, m) equals the checksum of a followed by
 * b; start with 0.
 *
 * Buffers are borrowed: the functions read `len` bytes at `data` and keep
 * nothing. All functions are thread-safe and never fail.
 */
#ifndef TW_CRC32C_H
#define TW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Implementations, slowest to fastest; each CPU supports a prefix. */
#define TW_CRC32C_SOFTWARE 0 /* slicing-by-8 tables, any CPU */
#define TW_CRC32C_SSE42 1    /* x86-64 crc32 instruction, three streams */
#define TW_CRC32C_FUSED 2    /* crc32 streams + AVX2 VPCLMULQDQ folding */

/* Checksum with the fastest implementation this CPU supports. */
uint32_t tw_crc32c(uint32_t crc, const void *data, size_t len);

/* Portable slicing-by-8 table implementation; same results. */
uint32_t tw_crc32c_software(uint32_t crc, const void *data, size_t len);

/* 1 when tw_crc32c uses a hardware instruction on this CPU, else 0. */
int tw_crc32c_hardware_available(void);

/* The implementation tw_crc32c uses here (TW_CRC32C_*). */
int tw_crc32c_best_implementation(void);

/* 1 when `implementation` can run on this CPU. */
int tw_crc32c_implementation_available(int implementation);

/* Checksum with a chosen implementation (for tests and benchmarks); one this
 * CPU lacks is replaced by the best available one. */
uint32_t tw_crc32c_using(int implementation, uint32_t crc, const void *data, size_t len);

/* The checksum of A||B from crc(A), crc(B) and len(B), without the data. */
uint32_t tw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
