/* Unit tests for the line-protocol parser (src/ingest/lineproto.c): every escaping rule, every
 * value type and its edge values, precisions and timestamp ranges, comments, blank lines and
 * CRLF, errors with InfluxDB's phrases and line numbers, the limits, and reuse of a batch.
 * The expected behaviour is InfluxDB 1.6's, observed on the real server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingest/lineproto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_NS 1700000000123456789LL

/* ---- helpers ---- */

static lp_batch batch;

static int setup(void **state) {
  (void)state;
  lp_batch_init(&batch);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  lp_batch_free(&batch);
  return 0;
}

static int parse_prec(const char *text, lp_precision prec, lp_error *err) {
  return lp_parse(text, strlen(text), prec, NOW_NS, NULL, &batch, err);
}

/* Parses text (ns) and asserts success with n rows. */
static void ok(const char *text, int n) {
  lp_error err;
  int rc = parse_prec(text, LP_PRECISION_NS, &err);
  if (rc < 0)
    fail_msg("parsing \"%s\" failed: %s (line %u)", text, err.reason, (unsigned)err.line);
  assert_int_equal(rc, n);
  assert_int_equal(batch.nrows, (size_t)n);
}

/* Parses text and asserts the error message is exactly `message`. */
static void bad(const char *text, const char *message) {
  lp_error err;
  int rc = parse_prec(text, LP_PRECISION_NS, &err);
  if (rc >= 0)
    fail_msg("parsing \"%s\" succeeded; expected: %s", text, message);
  assert_int_equal(batch.nrows, 0);
  pl_buf out;
  pl_buf_init(&out, 0);
  assert_int_equal(lp_error_format(&err, text, 1000, &out), 0);
  assert_string_equal(pl_buf_cstr(&out), message);
  pl_buf_free(&out);
}

static void assert_str(tsdb_str s, const char *want) {
  char got[512];
  snprintf(got, sizeof got, "%.*s", (int)s.len, s.p);
  assert_string_equal(got, want);
  assert_int_equal(s.len, strlen(want));
}

static const tsdb_value *field(size_t row, const char *name) {
  const tsdb_row *r = &batch.rows[row];
  for (size_t i = 0; i < r->nfields; i++)
    if (r->fields[i].name.len == strlen(name) &&
        memcmp(r->fields[i].name.p, name, strlen(name)) == 0)
      return &r->fields[i].value;
  fail_msg("row %zu has no field %s", row, name);
  return NULL;
}

static double float_of(const char *line) {
  ok(line, 1);
  const tsdb_value *v = field(0, "v");
  assert_int_equal(v->type, TSDB_FLOAT);
  return v->v.f;
}

/* ---- the shape of a point ---- */

static void test_point_parts(void **state) {
  (void)state;
  const char *text = "weather,location=lhasa,sensor=s1 "
                     "temperature=21.5,humidity=40i,ok=true,note=\"fine\" 1465839830100400200";
  ok(text, 1);
  const tsdb_row *r = &batch.rows[0];
  assert_str(r->measurement, "weather");
  assert_int_equal(r->ntags, 2);
  assert_str(r->tags[0].key, "location");
  assert_str(r->tags[0].value, "lhasa");
  assert_str(r->tags[1].key, "sensor");
  assert_str(r->tags[1].value, "s1");
  assert_int_equal(r->nfields, 4);
  assert_int_equal(field(0, "temperature")->type, TSDB_FLOAT);
  assert_true(field(0, "temperature")->v.f == 21.5);
  assert_int_equal(field(0, "humidity")->type, TSDB_INT);
  assert_int_equal(field(0, "humidity")->v.i, 40);
  assert_int_equal(field(0, "ok")->type, TSDB_BOOL);
  assert_int_equal(field(0, "ok")->v.b, 1);
  assert_int_equal(field(0, "note")->type, TSDB_STRING);
  assert_str(field(0, "note")->v.s, "fine");
  assert_int_equal(r->ts_ns, 1465839830100400200LL);
  assert_int_equal(batch.lines[0], 1);
  /* Names that need no unescaping point into the input. */
  assert_ptr_equal(r->measurement.p, text);
  assert_ptr_equal(r->tags[0].key.p, text + 8);
  /* No tags; several spaces between the parts; no timestamp takes now. */
  ok("m  v=1   5", 1);
  assert_int_equal(batch.rows[0].ntags, 0);
  assert_non_null(batch.rows[0].tags); /* valid even when empty */
  assert_int_equal(batch.rows[0].ts_ns, 5);
  ok("m v=1", 1);
  assert_int_equal(batch.rows[0].ts_ns, NOW_NS);
  /* Tag order is kept (the engine sorts); quotes and '=' are ordinary bytes in names. */
  ok("q\"m,t\"a=v\"b,a=1 f=\"x y\" 2", 1);
  assert_str(batch.rows[0].measurement, "q\"m");
  assert_str(batch.rows[0].tags[0].key, "t\"a");
  assert_str(batch.rows[0].tags[0].value, "v\"b");
  assert_str(batch.rows[0].tags[1].key, "a");
  ok("eq=m \"v\"=1 4", 1);
  assert_str(batch.rows[0].measurement, "eq=m");
  assert_str(batch.rows[0].fields[0].name, "\"v\"");
  ok("time v=1 1", 1); /* a measurement may be called time */
}

/* ---- escaping ---- */

static void test_escapes_in_names(void **state) {
  (void)state;
  ok("a\\,x\\ y\\=z v=1 1", 1);
  assert_str(batch.rows[0].measurement, "a,x y=z");
  ok("c\\\\z v=1 1", 1); /* a backslash before anything else is kept: two stay two */
  assert_str(batch.rows[0].measurement, "c\\\\z");
  ok("f\\x v=1 1", 1);
  assert_str(batch.rows[0].measurement, "f\\x");
  ok("m,t\\,k\\=\\ x=a\\,b\\=c\\ d v=1 1", 1);
  assert_str(batch.rows[0].tags[0].key, "t,k= x");
  assert_str(batch.rows[0].tags[0].value, "a,b=c d");
  ok("m,t=a\\x\\\\y v=1 1", 1);
  assert_str(batch.rows[0].tags[0].value, "a\\x\\\\y");
  ok("m f\\,k\\=\\ x=1 1", 1);
  assert_str(batch.rows[0].fields[0].name, "f,k= x");
  /* The byte after a run of backslashes is escaped, and the last backslash of the run is the
   * one dropped: "a\\,b" is a, backslash, comma, b. */
  ok("m,t=a\\\\,b v=1 1", 1);
  assert_str(batch.rows[0].tags[0].value, "a\\,b");
  bad("e\\\\ v=1 1", "unable to parse 'e\\\\ v=1 1': invalid field format (line 1)");
  bad("j,t\\\\=1 v=1 1", "unable to parse 'j,t\\\\=1 v=1 1': missing tag value (line 1)");
  bad("k,t=\\\\ v=1 1", "unable to parse 'k,t=\\\\ v=1 1': invalid tag format (line 1)");
  bad("p f\\\\=1 1", "unable to parse 'p f\\\\=1 1': invalid field format (line 1)");
  /* An escaped space does not end the measurement; a backslash at the end escapes nothing. */
  bad("m20\\ v=1", "unable to parse 'm20\\ v=1': missing fields (line 1)");
  bad("m21\\", "unable to parse 'm21\\': missing fields (line 1)");
  /* Unescaped copies live in the batch's arena, not in the input. */
  const char *text = "x\\ y v=1";
  ok(text, 1);
  assert_true(batch.rows[0].measurement.p < text ||
              batch.rows[0].measurement.p >= text + strlen(text));
}

static void test_string_values(void **state) {
  (void)state;
  ok("q f=\"s\\\"q\\\\b\\n\" 1", 1);
  assert_str(field(0, "f")->v.s, "s\"q\\b\\n"); /* \" and \\ unescape; \n stays two bytes */
  ok("r f=\"\\\\\" 1", 1);
  assert_str(field(0, "f")->v.s, "\\");
  ok("s f=\"\\\\\\\"\" 1", 1);
  assert_str(field(0, "f")->v.s, "\\\"");
  ok("m a=\"\",b=\"x, y=z \\\\\" 1", 1);
  assert_str(field(0, "a")->v.s, "");
  assert_str(field(0, "b")->v.s, "x, y=z \\");
  ok("m v=\"ལྷ་ས 拉萨\" 1", 1);
  assert_str(field(0, "v")->v.s, "ལྷ་ས 拉萨");
  /* A quoted string may hold newlines; the next point's line number counts them. */
  ok("nl s=\"line1\nline2\" 3\nx v=1 4", 2);
  assert_str(field(0, "s")->v.s, "line1\nline2");
  assert_int_equal(batch.lines[0], 1);
  assert_int_equal(batch.lines[1], 3);
  bad("nl s=\"a\nb\" 3\nbad", "unable to parse 'bad': missing fields (line 3)");
  bad("m5 v=\"abc 2", "unable to parse 'm5 v=\"abc 2': unbalanced quotes (line 1)");
  bad("m v=1 1\nm5 v=\"abc 2\nm v=2 2\n",
      "unable to parse 'm5 v=\"abc 2\nm v=2 2': unbalanced quotes (line 2)");
  bad("m8 v=\"a\\\" 8", "unable to parse 'm8 v=\"a\\\" 8': unbalanced quotes (line 1)");
  bad("m v=\"a\"b 5", "unable to parse 'm v=\"a\"b 5': invalid field format (line 1)");
  /* The engine's limit on one string. */
  size_t n = TSDB_STRING_BYTES_MAX;
  char *big = malloc(n + 32);
  memcpy(big, "m v=\"", 5);
  memset(big + 5, 'x', n);
  strcpy(big + 5 + n, "\" 1");
  ok(big, 1);
  assert_int_equal(field(0, "v")->v.s.len, n);
  memset(big + 5, 'x', n + 1);
  strcpy(big + 6 + n, "\" 1");
  lp_error err;
  assert_int_equal(parse_prec(big, LP_PRECISION_NS, &err), PL_EINVAL);
  assert_string_equal(err.reason, "string value longer than 65536 bytes");
  /* ... counted after unescaping */
  memset(big + 5, 'x', n);
  big[5] = '\\', big[6] = '"';
  strcpy(big + 5 + n + 1, "\" 1");
  ok(big, 1);
  assert_int_equal(field(0, "v")->v.s.len, n);
  free(big);
}

/* ---- values ---- */

static void test_floats(void **state) {
  (void)state;
  assert_true(float_of("m v=1 1") == 1.0);
  assert_true(float_of("m v=1. 1") == 1.0);
  assert_true(float_of("m v=.5 1") == 0.5);
  assert_true(float_of("m v=-.5 1") == -0.5);
  assert_true(float_of("m v=01 1") == 1.0);
  assert_true(float_of("m v=1.5e3 1") == 1500.0);
  assert_true(float_of("m v=1E3 1") == 1000.0);
  assert_true(float_of("m v=1e+5 1") == 1e5);
  assert_true(float_of("m v=2.5E-3 1") == 2.5e-3);
  assert_true(float_of("m v=0.1 1") == 0.1);
  assert_true(float_of("m v=-1.7976931348623157e308 1") == -1.7976931348623157e308);
  assert_true(float_of("m v=2.2250738585072014e-308 1") == 2.2250738585072014e-308);
  assert_true(float_of("m v=4.9e-324 1") == 4.9e-324);
  assert_true(float_of("m v=1e-400 1") == 0.0); /* underflow is zero, as in InfluxDB */
  assert_true(float_of("m v=123456789012345678901234567890 1") == 123456789012345678901234567890.0);
  assert_true(float_of("m v=0.30000000000000004441 1") == 0.30000000000000004441);
  double z = float_of("m v=-0 1");
  assert_true(z == 0.0 && signbit(z));
  assert_true(float_of("m v=9007199254740993 1") == 9007199254740993.0); /* 2^53 + 1 rounds */
  /* Every float the fast path takes is the value strtod gives. */
  srand(7);
  for (int i = 0; i < 20000; i++) {
    char num[64], line[96];
    int ip = rand() % 100000, fp = rand(), fd = 1 + rand() % 9, e = rand() % 40 - 20;
    if (i % 3 == 0)
      snprintf(num, sizeof num, "%d.%0*d", ip, fd, fp % 1000000000);
    else if (i % 3 == 1)
      snprintf(num, sizeof num, "-%d.%0*de%d", ip, fd, fp % 1000000000, e);
    else
      snprintf(num, sizeof num, "%.*g", 1 + rand() % 17,
               (double)rand() / (double)(rand() + 1) * pow(10, e));
    snprintf(line, sizeof line, "m v=%s 1", num);
    double want = strtod(num, NULL);
    double got = float_of(line);
    if (memcmp(&got, &want, sizeof got) != 0)
      fail_msg("%s parsed as %.17g, strtod gives %.17g", num, got, want);
  }
  bad("m4 v=inf 2", "unable to parse 'm4 v=inf 2': invalid boolean (line 1)");
  bad("m4 v=NaN 2", "unable to parse 'm4 v=NaN 2': invalid number (line 1)");
  bad("m4 v=nan 2", "unable to parse 'm4 v=nan 2': invalid number (line 1)");
  bad("m4 v=-Inf 2", "unable to parse 'm4 v=-Inf 2': invalid number (line 1)");
  bad("m4 v=1e400 2", "unable to parse 'm4 v=1e400 2': invalid float (line 1)");
  bad("m4 v=-1e400 2", "unable to parse 'm4 v=-1e400 2': invalid float (line 1)");
  bad("n1 v=1e 2", "unable to parse 'n1 v=1e 2': invalid float (line 1)");
  bad("n1 v=1e+ 2", "unable to parse 'n1 v=1e+ 2': invalid float (line 1)");
  bad("n1 v=1.2.3 2", "unable to parse 'n1 v=1.2.3 2': invalid number (line 1)");
  bad("n1 v=1-2 2", "unable to parse 'n1 v=1-2 2': invalid number (line 1)");
  bad("n1 v=- 2", "unable to parse 'n1 v=- 2': invalid number (line 1)");
  bad("n1 v=. 2", "unable to parse 'n1 v=. 2': invalid number (line 1)");
  bad("m5 v=+1 2", "unable to parse 'm5 v=+1 2': invalid boolean (line 1)");
  bad("m5 v=1_0 2", "unable to parse 'm5 v=1_0 2': invalid number (line 1)");
  bad("m5 v=0x10 2", "unable to parse 'm5 v=0x10 2': invalid number (line 1)");
  bad("m5 v= 2", "unable to parse 'm5 v= 2': missing field value (line 1)");
  bad("m5 v=,w=1 2", "unable to parse 'm5 v=,w=1 2': missing field value (line 1)");
  bad("m5 v=", "unable to parse 'm5 v=': missing field value (line 1)");
  bad("b3 v=1\t2", "unable to parse 'b3 v=1\t2': invalid number (line 1)");
}

static void test_integers(void **state) {
  (void)state;
  ok("m "
     "a=0i,b=-1i,c=9223372036854775807i,d=-9223372036854775808i,e=42u,f=9223372036854775807u,g=0u "
     "1",
     1);
  assert_int_equal(field(0, "a")->type, TSDB_INT);
  assert_int_equal(field(0, "a")->v.i, 0);
  assert_int_equal(field(0, "b")->v.i, -1);
  assert_int_equal(field(0, "c")->v.i, INT64_MAX);
  assert_int_equal(field(0, "d")->v.i, INT64_MIN);
  assert_int_equal(field(0, "e")->type, TSDB_INT); /* unsigned is stored as an integer */
  assert_int_equal(field(0, "e")->v.i, 42);
  assert_int_equal(field(0, "f")->v.i, INT64_MAX);
  assert_int_equal(field(0, "g")->v.i, 0);
  bad("m3 v=9223372036854775808i 2",
      "unable to parse 'm3 v=9223372036854775808i 2': unable to parse integer 9223372036854775808: "
      "strconv.ParseInt: parsing \"9223372036854775808\": value out of range (line 1)");
  bad("m3 v=-9223372036854775809i 2",
      "unable to parse 'm3 v=-9223372036854775809i 2': unable to parse integer "
      "-9223372036854775809: "
      "strconv.ParseInt: parsing \"-9223372036854775809\": value out of range (line 1)");
  bad("m3 v=99999999999999999999999i 2",
      "unable to parse 'm3 v=99999999999999999999999i 2': unable to parse integer "
      "99999999999999999999999: "
      "strconv.ParseInt: parsing \"99999999999999999999999\": value out of range (line 1)");
  bad("m3 v=9223372036854775808u 2", "unable to parse 'm3 v=9223372036854775808u 2': unable to "
                                     "parse unsigned 9223372036854775808: value out of "
                                     "range (at most 9223372036854775807) (line 1)");
  bad("m3 v=18446744073709551615u 2", "unable to parse 'm3 v=18446744073709551615u 2': unable to "
                                      "parse unsigned 18446744073709551615: value out "
                                      "of range (at most 9223372036854775807) (line 1)");
  bad("m5 v=-1u 2", "unable to parse 'm5 v=-1u 2': invalid number (line 1)");
  bad("n1 v=1ii 2", "unable to parse 'n1 v=1ii 2': invalid number (line 1)");
  bad("n1 v=1.5i 2", "unable to parse 'n1 v=1.5i 2': invalid number (line 1)");
  bad("n1 v=1e3i 2", "unable to parse 'n1 v=1e3i 2': invalid number (line 1)");
  bad("n1 v=-i 2", "unable to parse 'n1 v=-i 2': invalid number (line 1)");
  bad("n1 v=1i0 2", "unable to parse 'n1 v=1i0 2': invalid number (line 1)");
}

static void test_booleans(void **state) {
  (void)state;
  ok("b a=true,b=True,c=TRUE,d=t,e=T,f=false,g=False,h=FALSE,i=f,j=F 2", 1);
  const char *names = "abcdefghij";
  for (int i = 0; i < 10; i++) {
    char n[2] = {names[i], 0};
    assert_int_equal(field(0, n)->type, TSDB_BOOL);
    assert_int_equal(field(0, n)->v.b, i < 5);
  }
  const char *wrong[] = {"tRUE", "TrUe", "tr", "truex", "fals", "FAlse", "yes", "on", "1b"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
    char line[64], msg[160];
    snprintf(line, sizeof line, "b a=%s 2", wrong[i]);
    snprintf(msg, sizeof msg, "unable to parse '%s': %s (line 1)", line,
             wrong[i][0] == '1' ? "invalid number" : "invalid boolean");
    bad(line, msg);
  }
}

/* ---- time ---- */

static void test_timestamps_and_precision(void **state) {
  (void)state;
  lp_error err;
  static const struct {
    lp_precision p;
    int64_t unit;
  } units[] = {{LP_PRECISION_NS, 1},
               {LP_PRECISION_US, 1000},
               {LP_PRECISION_MS, 1000000},
               {LP_PRECISION_S, 1000000000},
               {LP_PRECISION_M, 60000000000LL},
               {LP_PRECISION_H, 3600000000000LL}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    assert_int_equal(parse_prec("m v=1 3\nm v=2 -2\nm v=3", units[i].p, &err), 3);
    assert_int_equal(batch.rows[0].ts_ns, 3 * units[i].unit);
    assert_int_equal(batch.rows[1].ts_ns, -2 * units[i].unit);
    /* without a timestamp: now, truncated to the precision */
    assert_int_equal(batch.rows[2].ts_ns, NOW_NS - NOW_NS % units[i].unit);
  }
  /* InfluxDB's range is [MinInt64 + 2, MaxInt64 - 1]. */
  ok("m v=1 9223372036854775806\nm v=1 -9223372036854775806", 2);
  assert_int_equal(batch.rows[0].ts_ns, INT64_MAX - 1);
  assert_int_equal(batch.rows[1].ts_ns, INT64_MIN + 2);
  bad("b3 v=1 9223372036854775807",
      "unable to parse 'b3 v=1 9223372036854775807': time outside range -9223372036854775806 - "
      "9223372036854775806 (line 1)");
  bad("b3 v=1 -9223372036854775807",
      "unable to parse 'b3 v=1 -9223372036854775807': time outside range -9223372036854775806 - "
      "9223372036854775806 (line 1)");
  bad("b3 v=1 9223372036854775808",
      "unable to parse 'b3 v=1 9223372036854775808': strconv.ParseInt: parsing "
      "\"9223372036854775808\": value out of range (line 1)");
  /* Scaling that overflows is out of range too. */
  assert_int_equal(parse_prec("m v=1 9223372036", LP_PRECISION_S, &err), 1);
  assert_int_equal(batch.rows[0].ts_ns, 9223372036000000000LL);
  assert_int_equal(parse_prec("m v=1 9223372037", LP_PRECISION_S, &err), PL_EINVAL);
  assert_string_equal(err.reason, "time outside range -9223372036854775806 - 9223372036854775806");
  assert_int_equal(parse_prec("m v=1 -9223372037", LP_PRECISION_S, &err), PL_EINVAL);
  assert_int_equal(parse_prec("m v=1 2562048", LP_PRECISION_H, &err), PL_EINVAL);
  assert_int_equal(parse_prec("m v=1 2562047", LP_PRECISION_H, &err), 1);
  assert_int_equal(parse_prec("m v=1 153722867", LP_PRECISION_M, &err), 1);
  assert_int_equal(parse_prec("m v=1 153722868", LP_PRECISION_M, &err), PL_EINVAL);
  /* Every length of timestamp (the first 16 digits are read eight at a time). */
  srand(11);
  for (int digits = 1; digits <= 19; digits++)
    for (int k = 0; k < 50; k++) {
      char num[24], line[48];
      for (int i = 0; i < digits; i++)
        num[i] = (char)('0' + (i == 0 && digits > 1 ? 1 + rand() % 8 : rand() % 10));
      num[digits] = 0;
      snprintf(line, sizeof line, "m v=1 %s%s", k % 2 ? "-" : "", num);
      ok(line, 1);
      assert_int_equal(batch.rows[0].ts_ns, strtoll(num, NULL, 10) * (k % 2 ? -1 : 1));
    }
  bad("m5 v=1 12345678x", "unable to parse 'm5 v=1 12345678x': bad timestamp (line 1)");
  bad("m5 v=1 1234567890123456:",
      "unable to parse 'm5 v=1 1234567890123456:': bad timestamp (line 1)");
  bad("m5 v=1 abc", "unable to parse 'm5 v=1 abc': bad timestamp (line 1)");
  bad("m5 v=1 1.5", "unable to parse 'm5 v=1 1.5': bad timestamp (line 1)");
  bad("m5 v=1 -", "unable to parse 'm5 v=1 -': bad timestamp (line 1)");
  bad("m5 v=1 1\\", "unable to parse 'm5 v=1 1\\': bad timestamp (line 1)");
  bad("m5 v=1 12x", "unable to parse 'm5 v=1 12x': bad timestamp (line 1)");
  bad("m5 v=1 2 3", "unable to parse 'm5 v=1 2 3': point is invalid (line 1)");
}

static void test_precision_names(void **state) {
  (void)state;
  lp_precision p;
  const struct {
    const char *name;
    lp_precision p;
  } good[] = {{"", LP_PRECISION_NS},   {"n", LP_PRECISION_NS},  {"ns", LP_PRECISION_NS},
              {"u", LP_PRECISION_US},  {"us", LP_PRECISION_US}, {"\xc2\xb5", LP_PRECISION_US},
              {"ms", LP_PRECISION_MS}, {"s", LP_PRECISION_S},   {"m", LP_PRECISION_M},
              {"h", LP_PRECISION_H}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(lp_precision_parse(good[i].name, &p), 0);
    assert_int_equal(p, good[i].p);
  }
  assert_int_equal(lp_precision_parse(NULL, &p), 0);
  assert_int_equal(p, LP_PRECISION_NS);
  const char *wrong[] = {"x", "rfc3339", "S", "sec", "d", "MS", " s"};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
    assert_int_equal(lp_precision_parse(wrong[i], &p), PL_EINVAL);
}

/* ---- lines ---- */

static void test_comments_blanks_crlf(void **state) {
  (void)state;
  ok("", 0);
  ok("\n\n  \n\t\r\n", 0);
  ok("# only a comment", 0);
  ok("# comment\nb3 v=1 2\n\n  # indented comment, with \"quotes\n\tb3 v=2 3\n", 2);
  assert_int_equal(batch.lines[0], 2);
  assert_int_equal(batch.lines[1], 5);
  ok("b3 v=1 2\r\nb3 v=2 3\r\n", 2);
  assert_int_equal(batch.rows[1].ts_ns, 3);
  ok("b3 v=1 2  \nb3 v=1 2\t\nb3 v=1 \r\nb3 v=\"s\"\t\r\nb3 v=t \t ", 5);
  assert_int_equal(batch.rows[2].ts_ns, NOW_NS);
  ok("  b3 v=1 2", 1);
  ok("m v=1 1\n#x v=1 1\nm v=2 2", 2);
  bad("b3\tv=1 2", "unable to parse 'b3\tv=1 2': invalid field format (line 1)");
  /* The quoted line has no CR. */
  bad("m v=1 1\r\nbad\r\n", "unable to parse 'bad': missing fields (line 2)");
}

static void test_errors(void **state) {
  (void)state;
  bad("m5", "unable to parse 'm5': missing fields (line 1)");
  bad("m5 ", "unable to parse 'm5': missing fields (line 1)");
  bad("m5,a=1", "unable to parse 'm5,a=1': missing fields (line 1)");
  bad("m5 2", "unable to parse 'm5 2': invalid field format (line 1)");
  bad("m5,a= v=1 2", "unable to parse 'm5,a= v=1 2': missing tag value (line 1)");
  bad("m5,a v=1 2", "unable to parse 'm5,a v=1 2': missing tag value (line 1)");
  bad("m9,t=a=b v=1 9", "unable to parse 'm9,t=a=b v=1 9': invalid tag format (line 1)");
  bad("m13,t=1, v=1 13", "unable to parse 'm13,t=1, v=1 13': missing tag key (line 1)");
  bad("m14, v=1 14", "unable to parse 'm14, v=1 14': missing tag key (line 1)");
  bad("m15,=x v=1 15", "unable to parse 'm15,=x v=1 15': missing tag key (line 1)");
  bad("m5 =1 2", "unable to parse 'm5 =1 2': missing field key (line 1)");
  bad("m16 v=1,=2 16", "unable to parse 'm16 v=1,=2 16': missing field key (line 1)");
  bad("m12 v=1, 12", "unable to parse 'm12 v=1, 12': invalid field format (line 1)");
  bad("m v=1,", "unable to parse 'm v=1,': invalid field format (line 1)");
  bad(",a=1 v=1 2", "unable to parse ',a=1 v=1 2': missing measurement (line 1)");
  bad("m5,a=1,a=2 v=1 2", "unable to parse 'm5,a=1,a=2 v=1 2': duplicate tags (line 1)");
  bad("tm time=1 1",
      "unable to parse 'tm time=1 1': invalid field name: input field \"time\" on measurement "
      "\"tm\" is invalid (line 1)");
  bad("tm2,time=1 v=1 1",
      "unable to parse 'tm2,time=1 v=1 1': invalid tag key: input tag \"time\" on measurement "
      "\"tm2\" is invalid (line 1)");
  /* The first bad line is named, and nothing of the body is kept. */
  bad("b3 v=1 2\nb3 v=2 3\n\nbad2 x 4\nbad3\n",
      "unable to parse 'bad2 x 4': invalid field format (line 4)");
  /* A field given twice keeps the last value; with another type it is a conflict. */
  ok("dup v=1,w=2,v=3 1", 1);
  assert_int_equal(batch.rows[0].nfields, 2);
  assert_true(field(0, "v")->v.f == 3.0);
  bad("dup2 v=1,v=2i 1",
      "unable to parse 'dup2 v=1,v=2i 1': field type conflict: input field \"v\" on measurement "
      "\"dup2\" is type integer, already exists as type float (line 1)");
  /* A long line is quoted up to quote_max bytes. */
  lp_error err;
  const char *text = "measurement_with_a_long_name v=oops 1";
  assert_int_equal(parse_prec(text, LP_PRECISION_NS, &err), PL_EINVAL);
  pl_buf out;
  pl_buf_init(&out, 0);
  lp_error_format(&err, text, 11, &out);
  assert_string_equal(pl_buf_cstr(&out),
                      "unable to parse 'measurement...': invalid boolean (line 1)");
  pl_buf_free(&out);
}

/* ---- limits ---- */

static void append(pl_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  assert_int_equal(pl_buf_vprintf(b, fmt, ap), 0);
  va_end(ap);
}

static void test_limits(void **state) {
  (void)state;
  lp_error err;
  pl_buf b;
  pl_buf_init(&b, 0);
  /* Names: 256 bytes after unescaping. */
  char name[300];
  memset(name, 'n', 256);
  name[256] = 0;
  append(&b, "%s,%s=%s %s=1 1", name, name, name, name);
  ok(pl_buf_cstr(&b), 1);
  pl_buf_reset(&b);
  append(&b, "\\ %s v=1 1", name + 1); /* 256 after the escape is dropped */
  ok(pl_buf_cstr(&b), 1);
  const char *what[] = {"measurement", "tag key", "tag value", "field key"};
  for (int i = 0; i < 4; i++) {
    pl_buf_reset(&b);
    append(&b, "%s%s,%s%s=%s%s %s%s=1 1", name, i == 0 ? "x" : "", name, i == 1 ? "x" : "", name,
           i == 2 ? "x" : "", name, i == 3 ? "x" : "");
    assert_int_equal(parse_prec(pl_buf_cstr(&b), LP_PRECISION_NS, &err), PL_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "%s longer than 256 bytes", what[i]);
    assert_string_equal(err.reason, want);
  }
  /* Tags and fields per point: the engine's 64. */
  pl_buf_reset(&b);
  append(&b, "m");
  for (int i = 0; i < TSDB_TAGS_MAX; i++)
    append(&b, ",t%d=v", i);
  append(&b, " ");
  for (int i = 0; i < TSDB_FIELDS_PER_GROUP_MAX; i++)
    append(&b, "%sf%d=%di", i ? "," : "", i, i);
  ok(pl_buf_cstr(&b), 1);
  assert_int_equal(batch.rows[0].ntags, TSDB_TAGS_MAX);
  assert_int_equal(batch.rows[0].nfields, TSDB_FIELDS_PER_GROUP_MAX);
  append(&b, ",one=1");
  assert_int_equal(parse_prec(pl_buf_cstr(&b), LP_PRECISION_NS, &err), PL_EINVAL);
  assert_string_equal(err.reason, "more than 64 fields");
  pl_buf_reset(&b);
  append(&b, "m");
  for (int i = 0; i <= TSDB_TAGS_MAX; i++)
    append(&b, ",t%d=v", i);
  append(&b, " v=1");
  assert_int_equal(parse_prec(pl_buf_cstr(&b), LP_PRECISION_NS, &err), PL_EINVAL);
  assert_string_equal(err.reason, "more than 64 tags");
  /* Line length, points and values per body. */
  lp_limits lim = {64, 3, 7};
  const char *three = "m,t=1 v=1 1\nm,t=2 v=2 2\nm v=3,w=4 3\n";
  assert_int_equal(lp_parse(three, strlen(three), LP_PRECISION_NS, NOW_NS, &lim, &batch, &err), 3);
  const char *four = "m v=1 1\nm v=1 2\nm v=1 3\nm v=1 4\n";
  assert_int_equal(lp_parse(four, strlen(four), LP_PRECISION_NS, NOW_NS, &lim, &batch, &err),
                   PL_ELIMIT);
  assert_int_equal(err.line, 4);
  assert_int_equal(batch.nrows, 0);
  pl_buf out;
  pl_buf_init(&out, 0);
  lp_error_format(&err, four, 100, &out);
  assert_string_equal(pl_buf_cstr(&out), "the body holds more than 3 points; send smaller batches");
  pl_buf_free(&out);
  const char *values = "m,a=1,b=2 c=3,d=4 1\nm,a=1 b=2,c=3,d=4 2\n";
  assert_int_equal(lp_parse(values, strlen(values), LP_PRECISION_NS, NOW_NS, &lim, &batch, &err),
                   PL_ELIMIT);
  assert_int_equal(err.line, 2);
  pl_buf_reset(&b);
  append(&b, "m v=\"%060d\" 1", 0);
  assert_int_equal(lp_parse((char *)b.data, b.len, LP_PRECISION_NS, NOW_NS, &lim, &batch, &err),
                   PL_EINVAL);
  assert_string_equal(err.reason, "line longer than 64 bytes");
  pl_buf_free(&b);
}

/* A batch is reused across bodies, and its arrays move as they grow: every row must still
 * point at its own tags and fields. */
static void test_batch_reuse_and_growth(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b, 0);
  for (int i = 0; i < 5000; i++)
    append(&b, "m\\ %d,t=%d,u=x\\,%d v=%di,w=\"s\\\"%d\" %d\n", i, i, i, i, i, i);
  for (int round = 0; round < 2; round++) {
    ok(pl_buf_cstr(&b), 5000);
    for (int i = 0; i < 5000; i += 499) {
      char want[64];
      const tsdb_row *r = &batch.rows[i];
      snprintf(want, sizeof want, "m %d", i);
      assert_str(r->measurement, want);
      snprintf(want, sizeof want, "%d", i);
      assert_str(r->tags[0].value, want);
      snprintf(want, sizeof want, "x,%d", i);
      assert_str(r->tags[1].value, want);
      assert_int_equal(field(i, "v")->v.i, i);
      snprintf(want, sizeof want, "s\"%d", i);
      assert_str(field(i, "w")->v.s, want);
      assert_int_equal(r->ts_ns, i);
      assert_int_equal(batch.lines[i], (uint32_t)i + 1);
    }
  }
  /* A smaller body after a larger one, and a larger after a smaller. */
  ok("x\\ y v=1", 1);
  assert_str(batch.rows[0].measurement, "x y");
  ok(pl_buf_cstr(&b), 5000);
  pl_buf_free(&b);
  lp_batch_free(&batch);
  lp_batch_free(&batch); /* twice is fine */
  lp_batch_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_point_parts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_escapes_in_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_string_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_floats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_integers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_booleans, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timestamps_and_precision, setup, teardown),
      cmocka_unit_test_setup_teardown(test_precision_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_comments_blanks_crlf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_batch_reuse_and_growth, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
