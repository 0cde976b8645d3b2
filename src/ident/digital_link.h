/* GS1 Digital Link URIs: parsing and validation against the GS1 Barcode Syntax Dictionary.
 * Pure: text in, a decoded URI or an error out; fuzzed.
 *
 * A dictionary (dl_dict) is parsed from the syntax dictionary's text format (one line per AI or
 * AI range: flags, component specification with linters, attributes such as dlpkey=22,10,21).
 * Plateau carries a built-in dictionary in the same format covering the primary keys, their
 * qualifiers and the common data attributes (dl_dict_builtin); the full published dictionary
 * can be loaded instead (configuration gs1_dictionary, or the tests' copy).
 */
#ifndef PLATEAU_IDENT_DIGITAL_LINK_H
#define PLATEAU_IDENT_DIGITAL_LINK_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

#define DL_URI_MAX 2048
#define DL_QUALIFIERS_MAX 4
#define DL_ATTRS_MAX 32
#define DL_PARAMS_MAX 16
#define DL_KEY_PATH_MAX 512

typedef struct dl_dict dl_dict;

/* Parses dictionary text. PL_EINVAL with the line number on a malformed line. */
int dl_dict_parse(const char *text, size_t len, dl_dict **out, pl_err *err);
void dl_dict_free(dl_dict *d);
/* The built-in dictionary: built once (thread-safe) and never changed afterwards, so every
 * thread may share it. NULL only when memory ran out at the first call. */
const dl_dict *dl_dict_builtin(void);
/* The number of AI entries (ranges expanded). */
size_t dl_dict_count(const dl_dict *d);
/* Whether ai is a primary key; its qualifier sequences as written ("22,10,21|235"), or "". */
int dl_dict_is_primary(const dl_dict *d, const char *ai, const char **qualifiers);
/* Validates value against ai's specification (lengths, character sets, linters). PL_ENOTFOUND
 * for an unknown AI, PL_EINVAL with a message otherwise. */
int dl_validate_ai(const dl_dict *d, const char *ai, const char *value, size_t len, pl_err *err);

typedef struct dl_element {
  char ai[5];
  const char *value; /* into the dl_uri's buffer, NUL-terminated */
  size_t len;
} dl_element;

typedef struct dl_param {
  const char *name, *value; /* non-AI query parameters: linkType, context, lang, ... */
} dl_param;

typedef struct dl_uri {
  dl_element key;
  dl_element qual[DL_QUALIFIERS_MAX];
  int nqual;
  dl_element attr[DL_ATTRS_MAX]; /* data attributes from the query string */
  int nattr;
  dl_param params[DL_PARAMS_MAX];
  int nparams;
  size_t stem_len; /* bytes of path before the primary key (a custom stem), 0 for none */
  char buf[DL_URI_MAX * 2];
} dl_uri;

/* Parses a Digital Link URI ("https://id.example.com/01/09506000134352/10/A1?17=261231") or
 * only its path and query ("/01/..."). Checks: a primary key with a valid value (GTIN-8/12/13
 * are padded to 14 digits), its qualifiers among the allowed ones and in order, every value
 * against the dictionary, data attributes that the dictionary permits in Digital Link, no AI
 * twice. PL_EINVAL with a message on bad syntax, PL_ENOTFOUND when no primary key is found. */
int dl_parse(const dl_dict *d, const char *uri, size_t len, dl_uri *out, pl_err *err);
/* The canonical path of the key with its first nqual qualifiers, values percent-encoded where
 * needed: "/01/09506000134352/10/A1". Returns the length or PL_ELIMIT. */
int dl_key_path(const dl_uri *u, int nqual, char *out, size_t outsz);
/* The element string "(01)09506000134352(10)A1" of key and qualifiers. */
int dl_element_string(const dl_uri *u, char *out, size_t outsz);
/* A parameter's value, or NULL. */
const char *dl_param_get(const dl_uri *u, const char *name);

/* The GS1 mod-10 check digit of digits[0..n) (all digits but the last) is digits[n]. */
int dl_check_digit_ok(const char *digits, size_t n);

#endif
