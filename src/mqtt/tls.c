/* MQTT over TLS with GnuTLS, on the same loop and buffers as plain TCP.
 *
 * GnuTLS never touches the socket: its pull function reads the ciphertext the loop just read
 * (server->tls_in, set for the duration of one mqtt__tls_input call) and its push function
 * appends ciphertext to the connection's output buffer, which the loop writes like any other.
 * So a TLS connection is the plain connection plus a gnutls_session_t; the handshake advances as
 * bytes arrive (GNUTLS_NONBLOCK), and decrypted bytes go to the same MQTT decoder.
 *
 * Client certificates (mqtt_tls_ca set): requested, not required. A certificate that verifies
 * against mqtt_tls_ca authenticates the device named by its subject CN in the tenant named by its
 * subject O, when the CONNECT carries no token (access.c). An unverifiable certificate is
 * treated as none: the client may still authenticate with a token.
 */
#include "mqtt/mqtt_int.h"

#include "base/log.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len) {
  mqtt_conn *c = ptr;
  if (mqtt__conn_out_append(c, data, len) < 0) {
    gnutls_transport_set_errno((gnutls_session_t)c->tls, ENOBUFS);
    return -1;
  }
  return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len) {
  mqtt_conn *c = ptr;
  mqtt_server *s = c->srv;
  if (!s->tls_in_len) {
    gnutls_transport_set_errno((gnutls_session_t)c->tls, EAGAIN);
    return -1;
  }
  size_t n = len < s->tls_in_len ? len : s->tls_in_len;
  memcpy(data, s->tls_in, n);
  s->tls_in += n;
  s->tls_in_len -= n;
  return (ssize_t)n;
}

int mqtt__tls_init(mqtt_server *s, pl_err *err) {
  const pl_config *cfg = s->cfg;
  int rc = gnutls_global_init();
  if (rc < 0) return pl_err_set(err, PL_EIO, "mqtt TLS: %s", gnutls_strerror(rc));
  gnutls_certificate_credentials_t creds;
  if ((rc = gnutls_certificate_allocate_credentials(&creds)) < 0) {
    gnutls_global_deinit();
    return pl_err_set(err, PL_ENOMEM, "mqtt TLS: %s", gnutls_strerror(rc));
  }
  s->tls_creds = creds;
  if (!cfg->mqtt_tls_key[0]) return pl_err_set(err, PL_EINVAL, "mqtt TLS: mqtt_tls_key is not set");
  rc = gnutls_certificate_set_x509_key_file(creds, cfg->mqtt_tls_cert, cfg->mqtt_tls_key, GNUTLS_X509_FMT_PEM);
  if (rc < 0)
    return pl_err_set(err, PL_EINVAL, "mqtt TLS: cannot load %s with key %s: %s", cfg->mqtt_tls_cert, cfg->mqtt_tls_key,
                      gnutls_strerror(rc));
  if (cfg->mqtt_tls_ca[0]) {
    rc = gnutls_certificate_set_x509_trust_file(creds, cfg->mqtt_tls_ca, GNUTLS_X509_FMT_PEM);
    if (rc <= 0)
      return pl_err_set(err, PL_EINVAL, "mqtt TLS: no CA certificate in %s%s%s", cfg->mqtt_tls_ca, rc < 0 ? ": " : "",
                        rc < 0 ? gnutls_strerror(rc) : "");
  }
  gnutls_priority_t prio;
  if ((rc = gnutls_priority_init(&prio, "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1", NULL)) < 0)
    return pl_err_set(err, PL_EIO, "mqtt TLS: %s", gnutls_strerror(rc));
  s->tls_prio = prio;
  return 0;
}

void mqtt__tls_free(mqtt_server *s) {
  if (s->tls_prio) gnutls_priority_deinit((gnutls_priority_t)s->tls_prio);
  if (s->tls_creds) {
    gnutls_certificate_free_credentials((gnutls_certificate_credentials_t)s->tls_creds);
    gnutls_global_deinit();
  }
  s->tls_prio = s->tls_creds = NULL;
}

int mqtt__tls_conn_init(mqtt_conn *c) {
  mqtt_server *s = c->srv;
  gnutls_session_t sess;
  if (gnutls_init(&sess, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) return PL_ENOMEM;
  c->tls = sess;
  if (gnutls_priority_set(sess, (gnutls_priority_t)s->tls_prio) < 0 ||
      gnutls_credentials_set(sess, GNUTLS_CRD_CERTIFICATE, (gnutls_certificate_credentials_t)s->tls_creds) < 0)
    return PL_EIO;
  if (s->cfg->mqtt_tls_ca[0]) gnutls_certificate_server_set_request(sess, GNUTLS_CERT_REQUEST);
  gnutls_transport_set_ptr(sess, c);
  gnutls_transport_set_push_function(sess, tls_push);
  gnutls_transport_set_pull_function(sess, tls_pull);
  return 0;
}

void mqtt__tls_conn_free(mqtt_conn *c) {
  if (c->tls) gnutls_deinit((gnutls_session_t)c->tls);
  c->tls = NULL;
}

int mqtt__tls_input(mqtt_conn *c, const uint8_t *data, size_t len) {
  mqtt_server *s = c->srv;
  gnutls_session_t sess = c->tls;
  s->tls_in = data;
  s->tls_in_len = len;
  int result = 0;
  if (!c->tls_ready) {
    int rc = gnutls_handshake(sess);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) goto out;
    if (rc < 0) {
      PL_LOG(PL_LOG_INFO, "mqtt", "conn=%llu TLS handshake failed: %s", (unsigned long long)c->id, gnutls_strerror(rc));
      result = PL_EAUTH;
      goto out;
    }
    c->tls_ready = 1;
  }
  /* Every byte read is decrypted now, even while MQTT reading is paused (the decoder then keeps
   * the plaintext): ciphertext left here would be lost. */
  for (;;) {
    uint8_t plain[16384];
    ssize_t n = gnutls_record_recv(sess, plain, sizeof plain);
    if (n > 0) {
      mqtt__conn_input(c, plain, (size_t)n);
      if (c->state >= MQTT_CONN_CLOSING) break;
      continue;
    }
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) break;
    result = n == 0 ? PL_EIO : PL_EINVAL; /* closed, or a TLS error */
    break;
  }
out:
  s->tls_in = NULL;
  s->tls_in_len = 0;
  return result;
}

int mqtt__tls_output(mqtt_conn *c, const void *data, size_t len) {
  gnutls_session_t sess = c->tls;
  const uint8_t *p = data;
  while (len) {
    ssize_t n = gnutls_record_send(sess, p, len);
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
    if (n < 0) return PL_EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mqtt__tls_peer_identity(mqtt_conn *c, char *org, size_t orgsz, char *cn, size_t cnsz) {
  gnutls_session_t sess = c->tls;
  unsigned status = 0;
  if (!sess || gnutls_certificate_verify_peers2(sess, &status) < 0 || status != 0) return PL_EAUTH;
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(sess, &n);
  if (!certs || !n) return PL_EAUTH;
  gnutls_x509_crt_t crt;
  if (gnutls_x509_crt_init(&crt) < 0) return PL_ENOMEM;
  int rc = PL_EAUTH;
  if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
    size_t osz = orgsz, csz = cnsz;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, 0, org, &osz) == 0 &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &csz) == 0 && osz && csz)
      rc = 0;
  }
  gnutls_x509_crt_deinit(crt);
  return rc;
}
