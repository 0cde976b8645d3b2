/* Fuzz target: EPCIS 2.0 document parsing and validation (trace/epcis.c), identifier
 * normalisation of the first line, and the event hash of every valid event: whatever the
 * input, no crash, no leak, and the stored text of every valid event (copied from the input's
 * bytes) is JSON equal to the parsed event. */
#include "trace/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  trace_doc *doc = NULL;
  pl_err err;
  if (trace_doc_parse(data, size, 1000, &doc, &err) == 0) {
    for (size_t i = 0; i < doc->nevents; i++) {
      if (!doc->events[i].valid)
        continue;
      char id[128];
      if (trace_event_hash(doc->events[i].json, id, sizeof id) != 0 || !doc->events[i].row.doc)
        abort();
      json_t *stored = json_loadb(doc->events[i].row.doc, doc->events[i].row.doc_len, 0, NULL);
      if (!stored || !json_equal(stored, doc->events[i].json))
        abort();
      json_decref(stored);
    }
    trace_doc_free(doc);
  }
  char line[1100];
  size_t n = 0;
  while (n < size && n < sizeof line - 1 && data[n] != '\n' && data[n] != 0) {
    line[n] = (char)data[n];
    n++;
  }
  line[n] = 0;
  char out[1200];
  (void)trace_epc_normalise(line, out, sizeof out);
  (void)trace_vocab_normalise("BizStep", line, out, sizeof out);
  return 0;
}
