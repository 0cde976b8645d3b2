/* Resolution: local lookup in the registry, a TTL-respecting cache of answers from other nodes
 * (positive and negative), recursive queries to the configured parent or peer nodes with a
 * recursion limit and timeouts, resolution statistics, and the Handle protocol client used for
 * recursion and by `plateau ident resolve`.
 *
 * Cache: handle (ASCII case-folded) -> the upstream's whole value list (unfiltered, so one entry
 * serves any index/type filter) or its negative answer, with an expiry on the monotonic clock:
 * the smallest relative TTL among the values (absolute TTLs counted from now), capped by
 * handle_cache_ttl_max; negative answers live handle_negative_ttl. When full, expired entries
 * go first, then arbitrary ones. One mutex; entries are copied out under it.
 */
#include "ident/ident.h"
#include "ident/digital_link.h"

#include "base/fs.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define PARENTS_MAX 8
#define JOBS_KEPT 64

typedef struct cache_entry {
  int64_t expires_ns;
  uint32_t rc;
  uint32_t nvalues;
  uint8_t *values;
  size_t len;
  char source[96];
} cache_entry;

typedef struct stat_key {
  int64_t prefix_id, day;
} stat_key;

typedef struct stat_val {
  int64_t resolutions, not_found;
} stat_val;

struct ident {
  ident_opts o;
  char parents[PARENTS_MAX][300];
  int nparents;
  pthread_mutex_t cache_mu;
  pl_map *cache;
  int64_t hits, misses;
  pthread_mutex_t stats_mu;
  pl_map *stats;
  atomic_uint next_request_id;
  dl_dict *dict; /* loaded from opts.gs1_dictionary, or NULL for the built-in one */
  pthread_mutex_t tuned_mu;
  pl_map *tuned; /* store connections already given a read cache and memory map */
  int have_site_address;
  uint8_t site_address[16];
  pthread_mutex_t site_mu;
  uint8_t *siteinfo; /* this node's site information, for 0.NA/PREFIX */
  size_t siteinfo_len;
  /* background bulk registrations (ident_bulk_submit) */
  pthread_mutex_t jobs_mu;
  struct bulk_job *jobs[JOBS_KEPT];
  int64_t next_job_id;
};

/* Gives a connection that resolves (an HTTP pool connection, say) the page cache and memory
 * map of store_ident_tune, once per connection. */
static void tune_once(ident *id, store *db) {
  pthread_mutex_lock(&id->tuned_mu);
  int known = pl_map_get(id->tuned, &db, sizeof db) != NULL;
  if (!known && pl_map_count(id->tuned) < 4096)
    pl_map_put(id->tuned, &db, sizeof db, (void *)1, NULL);
  pthread_mutex_unlock(&id->tuned_mu);
  if (!known)
    store_ident_tune(db, 16 << 20, (int64_t)1 << 30);
}

void ident_opts_from_config(const pl_config *cfg, ident_opts *o) {
  memset(o, 0, sizeof *o);
  o->parents = cfg->handle_parents;
  o->cache_max = cfg->handle_cache_max;
  o->cache_ttl_max_ns = cfg->handle_cache_ttl_max_ns;
  o->negative_ttl_ns = cfg->handle_negative_ttl_ns;
  o->recursion_max = cfg->handle_recursion_max;
  o->timeout_ns = cfg->handle_timeout_ns;
  o->gs1_dictionary = cfg->gs1_dictionary;
  o->site_address = cfg->handle_site_address;
}

int ident_new(const ident_opts *o, ident **out, pl_err *err) {
  ident *id = calloc(1, sizeof *id);
  if (!id)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  id->o = *o;
  id->o.parents = NULL;
  id->o.gs1_dictionary = NULL;
  id->o.site_address = NULL;
  if (o->site_address && *o->site_address) {
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET6, o->site_address, &a6) == 1) {
      memcpy(id->site_address, &a6, 16);
    } else if (inet_pton(AF_INET, o->site_address, &a4) == 1) {
      memcpy(id->site_address + 12, &a4, 4);
    } else {
      free(id);
      return pl_err_set(err, PL_EINVAL,
                        "handle_site_address: \"%s\" is not an IPv4 or IPv6 address",
                        o->site_address);
    }
    id->have_site_address = 1;
  }
  if (o->gs1_dictionary && *o->gs1_dictionary) {
    pl_buf text;
    pl_buf_init(&text, 16u << 20);
    int rc = pl_fs_read_file(o->gs1_dictionary, 16u << 20, &text);
    if (rc == 0)
      rc = dl_dict_parse((const char *)text.data, text.len, &id->dict, err);
    else
      pl_err_set(err, rc, "cannot read the GS1 dictionary %s: %s", o->gs1_dictionary,
                 pl_strerror(rc));
    pl_buf_free(&text);
    if (rc < 0) {
      free(id);
      return rc;
    }
  }
  if (id->o.timeout_ns <= 0)
    id->o.timeout_ns = 2000000000LL;
  if (id->o.recursion_max <= 0)
    id->o.recursion_max = 4;
  const char *p = o->parents ? o->parents : "";
  while (*p) {
    while (*p == ',' || *p == ' ')
      p++;
    size_t n = strcspn(p, ", ");
    if (!n)
      break;
    if (id->nparents == PARENTS_MAX || n >= sizeof id->parents[0]) {
      dl_dict_free(id->dict);
      free(id);
      return pl_err_set(err, PL_EINVAL, "handle_parents: at most %d nodes of HOST:PORT",
                        PARENTS_MAX);
    }
    memcpy(id->parents[id->nparents], p, n);
    id->parents[id->nparents][n] = 0;
    char host[256];
    int port;
    if (pl_net_split(id->parents[id->nparents], host, sizeof host, &port) < 0 || port <= 0) {
      pl_err_set(err, PL_EINVAL, "handle_parents: \"%s\" is not HOST:PORT",
                 id->parents[id->nparents]);
      dl_dict_free(id->dict);
      free(id);
      return PL_EINVAL;
    }
    id->nparents++;
    p += n;
  }
  pthread_mutex_init(&id->cache_mu, NULL);
  pthread_mutex_init(&id->stats_mu, NULL);
  pthread_mutex_init(&id->tuned_mu, NULL);
  pthread_mutex_init(&id->jobs_mu, NULL);
  pthread_mutex_init(&id->site_mu, NULL);
  id->cache = pl_map_new();
  id->stats = pl_map_new();
  id->tuned = pl_map_new();
  atomic_init(&id->next_request_id, (unsigned)(pl_now_ns() & 0xffffff) + 1);
  if (!id->cache || !id->stats || !id->tuned) {
    ident_free(id);
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  }
  *out = id;
  return 0;
}

static void free_map_values(pl_map *m, int entries) {
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (pl_map_next(m, &it, &k, &kl, &v)) {
    if (entries)
      free(((cache_entry *)v)->values);
    free(v);
  }
}

static void job_free(struct bulk_job *j);

void ident_free(ident *id) {
  if (!id)
    return;
  for (int i = 0; i < JOBS_KEPT; i++)
    job_free(id->jobs[i]); /* waits for running ones */
  if (id->cache) {
    free_map_values(id->cache, 1);
    pl_map_free(id->cache);
  }
  if (id->stats) {
    free_map_values(id->stats, 0);
    pl_map_free(id->stats);
  }
  pl_map_free(id->tuned);
  pthread_mutex_destroy(&id->cache_mu);
  pthread_mutex_destroy(&id->stats_mu);
  pthread_mutex_destroy(&id->tuned_mu);
  pthread_mutex_destroy(&id->jobs_mu);
  pthread_mutex_destroy(&id->site_mu);
  free(id->siteinfo);
  dl_dict_free(id->dict);
  free(id);
}

void ident_set_siteinfo(ident *id, const uint8_t *p, size_t n) {
  uint8_t *copy = n ? malloc(n) : NULL;
  if (copy)
    memcpy(copy, p, n);
  pthread_mutex_lock(&id->site_mu);
  free(id->siteinfo);
  id->siteinfo = copy;
  id->siteinfo_len = copy ? n : 0;
  pthread_mutex_unlock(&id->site_mu);
}

int ident_site_address(const ident *id, uint8_t out[16]) {
  if (!id->have_site_address)
    return PL_ENOTFOUND;
  memcpy(out, id->site_address, 16);
  return 0;
}

const dl_dict *ident_gs1_dict(const ident *id) {
  return id && id->dict ? id->dict : dl_dict_builtin();
}

void ident_result_init(ident_result *r) {
  memset(r, 0, sizeof *r);
  pl_buf_init(&r->values, HDL_MESSAGE_MAX);
}

void ident_result_free(ident_result *r) {
  pl_buf_free(&r->values);
}

/* ---- statistics ---- */

void ident_stats_count(ident *id, int64_t prefix_id, int found) {
  stat_key k = {prefix_id, ident_day(pl_now_ms())};
  pthread_mutex_lock(&id->stats_mu);
  stat_val *v = pl_map_get(id->stats, &k, sizeof k);
  if (!v && pl_map_count(id->stats) < 100000 && (v = calloc(1, sizeof *v)) &&
      pl_map_put(id->stats, &k, sizeof k, v, NULL) < 0) {
    free(v);
    v = NULL;
  }
  if (v) {
    if (found)
      v->resolutions++;
    else
      v->not_found++;
  }
  pthread_mutex_unlock(&id->stats_mu);
}

int ident_stats_flush(ident *id, store *db) {
  pthread_mutex_lock(&id->stats_mu);
  pl_map *m = id->stats;
  pl_map *fresh = pl_map_new();
  if (!fresh) {
    pthread_mutex_unlock(&id->stats_mu);
    return PL_ENOMEM;
  }
  id->stats = fresh;
  pthread_mutex_unlock(&id->stats_mu);
  int rc = pl_map_count(m) ? store_begin(db) : 0;
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  int began = pl_map_count(m) && rc == 0;
  while (rc == 0 && pl_map_next(m, &it, &k, &kl, &v)) {
    const stat_key *sk = k;
    const stat_val *sv = v;
    rc = store_ident_stats_add(db, sk->prefix_id, sk->day, sv->resolutions, sv->not_found, 0);
  }
  if (began) {
    if (rc == 0)
      rc = store_commit(db);
    if (rc < 0)
      store_rollback(db);
  }
  if (rc < 0)
    PL_LOG(PL_LOG_WARN, "ident", "statistics flush failed err=\"%s\"", pl_strerror(rc));
  free_map_values(m, 0);
  pl_map_free(m);
  return rc;
}

/* ---- filtering ---- */

static int type_listed(const ident_query *q, hdl_str type) {
  for (uint32_t i = 0; i < q->ntypes; i++)
    if (hdl_type_matches(q->types[i], type))
      return 1;
  return 0;
}

static int index_listed(const ident_query *q, uint32_t index) {
  for (uint32_t i = 0; i < q->nindexes; i++)
    if (q->indexes[i] == index)
      return 1;
  return 0;
}

/* Copies the values the reader may see and asked for into res. */
static int filter_values(const ident_query *q, const uint8_t *enc, size_t len, uint32_t n,
                         int64_t owner, ident_result *res) {
  hdl_str buf = {enc ? enc : (const uint8_t *)"", (uint32_t)len};
  uint32_t pos = 0;
  hdl_value v;
  uint32_t visible = 0, kept = 0;
  int64_t ttl_min = INT64_MAX;
  int64_t now_s = pl_now_ms() / 1000;
  pl_buf_reset(&res->values);
  for (uint32_t i = 0; i < n; i++) {
    int rc = hdl_value_next(buf, &pos, &v);
    if (rc != 1)
      return rc < 0 ? rc : PL_ECORRUPT;
    int restricted = !(v.perm & HDL_PERM_PUBLIC_READ);
    if (restricted && (q->public_only || !q->reader_tenant || q->reader_tenant != owner))
      continue;
    visible++;
    if ((q->nindexes || q->ntypes) && !index_listed(q, v.index) && !type_listed(q, v.type))
      continue;
    if ((rc = hdl_value_encode(&res->values, &v)) < 0)
      return rc;
    kept++;
    int64_t ttl = v.ttl_type == 1 ? (int64_t)v.ttl - now_s : v.ttl;
    if (ttl < ttl_min)
      ttl_min = ttl;
  }
  res->nvalues = kept;
  res->ttl_s = ttl_min == INT64_MAX ? IDENT_TTL_DEFAULT : (ttl_min < 0 ? 0 : ttl_min);
  res->rc = kept || (!q->nindexes && !q->ntypes && visible == 0) ? HDL_RC_SUCCESS
                                                                 : HDL_RC_VALUE_NOT_FOUND;
  if (res->rc == HDL_RC_VALUE_NOT_FOUND)
    snprintf(res->message, sizeof res->message, "no values match the request");
  return 0;
}

typedef struct local_ctx {
  ident *id;
  const ident_query *q;
  ident_result *res;
  int rc;
} local_ctx;

static int on_local(void *ctx, const store_handle *h) {
  local_ctx *c = ctx;
  c->res->tenant_id = h->tenant_id;
  c->rc = filter_values(c->q, h->values, h->values_len, h->nvalues, h->tenant_id, c->res);
  ident_stats_count(c->id, h->prefix_id, 1);
  return 0;
}

/* "0.NA/PREFIX" for a prefix held here (and not registered as an identifier of its own): its
 * HS_SITE (this node's site information) and an HS_ADMIN naming the prefix handle. 1 answered,
 * 0 not a held prefix. */
static int prefix_handle(ident *id, store *db, const ident_query *q, ident_result *res) {
  const char *name = (const char *)q->handle.p + 5;
  size_t n = q->handle.len - 5;
  store_prefix p;
  int rc = store_prefix_get(db, name, n, &p);
  if (rc == PL_ENOTFOUND)
    return 0;
  if (rc < 0)
    return rc;
  pl_buf vals, admin;
  pl_buf_init(&vals, 0);
  pl_buf_init(&admin, 0);
  uint32_t nv = 0;
  uint32_t now_s = (uint32_t)(pl_now_ms() / 1000);
  uint8_t perm = HDL_PERM_PUBLIC_READ | HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE;
  pthread_mutex_lock(&id->site_mu);
  if (id->siteinfo_len) {
    hdl_value site = {1,
                      now_s,
                      0,
                      IDENT_TTL_DEFAULT,
                      perm,
                      {(const uint8_t *)"HS_SITE", 7},
                      {id->siteinfo, (uint32_t)id->siteinfo_len},
                      0,
                      {NULL, 0}};
    rc = hdl_value_encode(&vals, &site);
    nv++;
  }
  pthread_mutex_unlock(&id->site_mu);
  if (rc == 0)
    rc = hdl_admin_encode(&admin, 0x0FFF, q->handle, 200);
  if (rc == 0) {
    hdl_value adm = {100,
                     now_s,
                     0,
                     IDENT_TTL_DEFAULT,
                     perm,
                     {(const uint8_t *)"HS_ADMIN", 8},
                     {admin.data, (uint32_t)admin.len},
                     0,
                     {NULL, 0}};
    rc = hdl_value_encode(&vals, &adm);
    nv++;
  }
  if (rc == 0)
    rc = filter_values(q, vals.data, vals.len, nv, p.tenant_id, res);
  pl_buf_free(&vals);
  pl_buf_free(&admin);
  if (rc < 0)
    return rc;
  ident_stats_count(id, p.id, 1);
  snprintf(res->source, sizeof res->source, "local");
  return 1;
}

/* 1 answered locally (res filled), 0 not held here, < 0 failure. */
static int resolve_local(ident *id, store *db, const ident_query *q, ident_result *res) {
  local_ctx c = {id, q, res, 0};
  int rc = store_handle_lookup(db, (const char *)q->handle.p, q->handle.len, on_local, &c);
  if (rc == 0) {
    snprintf(res->source, sizeof res->source, "local");
    return c.rc < 0 ? c.rc : 1;
  }
  if (rc != PL_ENOTFOUND)
    return rc;
  size_t pl = ident_prefix_len((const char *)q->handle.p, q->handle.len);
  store_prefix p;
  if (pl == 4 && !strncasecmp((const char *)q->handle.p, "0.NA", 4) &&
      (rc = prefix_handle(id, db, q, res)) != 0)
    return rc;
  rc = store_prefix_get(db, (const char *)q->handle.p, pl, &p);
  if (rc == PL_ENOTFOUND)
    return 0;
  if (rc < 0)
    return rc;
  ident_stats_count(id, p.id, 0);
  res->rc = HDL_RC_HANDLE_NOT_FOUND;
  res->nvalues = 0;
  snprintf(res->source, sizeof res->source, "local");
  snprintf(res->message, sizeof res->message, "handle not found");
  return 1;
}

/* ---- cache ---- */

static size_t cache_key(const hdl_str h, char *out, size_t outsz) {
  size_t n = h.len < outsz ? h.len : outsz;
  for (size_t i = 0; i < n; i++)
    out[i] = (char)tolower(h.p[i]);
  return n;
}

/* 1 answered from the cache. */
static int resolve_cached(ident *id, const ident_query *q, ident_result *res) {
  if (id->o.cache_max <= 0)
    return 0;
  char key[IDENT_HANDLE_MAX];
  size_t kl = cache_key(q->handle, key, sizeof key);
  int64_t now = pl_mono_ns();
  int answered = 0, rc = 0;
  pthread_mutex_lock(&id->cache_mu);
  cache_entry *e = pl_map_get(id->cache, key, kl);
  if (e && e->expires_ns <= now) {
    pl_map_del(id->cache, key, kl);
    free(e->values);
    free(e);
    e = NULL;
  }
  if (e) {
    id->hits++;
    answered = 1;
    if (e->rc == HDL_RC_SUCCESS) {
      rc = filter_values(q, e->values, e->len, e->nvalues, -1, res);
    } else {
      res->rc = e->rc;
      res->nvalues = 0;
      snprintf(res->message, sizeof res->message, "handle not found (cached answer)");
    }
    res->ttl_s = (e->expires_ns - now) / 1000000000;
    snprintf(res->source, sizeof res->source, "cache:%.89s", e->source);
  } else {
    id->misses++;
  }
  pthread_mutex_unlock(&id->cache_mu);
  return rc < 0 ? rc : answered;
}

static void cache_put(ident *id, hdl_str handle, uint32_t rc, const uint8_t *values, size_t len,
                      uint32_t n, int64_t ttl_ns, const char *source) {
  if (id->o.cache_max <= 0 || ttl_ns <= 0)
    return;
  cache_entry *e = calloc(1, sizeof *e);
  if (!e)
    return;
  if (len && !(e->values = malloc(len))) {
    free(e);
    return;
  }
  if (len)
    memcpy(e->values, values, len);
  e->len = len;
  e->nvalues = n;
  e->rc = rc;
  e->expires_ns = pl_mono_ns() + ttl_ns;
  snprintf(e->source, sizeof e->source, "%s", source);
  char key[IDENT_HANDLE_MAX];
  size_t kl = cache_key(handle, key, sizeof key);
  int64_t now = pl_mono_ns();
  pthread_mutex_lock(&id->cache_mu);
  if ((int)pl_map_count(id->cache) >= id->o.cache_max) {
    /* Evict: expired entries first, then whatever comes, up to 64 keys at a time. */
    for (int pass = 0; pass < 2 && (int)pl_map_count(id->cache) >= id->o.cache_max; pass++) {
      char *victims[64];
      size_t nv = 0, it = 0;
      const void *k;
      size_t klen;
      void *v;
      while (nv < 64 && pl_map_next(id->cache, &it, &k, &klen, &v))
        if (pass == 1 || ((cache_entry *)v)->expires_ns <= now)
          victims[nv++] = strndup(k, klen);
      for (size_t i = 0; i < nv; i++) {
        if (!victims[i])
          continue;
        cache_entry *old = pl_map_del(id->cache, victims[i], strlen(victims[i]));
        if (old) {
          free(old->values);
          free(old);
        }
        free(victims[i]);
      }
    }
  }
  void *old = NULL;
  if (pl_map_put(id->cache, key, kl, e, &old) < 0) {
    free(e->values);
    free(e);
  } else if (old) {
    free(((cache_entry *)old)->values);
    free(old);
  }
  pthread_mutex_unlock(&id->cache_mu);
}

void ident_cache_stats(ident *id, int64_t *entries, int64_t *hits, int64_t *misses) {
  pthread_mutex_lock(&id->cache_mu);
  *entries = (int64_t)pl_map_count(id->cache);
  *hits = id->hits;
  *misses = id->misses;
  pthread_mutex_unlock(&id->cache_mu);
}

/* ---- resolution ---- */

int ident_resolve_nonblocking(ident *id, store *db, const ident_query *q, ident_result *res) {
  tune_once(id, db);
  res->tenant_id = 0;
  res->message[0] = 0;
  int rc = resolve_local(id, db, q, res);
  if (rc != 0)
    return rc;
  if ((rc = resolve_cached(id, q, res)) != 0)
    return rc;
  if (q->no_recursion || id->nparents == 0) {
    res->rc = HDL_RC_HANDLE_NOT_FOUND;
    res->nvalues = 0;
    pl_buf_reset(&res->values);
    snprintf(res->source, sizeof res->source, "local");
    size_t pl = ident_prefix_len((const char *)q->handle.p, q->handle.len);
    snprintf(res->message, sizeof res->message, "prefix %.*s is not held by this node%s",
             (int)(pl > 100 ? 100 : pl), (const char *)q->handle.p,
             id->nparents ? "" : " and no parent node is configured");
    return 1;
  }
  if (q->recursion_count >= id->o.recursion_max) {
    res->rc = HDL_RC_RECUR_LIMIT_EXCEEDED;
    res->nvalues = 0;
    snprintf(res->source, sizeof res->source, "local");
    snprintf(res->message, sizeof res->message, "recursion limit of %d nodes reached",
             id->o.recursion_max);
    return 1;
  }
  return 0;
}

/* The cache lifetime of an upstream answer. */
static int64_t answer_ttl_ns(ident *id, const ident_result *up) {
  if (up->rc != HDL_RC_SUCCESS)
    return id->o.negative_ttl_ns;
  int64_t ttl_min = INT64_MAX, now_s = pl_now_ms() / 1000;
  uint32_t pos = 0;
  hdl_value v;
  hdl_str buf = {up->values.data, (uint32_t)up->values.len};
  while (hdl_value_next(buf, &pos, &v) == 1) {
    int64_t ttl = v.ttl_type == 1 ? (int64_t)v.ttl - now_s : v.ttl;
    if (ttl < ttl_min)
      ttl_min = ttl;
  }
  if (ttl_min == INT64_MAX)
    ttl_min = IDENT_TTL_DEFAULT;
  if (ttl_min < 0)
    ttl_min = 0;
  int64_t ns = ttl_min * 1000000000LL;
  return ns < id->o.cache_ttl_max_ns ? ns : id->o.cache_ttl_max_ns;
}

int ident_resolve(ident *id, store *db, const ident_query *q, ident_result *res) {
  int rc = ident_resolve_nonblocking(id, db, q, res);
  if (rc != 0)
    return rc < 0 ? rc : 0;
  char tried[512] = "";
  for (int i = 0; i < id->nparents; i++) {
    ident_result up;
    ident_result_init(&up);
    hdl_request_opts o = {atomic_fetch_add(&id->next_request_id, 1),
                          HDL_OF_REC,
                          (uint8_t)(q->recursion_count + 1),
                          NULL,
                          0,
                          NULL,
                          0};
    pl_err err = {{0}};
    rc = ident_client_resolve(id->parents[i], 0, q->handle, &o, id->o.timeout_ns, &up, &err);
    if (rc == 0 && (up.rc == HDL_RC_SUCCESS || up.rc == HDL_RC_HANDLE_NOT_FOUND)) {
      cache_put(id, q->handle, up.rc, up.values.data, up.values.len, up.nvalues,
                answer_ttl_ns(id, &up), id->parents[i]);
      if (up.rc == HDL_RC_SUCCESS) {
        rc = filter_values(q, up.values.data, up.values.len, up.nvalues, -1, res);
      } else {
        res->rc = up.rc;
        res->nvalues = 0;
        snprintf(res->message, sizeof res->message, "%s",
                 up.message[0] ? up.message : "handle not found");
        rc = 0;
      }
      snprintf(res->source, sizeof res->source, "%s", id->parents[i]);
      ident_result_free(&up);
      return rc;
    }
    if (rc == 0) {
      /* Another answer (recursion limit, error): passed on as it is. */
      res->rc = up.rc;
      res->nvalues = 0;
      snprintf(res->message, sizeof res->message, "%.60s: %.90s", id->parents[i],
               up.message[0] ? up.message : hdl_rc_name(up.rc));
      snprintf(res->source, sizeof res->source, "%s", id->parents[i]);
      ident_result_free(&up);
      return 0;
    }
    PL_LOG(PL_LOG_WARN, "ident", "parent=%s err=\"%s\"", id->parents[i],
           err.msg[0] ? err.msg : pl_strerror(rc));
    size_t tl = strlen(tried);
    snprintf(tried + tl, sizeof tried - tl, "%s%s (%s)", tl ? ", " : "", id->parents[i],
             rc == PL_ETIMEDOUT ? "no answer in time" : (err.msg[0] ? err.msg : pl_strerror(rc)));
    ident_result_free(&up);
  }
  res->rc = HDL_RC_ERROR;
  res->nvalues = 0;
  snprintf(res->source, sizeof res->source, "local");
  snprintf(res->message, sizeof res->message, "no parent node answered: %.130s", tried);
  return 0;
}

/* ---- client ---- */

static int connect_to(const char *hostport, int socktype, int64_t deadline_ns, pl_err *err) {
  char host[256], portstr[16];
  int port;
  if (pl_net_split(hostport, host, sizeof host, &port) < 0 || port <= 0)
    return pl_err_set(err, PL_EINVAL, "\"%s\" is not HOST:PORT", hostport);
  snprintf(portstr, sizeof portstr, "%d", port);
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_socktype = socktype;
  hints.ai_family = AF_UNSPEC;
  int g = getaddrinfo(host[0] ? host : "::1", portstr, &hints, &ai);
  if (g != 0)
    return pl_err_set(err, PL_EINVAL, "cannot resolve %s: %s", host, gai_strerror(g));
  int fd = -1, rc = PL_EIO;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    if (errno == EINPROGRESS) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      int64_t left_ms = (deadline_ns - pl_mono_ns()) / 1000000;
      int pr = poll(&pfd, 1, left_ms > 0 ? (int)left_ms : 0);
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
        break;
      rc = pr == 0 ? PL_ETIMEDOUT : PL_EIO;
      errno = soerr ? soerr : errno;
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0)
    return pl_err_set(err, rc, "cannot connect to %s: %s", hostport,
                      rc == PL_ETIMEDOUT ? "timed out" : strerror(errno));
  return fd;
}

static int wait_fd(int fd, short events, int64_t deadline_ns) {
  int64_t left_ms = (deadline_ns - pl_mono_ns()) / 1000000;
  if (left_ms <= 0)
    return PL_ETIMEDOUT;
  struct pollfd pfd = {fd, events, 0};
  int pr = poll(&pfd, 1, (int)left_ms);
  if (pr == 0)
    return PL_ETIMEDOUT;
  return pr < 0 ? PL_EIO : 0;
}

/* Sends req and receives one whole reply message into reply (the message bytes after the
 * envelope) with *env. */
static int exchange(const char *hostport, int tcp, const pl_buf *req, uint32_t request_id,
                    int64_t timeout_ns, pl_buf *reply, hdl_envelope *env, pl_err *err) {
  int64_t deadline = pl_mono_ns() + timeout_ns;
  int fd = connect_to(hostport, tcp ? SOCK_STREAM : SOCK_DGRAM, deadline, err);
  if (fd < 0)
    return fd;
  int rc = 0;
  if (tcp) {
    size_t off = 0;
    while (off < req->len && rc == 0) {
      ssize_t w = send(fd, req->data + off, req->len - off, MSG_NOSIGNAL);
      if (w > 0)
        off += (size_t)w;
      else if (w < 0 && (errno == EAGAIN || errno == EINTR))
        rc = wait_fd(fd, POLLOUT, deadline);
      else
        rc = PL_EIO;
    }
    pl_buf in;
    pl_buf_init(&in, HDL_MESSAGE_MAX + HDL_ENVELOPE_BYTES);
    while (rc == 0) {
      hdl_message m;
      int n = in.len ? hdl_frame_decode(in.data, in.len, HDL_MESSAGE_MAX, &m) : PL_AGAIN;
      if (n > 0) {
        *env = m.env;
        pl_buf_reset(reply);
        rc = pl_buf_append(reply, in.data + HDL_ENVELOPE_BYTES, m.env.msg_len);
        break;
      }
      if (n != PL_AGAIN) {
        rc = pl_err_set(err, PL_EINVAL, "malformed reply from %s", hostport);
        break;
      }
      if ((rc = pl_buf_reserve(&in, 65536)) < 0)
        break;
      ssize_t r = recv(fd, in.data + in.len, 65536, 0);
      if (r > 0)
        in.len += (size_t)r;
      else if (r == 0)
        rc = pl_err_set(err, PL_EIO, "%s closed the connection", hostport);
      else if (errno == EAGAIN || errno == EINTR)
        rc = wait_fd(fd, POLLIN, deadline);
      else
        rc = PL_EIO;
    }
    pl_buf_free(&in);
  } else {
    int64_t resend_at = pl_mono_ns() + timeout_ns / 3;
    if (send(fd, req->data, req->len, 0) < 0)
      rc = PL_EIO;
    hdl_reasm ra;
    hdl_reasm_init(&ra, HDL_MESSAGE_MAX);
    uint8_t pkt[65536];
    while (rc == 0) {
      int64_t until = resend_at < deadline ? resend_at : deadline;
      int w = wait_fd(fd, POLLIN, until);
      if (w == PL_ETIMEDOUT && pl_mono_ns() < deadline) {
        /* One lost datagram: ask again (a duplicate answer is harmless). */
        if (ra.nseen == 0)
          send(fd, req->data, req->len, 0);
        resend_at = deadline;
        continue;
      }
      if ((rc = w) < 0)
        break;
      ssize_t r = recv(fd, pkt, sizeof pkt, 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
          continue;
        rc = pl_err_set(err, PL_EIO, "%s: %s", hostport, strerror(errno));
        break;
      }
      hdl_envelope e;
      if (hdl_envelope_decode(pkt, (size_t)r, HDL_MESSAGE_MAX, &e) < 0 ||
          e.request_id != request_id)
        continue;
      int a = hdl_reasm_add(&ra, pkt, (size_t)r);
      if (a == 1) {
        *env = ra.env;
        pl_buf_reset(reply);
        rc = pl_buf_append(reply, ra.data, ra.msg_len);
        break;
      }
      if (a < 0 && a != PL_ECONFLICT) {
        rc = pl_err_set(err, PL_EINVAL, "malformed reply from %s", hostport);
        break;
      }
    }
    hdl_reasm_free(&ra);
  }
  close(fd);
  if (rc == PL_ETIMEDOUT && !err->msg[0])
    pl_err_set(err, rc, "%s did not answer within %lld ms", hostport,
               (long long)(timeout_ns / 1000000));
  else if (rc < 0 && !err->msg[0])
    pl_err_set(err, rc, "talking to %s: %s", hostport, pl_strerror(rc));
  return rc;
}

int ident_client_resolve(const char *hostport, int tcp, hdl_str handle, const hdl_request_opts *o,
                         int64_t timeout_ns, ident_result *res, pl_err *err) {
  pl_buf req, reply;
  pl_buf_init(&req, 0);
  pl_buf_init(&reply, HDL_MESSAGE_MAX);
  int rc = hdl_encode_resolution_request(&req, handle, o);
  hdl_envelope env;
  if (rc == 0)
    rc = exchange(hostport, tcp, &req, o->request_id, timeout_ns, &reply, &env, err);
  hdl_message m;
  if (rc == 0 && (rc = hdl_message_decode(&env, reply.data, reply.len, &m)) < 0)
    pl_err_set(err, rc, "malformed reply from %s", hostport);
  if (rc == 0) {
    res->rc = m.hdr.response_code;
    res->nvalues = 0;
    pl_buf_reset(&res->values);
    snprintf(res->source, sizeof res->source, "%s", hostport);
    int digest = (m.hdr.opflags & HDL_OF_RD) != 0;
    if (res->rc == HDL_RC_SUCCESS) {
      hdl_resolution_resp r;
      if ((rc = hdl_resolution_resp_decode(m.body, m.hdr.body_len, digest, &r)) < 0) {
        pl_err_set(err, rc, "malformed resolution reply from %s", hostport);
      } else {
        res->nvalues = r.nvalues;
        rc = pl_buf_append(&res->values, r.values.p, r.values.len);
      }
    } else {
      /* [digest] ErrorMessage */
      size_t off = 0;
      if (digest && m.hdr.body_len > 0)
        off = 1 + (m.body[0] == HDL_DIGEST_SHA256 ? 32 : m.body[0] == HDL_DIGEST_MD5 ? 16 : 20);
      if (off + 4 <= m.hdr.body_len) {
        uint32_t n = (uint32_t)m.body[off] << 24 | (uint32_t)m.body[off + 1] << 16 |
                     (uint32_t)m.body[off + 2] << 8 | m.body[off + 3];
        if (n <= m.hdr.body_len - off - 4) {
          size_t k = n < sizeof res->message - 1 ? n : sizeof res->message - 1;
          memcpy(res->message, m.body + off + 4, k);
          res->message[k] = 0;
        }
      }
      if (!res->message[0])
        snprintf(res->message, sizeof res->message, "%s", hdl_rc_name(res->rc));
    }
  }
  pl_buf_free(&req);
  pl_buf_free(&reply);
  return rc;
}

int ident_client_siteinfo(const char *hostport, int tcp, int64_t timeout_ns, pl_buf *out,
                          pl_err *err) {
  pl_buf req, reply;
  pl_buf_init(&req, 0);
  pl_buf_init(&reply, HDL_MESSAGE_MAX);
  uint32_t rid = (uint32_t)(pl_now_ns() & 0x7fffffff) | 1;
  int rc = hdl_encode_siteinfo_request(&req, rid);
  hdl_envelope env;
  if (rc == 0)
    rc = exchange(hostport, tcp, &req, rid, timeout_ns, &reply, &env, err);
  hdl_message m;
  if (rc == 0 && (rc = hdl_message_decode(&env, reply.data, reply.len, &m)) < 0)
    pl_err_set(err, rc, "malformed reply from %s", hostport);
  if (rc == 0 && m.hdr.response_code != HDL_RC_SUCCESS)
    rc = pl_err_set(err, PL_EIO, "%s answered %s", hostport, hdl_rc_name(m.hdr.response_code));
  if (rc == 0)
    rc = pl_buf_append(out, m.body, m.hdr.body_len);
  pl_buf_free(&req);
  pl_buf_free(&reply);
  return rc;
}

/* ---- background bulk registrations ----
 * A job owns its copy of the request body and strings; its counters are written by its thread
 * and read by ident_bulk_job_json, both under jobs_mu. A finished job stays listed until 64
 * newer ones push it out; its thread is joined when it is freed. */

enum { JOB_RUNNING = 0, JOB_DONE, JOB_FAILED };

typedef struct bulk_job {
  ident *id;
  int64_t job_id, tenant_id;
  int state;
  int64_t rows, accepted, rejected;
  size_t bytes_done, bytes_total;
  int64_t started_ns, finished_ns;
  json_t *errors;
  char message[256];
  char db_path[1100], actor[160], source[16], remote[64], template_name[64];
  auth_audit *audit;
  int format;
  uint8_t *body;
  pthread_t thread;
} bulk_job;

static void job_free(bulk_job *j) {
  if (!j)
    return;
  pthread_join(j->thread, NULL);
  json_decref(j->errors);
  free(j->body);
  free(j);
}

typedef struct job_progress {
  bulk_job *job;
  ident_bulk *bulk;
} job_progress;

static void on_progress(void *ctx, size_t done) {
  job_progress *jp = ctx;
  pthread_mutex_lock(&jp->job->id->jobs_mu);
  jp->job->bytes_done = done;
  jp->job->rows = ident_bulk_rows(jp->bulk);
  pthread_mutex_unlock(&jp->job->id->jobs_mu);
}

static void *job_main(void *arg) {
  bulk_job *j = arg;
  pl_err err = {{0}};
  store *db = NULL;
  int rc = store_open(j->db_path, &db, &err);
  ident_bulk *b = NULL;
  ident_bulk_report rep = {0, 0, 0, NULL};
  if (rc == 0) {
    ident_ctx c = {db, j->audit, j->actor, j->source, j->remote};
    rc =
        ident_bulk_begin(&c, j->tenant_id, j->template_name[0] ? j->template_name : NULL, &b, &err);
  }
  if (rc == 0) {
    job_progress jp = {j, b};
    rc = ident_bulk_add_body(b, j->format, j->body, j->bytes_total, on_progress, &jp, &err);
    if (rc < 0)
      ident_bulk_abort(b);
    else
      rc = ident_bulk_finish(b, &rep, &err);
  }
  store_close(db);
  pthread_mutex_lock(&j->id->jobs_mu);
  j->finished_ns = pl_mono_ns();
  if (rc == 0) {
    j->state = JOB_DONE;
    j->rows = rep.rows;
    j->accepted = rep.accepted;
    j->rejected = rep.rejected;
    j->errors = rep.errors;
    j->bytes_done = j->bytes_total;
  } else {
    j->state = JOB_FAILED;
    snprintf(j->message, sizeof j->message, "%s", err.msg[0] ? err.msg : pl_strerror(rc));
  }
  free(j->body);
  j->body = NULL;
  pthread_mutex_unlock(&j->id->jobs_mu);
  return NULL;
}

int ident_bulk_submit(ident *id, const ident_bulk_job_opts *o, uint8_t *body, size_t len,
                      int64_t *job_id, pl_err *err) {
  bulk_job *j = calloc(1, sizeof *j);
  if (!j) {
    free(body);
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  }
  j->id = id;
  j->tenant_id = o->tenant_id;
  j->format = o->format;
  j->audit = o->audit;
  j->body = body;
  j->bytes_total = len;
  j->started_ns = pl_mono_ns();
  snprintf(j->db_path, sizeof j->db_path, "%s", o->db_path);
  snprintf(j->actor, sizeof j->actor, "%s", o->actor ? o->actor : "");
  snprintf(j->source, sizeof j->source, "%s", o->source ? o->source : "");
  snprintf(j->remote, sizeof j->remote, "%s", o->remote ? o->remote : "");
  snprintf(j->template_name, sizeof j->template_name, "%s",
           o->template_name ? o->template_name : "");
  bulk_job *evicted = NULL;
  pthread_mutex_lock(&id->jobs_mu);
  int slot = -1;
  for (int i = 0; i < JOBS_KEPT && slot < 0; i++)
    if (!id->jobs[i])
      slot = i;
  if (slot < 0) { /* push out the oldest finished job */
    for (int i = 0; i < JOBS_KEPT; i++)
      if (id->jobs[i]->state != JOB_RUNNING &&
          (slot < 0 || id->jobs[i]->job_id < id->jobs[slot]->job_id))
        slot = i;
    if (slot >= 0)
      evicted = id->jobs[slot];
  }
  if (slot < 0) {
    pthread_mutex_unlock(&id->jobs_mu);
    free(j->body);
    free(j);
    return pl_err_set(err, PL_EBUSY, "%d bulk registrations are running; wait for one to finish",
                      JOBS_KEPT);
  }
  j->job_id = ++id->next_job_id;
  id->jobs[slot] = j;
  int rc = pthread_create(&j->thread, NULL, job_main, j);
  if (rc != 0)
    id->jobs[slot] = NULL;
  pthread_mutex_unlock(&id->jobs_mu);
  job_free(evicted); /* finished: the join returns at once */
  if (rc != 0) {
    free(j->body);
    free(j);
    return pl_err_set(err, PL_EIO, "cannot start a thread for the bulk registration");
  }
  *job_id = j->job_id;
  return 0;
}

json_t *ident_bulk_job_json(ident *id, int64_t tenant_id, int64_t job_id) {
  json_t *o = NULL;
  pthread_mutex_lock(&id->jobs_mu);
  for (int i = 0; i < JOBS_KEPT; i++) {
    bulk_job *j = id->jobs[i];
    if (!j || j->job_id != job_id || j->tenant_id != tenant_id)
      continue;
    static const char *const states[] = {"running", "done", "failed"};
    int64_t end = j->state == JOB_RUNNING ? pl_mono_ns() : j->finished_ns;
    o = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "id", (json_int_t)j->job_id, "state",
                  states[j->state], "rows", (json_int_t)j->rows, "accepted",
                  (json_int_t)j->accepted, "rejected", (json_int_t)j->rejected, "bytes_done",
                  (json_int_t)j->bytes_done, "bytes_total", (json_int_t)j->bytes_total, "seconds",
                  (double)(end - j->started_ns) / 1e9);
    if (o && j->state == JOB_DONE)
      json_object_set_new(o, "errors", json_deep_copy(j->errors));
    if (o && j->state == JOB_FAILED)
      json_object_set_new(o, "message", json_string(j->message));
  }
  pthread_mutex_unlock(&id->jobs_mu);
  return o;
}
