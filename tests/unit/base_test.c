/* Unit tests for base/: buffers and varints, CRC32C, hash map, clock, JSON glue, UTF-8,
 * configuration table, network address parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/log.h"
#include "base/map.h"
#include "base/net.h"
#include "base/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_buf_limit(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b, 10);
  assert_int_equal(pl_buf_append(&b, "0123456789", 10), 0);
  assert_int_equal(pl_buf_append_byte(&b, 'x'), PL_ELIMIT);
  assert_int_equal(b.len, 10);
  assert_string_equal(pl_buf_cstr(&b), "0123456789");
  pl_buf_reset(&b);
  assert_int_equal(pl_buf_printf(&b, "%d-%s", 42, "ab"), 0);
  assert_string_equal(pl_buf_cstr(&b), "42-ab");
  assert_int_equal(pl_buf_printf(&b, "%s", "this is far too long"), PL_ELIMIT);
  assert_int_equal(b.len, 5);
  pl_buf_free(&b);
  assert_null(b.data);
}

static void test_varints(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b, 0);
  const uint64_t u[] = {0, 1, 127, 128, 300, UINT32_MAX, UINT64_MAX};
  const int64_t s[] = {0, -1, 1, -64, 64, INT64_MIN, INT64_MAX};
  for (size_t i = 0; i < 7; i++) assert_int_equal(pl_buf_put_uvarint(&b, u[i]), 0);
  for (size_t i = 0; i < 7; i++) assert_int_equal(pl_buf_put_svarint(&b, s[i]), 0);
  assert_int_equal(pl_buf_put_u32be(&b, 0x01020304), 0);
  pl_reader r;
  pl_reader_init(&r, b.data, b.len);
  for (size_t i = 0; i < 7; i++) {
    uint64_t v;
    assert_int_equal(pl_read_uvarint(&r, &v), 0);
    assert_true(v == u[i]);
  }
  for (size_t i = 0; i < 7; i++) {
    int64_t v;
    assert_int_equal(pl_read_svarint(&r, &v), 0);
    assert_true(v == s[i]);
  }
  uint32_t be;
  assert_int_equal(pl_read_u32be(&r, &be), 0);
  assert_int_equal(be, 0x01020304);
  uint8_t x;
  assert_int_equal(pl_read_u8(&r, &x), PL_EINVAL);
  /* An unterminated varint and one that overflows 64 bits are rejected. */
  const uint8_t bad1[] = {0x80, 0x80};
  const uint8_t bad2[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
  uint64_t v;
  pl_reader_init(&r, bad1, sizeof bad1);
  assert_int_equal(pl_read_uvarint(&r, &v), PL_EINVAL);
  assert_int_equal(r.pos, 0);
  pl_reader_init(&r, bad2, sizeof bad2);
  assert_int_equal(pl_read_uvarint(&r, &v), PL_EINVAL);
  pl_buf_free(&b);
}

static void test_crc32c(void **state) {
  (void)state;
  /* Known answers: RFC 3720 (iSCSI) test vectors. */
  uint8_t zeros[32] = {0}, ones[32], inc[32];
  memset(ones, 0xff, 32);
  for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
  assert_int_equal(pl_crc32c(0, zeros, 32), 0x8a9136aa);
  assert_int_equal(pl_crc32c(0, ones, 32), 0x62a8ab43);
  assert_int_equal(pl_crc32c(0, inc, 32), 0x46dd794e);
  assert_int_equal(pl_crc32c(0, "123456789", 9), 0xe3069283);
  /* Incremental equals one-shot. */
  uint32_t c = pl_crc32c(0, "12345", 5);
  assert_int_equal(pl_crc32c(c, "6789", 4), 0xe3069283);
}

static void test_map(void **state) {
  (void)state;
  pl_map *m = pl_map_new();
  assert_non_null(m);
  char key[32];
  for (long i = 0; i < 5000; i++) {
    int n = snprintf(key, sizeof key, "series-%ld", i);
    assert_int_equal(pl_map_put(m, key, (size_t)n, (void *)(i + 1), NULL), 0);
  }
  assert_int_equal(pl_map_count(m), 5000);
  for (long i = 0; i < 5000; i += 2) {
    int n = snprintf(key, sizeof key, "series-%ld", i);
    assert_ptr_equal(pl_map_del(m, key, (size_t)n), (void *)(i + 1));
  }
  assert_int_equal(pl_map_count(m), 2500);
  for (long i = 0; i < 5000; i++) {
    int n = snprintf(key, sizeof key, "series-%ld", i);
    void *v = pl_map_get(m, key, (size_t)n);
    if (i % 2) assert_ptr_equal(v, (void *)(i + 1));
    else assert_null(v);
  }
  void *old = NULL;
  assert_int_equal(pl_map_put(m, "series-1", 8, (void *)7, &old), 0);
  assert_ptr_equal(old, (void *)2);
  size_t it = 0, seen = 0;
  const void *k;
  size_t kl;
  void *v;
  while (pl_map_next(m, &it, &k, &kl, &v)) seen++;
  assert_int_equal(seen, 2500);
  /* Keys are bytes, not strings: embedded NULs and the empty key work. */
  assert_int_equal(pl_map_put(m, "a\0b", 3, (void *)9, NULL), 0);
  assert_int_equal(pl_map_put(m, "", 0, (void *)10, NULL), 0);
  assert_ptr_equal(pl_map_get(m, "a\0b", 3), (void *)9);
  assert_null(pl_map_get(m, "a", 1));
  assert_ptr_equal(pl_map_get(m, "", 0), (void *)10);
  pl_map_free(m);
}

static void test_time(void **state) {
  (void)state;
  char buf[40];
  int64_t ns;
  assert_string_equal(pl_time_format(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
  assert_string_equal(pl_time_format(1764396334123000000LL, buf, sizeof buf), "2025-11-29T06:05:34.123Z");
  assert_string_equal(pl_time_format(-1, buf, sizeof buf), "1969-12-31T23:59:59.999999999Z");
  assert_int_equal(pl_time_parse("2025-11-29T06:05:34.123Z", &ns), 0);
  assert_true(ns == 1764396334123000000LL);
  assert_int_equal(pl_time_parse("2025-11-29T14:05:34.123+08:00", &ns), 0);
  assert_true(ns == 1764396334123000000LL);
  assert_int_equal(pl_time_parse("2024-02-29T00:00:00Z", &ns), 0);
  assert_int_equal(pl_time_parse("2023-02-29T00:00:00Z", &ns), PL_EINVAL);
  assert_int_equal(pl_time_parse("2025-11-29T06:05:34", &ns), PL_EINVAL);
  assert_int_equal(pl_time_parse("2025-13-01T00:00:00Z", &ns), PL_EINVAL);
  assert_int_equal(pl_time_parse("2025-11-29T06:05:34Zjunk", &ns), PL_EINVAL);
  assert_int_equal(pl_duration_parse("100ms", &ns), 0);
  assert_true(ns == 100000000);
  assert_int_equal(pl_duration_parse("7d", &ns), 0);
  assert_true(ns == 7 * 86400LL * 1000000000);
  assert_int_equal(pl_duration_parse("10", &ns), PL_EINVAL);
  assert_int_equal(pl_duration_parse("-1s", &ns), PL_EINVAL);
  assert_int_equal(pl_duration_parse("99999999999999w", &ns), PL_EINVAL);
  /* Round trip over a range of instants. */
  for (int64_t t = -5000000000000000000LL; t < 5000000000000000000LL; t += 123456789012345677LL) {
    assert_int_equal(pl_time_parse(pl_time_format(t, buf, sizeof buf), &ns), 0);
    assert_true(ns == t);
  }
}

static void test_utf8(void **state) {
  (void)state;
  assert_true(pl_utf8_valid("plain", 5));
  assert_true(pl_utf8_valid("\xe0\xbd\x96\xe0\xbd\xbc\xe0\xbd\x91", 9)); /* Tibetan */
  assert_true(pl_utf8_valid("\xe6\xb0\xb4", 3));                        /* 水 */
  assert_false(pl_utf8_valid("\xc0\xaf", 2));                          /* overlong */
  assert_false(pl_utf8_valid("\xed\xa0\x80", 3));                       /* surrogate */
  assert_false(pl_utf8_valid("\xe6\xb0", 2));                           /* truncated */
  assert_false(pl_utf8_valid("a\0b", 3));
  assert_false(pl_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  /* one sequence at a time: its length and code point, or 0 */
  uint32_t cp = 0;
  assert_int_equal(pl_utf8_decode("a", 1, &cp), 1);
  assert_int_equal(cp, 'a');
  assert_int_equal(pl_utf8_decode("", 1, &cp), 1); /* NUL is a sequence */
  assert_int_equal(cp, 0);
  assert_int_equal(pl_utf8_decode("\xc3\xa9x", 3, &cp), 2); /* é */
  assert_int_equal(cp, 0xe9);
  assert_int_equal(pl_utf8_decode("\xe6\xb0\xb4", 3, &cp), 3); /* 水 */
  assert_int_equal(cp, 0x6c34);
  assert_int_equal(pl_utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4); /* U+1F600 */
  assert_int_equal(cp, 0x1f600);
  assert_int_equal(pl_utf8_decode("\xf4\x8f\xbf\xbf", 4, NULL), 4); /* U+10FFFF */
  assert_int_equal(pl_utf8_decode("\xc0\xaf", 2, &cp), 0);             /* overlong */
  assert_int_equal(pl_utf8_decode("\xe0\x80\xaf", 3, &cp), 0);         /* overlong */
  assert_int_equal(pl_utf8_decode("\xed\xa0\x80", 3, &cp), 0);         /* surrogate */
  assert_int_equal(pl_utf8_decode("\xe6\xb0\xb4", 2, &cp), 0);         /* past left */
  assert_int_equal(pl_utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0);    /* > U+10FFFF */
  assert_int_equal(pl_utf8_decode("\x80", 1, &cp), 0);                 /* continuation */
  assert_int_equal(pl_utf8_decode("\xe6x\xb4", 3, &cp), 0);            /* broken */
}

/* A tree built in an arena is dropped inside it (no per-value free); values made outside and
 * put into it are freed normally; allocations after leaving come from malloc again; arenas
 * nest per thread. Under ASan a wrong free() of arena memory or a leak fails the test. */
static void test_json_arena(void **state) {
  (void)state;
  json_t *outside = json_string("made before the arena");
  pl_json_arena *a = pl_json_arena_new();
  assert_non_null(a);
  assert_null(pl_json_arena_enter(a));
  json_t *tree = json_loads("{\"a\": [1, 2, {\"b\": \"c\"}], \"d\": 1.5}", 0, NULL);
  assert_non_null(tree);
  for (int i = 0; i < 10000; i++) /* past the first block */
    json_array_append_new(json_object_get(tree, "a"), json_integer(i));
  json_object_set_new(tree, "outside", outside);
  json_object_set_new(tree, "d", json_string("replaced inside"));
  pl_json_arena *b = pl_json_arena_new();
  assert_ptr_equal(pl_json_arena_enter(b), a);
  json_t *inner = json_pack("{s:i}", "x", 1);
  json_decref(inner);
  assert_ptr_equal(pl_json_arena_enter(a), b);
  pl_json_arena_free(b);
  assert_int_equal(json_array_size(json_object_get(tree, "a")), 10003);
  json_decref(tree);
  assert_ptr_equal(pl_json_arena_enter(NULL), a);
  pl_json_arena_free(a);
  json_t *empty = json_array();
  char *text = json_dumps(empty, 0); /* malloc again: free() is right */
  assert_string_equal(text, "[]");
  free(text);
  json_decref(empty);
  pl_json_arena_free(NULL);
}

static void test_json(void **state) {
  (void)state;
  static const pl_json_field fields[] = {
      {"name", PL_JSON_STRING, 1, 8, 0},
      {"count", PL_JSON_INTEGER, 0, 0, 0},
      {"note", PL_JSON_STRING, 0, 0, 1},
  };
  json_t *v = NULL;
  pl_err err = {{0}};
  const char *ok = "{\"name\":\"pump\",\"count\":3,\"note\":null}";
  assert_int_equal(pl_json_parse(ok, strlen(ok), 8, &v, &err), 0);
  assert_int_equal(pl_json_check(v, fields, 3, &err), 0);
  assert_string_equal(pl_json_str(v, "name", ""), "pump");
  assert_int_equal(pl_json_int(v, "count", 0), 3);
  json_decref(v);
  const struct {
    const char *doc;
    int rc;
    const char *needle;
  } bad[] = {
      {"{\"name\":\"pump\",\"extra\":1}", PL_EINVAL, "unknown field"},
      {"{\"name\":7}", PL_EINVAL, "must be a string"},
      {"{\"count\":1}", PL_EINVAL, "required"},
      {"{\"name\":\"far too long\"}", PL_EINVAL, "longer than"},
      {"[1,2]", PL_EINVAL, "object"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(pl_json_parse(bad[i].doc, strlen(bad[i].doc), 8, &v, &err), 0);
    assert_int_equal(pl_json_check(v, fields, 3, &err), bad[i].rc);
    assert_non_null(strstr(err.msg, bad[i].needle));
    json_decref(v);
  }
  assert_int_equal(pl_json_parse("{\"a\":", 5, 8, &v, &err), PL_EINVAL);
  assert_int_equal(pl_json_parse("{\"a\":1}x", 8, 8, &v, &err), PL_EINVAL);
  assert_int_equal(pl_json_parse("{\"a\":1,\"a\":2}", 13, 8, &v, &err), PL_EINVAL);
  assert_int_equal(pl_json_parse("\"\xff\"", 3, 8, &v, &err), PL_EINVAL);
  assert_int_equal(pl_json_parse("", 0, 8, &v, &err), PL_EINVAL);
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  assert_int_equal(pl_json_parse(deep, 200, 64, &v, &err), PL_ELIMIT);
  /* Brackets inside strings do not count toward depth. */
  const char *str = "{\"a\":\"[[[[[[[[[[[[[[[[[[[[\"}";
  assert_int_equal(pl_json_parse(str, strlen(str), 2, &v, &err), 0);
  json_decref(v);
}

static void test_config(void **state) {
  (void)state;
  pl_config cfg;
  pl_config_defaults(&cfg);
  assert_string_equal(cfg.http_listen, "[::]:8080");
  assert_int_equal(cfg.http_threads, 4);
  assert_true(cfg.tsdb_fsync_interval_ns == 100000000);
  pl_err err = {{0}};
  /* Every default satisfies its own bounds. */
  size_t n;
  const pl_config_opt *opts = pl_config_options(&n);
  for (size_t i = 0; i < n; i++) assert_int_equal(pl_config_set(&cfg, opts[i].name, opts[i].dflt, &err), 0);
  /* File, then environment, then flags. */
  char dir[] = "/tmp/plateau-cfg-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/p.ini", dir);
  FILE *f = fopen(path, "w");
  fprintf(f, "data_dir = /srv/a\n[http]\nlisten = 127.0.0.1:1\nthreads = 2\n[tsdb]\nfsync = always\n");
  fclose(f);
  assert_int_equal(pl_config_load_file(&cfg, path, &err), 0);
  assert_string_equal(cfg.data_dir, "/srv/a");
  assert_string_equal(cfg.http_listen, "127.0.0.1:1");
  assert_string_equal(cfg.tsdb_fsync, "always");
  char *env[] = {"PLATEAU_HTTP_LISTEN=[::1]:2", "PLATEAU_HTTP_THREADS=3", "OTHER=1", NULL};
  assert_int_equal(pl_config_load_env(&cfg, env, &err), 0);
  assert_string_equal(cfg.http_listen, "[::1]:2");
  assert_int_equal(cfg.http_threads, 3);
  char *argv[] = {"--http", "[::1]:3", "--http-max-body-bytes=64KiB", "word", "--session-ttl", "1h"};
  const char *pos[2];
  int npos = 0, help = 0;
  assert_int_equal(pl_config_load_args(&cfg, 6, argv, pos, 2, &npos, &help, &err), 0);
  assert_string_equal(cfg.http_listen, "[::1]:3");
  assert_true(cfg.http_max_body_bytes == 65536);
  assert_true(cfg.session_ttl_ns == 3600LL * 1000000000);
  assert_int_equal(npos, 1);
  assert_string_equal(pos[0], "word");
  /* Bad values are refused with a message naming the option. */
  assert_int_equal(pl_config_set(&cfg, "tsdb_fsync", "sometimes", &err), PL_EINVAL);
  assert_non_null(strstr(err.msg, "tsdb_fsync"));
  assert_int_equal(pl_config_set(&cfg, "http_threads", "0", &err), PL_EINVAL);
  assert_int_equal(pl_config_set(&cfg, "http_threads", "4x", &err), PL_EINVAL);
  assert_int_equal(pl_config_set(&cfg, "http_timeout", "5", &err), PL_EINVAL);
  assert_int_equal(pl_config_set(&cfg, "nonsense", "1", &err), PL_EINVAL);
  char *bad_argv[] = {"--no-such-flag", "1"};
  assert_int_equal(pl_config_load_args(&cfg, 2, bad_argv, pos, 2, &npos, &help, &err), PL_EINVAL);
  f = fopen(path, "w");
  fprintf(f, "[http]\nthreads = many\n");
  fclose(f);
  assert_int_equal(pl_config_load_file(&cfg, path, &err), PL_EINVAL);
  unlink(path);
  rmdir(dir);
}

/* docs/operations.md must carry the reference table exactly as the option table produces it. */
static void test_config_docs(void **state) {
  (void)state;
  const char *src = getenv("PLATEAU_SOURCE_DIR");
  if (!src) skip();
  char path[1024];
  snprintf(path, sizeof path, "%s/docs/operations.md", src);
  pl_buf doc, table;
  pl_buf_init(&doc, 0);
  pl_buf_init(&table, 0);
  assert_int_equal(pl_fs_read_file(path, 1 << 20, &doc), 0);
  assert_int_equal(pl_config_markdown(&table), 0);
  if (!strstr(pl_buf_cstr(&doc), pl_buf_cstr(&table)))
    fail_msg("docs/operations.md is out of date: regenerate its table with `plateau config markdown`");
  pl_buf_free(&doc);
  pl_buf_free(&table);
}

static void test_net(void **state) {
  (void)state;
  char host[64];
  int port;
  assert_int_equal(pl_net_split("[::1]:8080", host, sizeof host, &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 8080);
  assert_int_equal(pl_net_split("127.0.0.1:0", host, sizeof host, &port), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(pl_net_split(":1883", host, sizeof host, &port), 0);
  assert_string_equal(host, "");
  assert_int_equal(pl_net_split("::1:80", host, sizeof host, &port), PL_EINVAL);
  assert_int_equal(pl_net_split("[::1]", host, sizeof host, &port), PL_EINVAL);
  assert_int_equal(pl_net_split("host:99999", host, sizeof host, &port), PL_EINVAL);
  pl_err err = {{0}};
  int fd = pl_net_listen("127.0.0.1:0", SOCK_STREAM, 16, &err);
  assert_true(fd >= 0);
  assert_true(pl_net_local_port(fd) > 0);
  close(fd);
  assert_true(pl_net_listen("not an address", SOCK_STREAM, 16, &err) < 0);
}

static void test_fs(void **state) {
  (void)state;
  char dir[] = "/tmp/plateau-fs-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64], sub[64];
  snprintf(path, sizeof path, "%s/f", dir);
  snprintf(sub, sizeof sub, "%s/a/b/c", dir);
  assert_int_equal(pl_fs_mkdir_p(sub, 0700), 0);
  assert_true(pl_fs_exists(sub));
  assert_int_equal(pl_fs_write_atomic(path, "hello", 5, 0600), 0);
  pl_buf b;
  pl_buf_init(&b, 0);
  assert_int_equal(pl_fs_read_file(path, 100, &b), 0);
  assert_int_equal(b.len, 5);
  assert_memory_equal(b.data, "hello", 5);
  pl_buf_reset(&b);
  assert_int_equal(pl_fs_read_file(path, 4, &b), PL_ELIMIT);
  snprintf(path, sizeof path, "%s/missing", dir);
  assert_int_equal(pl_fs_read_file(path, 4, &b), PL_ENOTFOUND);
  snprintf(path, sizeof path, "%s/LOCK", dir);
  int fd = pl_fs_lock(path);
  assert_true(fd >= 0);
  /* flock locks belong to the open file description: a second open in the same process
   * conflicts just as another process would. */
  assert_int_equal(pl_fs_lock(path), PL_EBUSY);
  close(fd);
  int fd2 = pl_fs_lock(path);
  assert_true(fd2 >= 0);
  close(fd2);
  pl_buf_free(&b);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_log_quote(void **state) {
  (void)state;
  char out[64];
  assert_string_equal(pl_log_quote("simple", out, sizeof out), "simple");
  assert_string_equal(pl_log_quote("two words", out, sizeof out), "\"two words\"");
  assert_string_equal(pl_log_quote("a\"b\n", out, sizeof out), "\"a\\\"b\\x0a\"");
  assert_string_equal(pl_log_quote("", out, sizeof out), "\"\"");
  assert_int_equal(pl_log_level_parse("debug"), PL_LOG_DEBUG);
  assert_int_equal(pl_log_level_parse("loud"), PL_EINVAL);
  assert_string_equal(pl_strerror(PL_ENOTFOUND), "not found");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf_limit), cmocka_unit_test(test_varints),   cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_map),       cmocka_unit_test(test_time),      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_json),      cmocka_unit_test(test_json_arena),      cmocka_unit_test(test_config),    cmocka_unit_test(test_config_docs),
      cmocka_unit_test(test_net),       cmocka_unit_test(test_fs),        cmocka_unit_test(test_log_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
