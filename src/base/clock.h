/* Time helpers: wall clock in ns and ms, a monotonic clock, RFC 3339 formatting and parsing,
 * and durations like "100ms", "30s", "12h", "7d". */
#ifndef PLATEAU_BASE_CLOCK_H
#define PLATEAU_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t pl_now_ns(void);   /* CLOCK_REALTIME, ns since the epoch */
int64_t pl_now_ms(void);   /* CLOCK_REALTIME, ms since the epoch */
int64_t pl_mono_ns(void);  /* CLOCK_MONOTONIC, ns */

/* Formats ts_ns (UTC) as RFC 3339 with as many fractional digits as needed (0, 3, 6 or 9),
 * e.g. "2026-11-29T06:05:34.123Z". Returns out. outsz >= 36 always suffices. */
char *pl_time_format(int64_t ts_ns, char *out, size_t outsz);
/* Parses RFC 3339 ("2026-11-29T06:05:34Z", fractional seconds up to ns, "Z" or "+08:00").
 * Returns 0 and writes *ts_ns, or PL_EINVAL. */
int pl_time_parse(const char *s, int64_t *ts_ns);
/* Parses a duration: an integer with unit ns|us|ms|s|m|h|d|w, e.g. "90s", "1h". Returns 0 or
 * PL_EINVAL (also on overflow). */
int pl_duration_parse(const char *s, int64_t *ns);

#endif
