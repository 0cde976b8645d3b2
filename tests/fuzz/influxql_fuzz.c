/* Fuzz target: the InfluxQL parser (src/influxql/parser.c, lexer.c) on arbitrary text, with a
 * few bound parameters. Whatever parses must print back (influxql_stmt_format) to text that
 * parses again and prints the same, and the number formatting the JSON writer uses must read
 * back exactly. The first bytes also pick the text's length limit behaviour: inputs are used
 * whole, so the length, nesting, statement and operator limits are all reached. */
#include "influxql/influxql.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const influxql_param params[] = {
    {"host", INFLUXQL_PARAM_STRING, "a'b\"c"}, {"n", INFLUXQL_PARAM_INTEGER, "42"},
    {"x", INFLUXQL_PARAM_NUMBER, "2.5"},       {"b", INFLUXQL_PARAM_BOOL, "true"},
    {"m", INFLUXQL_PARAM_IDENT, "my m"},       {"re", INFLUXQL_PARAM_REGEX, "^a.*"},
    {"d", INFLUXQL_PARAM_DURATION, "1h"},
};

static char *format_all(const influxql_query *q) {
  pl_buf b;
  pl_buf_init(&b, 0);
  for (size_t i = 0; i < q->nstmts; i++) {
    if (i)
      pl_buf_append_str(&b, "; ");
    if (influxql_stmt_format(&q->stmts[i], &b) < 0)
      abort();
  }
  char *s = strdup(pl_buf_cstr(&b));
  pl_buf_free(&b);
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  influxql_query *q = NULL;
  pl_err err;
  int rc =
      influxql_parse((const char *)data, size, params, sizeof params / sizeof params[0], &q, &err);
  if (rc == 0) {
    char *once = format_all(q);
    influxql_query_free(q);
    /* A regex bound to $re can stand where no regex can be written (x < $re): such trees have
     * no text form to round-trip through. */
    if (!memmem(data, size, "$re", 3)) {
      influxql_query *again = NULL;
      if (influxql_parse(once, strlen(once), NULL, 0, &again, &err) != 0) {
        /* Printing may legitimately produce text beyond a limit the original met (a deep
         * expression printed back needs no more operators, but may need more bytes). */
        if (strstr(err.msg, "bytes long") == NULL)
          abort();
      } else {
        char *twice = format_all(again);
        if (strcmp(once, twice) != 0)
          abort();
        free(twice);
        influxql_query_free(again);
      }
    }
    free(once);
  } else if (rc != PL_EINVAL && rc != PL_ELIMIT && rc != PL_ENOMEM) {
    abort();
  }
  if (size >= 8) {
    double v;
    memcpy(&v, data, 8);
    char buf[48];
    influxql_format_float_json(v, buf, sizeof buf);
    if (isfinite(v) && strtod(buf, NULL) != v)
      abort();
  }
  return 0;
}
