/* The identifier registry: names, prefix allocation with tenant ownership, identifier writes
 * with their audit records, and the GS1 key index. The typed values an identifier holds (JSON in
 * the Handle.net REST shape <-> the Handle wire encoding kept in the store), reserved types and
 * metadata templates are in registry_values.c; bulk registration and its per-prefix statistics
 * are in registry_bulk.c, which writes each row through the same ident__put_one as a single
 * write. The three share through ident_int.h. */
#include "ident/ident_int.h"
#include "ident/digital_link.h"

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

int ident_check_prefix(const char *prefix, pl_err *err) {
  size_t n = strlen(prefix);
  if (n == 0 || n > IDENT_PREFIX_MAX)
    return pl_err_set(err, PL_EINVAL, "a prefix must be 1 to %d bytes", IDENT_PREFIX_MAX);
  int seg = 0;
  for (size_t i = 0; i < n; i++) {
    char c = prefix[i];
    if (c == '.') {
      if (seg == 0)
        return pl_err_set(err, PL_EINVAL, "prefix \"%.64s\" has an empty segment", prefix);
      seg = 0;
      continue;
    }
    if (!isalnum((unsigned char)c) && c != '-' && c != '_')
      return pl_err_set(err, PL_EINVAL,
                        "a prefix holds dot-separated segments of letters, digits, '-' and '_'");
    seg++;
  }
  if (seg == 0)
    return pl_err_set(err, PL_EINVAL, "prefix \"%.64s\" ends with a dot", prefix);
  if (!strcmp(prefix, "0") || !strncmp(prefix, "0.", 2))
    return pl_err_set(err, PL_EINVAL, "prefixes under \"0\" belong to the global handle service");
  return 0;
}

size_t ident_prefix_len(const char *handle, size_t len) {
  const char *slash = memchr(handle, '/', len);
  return slash ? (size_t)(slash - handle) : len;
}

int ident_check_handle(const char *handle, size_t len, pl_err *err) {
  if (len == 0 || len > IDENT_HANDLE_MAX)
    return pl_err_set(err, PL_EINVAL, "a handle must be 1 to %d bytes", IDENT_HANDLE_MAX);
  size_t pl = ident_prefix_len(handle, len);
  if (pl == len || pl + 1 == len)
    return pl_err_set(err, PL_EINVAL, "a handle is PREFIX/SUFFIX with a non-empty suffix");
  if (pl == 0 || pl > IDENT_PREFIX_MAX)
    return pl_err_set(err, PL_EINVAL, "the handle's prefix is empty or too long");
  char prefix[IDENT_PREFIX_MAX + 1];
  memcpy(prefix, handle, pl);
  prefix[pl] = 0;
  int rc;
  if ((rc = ident_check_prefix(prefix, err)) < 0 && strncmp(prefix, "0.", 2) != 0)
    return rc;
  if (!pl_utf8_valid(handle, len))
    return pl_err_set(err, PL_EINVAL, "the handle is not valid UTF-8");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)handle[i];
    if (c < 0x20 || c == 0x7f)
      return pl_err_set(err, PL_EINVAL, "the handle contains a control character");
  }
  return 0;
}

int64_t ident_day(int64_t ms) {
  return ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
}

/* ---- audit ---- */

int ident__audit(ident_ctx *c, int64_t tenant_id, const char *action, const char *target, int rc,
                 const pl_err *err, const char *detail_ok) {
  if (!c->audit)
    return 0;
  store_audit rec;
  memset(&rec, 0, sizeof rec);
  snprintf(rec.actor, sizeof rec.actor, "%s", c->actor ? c->actor : "");
  rec.tenant_id = tenant_id;
  snprintf(rec.action, sizeof rec.action, "%s", action);
  snprintf(rec.target, sizeof rec.target, "%.255s", target ? target : "");
  snprintf(rec.result, sizeof rec.result, "%s", rc < 0 ? "error" : "ok");
  snprintf(rec.detail, sizeof rec.detail, "%s",
           rc < 0 ? (err && err->msg[0] ? err->msg : pl_strerror(rc))
                  : (detail_ok ? detail_ok : ""));
  snprintf(rec.source, sizeof rec.source, "%s", c->source ? c->source : "");
  snprintf(rec.remote, sizeof rec.remote, "%s", c->remote ? c->remote : "");
  int arc = auth_audit_append(c->audit, c->db, &rec);
  if (arc < 0)
    PL_LOG(PL_LOG_ERROR, "ident", "audit append failed action=%s err=\"%s\"", action,
           pl_strerror(arc));
  return arc;
}

/* ---- prefixes ---- */

int ident_prefix_create(ident_ctx *c, int64_t tenant_id, const char *prefix, int allow_any_parent,
                        store_prefix *out, pl_err *err) {
  int rc = ident_check_prefix(prefix, err);
  store_prefix p;
  memset(&p, 0, sizeof p);
  if (rc == 0) {
    snprintf(p.prefix, sizeof p.prefix, "%s", prefix);
    p.tenant_id = tenant_id;
    /* The parent: the longest dotted ancestor held here. */
    size_t n = strlen(prefix);
    for (size_t k = n; k > 0 && !p.parent_id; k--) {
      if (prefix[k - 1] != '.')
        continue;
      store_prefix anc;
      int lr = store_prefix_get(c->db, prefix, k - 1, &anc);
      if (lr == 0) {
        p.parent_id = anc.id;
        if (anc.tenant_id != tenant_id && !allow_any_parent)
          rc = pl_err_set(err, PL_EPERM, "prefix %s belongs to another tenant", anc.prefix);
      } else if (lr != PL_ENOTFOUND) {
        rc = lr;
      }
    }
    if (rc == 0 && !p.parent_id && !allow_any_parent)
      rc = pl_err_set(err, PL_EPERM,
                      "only the regional admin allocates top-level prefixes; a tenant creates "
                      "prefixes under its own");
  }
  if (rc == 0) {
    rc = store_prefix_create(c->db, &p);
    if (rc == PL_EEXIST)
      pl_err_set(err, rc, "prefix %s is already allocated", prefix);
    else if (rc == PL_ENOTFOUND)
      pl_err_set(err, rc, "no such tenant");
  }
  char target[160];
  snprintf(target, sizeof target, "prefix:%.127s", prefix);
  int arc = ident__audit(c, tenant_id, "prefix.create", target, rc, err, "");
  if (rc == 0 && arc < 0)
    rc = pl_err_set(err, arc, "the prefix was created but its audit record failed");
  if (rc == 0 && out)
    *out = p;
  return rc;
}

int ident_prefix_delete(ident_ctx *c, const store_prefix *p, pl_err *err) {
  int rc = store_prefix_delete(c->db, p->tenant_id, p->id);
  if (rc == PL_ECONFLICT)
    pl_err_set(err, rc, "prefix %s still has identifiers; delete them first", p->prefix);
  char target[160];
  snprintf(target, sizeof target, "prefix:%.127s", p->prefix);
  ident__audit(c, p->tenant_id, "prefix.delete", target, rc, err, "");
  return rc;
}

/* ---- GS1 index ---- */

/* clear: drop the handle's previous keys first (not needed for a handle just created). */
static int gs1_index(store *db, int64_t handle_id, hdl_str values, uint32_t nvalues, int clear,
                     pl_err *err) {
  int rc = clear ? store_gs1_clear(db, handle_id) : 0;
  if (rc < 0)
    return rc;
  uint32_t pos = 0;
  hdl_value v;
  for (uint32_t k = 0; k < nvalues && hdl_value_next(values, &pos, &v) == 1; k++) {
    if (v.type.len != 3 || memcmp(v.type.p, "GS1", 3) != 0)
      continue;
    char key[DL_KEY_PATH_MAX];
    if ((rc = ident__gs1_value_key(v.data.p, v.data.len, key, sizeof key, err)) < 0)
      break;
    rc = store_gs1_put(db, key, handle_id);
    if (rc == PL_EEXIST) {
      pl_err_set(err, rc, "GS1 key %.200s is already mapped to another identifier", key);
      break;
    }
    if (rc < 0)
      break;
  }
  return rc < 0 ? rc : 0;
}

int ident_gs1_index(store *db, int64_t handle_id, hdl_str values, uint32_t nvalues, pl_err *err) {
  return gs1_index(db, handle_id, values, nvalues, 1, err);
}

/* ---- identifiers ---- */

/* The handle's prefix, held here and the tenant's. */
int ident__check_owner(store *db, int64_t tenant_id, const char *handle, size_t len,
                       store_prefix *out, pl_err *err) {
  size_t pl = ident_prefix_len(handle, len);
  int rc = store_prefix_get(db, handle, pl, out);
  if (rc == PL_ENOTFOUND)
    return pl_err_set(err, rc, "prefix %.*s is not held by this node", (int)(pl > 127 ? 127 : pl),
                      handle);
  if (rc < 0)
    return rc;
  if (out->tenant_id != tenant_id)
    return pl_err_set(err, PL_EPERM, "prefix %s belongs to another tenant", out->prefix);
  return 0;
}

typedef struct existing {
  int found;
  int64_t id;
} existing;

static int note_existing(void *ctx, const store_handle *h) {
  existing *e = ctx;
  e->found = 1;
  e->id = h->id;
  return 0;
}

/* Validates and writes one identifier inside the caller's transaction. */
int ident__put_one(store *db, int64_t tenant_id, const store_prefix *prefix, const char *handle,
                   const char *template_fields, const char *template_name, const uint8_t *enc,
                   size_t enc_len, uint32_t nvalues, int mode, int *created, pl_err *err) {
  int rc;
  hdl_str values = {enc ? enc : (const uint8_t *)"", (uint32_t)enc_len};
  if (template_fields && (rc = ident_template_validate(template_fields, values, nvalues, err)) < 0)
    return rc;
  store_handle h = {0};
  h.tenant_id = tenant_id;
  h.prefix_id = prefix->id;
  h.handle = handle;
  h.template_name = template_name ? template_name : "";
  h.nvalues = nvalues;
  h.values = enc;
  h.values_len = enc_len;
  existing ex = {0, 0};
  if (mode != IDENT_PUT_CREATE) {
    rc = store_handle_lookup(db, handle, strlen(handle), note_existing, &ex);
    if (rc < 0 && rc != PL_ENOTFOUND)
      return rc;
  }
  if (ex.found) {
    if (mode == IDENT_PUT_CREATE)
      return pl_err_set(err, PL_EEXIST, "handle %.200s already exists", handle);
    rc = store_handle_update(db, &h);
    if (rc == PL_ENOTFOUND)
      return pl_err_set(err, PL_EPERM, "handle %.200s belongs to another tenant", handle);
    if (rc < 0)
      return rc;
    h.id = ex.id;
    *created = 0;
  } else {
    if (mode == IDENT_PUT_REPLACE)
      return pl_err_set(err, PL_ENOTFOUND, "handle %.200s does not exist", handle);
    rc = store_handle_create(db, &h);
    if (rc == PL_EEXIST)
      return pl_err_set(err, rc, "handle %.200s already exists", handle);
    if (rc < 0)
      return rc;
    *created = 1;
  }
  rc = gs1_index(db, h.id, values, nvalues, !*created, err);
  /* A bulk registration goes on past a rejected row in the same transaction: take back the
   * row this call inserted. (A single write rolls its whole transaction back instead.) */
  if (rc < 0 && *created)
    store_handle_delete(db, tenant_id, handle);
  return rc;
}

int ident__load_template(store *db, int64_t tenant_id, const char *name, char **fields,
                         pl_err *err) {
  *fields = NULL;
  if (!name || !*name)
    return 0;
  store_template t;
  int rc = store_template_get(db, tenant_id, name, &t);
  if (rc == PL_ENOTFOUND)
    return pl_err_set(err, PL_EINVAL, "no template named \"%.63s\"", name);
  if (rc < 0)
    return rc;
  *fields = t.fields_json;
  return 0;
}

int ident_handle_put(ident_ctx *c, int64_t tenant_id, const char *handle, const char *template_name,
                     const json_t *values, int mode, int *created, pl_err *err) {
  size_t len = strlen(handle);
  int rc = ident_check_handle(handle, len, err);
  store_prefix prefix;
  pl_buf enc;
  pl_buf_init(&enc, 64u << 20);
  uint32_t n = 0;
  char *fields = NULL;
  int was_created = 0;
  if (rc == 0)
    rc = ident_values_from_json(values, (uint32_t)(pl_now_ms() / 1000), &enc, &n, err);
  int began = 0;
  if (rc == 0) {
    rc = store_begin(c->db);
    began = rc == 0;
  }
  if (rc == 0)
    rc = ident__check_owner(c->db, tenant_id, handle, len, &prefix, err);
  if (rc == 0)
    rc = ident__load_template(c->db, tenant_id, template_name, &fields, err);
  if (rc == 0)
    rc = ident__put_one(c->db, tenant_id, &prefix, handle, fields, template_name, enc.data, enc.len,
                        n, mode, &was_created, err);
  if (rc == 0 && was_created)
    rc = store_ident_stats_add(c->db, prefix.id, ident_day(pl_now_ms()), 0, 0, 1);
  char target[IDENT_HANDLE_MAX + 16];
  snprintf(target, sizeof target, "handle:%s", handle);
  const char *action = rc == 0 && !was_created ? "ident.update" : "ident.create";
  if (rc == 0) {
    rc = ident__audit(c, tenant_id, action, target, 0, err, "");
    if (rc == 0)
      rc = store_commit(c->db);
    if (rc < 0)
      store_rollback(c->db);
  } else {
    if (began)
      store_rollback(c->db);
    ident__audit(c, tenant_id, mode == IDENT_PUT_REPLACE ? "ident.update" : "ident.create", target,
                 rc, err, "");
  }
  free(fields);
  pl_buf_free(&enc);
  if (rc == 0 && created)
    *created = was_created;
  return rc;
}

int ident_handle_delete(ident_ctx *c, int64_t tenant_id, const char *handle, pl_err *err) {
  int rc = store_handle_delete(c->db, tenant_id, handle);
  if (rc == PL_ENOTFOUND)
    pl_err_set(err, rc, "handle %.200s not found", handle);
  char target[IDENT_HANDLE_MAX + 16];
  snprintf(target, sizeof target, "handle:%s", handle);
  ident__audit(c, tenant_id, "ident.delete", target, rc, err, "");
  return rc;
}
