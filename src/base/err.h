/* Error codes shared by every module.
 *
 * Functions that can fail return int: 0 (or a non-negative count) on success, a negative PL_E*
 * code on failure. A human-readable message, when useful, goes into a caller-supplied pl_err.
 */
#ifndef PLATEAU_BASE_ERR_H
#define PLATEAU_BASE_ERR_H

#include <stddef.h>

enum {
  PL_OK = 0,
  PL_ENOMEM = -1,    /* out of memory */
  PL_EINVAL = -2,    /* invalid argument or input */
  PL_EIO = -3,       /* I/O error (read, write, fsync) */
  PL_ENOTFOUND = -4, /* no such object */
  PL_EPERM = -5,     /* not permitted */
  PL_AGAIN = -6,     /* input ran out; call again with more (resumable parsers) */
  PL_EEXIST = -7,    /* already exists */
  PL_ELIMIT = -8,    /* a size, count or time limit was exceeded */
  PL_EBUSY = -9,     /* resource busy (locked data directory, busy database) */
  PL_ECORRUPT = -10, /* stored data failed a check (CRC, hash chain, format) */
  PL_EAUTH = -11,    /* missing or bad credentials */
  PL_ECONFLICT = -12,/* conflicts with existing state (type conflict, version) */
  PL_ESTATE = -13,   /* not possible in the current state (engine failed, shut down) */
  PL_ETIMEDOUT = -14,/* a deadline passed */
  PL_EUNSUPPORTED = -15, /* recognised but not supported */
};

/* A short, static, lower-case description of a PL_E* code. Never NULL. */
const char *pl_strerror(int code);

/* A caller-supplied buffer for a human-readable message that explains an error. */
typedef struct pl_err {
  char msg[256];
} pl_err;

/* Formats a message into err (which may be NULL) and returns code, so call sites can write
 * `return pl_err_set(err, PL_EINVAL, "name too long (%zu > %d)", n, max);`. */
int pl_err_set(pl_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
