/* plateau prefix|ident: identifier prefixes of a data directory, Handle protocol resolution
 * against any node, bulk import of identifiers with progress, and QR labels. */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include "base/clock.h"
#include "base/json.h"
#include "ident/ident.h"
#include "ident/label.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, int rc, const pl_err *err) {
  fprintf(stderr, "plateau: %s: %s\n", what, err && err->msg[0] ? err->msg : pl_strerror(rc));
  return 1;
}

static ident_ctx cli_ident_ctx(cli_data *d) {
  ident_ctx c = {d->db, d->audit, "cli", "cli", ""};
  return c;
}

/* ---- prefix ---- */

static const char prefix_usage[] =
    "usage: plateau prefix create PREFIX --tenant NAME --data DIR\n"
    "       plateau prefix list --data DIR [--tenant NAME]\n"
    "       plateau prefix delete PREFIX --data DIR\n"
    "\n"
    "Allocates identifier prefixes (e.g. 88.118.7) to tenants. A prefix under another held prefix\n"
    "is delegated from it; the operator of the data directory may allocate any prefix.\n";

static int print_prefix(void *ctx, const store_prefix *p) {
  cli_data *d = ctx;
  store_tenant t;
  printf("%-32s %s\n", p->prefix, store_tenant_get(d->db, p->tenant_id, &t) == 0 ? t.name : "?");
  return 0;
}

int cli_prefix(int argc, char **argv) {
  if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))
    return cli_usage(argc < 1 ? stderr : stdout, prefix_usage, argc < 1 ? 2 : 0);
  static const char *const accepted[] = {"data", "tenant", NULL};
  cli_args a;
  int rc = cli_parse(argc - 1, argv + 1, accepted, &a);
  if (rc)
    return rc;
  if (a.help)
    return cli_usage(stdout, prefix_usage, 0);
  const char *verb = argv[0];
  int want_pos = !strcmp(verb, "list") ? 0 : 1;
  if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "delete")) {
    fprintf(stderr, "plateau prefix: unknown command \"%s\"\n", verb);
    return cli_usage(stderr, prefix_usage, 2);
  }
  if (a.npos != want_pos)
    return cli_usage(stderr, prefix_usage, 2);
  cli_data d;
  if ((rc = cli_data_open(cli_flag(&a, "data", NULL), &d)) != 0)
    return rc;
  ident_ctx c = cli_ident_ctx(&d);
  pl_err err = {{0}};
  if (!strcmp(verb, "create")) {
    store_tenant t;
    if ((rc = cli_tenant_arg(&d, &a, &t)) == 0) {
      store_prefix p;
      int r2 = ident_prefix_create(&c, t.id, a.pos[0], 1, &p, &err);
      if (r2 < 0)
        rc = fail("prefix create", r2, &err);
      else
        printf("%s\n", p.prefix);
    }
  } else if (!strcmp(verb, "list")) {
    int64_t tenant = 0;
    if (cli_flag(&a, "tenant", NULL)) {
      store_tenant t;
      if ((rc = cli_tenant_arg(&d, &a, &t)) == 0)
        tenant = t.id;
    }
    if (rc == 0) {
      printf("%-32s %s\n", "PREFIX", "TENANT");
      int n = store_prefix_list(d.db, tenant, 0, 0, print_prefix, &d);
      if (n < 0)
        rc = fail("prefix list", n, NULL);
    }
  } else {
    store_prefix p;
    int r2 = store_prefix_get(d.db, a.pos[0], strlen(a.pos[0]), &p);
    if (r2 == 0)
      r2 = ident_prefix_delete(&c, &p, &err);
    if (r2 < 0)
      rc = fail("prefix delete", r2, &err);
  }
  cli_data_close(&d);
  return rc;
}

/* ---- ident ---- */

static const char ident_usage[] =
    "usage: plateau ident resolve HANDLE --server HOST:PORT [--udp|--tcp] [--type TYPE]... "
    "[--index N]...\n"
    "                             [--public-only] [--no-recursion] [--timeout 2s] [--json]\n"
    "       plateau ident siteinfo --server HOST:PORT [--udp|--tcp]\n"
    "       plateau ident import FILE --data DIR --tenant NAME [--template NAME] [--format "
    "csv|jsonl]\n"
    "       plateau ident qr TEXT --out FILE.svg|FILE.png [--scale N]\n"
    "\n"
    "resolve asks a Handle server (any Plateau node, or another Handle implementation) over UDP\n"
    "(the default; long answers arrive in chunks) or TCP, and prints the values.\n"
    "import registers identifiers in bulk from CSV (a header line with a \"handle\" column and "
    "one\n"
    "column per value type) or JSON lines ({\"handle\", \"values\" or \"fields\", "
    "\"template\"?}),\n"
    "printing progress, then the report with every rejected row. FILE - reads standard input.\n";

static void print_values(const ident_result *res, int as_json, const char *handle) {
  json_t *arr = json_array();
  uint32_t pos = 0;
  hdl_value v;
  hdl_str buf = {res->values.data ? res->values.data : (const uint8_t *)"",
                 (uint32_t)res->values.len};
  for (uint32_t i = 0; i < res->nvalues && hdl_value_next(buf, &pos, &v) == 1; i++)
    json_array_append_new(arr, ident_value_to_json(&v));
  if (as_json) {
    json_t *o = json_pack("{s:i, s:s, s:s, s:o}", "responseCode", (int)res->rc, "handle", handle,
                          "source", res->source, "values", arr);
    char *s = json_dumps(o, JSON_INDENT(2));
    if (s)
      printf("%s\n", s);
    free(s);
    json_decref(o);
    return;
  }
  size_t i;
  json_t *jv;
  printf("%-6s %-16s %-8s %s\n", "INDEX", "TYPE", "TTL", "DATA");
  json_array_foreach(arr, i, jv) {
    json_t *data = json_object_get(json_object_get(jv, "data"), "value");
    char *ds = json_is_string(data) ? strdup(json_string_value(data))
                                    : json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%-6lld %-16s %-8lld %s%s\n",
           (long long)json_integer_value(json_object_get(jv, "index")),
           json_string_value(json_object_get(jv, "type")),
           (long long)json_integer_value(json_object_get(jv, "ttl")), ds ? ds : "",
           json_is_true(json_object_get(jv, "restricted")) ? "  (restricted)" : "");
    free(ds);
  }
  json_decref(arr);
}

static int ident_resolve_cmd(int argc, char **argv) {
  const char *handle = NULL, *server = NULL;
  int tcp = 0, as_json = 0;
  uint32_t opflags = HDL_OF_REC;
  uint32_t indexes[64];
  const char *types[64];
  uint32_t ni = 0, nt = 0;
  int64_t timeout = 2000000000LL;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--udp"))
      tcp = 0;
    else if (!strcmp(a, "--tcp"))
      tcp = 1;
    else if (!strcmp(a, "--json"))
      as_json = 1;
    else if (!strcmp(a, "--public-only"))
      opflags |= HDL_OF_PO;
    else if (!strcmp(a, "--no-recursion"))
      opflags &= ~HDL_OF_REC;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
      return cli_usage(stdout, ident_usage, 0);
    else if (!strcmp(a, "--server") && next)
      server = argv[++i];
    else if (!strcmp(a, "--type") && next && nt < 64)
      types[nt++] = argv[++i];
    else if (!strcmp(a, "--index") && next && ni < 64)
      indexes[ni++] = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--timeout") && next) {
      if (pl_duration_parse(argv[++i], &timeout) < 0 || timeout <= 0) {
        fprintf(stderr, "plateau ident resolve: --timeout takes a duration such as 2s\n");
        return 2;
      }
    } else if (a[0] != '-' && !handle)
      handle = a;
    else {
      fprintf(stderr, "plateau ident resolve: unexpected argument \"%s\"\n", a);
      return cli_usage(stderr, ident_usage, 2);
    }
  }
  if (!handle || !server)
    return cli_usage(stderr, ident_usage, 2);
  ident_result res;
  ident_result_init(&res);
  hdl_request_opts o = {
      (uint32_t)(pl_now_ns() & 0x7fffffff) | 1, opflags, 0, indexes, ni, types, nt};
  pl_err err = {{0}};
  int rc = ident_client_resolve(server, tcp,
                                (hdl_str){(const uint8_t *)handle, (uint32_t)strlen(handle)}, &o,
                                timeout, &res, &err);
  int status = 0;
  if (rc < 0) {
    status = fail("ident resolve", rc, &err);
  } else if (res.rc != HDL_RC_SUCCESS) {
    if (as_json)
      print_values(&res, 1, handle);
    fprintf(stderr, "plateau: %s: %s (response code %u)\n", handle,
            res.message[0] ? res.message : hdl_rc_name(res.rc), res.rc);
    status = res.rc == HDL_RC_HANDLE_NOT_FOUND ? 3 : 1;
  } else {
    print_values(&res, as_json, handle);
  }
  ident_result_free(&res);
  return status;
}

static int ident_siteinfo_cmd(int argc, char **argv) {
  const char *server = NULL;
  int tcp = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--tcp"))
      tcp = 1;
    else if (!strcmp(argv[i], "--udp"))
      tcp = 0;
    else if (!strcmp(argv[i], "--server") && i + 1 < argc)
      server = argv[++i];
    else
      return cli_usage(stderr, ident_usage, 2);
  }
  if (!server)
    return cli_usage(stderr, ident_usage, 2);
  pl_buf out;
  pl_buf_init(&out, 0);
  pl_err err = {{0}};
  int rc = ident_client_siteinfo(server, tcp, 2000000000LL, &out, &err);
  hdl_site_server sv;
  uint16_t serial = 0;
  if (rc == 0)
    rc = hdl_siteinfo_decode_first(out.data, out.len, &sv, &serial);
  pl_buf_free(&out);
  if (rc < 0)
    return fail("ident siteinfo", rc, &err);
  printf("serial %u server %u tcp %u udp %u http %u\n", serial, sv.server_id, sv.tcp_port,
         sv.udp_port, sv.http_port);
  return 0;
}

static int ident_import_cmd(int argc, char **argv) {
  static const char *const accepted[] = {"data", "tenant", "template", "format", NULL};
  cli_args a;
  int rc = cli_parse(argc, argv, accepted, &a);
  if (rc)
    return rc;
  if (a.help)
    return cli_usage(stdout, ident_usage, 0);
  if (a.npos != 1)
    return cli_usage(stderr, ident_usage, 2);
  const char *path = a.pos[0];
  const char *format = cli_flag(&a, "format", NULL);
  if (!format) {
    size_t n = strlen(path);
    format = n > 4 && !strcmp(path + n - 4, ".csv") ? "csv" : "jsonl";
  }
  if (strcmp(format, "csv") && strcmp(format, "jsonl")) {
    fprintf(stderr, "plateau ident import: --format is csv or jsonl\n");
    return 2;
  }
  FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
  if (!f) {
    fprintf(stderr, "plateau ident import: cannot open %s\n", path);
    return 1;
  }
  cli_data d;
  if ((rc = cli_data_open(cli_flag(&a, "data", NULL), &d)) != 0) {
    if (f != stdin)
      fclose(f);
    return rc;
  }
  store_tenant t;
  if ((rc = cli_tenant_arg(&d, &a, &t)) != 0) {
    cli_data_close(&d);
    if (f != stdin)
      fclose(f);
    return rc;
  }
  ident_ctx c = cli_ident_ctx(&d);
  pl_err err = {{0}};
  ident_bulk *b;
  int64_t t0 = pl_mono_ns();
  int r2 = ident_bulk_begin(&c, t.id, cli_flag(&a, "template", NULL), &b, &err);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int first = 1, tty = isatty(2);
  int64_t last_report = t0;
  while (r2 == 0 && (n = getline(&line, &cap, f)) >= 0) {
    if (n == 0 || (n == 1 && line[0] == '\n'))
      continue;
    if (!strcmp(format, "csv")) {
      r2 = ident_bulk_add_csv(b, line, (size_t)n);
      if (first && r2 < 0) {
        pl_err_set(&err, PL_EINVAL, "the CSV header must name a \"handle\" column");
        break;
      }
      first = 0;
    } else {
      json_t *row = NULL;
      if (pl_json_parse(line, (size_t)n, 8, &row, NULL) < 0)
        row = json_pack("{s:s}", "handle", "");
      r2 = ident_bulk_add_json(b, row);
      json_decref(row);
    }
    if (r2 == PL_EINVAL || r2 == PL_EPERM || r2 == PL_EEXIST || r2 == PL_ENOTFOUND ||
        r2 == PL_ELIMIT)
      r2 = 0;
    int64_t now = pl_mono_ns();
    if (now - last_report > 1000000000LL) {
      last_report = now;
      fprintf(stderr, "%simported %lld rows (%.0f rows/s)%s", tty ? "\r" : "",
              (long long)ident_bulk_rows(b),
              (double)ident_bulk_rows(b) / ((double)(now - t0) / 1e9), tty ? "" : "\n");
    }
  }
  free(line);
  if (f != stdin)
    fclose(f);
  if (r2 < 0) {
    if (b)
      ident_bulk_abort(b);
    cli_data_close(&d);
    return fail("ident import", r2, &err);
  }
  ident_bulk_report rep;
  r2 = ident_bulk_finish(b, &rep, &err);
  cli_data_close(&d);
  if (r2 < 0)
    return fail("ident import", r2, &err);
  double secs = (double)(pl_mono_ns() - t0) / 1e9;
  if (tty)
    fprintf(stderr, "\n");
  size_t i;
  json_t *e;
  json_array_foreach(rep.errors, i, e)
      fprintf(stderr, "row %lld %s: %s\n", (long long)json_integer_value(json_object_get(e, "row")),
              json_string_value(json_object_get(e, "handle")),
              json_string_value(json_object_get(e, "error")));
  if (rep.rejected > (int64_t)json_array_size(rep.errors))
    fprintf(stderr, "(%lld more rejected rows not listed)\n",
            (long long)(rep.rejected - (int64_t)json_array_size(rep.errors)));
  printf("rows %lld accepted %lld rejected %lld seconds %.2f rows/s %.0f\n", (long long)rep.rows,
         (long long)rep.accepted, (long long)rep.rejected, secs,
         secs > 0 ? (double)rep.rows / secs : 0.0);
  json_decref(rep.errors);
  return rep.rejected ? 1 : 0;
}

static int ident_qr_cmd(int argc, char **argv) {
  static const char *const accepted[] = {"out", "scale", NULL};
  cli_args a;
  int rc = cli_parse(argc, argv, accepted, &a);
  if (rc)
    return rc;
  const char *out = cli_flag(&a, "out", NULL);
  if (a.npos != 1 || !out)
    return cli_usage(stderr, ident_usage, 2);
  size_t n = strlen(out);
  int png = n > 4 && !strcmp(out + n - 4, ".png");
  int scale = atoi(cli_flag(&a, "scale", png ? "8" : "4"));
  pl_buf b;
  pl_buf_init(&b, 0);
  pl_err err = {{0}};
  rc = png ? label_qr_png(a.pos[0], scale, &b, &err) : label_qr_svg(a.pos[0], scale, &b, &err);
  FILE *f = rc == 0 ? fopen(out, "wb") : NULL;
  if (rc == 0 && (!f || fwrite(b.data, 1, b.len, f) != b.len))
    rc = pl_err_set(&err, PL_EIO, "cannot write %s", out);
  if (f && fclose(f) != 0 && rc == 0)
    rc = pl_err_set(&err, PL_EIO, "cannot write %s", out);
  pl_buf_free(&b);
  return rc < 0 ? fail("ident qr", rc, &err) : 0;
}

int cli_ident(int argc, char **argv) {
  if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))
    return cli_usage(argc < 1 ? stderr : stdout, ident_usage, argc < 1 ? 2 : 0);
  if (!strcmp(argv[0], "resolve"))
    return ident_resolve_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[0], "siteinfo"))
    return ident_siteinfo_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[0], "import"))
    return ident_import_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[0], "qr"))
    return ident_qr_cmd(argc - 1, argv + 1);
  fprintf(stderr, "plateau ident: unknown command \"%s\"\n", argv[0]);
  return cli_usage(stderr, ident_usage, 2);
}
