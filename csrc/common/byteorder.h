/*
 * byteorder.h — little-endian loads and stores at unaligned addresses.
 *
 * Every on-disk integer in trusswork is little-endian. memcpy keeps these
 * free of alignment and aliasing traps; compilers turn each into one move.
 */
#ifndef TW_BYTEORDER_H
#define TW_BYTEORDER_H

#include <stdint.h>
#include <string.h>

static inline uint32_t tw_load_le32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t tw_load_le64(const void *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void tw_store_le32(void *p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline void tw_store_le64(void *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, sizeof v);
}

#endif
