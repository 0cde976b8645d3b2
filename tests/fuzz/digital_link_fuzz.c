/* Fuzz target: GS1 Digital Link parsing against the built-in dictionary, and the dictionary
 * parser itself on the same bytes. Anything accepted must give a canonical key path that parses
 * again to the same key, and an element string. */
#include "ident/digital_link.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static dl_uri u, v;
  const dl_dict *d = dl_dict_builtin();
  if (!d)
    abort();
  if (dl_parse(d, (const char *)data, size, &u, NULL) == 0) {
    char path[DL_KEY_PATH_MAX], es[4096];
    int n = dl_key_path(&u, u.nqual, path, sizeof path);
    if (n > 0) {
      if (dl_parse(d, path, (size_t)n, &v, NULL) != 0)
        abort();
      if (strcmp(u.key.ai, v.key.ai) || strcmp(u.key.value, v.key.value) || u.nqual != v.nqual)
        abort();
      for (int i = 0; i < u.nqual; i++)
        if (strcmp(u.qual[i].value, v.qual[i].value))
          abort();
    }
    (void)dl_element_string(&u, es, sizeof es);
    (void)dl_param_get(&u, "linkType");
  }
  dl_dict *dd = NULL;
  if (dl_dict_parse((const char *)data, size, &dd, NULL) == 0) {
    (void)dl_dict_count(dd);
    (void)dl_dict_is_primary(dd, "01", NULL);
    dl_dict_free(dd);
  }
  return 0;
}
