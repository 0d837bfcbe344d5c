/*
 * check.h — the assertion of the C tests (test_*.c only, never kernels).
 *
 * CHECK(cond) counts one check in `checks` (atomically: tests run threads)
 * and, when cond is false, prints the file, line and condition to stderr and
 * exits with status 1, so ctest reports the exact failing check.
 */
#ifndef TW_CHECK_H
#define TW_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        __atomic_add_fetch(&checks, 1, __ATOMIC_RELAXED);                            \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#endif
