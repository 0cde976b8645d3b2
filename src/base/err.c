/* Error code names and the pl_err message helper. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *pl_strerror(int code) {
  switch (code) {
  case PL_OK: return "ok";
  case PL_ENOMEM: return "out of memory";
  case PL_EINVAL: return "invalid input";
  case PL_EIO: return "i/o error";
  case PL_ENOTFOUND: return "not found";
  case PL_EPERM: return "not permitted";
  case PL_AGAIN: return "more input needed";
  case PL_EEXIST: return "already exists";
  case PL_ELIMIT: return "limit exceeded";
  case PL_EBUSY: return "busy";
  case PL_ECORRUPT: return "corrupt data";
  case PL_EAUTH: return "authentication failed";
  case PL_ECONFLICT: return "conflict";
  case PL_ESTATE: return "wrong state";
  case PL_ETIMEDOUT: return "timed out";
  case PL_EUNSUPPORTED: return "unsupported";
  default: return "unknown error";
  }
}

int pl_err_set(pl_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}
