/*
 * status.h — the status codes every trusswork C kernel returns.
 *
 * Kernels return int: 0 is success, a negative value is one of the codes
 * below. The Cython layer turns each code into the matching
 * trusswork.core.errors class in exactly one place per kernel, so a new
 * code must be added here and in src/trusswork/core/_status.pxi together.
 */
#ifndef TW_STATUS_H
#define TW_STATUS_H

#define TW_OK 0
#define TW_ERR_NOSPACE (-1)   /* the caller's output buffer is too small */
#define TW_ERR_TRUNCATED (-2) /* input ended in the middle of an item */
#define TW_ERR_OVERFLOW (-3)  /* a value does not fit its declared width */
#define TW_ERR_INVALID (-4)   /* an argument is out of its documented range */
#define TW_ERR_CORRUPT (-5)   /* stored bytes fail a checksum or format rule */
#define TW_ERR_IO (-6)        /* the operating system refused; see errno */
#define TW_ERR_NOMEM (-7)     /* an allocation failed */

#endif
