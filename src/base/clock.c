/* Clocks, RFC 3339 and durations (see clock.h). */
#include "base/clock.h"

#include "base/err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t pl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pl_now_ms(void) {
  return pl_now_ns() / 1000000;
}

int64_t pl_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

char *pl_time_format(int64_t ts_ns, char *out, size_t outsz) {
  int64_t secs = ts_ns / 1000000000, frac = ts_ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    secs -= 1;
  }
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  int n = snprintf(out, outsz, "%04lld-%02d-%02dT%02d:%02d:%02d", (long long)y, m, d, (int)(rem / 3600),
                   (int)(rem / 60 % 60), (int)(rem % 60));
  if (n < 0 || (size_t)n >= outsz) return out;
  if (frac) {
    if (frac % 1000000 == 0)
      n += snprintf(out + n, outsz - (size_t)n, ".%03lld", (long long)(frac / 1000000));
    else if (frac % 1000 == 0)
      n += snprintf(out + n, outsz - (size_t)n, ".%06lld", (long long)(frac / 1000));
    else
      n += snprintf(out + n, outsz - (size_t)n, ".%09lld", (long long)frac);
  }
  if (n >= 0 && (size_t)n < outsz) snprintf(out + n, outsz - (size_t)n, "Z");
  return out;
}

static int digits(const char **p, int count, int *out) {
  int v = 0;
  for (int i = 0; i < count; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return PL_EINVAL;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += count;
  *out = v;
  return 0;
}

int pl_time_parse(const char *s, int64_t *ts_ns) {
  int y, mo, d, h, mi, se;
  const char *p = s;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
    return PL_EINVAL;
  if (*p != 'T' && *p != 't' && *p != ' ') return PL_EINVAL;
  p++;
  if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
    return PL_EINVAL;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60) return PL_EINVAL;
  if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return PL_EINVAL;
  int64_t frac = 0;
  if (*p == '.') {
    p++;
    int n = 0;
    while (isdigit((unsigned char)*p)) {
      if (n < 9) {
        frac = frac * 10 + (*p - '0');
        n++;
      }
      p++;
    }
    if (n == 0) return PL_EINVAL;
    for (; n < 9; n++) frac *= 10;
  }
  int64_t offset = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59) return PL_EINVAL;
    offset = sign * (oh * 3600 + om * 60);
  } else {
    return PL_EINVAL;
  }
  if (*p) return PL_EINVAL;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
  /* int64 ns covers 1677..2262. */
  if (secs > INT64_MAX / 1000000000 - 1 || secs < INT64_MIN / 1000000000 + 1) return PL_EINVAL;
  *ts_ns = secs * 1000000000 + frac;
  return 0;
}

int pl_duration_parse(const char *s, int64_t *ns) {
  if (!s || !isdigit((unsigned char)*s)) return PL_EINVAL;
  int64_t v = 0;
  while (isdigit((unsigned char)*s)) {
    if (v > (INT64_MAX - 9) / 10) return PL_EINVAL;
    v = v * 10 + (*s++ - '0');
  }
  static const struct {
    const char *unit;
    int64_t ns;
  } units[] = {{"ns", 1},
               {"us", 1000},
               {"ms", 1000000},
               {"s", 1000000000},
               {"m", 60LL * 1000000000},
               {"h", 3600LL * 1000000000},
               {"d", 86400LL * 1000000000},
               {"w", 7 * 86400LL * 1000000000}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(s, units[i].unit) == 0) {
      if (v > INT64_MAX / units[i].ns) return PL_EINVAL;
      *ns = v * units[i].ns;
      return 0;
    }
  }
  return PL_EINVAL;
}
