/* Names and normal forms: event type names; the CBV 2.0 vocabularies (business steps,
 * dispositions, error reasons, business transaction and source/destination types) and the GS1
 * Web Vocabulary's measurement types, each in its canonical URI form; and identifiers: GS1 EPC
 * URNs and Digital Link URIs on any host to the canonical Digital Link on id.gs1.org, so that
 * the URN and Digital Link forms of one key are one identifier everywhere (capture, queries,
 * lineage, master data). Pure: strings in, strings out (fuzzed through tests/fuzz/epcis_fuzz.c,
 * which normalises its input's first line). */
#include "trace/trace.h"
#include "trace/trace_int.h"

#include "ident/digital_link.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

static const char *const type_names[] = {NULL, "ObjectEvent", "AggregationEvent", "TransactionEvent",
                                         "TransformationEvent", "AssociationEvent"};

const char *trace_type_name(int type) {
  return type >= 1 && type <= 5 ? type_names[type] : NULL;
}

int trace_type_parse(const char *name) {
  for (int i = 1; i <= 5; i++)
    if (name && strcmp(name, type_names[i]) == 0)
      return i;
  return 0;
}

/* CBV 2.0 vocabularies: business steps, dispositions, error reasons, business transaction
 * types, source/destination types; and the GS1 Web Vocabulary's measurement types (the
 * sensorReport "type" values). */
static const char *const cbv_bizsteps[] = {
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning", "creating_class_instance",
    "cycle_counting", "decommissioning", "departing", "destroying", "disassembling", "dispensing", "encoding",
    "entering_exiting", "holding", "inspecting", "installing", "killing", "loading", "other", "packing", "picking",
    "receiving", "removing", "repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling",
    "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing", "transporting",
    "unloading", "unpacking", "void_shipping", NULL};
static const char *const cbv_dispositions[] = {
    "active", "available", "completeness_inferred", "completeness_verified", "conformant", "container_closed",
    "container_open", "damaged", "destroyed", "dispensed", "disposed", "encoded", "expired", "in_progress",
    "in_transit", "inactive", "mismatch_instance", "mismatch_class", "mismatch_quantity", "needs_replacement",
    "no_pedigree_match", "non_conformant", "non_sellable_other", "partially_dispensed", "recalled", "reserved",
    "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen", "unavailable", "unknown",
    NULL};
static const char *const cbv_error_reasons[] = {"did_not_occur", "incorrect_data", NULL};
static const char *const cbv_btts[] = {"bol",     "cert",    "desadv",    "inv",    "pedigree",
                                       "po",      "poc",     "prodorder", "recadv", "rma",
                                       "testprd", "testres", "upevt",     NULL};
static const char *const cbv_sdts[] = {"owning_party", "possessing_party", "location", NULL};
/* clang-format off: one name after another, not one per line */
static const char *const gs1_measurement_types[] = {
    "AbsoluteHumidity", "AbsorbedDose", "AbsorbedDoseRate", "Acceleration", "Radioactivity",
    "Altitude", "AmountOfSubstance", "AmountOfSubstancePerUnitVolume", "Angle",
    "AngularAcceleration", "AngularMomentum", "AngularVelocity", "Area", "Capacitance",
    "Conductance", "Conductivity", "Count", "Density", "Dimensionless", "DoseEquivalent",
    "DoseEquivalentRate", "DynamicViscosity", "ElectricCharge", "ElectricCurrent",
    "ElectricCurrentDensity", "ElectricFieldStrength", "Energy", "Exposure", "Force", "Frequency",
    "Illuminance", "Inductance", "Irradiance", "KinematicViscosity", "Length", "LinearMomentum",
    "Luminance", "LuminousFlux", "LuminousIntensity", "MagneticFlux", "MagneticFluxDensity",
    "MagneticVectorPotential", "Mass", "MassConcentration", "MassFlowRate", "MassPerAreaTime",
    "MemoryCapacity", "MolalityOfSolute", "MolarEnergy", "MolarMass", "MolarVolume", "Power",
    "Pressure", "RadiantFlux", "RadiantIntensity", "RelativeHumidity", "Resistance", "Resistivity",
    "SolidAngle", "SpecificVolume", "Speed", "SurfaceDensity", "SurfaceTension", "Temperature",
    "Time", "Torque", "Voltage", "Volume", "VolumeFlowRate", "VolumeFraction", "VolumetricFlux",
    "Wavenumber", NULL};
/* clang-format on */

/* Each vocabulary: its names and the two prefixes that may stand before a name (the CBV 1.x URN,
 * or the "gs1:" CURIE of the Web Vocabulary, and the Web URI, which is the canonical form). */
static const struct vocab {
  const char *kind;
  const char *short_prefix, *uri_prefix;
  const char *const *names;
} vocabs[] = {
    {"BizStep", "urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", cbv_bizsteps},
    {"Disp", "urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-", cbv_dispositions},
    {"ER", "urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-", cbv_error_reasons},
    {"BTT", "urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-", cbv_btts},
    {"SDT", "urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-", cbv_sdts},
    {"MT", "gs1:", "https://gs1.org/voc/", gs1_measurement_types},
};

int trace__in_list(const char *const *list, const char *s, size_t len) {
  for (; *list; list++)
    if (strlen(*list) == len && memcmp(*list, s, len) == 0)
      return 1;
  return 0;
}

int trace__has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

/* The vocabulary name in `in` (after one of the prefixes, or bare), or NULL for another URI.
 * *standard tells whether the name is one of the vocabulary's. */
static const char *vocab_name(const struct vocab *v, const char *in, int *standard) {
  const char *name = NULL;
  if (strncmp(in, v->short_prefix, strlen(v->short_prefix)) == 0)
    name = in + strlen(v->short_prefix);
  else if (strncmp(in, v->uri_prefix, strlen(v->uri_prefix)) == 0)
    name = in + strlen(v->uri_prefix);
  else if (!strchr(in, ':'))
    name = in;
  *standard = name && trace__in_list(v->names, name, strlen(name));
  return name;
}

static const struct vocab *vocab_of(const char *kind) {
  for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++)
    if (strcmp(vocabs[i].kind, kind) == 0)
      return &vocabs[i];
  return NULL;
}

int trace_vocab_normalise(const char *kind, const char *in, char *out, size_t outsz) {
  const struct vocab *v = vocab_of(kind);
  if (!v || !in || !*in || trace__has_control(in))
    return PL_EINVAL;
  int standard;
  const char *name = vocab_name(v, in, &standard);
  int n;
  if (standard)
    n = snprintf(out, outsz, "%s%s", v->uri_prefix, name);
  else if (name == in)
    return PL_EINVAL; /* a bare word the vocabulary lacks: custom values must be URIs */
  else
    n = snprintf(out, outsz, "%s",
                 in); /* another URI, or a vocabulary-looking one with an unknown name */
  return n < 0 || (size_t)n >= outsz ? PL_ELIMIT : n;
}

int trace_vocab_forms(const char *kind, const char *in,
                      char forms[][TRACE_VOCAB_FORM_MAX]) {
  const struct vocab *v = vocab_of(kind);
  if (!v || !in || !*in || trace__has_control(in))
    return PL_EINVAL;
  int standard;
  const char *name = vocab_name(v, in, &standard);
  if (!standard) {
    if (name == in)
      return PL_EINVAL;
    int n = snprintf(forms[0], TRACE_VOCAB_FORM_MAX, "%s", in);
    return n < 0 || n >= TRACE_VOCAB_FORM_MAX ? PL_ELIMIT : 1;
  }
  /* a vocabulary name is at most a few dozen bytes: these fit */
  snprintf(forms[0], TRACE_VOCAB_FORM_MAX, "%s%s", v->uri_prefix, name);
  snprintf(forms[1], TRACE_VOCAB_FORM_MAX, "%s", name);
  snprintf(forms[2], TRACE_VOCAB_FORM_MAX, "%s%s", v->short_prefix, name);
  return 3;
}

/* ---- identifiers ---- */

static char check_digit(const char *digits, size_t n) {
  int sum = 0;
  for (size_t i = 0; i < n; i++) {
    int d = digits[n - 1 - i] - '0';
    sum += (i % 2 == 0) ? 3 * d : d;
  }
  return (char)('0' + (10 - sum % 10) % 10);
}

static int all_digits(const char *s, size_t n) {
  if (!n)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

/* Splits "a.b.c" into at most max parts; returns the count. */
static int split_dots(const char *s, const char *parts[], size_t lens[], int max) {
  int n = 0;
  const char *p = s;
  for (;;) {
    const char *dot = strchr(p, '.');
    if (n == max - 1 || !dot) {
      parts[n] = p;
      lens[n] = strlen(p);
      return n + 1;
    }
    parts[n] = p;
    lens[n] = (size_t)(dot - p);
    n++;
    p = dot + 1;
  }
}

/* Canonical form of a Digital Link path or URI, or PL_EINVAL when it is none. */
static int dl_canonical(const char *uri, char *out, size_t outsz) {
  const dl_dict *dict = dl_dict_builtin();
  if (!dict)
    return PL_ENOMEM;
  dl_uri *u = malloc(sizeof *u);
  if (!u)
    return PL_ENOMEM;
  pl_err err;
  int rc = dl_parse(dict, uri, strlen(uri), u, &err);
  if (rc == 0) {
    char path[DL_KEY_PATH_MAX];
    int n = dl_key_path(u, u->nqual, path, sizeof path);
    if (n < 0)
      rc = n;
    else {
      n = snprintf(out, outsz, "https://id.gs1.org%s", path);
      rc = n < 0 || (size_t)n >= outsz ? PL_ELIMIT : n;
    }
  } else {
    rc = PL_EINVAL;
  }
  free(u);
  return rc;
}

/* A GS1 EPC URN as a Digital Link path ("/01/.../21/..."), or PL_EINVAL. *pattern is set for
 * an idpat whose last part is '*'. */
static int urn_to_path(const char *in, char *path, size_t pathsz, int *pattern) {
  static const struct {
    const char *scheme;
    int parts;
  } schemes[] = {{"urn:epc:id:sgtin:", 3}, {"urn:epc:id:sscc:", 2},  {"urn:epc:id:sgln:", 3},
                 {"urn:epc:id:grai:", 3},  {"urn:epc:id:giai:", 2},  {"urn:epc:id:gsrn:", 2},
                 {"urn:epc:id:pgln:", 2},  {"urn:epc:id:sgcn:", 3},  {"urn:epc:class:lgtin:", 3},
                 {"urn:epc:idpat:sgtin:", 3}};
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t sl = strlen(schemes[i].scheme);
    if (strncmp(in, schemes[i].scheme, sl) != 0)
      continue;
    const char *p[3];
    size_t l[3];
    if (split_dots(in + sl, p, l, 3) != schemes[i].parts)
      return PL_EINVAL;
    char body[40];
    int n;
    switch (i) {
    case 0: /* sgtin CP.IR.serial */
    case 8: /* lgtin CP.IR.lot */
    case 9: /* idpat sgtin CP.IR.* */
      if (!all_digits(p[0], l[0]) || !all_digits(p[1], l[1]) || l[0] + l[1] != 13)
        return PL_EINVAL;
      snprintf(body, sizeof body, "%c%.*s%.*s", p[1][0], (int)l[0], p[0], (int)l[1] - 1, p[1] + 1);
      body[13] = check_digit(body, 13);
      body[14] = 0;
      if (i == 9) {
        if (l[2] != 1 || p[2][0] != '*')
          return PL_EINVAL;
        *pattern = 1;
        n = snprintf(path, pathsz, "/01/%s", body);
      } else {
        if (!l[2])
          return PL_EINVAL;
        n = snprintf(path, pathsz, "/01/%s/%s/%.*s", body, i == 0 ? "21" : "10", (int)l[2], p[2]);
      }
      break;
    case 1: /* sscc CP.SR */
    case 5: /* gsrn CP.SR */
      if (!all_digits(p[0], l[0]) || !all_digits(p[1], l[1]) || l[0] + l[1] != 17)
        return PL_EINVAL;
      if (i == 1)
        snprintf(body, sizeof body, "%c%.*s%.*s", p[1][0], (int)l[0], p[0], (int)l[1] - 1, p[1] + 1);
      else
        snprintf(body, sizeof body, "%.*s%.*s", (int)l[0], p[0], (int)l[1], p[1]);
      body[17] = check_digit(body, 17);
      body[18] = 0;
      n = snprintf(path, pathsz, "/%s/%s", i == 1 ? "00" : "8018", body);
      break;
    case 2: /* sgln CP.LR.ext */
    case 6: /* pgln CP.LR */
      if (!all_digits(p[0], l[0]) || !all_digits(p[1], l[1]) || l[0] + l[1] != 12)
        return PL_EINVAL;
      snprintf(body, sizeof body, "%.*s%.*s", (int)l[0], p[0], (int)l[1], p[1]);
      body[12] = check_digit(body, 12);
      body[13] = 0;
      if (i == 6)
        n = snprintf(path, pathsz, "/417/%s", body);
      else if (l[2] == 1 && p[2][0] == '0')
        n = snprintf(path, pathsz, "/414/%s", body);
      else if (l[2])
        n = snprintf(path, pathsz, "/414/%s/254/%.*s", body, (int)l[2], p[2]);
      else
        return PL_EINVAL;
      break;
    case 3: /* grai CP.AT.serial */
    case 7: /* sgcn CP.DT.serial */
      if (!all_digits(p[0], l[0]) || !all_digits(p[1], l[1]) || l[0] + l[1] != 12 || !l[2])
        return PL_EINVAL;
      if (i == 3) {
        snprintf(body, sizeof body, "0%.*s%.*s", (int)l[0], p[0], (int)l[1], p[1]);
        body[13] = check_digit(body, 13);
        body[14] = 0;
        n = snprintf(path, pathsz, "/8003/%s%.*s", body, (int)l[2], p[2]);
      } else {
        snprintf(body, sizeof body, "%.*s%.*s", (int)l[0], p[0], (int)l[1], p[1]);
        body[12] = check_digit(body, 12);
        body[13] = 0;
        n = snprintf(path, pathsz, "/253/%s%.*s", body, (int)l[2], p[2]);
      }
      break;
    case 4: /* giai CP.IAR */
      if (!all_digits(p[0], l[0]) || !l[1])
        return PL_EINVAL;
      n = snprintf(path, pathsz, "/8004/%.*s%.*s", (int)l[0], p[0], (int)l[1], p[1]);
      break;
    default: return PL_EINVAL;
    }
    return n < 0 || (size_t)n >= pathsz ? PL_ELIMIT : n;
  }
  return PL_EINVAL;
}

int trace_epc_normalise(const char *in, char *out, size_t outsz) {
  size_t len = in ? strlen(in) : 0;
  if (!len || len >= TRACE_EPC_MAX || trace__has_control(in) || outsz < 2)
    return PL_EINVAL;
  char path[TRACE_EPC_MAX + 64];
  int pattern = 0;
  if (strncmp(in, "urn:epc:", 8) == 0 && urn_to_path(in, path, sizeof path, &pattern) >= 0) {
    int n = dl_canonical(path, out, outsz - 1);
    if (n >= 0) {
      if (pattern) {
        out[n++] = '*';
        out[n] = 0;
      }
      return n;
    }
    if (n == PL_ENOMEM)
      return n;
  } else if (strncmp(in, "http://", 7) == 0 || strncmp(in, "https://", 8) == 0) {
    int n = dl_canonical(in, out, outsz);
    if (n >= 0 || n == PL_ENOMEM)
      return n;
  }
  if (len >= outsz)
    return PL_ELIMIT;
  memcpy(out, in, len + 1);
  return (int)len;
}

/* ---- units of measure ----
 * UN/ECE Recommendation 20 codes of the dimensions sensors and quantities use most, each as a
 * linear function of the dimension's base unit (base = a * x + b). A value filter in one of them
 * (GE_value_CEL=4) holds for a report in another (277.15 KEL): the standard's conformance tests
 * convert. Converted values are rounded to 12 significant digits, so 20 CEL is the 293.15 KEL a
 * document would write rather than 293.15000000000003. */
static const struct unit {
  const char *code;
  int dimension;
  double a, b;
} units[] = {
    /* temperature, base kelvin */
    {"KEL", 1, 1, 0},
    {"CEL", 1, 1, 273.15},
    {"FAH", 1, 5.0 / 9.0, 459.67 * 5.0 / 9.0},
    /* pressure, base pascal */
    {"PAL", 2, 1, 0},
    {"KPA", 2, 1e3, 0},
    {"MPA", 2, 1e6, 0},
    {"BAR", 2, 1e5, 0},
    {"MBR", 2, 1e2, 0},
    {"ATM", 2, 101325, 0},
    /* mass, base kilogram */
    {"KGM", 3, 1, 0},
    {"GRM", 3, 1e-3, 0},
    {"MGM", 3, 1e-6, 0},
    {"TNE", 3, 1e3, 0},
    {"LBR", 3, 0.45359237, 0},
    /* length, base metre */
    {"MTR", 4, 1, 0},
    {"CMT", 4, 1e-2, 0},
    {"MMT", 4, 1e-3, 0},
    {"KMT", 4, 1e3, 0},
    {"INH", 4, 0.0254, 0},
    {"FOT", 4, 0.3048, 0},
    /* volume, base cubic metre */
    {"MTQ", 5, 1, 0},
    {"LTR", 5, 1e-3, 0},
    {"DMQ", 5, 1e-3, 0},
    {"MLT", 5, 1e-6, 0},
};

static const struct unit *unit_of(const char *code) {
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp(units[i].code, code) == 0)
      return &units[i];
  return NULL;
}

int trace_unit_alternatives(const char *uom, double x, const char **codes, double *xs, int max) {
  const struct unit *u = uom ? unit_of(uom) : NULL;
  if (!u)
    return 0;
  double base = u->a * x + u->b;
  int n = 0;
  for (size_t i = 0; i < sizeof units / sizeof units[0] && n < max; i++) {
    if (units[i].dimension != u->dimension)
      continue;
    double v = &units[i] == u ? x : (base - units[i].b) / units[i].a;
    char text[40];
    snprintf(text, sizeof text, "%.12g", v);
    codes[n] = units[i].code;
    xs[n++] = &units[i] == u ? x : strtod(text, NULL);
  }
  return n;
}
