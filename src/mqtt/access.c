/* Who a client is, and what it may publish and subscribe to.
 *
 * Authentication (on a worker thread: it reads the metadata database):
 *   - a Plateau token as the password, or as the user name (ThingsBoard devices put their
 *     access token in the user name and send no password):
 *       pld_ device token  -> the device;   plt_ / pls_ token -> that user or token of its tenant
 *   - no token, but a client certificate verified against mqtt_tls_ca -> the device named by the
 *     certificate's subject CN in the tenant named by its subject O
 *   - no credentials at all -> the anonymous sandbox, when mqtt_allow_anonymous is set
 *   - anything else -> Bad User Name or Password (5.0 0x86, 3.1.1 code 4)
 *
 * Authorization and topics (mqtt_int.h "Namespaces"):
 *   anonymous    any topic of the "anon" namespace; $SYS/# readable
 *   user/token   any topic of its tenant's namespace: publish with the data-write permission,
 *                subscribe with data-read; $SYS/# readable
 *   device       only its own ThingsBoard topics: publishes to v1/devices/me/{telemetry,
 *                attributes, attributes/request/{id}, rpc/request/{id}, rpc/response/{id}} and
 *                subscriptions under v1/devices/me/ — all rewritten to v1/devices/<name>/...;
 *                a gateway (device type "gateway") also v1/gateway/{connect, disconnect,
 *                telemetry, attributes, attributes/request, rpc} and subscriptions under
 *                v1/gateway/, rewritten to v1/devices/<name>/gateway/...
 * Nobody publishes to topics starting with '$'. Topics and filters have at most MQTT_LEVELS_MAX
 * levels.
 */
#include "mqtt/mqtt_int.h"

#include "base/clock.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mqtt__principal_unref(mqtt_principal *p) {
  if (p && --p->refs == 0) free(p);
}

/* A principal of one allocation: the struct, then its name and actor label. */
static mqtt_principal *principal_new(uint8_t kind, int64_t tenant_id, const char *name, const char *actor) {
  size_t len = strlen(name), alen = strlen(actor);
  mqtt_principal *p = calloc(1, sizeof *p + len + 1 + alen + 1);
  if (!p) return NULL;
  p->refs = 1;
  p->kind = kind;
  p->tenant_id = tenant_id;
  p->name_len = (uint16_t)len;
  memcpy(p->name, name, len);
  memcpy(p->name + len + 1, actor, alen);
  p->actor = p->name + len + 1;
  if (kind == MQTT_WHO_ANON) snprintf(p->ns, sizeof p->ns, "%s", MQTT_NS_ANON);
  else snprintf(p->ns, sizeof p->ns, "t%lld", (long long)tenant_id);
  p->may_publish = p->may_subscribe = 1;
  return p;
}

mqtt_principal *mqtt__principal_anon(void) {
  return principal_new(MQTT_WHO_ANON, 0, "anonymous", "anonymous");
}

/* ---- authentication ---- */

static int looks_like_token(const char *s, size_t len) {
  return len == strlen(s) && auth_token_kind_of(s) >= 0;
}

static void set_device(mqtt_auth_req *r, const store_device *d) {
  char actor[160];
  snprintf(actor, sizeof actor, "device:%s", d->name);
  mqtt_principal *p = principal_new(MQTT_WHO_DEVICE, d->tenant_id, d->name, actor);
  if (!p) {
    r->reason = MQTT_RC_SERVER_UNAVAILABLE;
    snprintf(r->why, sizeof r->why, "out of memory");
    return;
  }
  p->device_id = d->id;
  p->is_gateway = strcmp(d->type, "gateway") == 0;
  r->who = p;
  if (d->attributes_json) r->attrs_json = strdup(d->attributes_json);
}

/* Device names "+" and "#" would read as wildcards once a device's topics are rewritten to
 * v1/devices/<name>/...: such devices cannot use MQTT. */
static int name_usable(const char *name) {
  return strcmp(name, "+") != 0 && strcmp(name, "#") != 0;
}

static void auth_work(uv_work_t *w) {
  mqtt_auth_req *r = w->data;
  mqtt_server *s = r->srv;
  const char *token = NULL;
  if (r->has_password && looks_like_token(r->password, r->password_len)) token = r->password;
  else if (r->has_username && looks_like_token(r->username, r->username_len)) token = r->username;
  store *db = store_pool_get(s->deps.pool);
  r->reason = MQTT_RC_SUCCESS;
  if (token) {
    auth_principal p;
    int rc = auth_authenticate(db, token, pl_now_ms(), &p);
    if (rc == PL_EAUTH) {
      r->reason = MQTT_RC_BAD_CREDENTIALS;
      snprintf(r->why, sizeof r->why, "unknown, expired or revoked token");
    } else if (rc < 0) {
      r->reason = MQTT_RC_SERVER_UNAVAILABLE;
      snprintf(r->why, sizeof r->why, "credential lookup failed: %s", pl_strerror(rc));
    } else if (p.role == AUTH_ROLE_DEVICE) {
      store_device d;
      memset(&d, 0, sizeof d);
      rc = store_device_get(db, p.tenant_id, p.device_id, &d);
      if (rc < 0) {
        r->reason = rc == PL_ENOTFOUND ? MQTT_RC_BAD_CREDENTIALS : MQTT_RC_SERVER_UNAVAILABLE;
        snprintf(r->why, sizeof r->why, "device lookup failed: %s", pl_strerror(rc));
      } else if (!name_usable(d.name)) {
        r->reason = MQTT_RC_NOT_AUTHORIZED;
        snprintf(r->why, sizeof r->why, "a device named \"%.8s\" cannot use MQTT (rename it)", d.name);
      } else {
        set_device(r, &d);
      }
      store_device_clear(&d);
    } else {
      char actor[160];
      auth_principal_actor(&p, actor, sizeof actor);
      mqtt_principal *pr = principal_new(MQTT_WHO_USER, p.tenant_id, p.name, actor);
      if (!pr) {
        r->reason = MQTT_RC_SERVER_UNAVAILABLE;
        snprintf(r->why, sizeof r->why, "out of memory");
      } else {
        pr->may_publish = (uint8_t)auth_can(p.role, AUTH_PERM_DATA_WRITE);
        pr->may_subscribe = (uint8_t)auth_can(p.role, AUTH_PERM_DATA_READ);
        if (!pr->may_publish && !pr->may_subscribe) {
          r->reason = MQTT_RC_NOT_AUTHORIZED;
          snprintf(r->why, sizeof r->why, "the %s role may neither read nor write data", auth_role_name(p.role));
          mqtt__principal_unref(pr);
        } else {
          r->who = pr;
        }
      }
    }
  } else if (r->has_cert) {
    store_tenant t;
    store_device d;
    memset(&d, 0, sizeof d);
    int rc = store_tenant_get_by_name(db, r->cert_tenant, &t);
    if (rc == 0) rc = store_device_get_by_name(db, t.id, r->cert_device, &d);
    if (rc == PL_ENOTFOUND) {
      r->reason = MQTT_RC_BAD_CREDENTIALS;
      snprintf(r->why, sizeof r->why, "no device \"%.64s\" in tenant \"%.32s\" for the client certificate",
               r->cert_device, r->cert_tenant);
    } else if (rc < 0) {
      r->reason = MQTT_RC_SERVER_UNAVAILABLE;
      snprintf(r->why, sizeof r->why, "device lookup failed: %s", pl_strerror(rc));
    } else if (!name_usable(d.name)) {
      r->reason = MQTT_RC_NOT_AUTHORIZED;
      snprintf(r->why, sizeof r->why, "a device named \"%.8s\" cannot use MQTT", d.name);
    } else {
      set_device(r, &d);
    }
    store_device_clear(&d);
  } else {
    r->reason = MQTT_RC_BAD_CREDENTIALS;
    snprintf(r->why, sizeof r->why, "credentials must be a Plateau token (pld_ device token or plt_ API token)");
  }
  store_pool_put(s->deps.pool, db);
  /* The secrets are not needed any more. */
  if (r->password) explicit_bzero(r->password, r->password_len);
  if (r->username) explicit_bzero(r->username, r->username_len);
}

static void auth_after(uv_work_t *w, int status) {
  mqtt_auth_req *r = w->data;
  if (status < 0 && r->reason == MQTT_RC_SUCCESS && !r->who) r->reason = MQTT_RC_SERVER_UNAVAILABLE;
  r->done(r);
}

void mqtt__auth_start(mqtt_server *s, mqtt_auth_req *r) {
  r->srv = s;
  r->work.data = r;
  if (!r->has_username && !r->has_password && !r->has_cert) {
    if (s->cfg->mqtt_allow_anonymous) {
      r->reason = MQTT_RC_SUCCESS;
      r->who = s->anon;
      s->anon->refs++;
    } else {
      r->reason = MQTT_RC_NOT_AUTHORIZED;
      snprintf(r->why, sizeof r->why, "no credentials: send a device token as the user name, or an API token as the "
                                      "password");
    }
    r->done(r);
    return;
  }
  if (uv_queue_work(&s->loop, &r->work, auth_work, auth_after) < 0) {
    r->reason = MQTT_RC_SERVER_UNAVAILABLE;
    snprintf(r->why, sizeof r->why, "cannot queue the credential lookup");
    r->done(r);
  }
}

void mqtt__auth_req_free(mqtt_auth_req *r) {
  if (!r) return;
  if (r->password) {
    explicit_bzero(r->password, r->password_len);
    free(r->password);
  }
  if (r->username) {
    explicit_bzero(r->username, r->username_len);
    free(r->username);
  }
  mqtt__principal_unref(r->who);
  free(r->attrs_json);
  free(r);
}

/* ---- topics ---- */

static size_t levels(const char *t, size_t len) {
  size_t n = 1;
  for (size_t i = 0; i < len; i++) n += t[i] == '/';
  return n;
}

static int starts(const char *t, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(t, prefix, n) == 0;
}

static int is(const char *t, size_t len, const char *word) {
  return len == strlen(word) && memcmp(t, word, len) == 0;
}

/* A request id level: non-empty, no '/'. */
static int id_level(const char *t, size_t len) {
  return len > 0 && len <= 64 && !memchr(t, '/', len);
}

/* Writes prefix + who's name + mid + rest into the server's topic buffer. */
static char *device_topic(mqtt_server *s, const mqtt_principal *who, const char *mid, const char *rest,
                          size_t rest_len, size_t *out_len) {
  pl_buf *b = &s->topic_buf;
  pl_buf_reset(b);
  if (pl_buf_append_str(b, "v1/devices/") < 0 || pl_buf_append(b, who->name, who->name_len) < 0 ||
      pl_buf_append_str(b, mid) < 0 || pl_buf_append(b, rest, rest_len) < 0)
    return NULL;
  *out_len = b->len;
  return (char *)pl_buf_cstr(b);
}

int mqtt__access_publish(mqtt_server *s, const mqtt_principal *who, const char *topic, size_t len,
                         mqtt_pub_target *out) {
  memset(out, 0, sizeof *out);
  if (len && topic[0] == '$') return MQTT_RC_NOT_AUTHORIZED;
  if (levels(topic, len) > MQTT_LEVELS_MAX) return MQTT_RC_TOPIC_NAME_INVALID;
  out->ns = who->ns;
  out->route = 1;
  if (who->kind != MQTT_WHO_DEVICE) {
    if (!who->may_publish) return MQTT_RC_NOT_AUTHORIZED;
    pl_buf_reset(&s->topic_buf);
    if (pl_buf_append(&s->topic_buf, topic, len) < 0) return MQTT_RC_UNSPECIFIED;
    out->topic = (char *)pl_buf_cstr(&s->topic_buf);
    out->topic_len = len;
    return 0;
  }
  static const char me[] = "v1/devices/me/";
  static const char gw[] = "v1/gateway/";
  const char *rest;
  size_t rl;
  if (starts(topic, len, me)) {
    rest = topic + sizeof me - 1;
    rl = len - (sizeof me - 1);
    if (is(rest, rl, "telemetry")) out->api = MQTT_API_TELEMETRY;
    else if (is(rest, rl, "attributes")) out->api = MQTT_API_ATTRIBUTES;
    else if (starts(rest, rl, "attributes/request/") && id_level(rest + 19, rl - 19)) {
      out->api = MQTT_API_ATTR_REQUEST;
      out->route = 0;
    } else if (starts(rest, rl, "rpc/request/") && id_level(rest + 12, rl - 12)) {
      out->api = MQTT_API_RPC_REQUEST;
    } else if (starts(rest, rl, "rpc/response/") && id_level(rest + 13, rl - 13)) {
      out->api = MQTT_API_RPC_RESPONSE;
    } else {
      return MQTT_RC_NOT_AUTHORIZED;
    }
    if (!(out->topic = device_topic(s, who, "/", rest, rl, &out->topic_len))) return MQTT_RC_UNSPECIFIED;
  } else if (who->is_gateway && starts(topic, len, gw)) {
    rest = topic + sizeof gw - 1;
    rl = len - (sizeof gw - 1);
    if (is(rest, rl, "connect")) out->api = MQTT_API_GW_CONNECT;
    else if (is(rest, rl, "disconnect")) out->api = MQTT_API_GW_DISCONNECT;
    else if (is(rest, rl, "telemetry")) out->api = MQTT_API_GW_TELEMETRY;
    else if (is(rest, rl, "attributes")) out->api = MQTT_API_GW_ATTRIBUTES;
    else if (is(rest, rl, "attributes/request")) {
      out->api = MQTT_API_GW_ATTR_REQUEST;
      out->route = 0;
    } else if (is(rest, rl, "rpc")) {
      out->api = MQTT_API_GW_RPC;
    } else {
      return MQTT_RC_NOT_AUTHORIZED;
    }
    if (!(out->topic = device_topic(s, who, "/gateway/", rest, rl, &out->topic_len))) return MQTT_RC_UNSPECIFIED;
  } else {
    return MQTT_RC_NOT_AUTHORIZED;
  }
  /* The {id} level, found again in the internal topic. */
  if (out->api == MQTT_API_ATTR_REQUEST || out->api == MQTT_API_RPC_REQUEST || out->api == MQTT_API_RPC_RESPONSE) {
    const char *slash = strrchr(out->topic, '/');
    out->request_id = slash + 1;
    out->request_id_len = out->topic_len - (size_t)(slash + 1 - out->topic);
  }
  return 0;
}

int mqtt__access_subscribe(mqtt_server *s, const mqtt_principal *who, const char *filter, size_t len, int shared,
                           const char **ns, pl_buf *buf) {
  if (levels(filter, len) > MQTT_LEVELS_MAX) return MQTT_RC_TOPIC_FILTER_INVALID;
  pl_buf_reset(buf);
  if (starts(filter, len, "$SYS/") || is(filter, len, "$SYS")) {
    if (who->kind == MQTT_WHO_DEVICE) return MQTT_RC_NOT_AUTHORIZED;
    *ns = MQTT_NS_SYS;
    return pl_buf_append(buf, filter, len) < 0 ? MQTT_RC_UNSPECIFIED : 0;
  }
  if (who->kind != MQTT_WHO_DEVICE) {
    if (!who->may_subscribe) return MQTT_RC_NOT_AUTHORIZED;
    *ns = who->ns;
    return pl_buf_append(buf, filter, len) < 0 ? MQTT_RC_UNSPECIFIED : 0;
  }
  (void)s;
  if (shared) return MQTT_RC_NOT_AUTHORIZED;
  static const char me[] = "v1/devices/me/";
  static const char gw[] = "v1/gateway/";
  const char *mid, *rest;
  size_t rl;
  if (starts(filter, len, me)) {
    mid = "/";
    rest = filter + sizeof me - 1;
    rl = len - (sizeof me - 1);
  } else if (who->is_gateway && starts(filter, len, gw)) {
    mid = "/gateway/";
    rest = filter + sizeof gw - 1;
    rl = len - (sizeof gw - 1);
  } else {
    return MQTT_RC_NOT_AUTHORIZED;
  }
  *ns = who->ns;
  if (pl_buf_append_str(buf, "v1/devices/") < 0 || pl_buf_append(buf, who->name, who->name_len) < 0 ||
      pl_buf_append_str(buf, mid) < 0 || pl_buf_append(buf, rest, rl) < 0)
    return MQTT_RC_UNSPECIFIED;
  return 0;
}

const char *mqtt__client_topic(const mqtt_principal *who, const char *topic, size_t len, size_t *out_len,
                               pl_buf *buf) {
  *out_len = len;
  if (who->kind != MQTT_WHO_DEVICE) return topic;
  /* Every topic a device receives is under v1/devices/<its name>/ (see access above). */
  size_t pl = 11 + who->name_len + 1;
  if (len < pl || memcmp(topic, "v1/devices/", 11) != 0 || memcmp(topic + 11, who->name, who->name_len) != 0 ||
      topic[pl - 1] != '/')
    return topic;
  const char *rest = topic + pl;
  size_t rl = len - pl;
  pl_buf_reset(buf);
  int rc;
  if (who->is_gateway && rl >= 8 && memcmp(rest, "gateway/", 8) == 0)
    rc = pl_buf_append_str(buf, "v1/gateway/") < 0 || pl_buf_append(buf, rest + 8, rl - 8) < 0;
  else
    rc = pl_buf_append_str(buf, "v1/devices/me/") < 0 || pl_buf_append(buf, rest, rl) < 0;
  if (rc) return NULL;
  *out_len = buf->len;
  return (const char *)buf->data;
}
