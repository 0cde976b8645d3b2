/* EPCIS 2.0 query parameter names: the parameters of the standard's SimpleEventQuery (section
 * 8.2.7.1; the REST binding's query-schema.json lists them) whose fields have no column of their
 * own in the event store, each read into a description of one store_trace_jcond. The HTTP layer
 * parses the values. Pure: a name in, a description or an error out (fuzzed by
 * tests/fuzz/trace_query_param_fuzz.c).
 *
 * Names:
 *   - fixed names (fixed_params below): quantities, persistentDisposition, transformationID,
 *     errorDeclaration, and the sensor parameters;
 *   - OP_quantity_UOM (OP: EQ GT GE LT LE), EQ_value_UOM and OP_F_UOM (OP: GT GE LT LE; F: value,
 *     minValue, maxValue, meanValue, sDev, percValue), UOM being 2 to 4 capitals or digits
 *     (a UN/ECE Recommendation 20 code): a quantity element or sensor report in that unit;
 *   - EQ_bizTransaction_TYPE, EQ_source_TYPE, EQ_destination_TYPE, TYPE a CBV name or a URI;
 *   - extension fields, OP_[INNER_][SCOPE_]prefix:name with OP one of EQ GT GE LT LE EXISTS and
 *     SCOPE one of ILMD, ERROR_DECLARATION, SENSORELEMENT, SENSORMETADATA, SENSORREPORT, or
 *     EQ_[INNER_]readPoint_prefix:name and EQ_[INNER_]bizLocation_prefix:name. The field name
 *     is matched as it is written in the captured JSON. The grid of OP x INNER x SCOPE is taken
 *     whole, a little more than the schema lists (it has no EXISTS_INNER_SENSORREPORT_, say).
 * HASATTR_ and EQ_ATTR_ on readPoint and bizLocation are read by the HTTP layer (master data,
 * store_trace_cond); on any other field they are recognised and refused.
 *
 * What must hold for the same object: the standard words every parameter as a condition on the
 * event on its own ("the result will only include events that (a) accommodate a sensorReport
 * ...; and (b) ..."), so each parameter is its own condition, and two of them may be met by
 * different sensor reports of one event: EQ_type=RelativeHumidity with GE_value_CEL=4 matches an
 * event with a humidity report and another report of 5 CEL. Only what one parameter names together
 * is held to one object: the value and unit of EQ_value_CEL to one sensorReport, the quantity and
 * unit of EQ_quantity_KGM to one quantity element, the type and value of EQ_bizTransaction_po to
 * one bizTransaction (with_key below). A unit in trace_unit_alternatives' table (normalise.c)
 * stands for every unit of its dimension, with the numbers converted (the HTTP layer fills
 * store_trace_jcond.units), as GS1's conformance test TCR-53 expects; others compare as written.
 */
#include "trace/trace.h"

#include <stdio.h>
#include <string.h>

static const struct fixed_param {
  const char *name;
  int op, scope, value;
  const char *vocab, *key;
} fixed_params[] = {
    {"EQ_quantity", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_QUANTITY, TRACE_QV_NUMBERS, NULL,
     "quantity"},
    {"GT_quantity", STORE_TRACE_OP_GT, STORE_TRACE_SCOPE_QUANTITY, TRACE_QV_NUMBER, NULL,
     "quantity"},
    {"GE_quantity", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_QUANTITY, TRACE_QV_NUMBER, NULL,
     "quantity"},
    {"LT_quantity", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_QUANTITY, TRACE_QV_NUMBER, NULL,
     "quantity"},
    {"LE_quantity", STORE_TRACE_OP_LE, STORE_TRACE_SCOPE_QUANTITY, TRACE_QV_NUMBER, NULL,
     "quantity"},
    {"EQ_persistentDisposition_set", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_PERSISTENT_DISPOSITION,
     TRACE_QV_VOCAB, "Disp", "set"},
    {"EQ_persistentDisposition_unset", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_PERSISTENT_DISPOSITION,
     TRACE_QV_VOCAB, "Disp", "unset"},
    {"EQ_transformationID", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_EVENT, TRACE_QV_STRINGS, NULL,
     "transformationID"},
    {"EXISTS_errorDeclaration", STORE_TRACE_OP_EXISTS, STORE_TRACE_SCOPE_EVENT, TRACE_QV_FLAG, NULL,
     "errorDeclaration"},
    /* query-schema.json spells these with "_Time", the OpenAPI document without the underscore */
    {"GE_errorDeclaration_Time", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_ERROR_DECLARATION,
     TRACE_QV_TIME, NULL, "declarationTime"},
    {"LT_errorDeclaration_Time", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_ERROR_DECLARATION,
     TRACE_QV_TIME, NULL, "declarationTime"},
    {"GE_errorDeclarationTime", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_ERROR_DECLARATION,
     TRACE_QV_TIME, NULL, "declarationTime"},
    {"LT_errorDeclarationTime", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_ERROR_DECLARATION,
     TRACE_QV_TIME, NULL, "declarationTime"},
    {"EQ_errorReason", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_ERROR_DECLARATION, TRACE_QV_VOCAB, "ER",
     "reason"},
    {"EQ_correctiveEventID", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_ERROR_DECLARATION,
     TRACE_QV_STRINGS, NULL, "correctiveEventIDs"},
    {"EXISTS_sensorElementList", STORE_TRACE_OP_EXISTS, STORE_TRACE_SCOPE_EVENT, TRACE_QV_FLAG,
     NULL, "sensorElementList"},
    /* time, deviceID, dataProcessingMethod and bizRules may be given in sensorMetadata or in
     * each sensorReport (EPCIS 2.0 section 7.3.8) */
    {"GE_time", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_SENSOR_ANY, TRACE_QV_TIME, NULL, "time"},
    {"LT_time", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_SENSOR_ANY, TRACE_QV_TIME, NULL, "time"},
    {"GE_startTime", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_SENSOR_METADATA, TRACE_QV_TIME, NULL,
     "startTime"},
    {"LT_startTime", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_SENSOR_METADATA, TRACE_QV_TIME, NULL,
     "startTime"},
    {"GE_endTime", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_SENSOR_METADATA, TRACE_QV_TIME, NULL,
     "endTime"},
    {"LT_endTime", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_SENSOR_METADATA, TRACE_QV_TIME, NULL,
     "endTime"},
    {"EQ_type", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_VOCAB, "MT", "type"},
    {"EQ_deviceID", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_ANY, TRACE_QV_IDS, NULL,
     "deviceID"},
    {"EQ_dataProcessingMethod", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_ANY, TRACE_QV_STRINGS,
     NULL, "dataProcessingMethod"},
    {"EQ_bizRules", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_ANY, TRACE_QV_STRINGS, NULL,
     "bizRules"},
    {"EQ_microorganism", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_STRINGS, NULL,
     "microorganism"},
    {"EQ_chemicalSubstance", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_STRINGS,
     NULL, "chemicalSubstance"},
    {"EQ_stringValue", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_STRINGS, NULL,
     "stringValue"},
    {"EQ_booleanValue", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_BOOL, NULL,
     "booleanValue"},
    {"EQ_hexBinaryValue", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_STRINGS,
     NULL, "hexBinaryValue"},
    {"EQ_uriValue", STORE_TRACE_OP_EQ, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_STRINGS, NULL,
     "uriValue"},
    {"GT_percRank", STORE_TRACE_OP_GT, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_NUMBER, NULL,
     "percRank"},
    {"GE_percRank", STORE_TRACE_OP_GE, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_NUMBER, NULL,
     "percRank"},
    {"LT_percRank", STORE_TRACE_OP_LT, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_NUMBER, NULL,
     "percRank"},
    {"LE_percRank", STORE_TRACE_OP_LE, STORE_TRACE_SCOPE_SENSOR_REPORT, TRACE_QV_NUMBER, NULL,
     "percRank"},
};

static const struct {
  const char *prefix;
  int op;
} ops[] = {{"EQ_", STORE_TRACE_OP_EQ}, {"GT_", STORE_TRACE_OP_GT},
           {"GE_", STORE_TRACE_OP_GE}, {"LT_", STORE_TRACE_OP_LT},
           {"LE_", STORE_TRACE_OP_LE}, {"EXISTS_", STORE_TRACE_OP_EXISTS}};

/* Sensor report fields with a unit, and the quantity. */
static const struct {
  const char *field;
  int scope;
  int eq; /* EQ_ allowed (a list of values) */
} unit_fields[] = {
    {"quantity", STORE_TRACE_SCOPE_QUANTITY, 1},
    {"value", STORE_TRACE_SCOPE_SENSOR_REPORT, 1},
    {"minValue", STORE_TRACE_SCOPE_SENSOR_REPORT, 0},
    {"maxValue", STORE_TRACE_SCOPE_SENSOR_REPORT, 0},
    {"meanValue", STORE_TRACE_SCOPE_SENSOR_REPORT, 0},
    {"sDev", STORE_TRACE_SCOPE_SENSOR_REPORT, 0},
    {"percValue", STORE_TRACE_SCOPE_SENSOR_REPORT, 0},
};

static const struct {
  const char *prefix; /* after EQ_ */
  int scope;
  const char *key, *vocab;
  int value;
} typed_lists[] = {
    {"bizTransaction_", STORE_TRACE_SCOPE_BIZ_TRANSACTION, "bizTransaction", "BTT",
     TRACE_QV_STRINGS},
    {"source_", STORE_TRACE_SCOPE_SOURCE, "source", "SDT", TRACE_QV_IDS},
    {"destination_", STORE_TRACE_SCOPE_DESTINATION, "destination", "SDT", TRACE_QV_IDS},
};

static const struct {
  const char *prefix; /* after OP_[INNER_] */
  int scope;
  int eq_only;
} ext_scopes[] = {
    {"ILMD_", STORE_TRACE_SCOPE_ILMD, 0},
    {"ERROR_DECLARATION_", STORE_TRACE_SCOPE_ERROR_DECLARATION, 0},
    {"SENSORELEMENT_", STORE_TRACE_SCOPE_SENSOR_ELEMENT, 0},
    {"SENSORMETADATA_", STORE_TRACE_SCOPE_SENSOR_METADATA, 0},
    {"SENSORREPORT_", STORE_TRACE_SCOPE_SENSOR_REPORT, 0},
    {"readPoint_", STORE_TRACE_SCOPE_READ_POINT, 1},
    {"bizLocation_", STORE_TRACE_SCOPE_BIZ_LOCATION, 1},
};

static int starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int is_upper_or_digit(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static int is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
static int is_alnum(char c) {
  return is_upper_or_digit(c) || is_lower(c);
}

/* A unit of measure code: 2 to 4 capitals or digits. */
static int is_uom(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || n > 4)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_upper_or_digit(s[i]))
      return 0;
  return 1;
}

/* prefix:name as the schema has it: [a-z][a-zA-Z0-9]*:[A-Za-z0-9_]+ */
static int is_curie(const char *s) {
  if (!is_lower(*s))
    return 0;
  s++;
  while (is_alnum(*s))
    s++;
  if (*s++ != ':' || !*s)
    return 0;
  for (; *s; s++)
    if (!is_alnum(*s) && *s != '_')
      return 0;
  return 1;
}

/* A bare CBV name ([a-z][a-zA-Z0-9_]*) or a URI (anything with a ':' and no control
 * characters or spaces). */
static int type_ok(const char *vocab, const char *s) {
  char norm[TRACE_VOCAB_FORM_MAX];
  if (!*s)
    return 0;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f)
      return 0;
  return trace_vocab_normalise(vocab, s, norm, sizeof norm) >= 0;
}

static void set(trace_qparam *p, int op, int scope, int value, const char *key) {
  memset(p, 0, sizeof *p);
  p->op = op;
  p->scope = scope;
  p->value = value;
  snprintf(p->key, sizeof p->key, "%s", key);
}

int trace_query_param_parse(const char *name, trace_qparam *out, pl_err *err) {
  trace_qparam p;
  for (size_t i = 0; i < sizeof fixed_params / sizeof fixed_params[0]; i++) {
    const struct fixed_param *f = &fixed_params[i];
    if (strcmp(name, f->name) == 0) {
      set(&p, f->op, f->scope, f->value, f->key);
      p.vocab = f->vocab;
      *out = p;
      return 0;
    }
  }
  if (starts(name, "HASATTR_") || starts(name, "EQ_ATTR_"))
    return pl_err_set(err, PL_EUNSUPPORTED,
                      "%.64s: master data attributes are queried on readPoint and bizLocation only "
                      "(HASATTR_bizLocation, EQ_ATTR_bizLocation_name)",
                      name);
  int op = 0;
  const char *rest = NULL;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (starts(name, ops[i].prefix)) {
      op = ops[i].op;
      rest = name + strlen(ops[i].prefix);
      break;
    }
  if (!op)
    return PL_ENOTFOUND;
  if (strlen(rest) >= TRACE_QP_NAME_MAX)
    return pl_err_set(err, PL_EINVAL, "%.64s...: the parameter name is too long", name);
  /* a field with a unit of measure */
  for (size_t i = 0; i < sizeof unit_fields / sizeof unit_fields[0]; i++) {
    size_t n = strlen(unit_fields[i].field);
    if (strncmp(rest, unit_fields[i].field, n) != 0 || rest[n] != '_')
      continue;
    if (op == STORE_TRACE_OP_EXISTS || (op == STORE_TRACE_OP_EQ && !unit_fields[i].eq))
      return PL_ENOTFOUND;
    const char *uom = rest + n + 1;
    if (!is_uom(uom))
      return pl_err_set(
          err, PL_EINVAL,
          "%.64s: the unit of measure after \"%s_\" must be 2 to 4 capital letters or digits"
          " (UN/ECE Recommendation 20), got \"%.16s\"",
          name, unit_fields[i].field, uom);
    set(&p, op, unit_fields[i].scope, op == STORE_TRACE_OP_EQ ? TRACE_QV_NUMBERS : TRACE_QV_NUMBER,
        unit_fields[i].field);
    p.with_key = "uom";
    snprintf(p.with_value, sizeof p.with_value, "%s", uom);
    *out = p;
    return 0;
  }
  /* a typed list: bizTransaction, source, destination */
  for (size_t i = 0; i < sizeof typed_lists / sizeof typed_lists[0]; i++) {
    if (!starts(rest, typed_lists[i].prefix))
      continue;
    if (op != STORE_TRACE_OP_EQ)
      return PL_ENOTFOUND;
    const char *type = rest + strlen(typed_lists[i].prefix);
    if (!type_ok(typed_lists[i].vocab, type))
      return pl_err_set(
          err, PL_EINVAL, "%.64s: \"%.64s\" is not a CBV %s type or a URI", name, type,
          typed_lists[i].vocab[0] == 'B' ? "business transaction" : "source/destination");
    set(&p, op, typed_lists[i].scope, typed_lists[i].value, typed_lists[i].key);
    p.with_key = "type";
    p.with_vocab = typed_lists[i].vocab;
    snprintf(p.with_value, sizeof p.with_value, "%s", type);
    *out = p;
    return 0;
  }
  /* an extension field */
  int inner = 0;
  if (starts(rest, "INNER_")) {
    inner = 1;
    rest += 6;
  }
  int scope = STORE_TRACE_SCOPE_EVENT;
  for (size_t i = 0; i < sizeof ext_scopes / sizeof ext_scopes[0]; i++) {
    if (!starts(rest, ext_scopes[i].prefix))
      continue;
    if (ext_scopes[i].eq_only && op != STORE_TRACE_OP_EQ)
      return PL_ENOTFOUND;
    scope = ext_scopes[i].scope;
    rest += strlen(ext_scopes[i].prefix);
    break;
  }
  if (!strchr(rest, ':'))
    return PL_ENOTFOUND;
  if (!is_curie(rest))
    return pl_err_set(err, PL_EINVAL,
                      "%.64s: \"%.64s\" is not an extension field name (prefix:name, as the "
                      "captured JSON has it)",
                      name, rest);
  set(&p, op, scope,
      op == STORE_TRACE_OP_EQ       ? TRACE_QV_ANY
      : op == STORE_TRACE_OP_EXISTS ? TRACE_QV_FLAG
                                    : TRACE_QV_ORDERED,
      rest);
  p.inner = inner;
  *out = p;
  return 0;
}
