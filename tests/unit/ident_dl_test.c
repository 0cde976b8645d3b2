/* Unit tests for GS1 Digital Link parsing and QR labels: URIs checked against the built-in
 * dictionary and the published GS1 Barcode Syntax Dictionary read from the test data
 * (PLATEAU_TESTDATA/digital-link), the resolver test records' anchors, canonical key paths,
 * and the PNG/SVG writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"
#include "ident/digital_link.h"
#include "ident/label.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *testdata(void) {
  const char *t = getenv("PLATEAU_TESTDATA");
  return t && *t ? t : "../shared/testdata";
}

static dl_dict *full_dict(void) {
  char path[1024];
  snprintf(path, sizeof path, "%s/digital-link/gs1-syntax-engine/gs1-syntax-dictionary.txt",
           testdata());
  pl_buf text;
  pl_buf_init(&text, 0);
  if (pl_fs_read_file(path, 1 << 24, &text) < 0) {
    pl_buf_free(&text);
    return NULL;
  }
  dl_dict *d = NULL;
  pl_err err = {{0}};
  int rc = dl_dict_parse((const char *)text.data, text.len, &d, &err);
  if (rc < 0)
    fprintf(stderr, "dictionary: %s\n", err.msg);
  assert_int_equal(rc, 0);
  pl_buf_free(&text);
  return d;
}

/* URIs that must parse, with the expected canonical key path. */
static const struct {
  const char *uri, *path;
} valid[] = {
    {"https://id.gs1.org/01/09506000134352", "/01/09506000134352"},
    {"https://example.com/01/09506000134352/10/ABC1/21/12345",
     "/01/09506000134352/10/ABC1/21/12345"},
    {"https://example.com/01/09506000134352/22/2A/10/ABC1/21/12345",
     "/01/09506000134352/22/2A/10/ABC1/21/12345"},
    {"https://example.com/01/09506000134352/235/TPX1", "/01/09506000134352/235/TPX1"},
    {"/01/09506000134352/21/12345?17=261231&3103=000195", "/01/09506000134352/21/12345"},
    {"https://example.com/some/stem/01/09506000134352", "/01/09506000134352"},
    {"https://example.com/gtin/09506000134352/lot/A1", "/01/09506000134352/10/A1"},
    {"https://example.com/01/9506000134352", "/01/09506000134352"}, /* GTIN-13 padded */
    {"https://example.com/00/106141412345678908", "/00/106141412345678908"},
    {"https://example.com/414/9506000134369", "/414/9506000134369"},
    {"https://example.com/414/9506000134369/254/1", "/414/9506000134369/254/1"},
    {"https://example.com/8004/0950600013430000001", "/8004/0950600013430000001"},
    {"https://example.com/8003/095060001343521234", "/8003/095060001343521234"},
    {"https://example.com/01/09506000134352/10/A%2FB", "/01/09506000134352/10/A%2FB"},
    {"https://example.com/01/09506000134352?linkType=gs1:pip", "/01/09506000134352"},
};

/* URIs that must be refused. */
static const char *const invalid[] = {
    "https://example.com/01/09506000134353",                          /* check digit */
    "https://example.com/01/0950600013435",                           /* length */
    "https://example.com/01/95060001343",                             /* 11 digits is no GTIN */
    "https://example.com/01/0950600013435X",                          /* not numeric */
    "https://example.com/01/09506000134352/21/1/10/A",                /* qualifier order */
    "https://example.com/01/09506000134352/22/A/235/B",               /* mixes alternatives */
    "https://example.com/00/106141412345678908/10/A",                 /* SSCC takes no qualifier */
    "https://example.com/01/09506000134352/10/ABCDEFGHIJKLMNOPQRSTU", /* lot over 20 */
    "https://example.com/01/09506000134352?17=261332",                /* date */
    "https://example.com/01/09506000134352?01=09506000134352",        /* key as attribute */
    "https://example.com/01/09506000134352?17=261231&17=261230",      /* AI twice */
    "https://example.com/01/09506000134352?23=x",                     /* not an AI */
    "https://example.com/01/09506000134352/10/A%",                    /* bad escape */
    "https://example.com/01/09506000134352/10/A B",                   /* space */
    "https://example.com/",
    "https://example.com/foo/bar",
    "",
};

static void check_all(const dl_dict *d) {
  dl_uri *u = malloc(sizeof *u);
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    pl_err err = {{0}};
    int rc = dl_parse(d, valid[i].uri, strlen(valid[i].uri), u, &err);
    if (rc != 0)
      fprintf(stderr, "%s: %s\n", valid[i].uri, err.msg);
    assert_int_equal(rc, 0);
    char path[DL_KEY_PATH_MAX];
    assert_true(dl_key_path(u, u->nqual, path, sizeof path) > 0);
    assert_string_equal(path, valid[i].path);
  }
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    pl_err err = {{0}};
    int rc = dl_parse(d, invalid[i], strlen(invalid[i]), u, &err);
    if (rc == 0)
      fprintf(stderr, "accepted: %s\n", invalid[i]);
    assert_true(rc < 0);
    assert_true(err.msg[0] != 0);
  }
  free(u);
}

static void test_builtin(void **state) {
  (void)state;
  const dl_dict *d = dl_dict_builtin();
  assert_non_null(d);
  check_all(d);
  dl_uri *u = malloc(sizeof *u);
  const char *s =
      "https://example.com/01/09506000134352/10/A1?17=261231&linkType=gs1:pip&context=x";
  assert_int_equal(dl_parse(d, s, strlen(s), u, NULL), 0);
  assert_int_equal(u->nattr, 1);
  assert_string_equal(u->attr[0].ai, "17");
  assert_string_equal(dl_param_get(u, "linkType"), "gs1:pip");
  char es[256];
  assert_true(dl_element_string(u, es, sizeof es) > 0);
  assert_string_equal(es, "(01)09506000134352(10)A1");
  assert_int_equal(dl_key_path(u, 0, es, sizeof es), 18);
  free(u);
}

static void test_full_dictionary(void **state) {
  (void)state;
  dl_dict *full = full_dict();
  if (!full) {
    fprintf(stderr, "skipping: no syntax dictionary under %s\n", testdata());
    skip();
  }
  assert_true(dl_dict_count(full) > 400);
  check_all(full);
  /* Every primary key of the built-in dictionary is one in the published dictionary, with the
   * same qualifiers, and every primary key of the published one is known to the built-in. */
  const dl_dict *b = dl_dict_builtin();
  static const char *const keys[] = {"00",  "01",   "253",  "255",  "401",  "402",  "414",  "415",
                                     "417", "8003", "8004", "8006", "8010", "8013", "8017", "8018"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *qb = NULL, *qf = NULL;
    assert_true(dl_dict_is_primary(b, keys[i], &qb));
    assert_true(dl_dict_is_primary(full, keys[i], &qf));
    assert_string_equal(qb, qf);
  }
  int npk = 0;
  char ai[8];
  for (int n = 0; n < 10000; n++) {
    for (int w = 2; w <= 4; w++) {
      if (n >= (w == 2 ? 100 : w == 3 ? 1000 : 10000))
        continue;
      snprintf(ai, sizeof ai, "%0*d", w, n);
      if (dl_dict_is_primary(full, ai, NULL)) {
        npk++;
        assert_true(dl_dict_is_primary(b, ai, NULL));
      }
    }
  }
  assert_int_equal(npk, (int)(sizeof keys / sizeof keys[0]));
  /* A data attribute only the full dictionary knows. */
  dl_uri *u = malloc(sizeof *u);
  const char *s = "/01/09506000134352?7007=260101";
  assert_int_equal(dl_parse(full, s, strlen(s), u, NULL), 0);
  free(u);
  dl_dict_free(full);
}

/* The resolver test records' anchors are Digital Link paths. */
static void test_resolver_records(void **state) {
  (void)state;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/digital-link/resolver-ce/tests", testdata());
  DIR *dh = opendir(dir);
  if (!dh)
    skip();
  struct dirent *e;
  int n = 0;
  dl_uri *u = malloc(sizeof *u);
  while ((e = readdir(dh))) {
    if (!strstr(e->d_name, ".json"))
      continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    pl_buf text;
    pl_buf_init(&text, 0);
    assert_int_equal(pl_fs_read_file(path, 1 << 20, &text), 0);
    json_t *doc = json_loadb((const char *)text.data, text.len, 0, NULL);
    assert_non_null(doc);
    json_t *list = json_is_array(doc) ? doc : NULL;
    size_t cnt = list ? json_array_size(list) : 1;
    for (size_t i = 0; i < cnt; i++) {
      json_t *rec = list ? json_array_get(list, i) : doc;
      const char *anchor = json_string_value(json_object_get(rec, "anchor"));
      assert_non_null(anchor);
      pl_err err = {{0}};
      int rc = dl_parse(dl_dict_builtin(), anchor, strlen(anchor), u, &err);
      if (rc)
        fprintf(stderr, "%s: %s\n", anchor, err.msg);
      assert_int_equal(rc, 0);
      char kp[DL_KEY_PATH_MAX];
      assert_true(dl_key_path(u, u->nqual, kp, sizeof kp) > 0);
      assert_string_equal(kp, anchor);
      n++;
    }
    json_decref(doc);
    pl_buf_free(&text);
  }
  closedir(dh);
  free(u);
  assert_true(n >= 4);
}

static void test_check_digit(void **state) {
  (void)state;
  assert_true(dl_check_digit_ok("09506000134352", 13));
  assert_false(dl_check_digit_ok("09506000134353", 13));
  assert_true(dl_check_digit_ok("106141412345678908", 17));
  assert_true(dl_check_digit_ok("9506000134369", 12));
}

static void test_labels(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b, 0);
  pl_err err = {{0}};
  assert_int_equal(label_qr_png("https://example.com/01/09506000134352", 4, &b, &err), 0);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  assert_memory_equal(b.data, sig, 8);
  assert_memory_equal(b.data + 12, "IHDR", 4);
  /* IHDR's CRC covers type and data. */
  uint32_t crc = (uint32_t)b.data[29] << 24 | (uint32_t)b.data[30] << 16 |
                 (uint32_t)b.data[31] << 8 | b.data[32];
  assert_int_equal(crc, (uint32_t)crc32(0, b.data + 12, 17));
  uint32_t w = (uint32_t)b.data[16] << 24 | (uint32_t)b.data[17] << 16 | (uint32_t)b.data[18] << 8 |
               b.data[19];
  assert_int_equal(w % 4, 0);
  assert_memory_equal(b.data + b.len - 8, "IEND", 4);
  /* The IDAT inflates to height rows of 1 + width bytes. */
  uint32_t idat_len = (uint32_t)b.data[33] << 24 | (uint32_t)b.data[34] << 16 |
                      (uint32_t)b.data[35] << 8 | b.data[36];
  assert_memory_equal(b.data + 37, "IDAT", 4);
  uLongf raw_len = (uLongf)w * (w + 1);
  uint8_t *raw = malloc(raw_len);
  assert_int_equal(uncompress(raw, &raw_len, b.data + 41, idat_len), Z_OK);
  assert_int_equal(raw_len, (uLongf)w * (w + 1));
  assert_int_equal(raw[0], 0);
  free(raw);
  pl_buf_reset(&b);
  assert_int_equal(label_qr_svg("88.118.7/abc", 3, &b, &err), 0);
  assert_non_null(strstr(pl_buf_cstr(&b), "<svg"));
  assert_non_null(strstr(pl_buf_cstr(&b), "<path"));
  pl_buf_reset(&b);
  assert_true(label_qr_svg("", 3, &b, &err) < 0);
  label_item items[3] = {{"https://a/01/09506000134352", "88.118.7/a", "(01)09506000134352"},
                         {"https://a/b", "<b&>", NULL},
                         {"https://a/c", "c", NULL}};
  assert_int_equal(label_sheet_html(items, 3, 2, "Lot <1>", &b, &err), 0);
  assert_non_null(strstr(pl_buf_cstr(&b), "&lt;b&amp;&gt;"));
  assert_null(strstr(pl_buf_cstr(&b), "<b&>"));
  pl_buf_reset(&b);
  assert_int_equal(label_sheet_svg(items, 3, 3, &b, &err), 0);
  assert_non_null(strstr(pl_buf_cstr(&b), "(01)09506000134352"));
  pl_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtin),          cmocka_unit_test(test_full_dictionary),
      cmocka_unit_test(test_resolver_records), cmocka_unit_test(test_check_digit),
      cmocka_unit_test(test_labels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
