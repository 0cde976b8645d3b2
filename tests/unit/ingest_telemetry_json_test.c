/* Unit tests for the shared JSON telemetry value decoding (src/ingest/telemetry_json.c): the
 * token fast path (ingest_json_token_value) must agree with the full path (jansson +
 * ingest_json_value) on every token it accepts — same type, same bits — and hand everything
 * else back (PL_AGAIN). Edge cases of JSON numbers, then many random ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest/telemetry_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Full path: 0 with *v, or an error. */
static int full(const char *tok, tsdb_value *v, json_t **keep) {
  json_error_t je;
  json_t *j = json_loadb(tok, strlen(tok), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
  if (!j) return PL_EINVAL;
  pl_err err;
  int rc = ingest_json_value("f", j, v, &err);
  *keep = j;
  return rc;
}

/* Checks agreement on tok; returns 1 when the fast path accepted it. */
static int agree(const char *tok) {
  tsdb_value a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  json_t *keep = NULL;
  int rf = full(tok, &a, &keep);
  int rt = ingest_json_token_value(tok, strlen(tok), &b);
  if (rt == 0) {
    if (rf != 0) print_error("token %s: the fast path accepted what the full path refuses\n", tok);
    assert_int_equal(rf, 0);
    assert_int_equal(a.type, b.type);
    switch (a.type) {
    case TSDB_FLOAT:
      if (memcmp(&a.v.f, &b.v.f, sizeof a.v.f) != 0) print_error("token %s: %.17g != %.17g\n", tok, a.v.f, b.v.f);
      assert_memory_equal(&a.v.f, &b.v.f, sizeof a.v.f);
      break;
    case TSDB_BOOL: assert_int_equal(a.v.b, b.v.b); break;
    case TSDB_STRING:
      assert_int_equal(a.v.s.len, b.v.s.len);
      assert_memory_equal(a.v.s.p, b.v.s.p, a.v.s.len);
      break;
    default: fail_msg("unexpected type for %s", tok);
    }
  } else {
    assert_int_equal(rt, PL_AGAIN);
  }
  json_decref(keep);
  return rt == 0;
}

static void test_edge_tokens(void **state) {
  (void)state;
  const char *accepted[] = {"0",     "-0",   "1",      "-1",    "21.5", "1e3",  "1E-3",  "-0.0", "0.1",
                            "1e308", "2.5e-3", "9223372036854775807", "-9223372036854775808",
                            "123456789012345678", "9007199254740993", "true", "false", "\"\"", "\"abc\"",
                            "\"Tibetan \xe0\xbd\x96\xe0\xbd\xbc\xe0\xbd\x91\"", "\"\x7f\""};
  for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
    if (!agree(accepted[i])) print_error("token %s should take the fast path\n", accepted[i]);
    assert_true(agree(accepted[i]));
  }
  const char *handed_back[] = {"null", "\"a\\\"b\"", "\"tab\there\"", "01", "1.", ".5", "+1", "-", "1e", "1e+",
                               "Infinity", "NaN", "tru", "\"unterminated", "9223372036854775808",
                               "-9223372036854775809", "1e400", "-1e400", "4.9e-324", "1e-400", "{\"int\":1}",
                               "[1]", "", "\"", "truex", "0x10", "1 ", " 1"};
  for (size_t i = 0; i < sizeof handed_back / sizeof handed_back[0]; i++) {
    if (agree(handed_back[i])) print_error("token \"%s\" should be handed back\n", handed_back[i]);
    assert_false(agree(handed_back[i]));
  }
}

static uint64_t rng = 0x243F6A8885A308D3u;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void test_random_numbers_agree(void **state) {
  (void)state;
  char tok[64];
  int fast = 0;
  for (int i = 0; i < 200000; i++) {
    uint64_t r = rnd();
    switch (r % 5) {
    case 0: snprintf(tok, sizeof tok, "%lld", (long long)rnd()); break;
    case 1: snprintf(tok, sizeof tok, "%lld", (long long)(rnd() % 100000) - 50000); break;
    case 2: {
      double d;
      uint64_t bits = rnd();
      memcpy(&d, &bits, sizeof d);
      if (!isfinite(d)) d = 1.5;
      snprintf(tok, sizeof tok, "%.17g", d);
      break;
    }
    case 3: snprintf(tok, sizeof tok, "%.*f", (int)(r >> 8) % 8, (double)(rnd() % 1000000) / 997.0); break;
    default: snprintf(tok, sizeof tok, "%de%d", (int)(rnd() % 1000), (int)(rnd() % 700) - 350); break;
    }
    fast += agree(tok);
  }
  /* Most of them are ordinary numbers and take the fast path. */
  assert_true(fast > 150000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_edge_tokens),
      cmocka_unit_test(test_random_numbers_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
