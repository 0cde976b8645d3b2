/* One-line key=value logging with a level check before argument evaluation (see log.h). */
#include "base/log.h"

#include "base/err.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int pl_log_level = PL_LOG_INFO;
static FILE *log_file;

void pl_log_set_level(int level) {
  pl_log_level = level;
}

int pl_log_level_parse(const char *name) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcasecmp(name, names[i]) == 0) return i;
  return PL_EINVAL;
}

void pl_log_set_file(FILE *f) {
  log_file = f;
}

void pl_log_write(int level, const char *module, const char *fmt, ...) {
  static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   names[level < 0 ? 0 : level > 3 ? 3 : level], module);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = strnlen(line, sizeof line - 2);
  line[len++] = '\n';
  /* One fwrite per line keeps lines whole when threads log at once. */
  fwrite(line, 1, len, log_file ? log_file : stderr);
}

const char *pl_log_quote(const char *s, char *out, size_t outsz) {
  if (!s) s = "";
  int plain = *s != 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == '"' || *p == '\\' || *p >= 0x7f) plain = 0;
  if (plain) {
    snprintf(out, outsz, "%s", s);
    return out;
  }
  size_t o = 0;
  if (outsz < 3) {
    if (outsz) out[0] = 0;
    return out;
  }
  out[o++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p && o + 6 < outsz; p++) {
    if (*p == '"' || *p == '\\') {
      out[o++] = '\\';
      out[o++] = (char)*p;
    } else if (*p < ' ' || *p == 0x7f) {
      o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", *p);
    } else {
      out[o++] = (char)*p;
    }
  }
  out[o++] = '"';
  out[o] = 0;
  return out;
}
