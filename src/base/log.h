/* Logging: one line per event, `time level module key=value...`, to stderr (or a file).
 *
 * PL_LOG checks the level before evaluating its arguments. Messages are key=value pairs written
 * by the caller's format string, e.g.
 *   PL_LOG(PL_LOG_INFO, "http", "req=%llu method=%s path=%s status=%d", id, m, p, s);
 * Values that may hold spaces should be quoted with pl_log_quote(). Secrets never reach a log:
 * callers log token prefixes, never tokens or passwords.
 */
#ifndef PLATEAU_BASE_LOG_H
#define PLATEAU_BASE_LOG_H

#include <stdio.h>

enum { PL_LOG_ERROR = 0, PL_LOG_WARN = 1, PL_LOG_INFO = 2, PL_LOG_DEBUG = 3 };

/* The level is process-wide state set once at start-up (before threads start) and read by
 * every thread: the one exception to "no mutable globals", as it is for every logger. */
extern int pl_log_level;

void pl_log_set_level(int level);
/* Parses "error|warn|info|debug"; returns the level or PL_EINVAL. */
int pl_log_level_parse(const char *name);
/* Sends log lines to f (default stderr). Not thread-safe with concurrent logging: call at start. */
void pl_log_set_file(FILE *f);
void pl_log_write(int level, const char *module, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#define PL_LOG(level, module, ...)                                                                 \
  do {                                                                                             \
    if ((level) <= pl_log_level) pl_log_write((level), (module), __VA_ARGS__);                     \
  } while (0)

/* Copies s into out (size outsz) as a log value: unchanged when it has no space, quote or
 * control character, else double-quoted with \" \\ and \xNN escapes; truncated to fit. */
const char *pl_log_quote(const char *s, char *out, size_t outsz);

#endif
