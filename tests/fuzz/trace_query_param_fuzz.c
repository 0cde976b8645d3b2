/* Fuzz target: the EPCIS query parameter names (trace/query_params.c) and the vocabulary forms
 * behind their values: whatever the name, no crash, no read past it, and a name that parses
 * gives a condition the event store accepts (its op, scope and value kind in range, a key, and
 * for a name with a unit or a type, a value that has forms). The input is the name; its tail
 * after a NUL, if any, is also given to trace_vocab_forms of every kind. */
#include "trace/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *name = malloc(size + 1);
  if (!name)
    return 0;
  memcpy(name, data, size);
  name[size] = 0;
  trace_qparam p;
  pl_err err;
  int rc = trace_query_param_parse(name, &p, &err);
  if (rc == 0) {
    if (p.op < STORE_TRACE_OP_EQ || p.op > STORE_TRACE_OP_EXISTS ||
        p.scope < STORE_TRACE_SCOPE_EVENT || p.scope >= STORE_TRACE_SCOPE_COUNT ||
        p.value < TRACE_QV_STRINGS || p.value > TRACE_QV_ORDERED || !p.key[0] ||
        memchr(p.key, 0, sizeof p.key) == NULL || (p.value == TRACE_QV_VOCAB && !p.vocab))
      abort();
    if (p.with_key) {
      char forms[TRACE_VOCAB_FORMS][TRACE_VOCAB_FORM_MAX];
      if (!p.with_value[0] ||
          (p.with_vocab && trace_vocab_forms(p.with_vocab, p.with_value, forms) < 1))
        abort();
    }
  } else if (rc != PL_ENOTFOUND && rc != PL_EINVAL && rc != PL_EUNSUPPORTED) {
    abort();
  }
  size_t n = strlen(name);
  if (n < size) {
    const char *tail = name + n + 1;
    const char *kinds[] = {"BizStep", "Disp", "ER", "BTT", "SDT", "MT", "none"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
      char forms[TRACE_VOCAB_FORMS][TRACE_VOCAB_FORM_MAX];
      char norm[TRACE_VOCAB_FORM_MAX];
      int k = trace_vocab_forms(kinds[i], tail, forms);
      int c = trace_vocab_normalise(kinds[i], tail, norm, sizeof norm);
      /* the canonical form comes first, and both agree on what is valid */
      if ((k > 0) != (c > 0) || (k > 0 && strcmp(forms[0], norm) != 0))
        abort();
    }
  }
  free(name);
  return 0;
}
