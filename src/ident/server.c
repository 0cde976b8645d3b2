/* The Handle protocol server: UDP and TCP on one port (2641 by default, "[::]" dual-stack).
 *
 * Thread ownership:
 *   - The server thread (started by ident_server_start) owns the UDP socket, the TCP listening
 *     socket, every TCP connection and its buffers, the UDP reassembly table, and a store
 *     connection of its own. It runs an epoll loop; nothing else touches those.
 *   - Resolver threads (RESOLVERS of them) own a store connection each. Requests that only
 *     another node can answer (recursion) are copied into a job queue (mutex + condition);
 *     a resolver blocks on the upstream query, encodes the reply and puts it on the completion
 *     queue, then writes the eventfd; the server thread sends it (UDP) or appends it to the
 *     connection's output (TCP, matched by connection id, dropped if the connection closed).
 *   - ident_server_stop writes the stop eventfd from the caller's thread and joins.
 * The ident engine (cache, counters) is shared through its own locks.
 *
 * UDP answers longer than 512 message bytes go out as numbered chunks (hdl_udp_split);
 * chunked requests are reassembled per (client address, request id), at most REASM_MAX at a
 * time, each given REASM_TIMEOUT to complete. TCP connections carry any number of requests
 * each (framed by the envelope's length), are limited to CONN_MAX, and closed after
 * CONN_IDLE of silence or on a malformed frame.
 */
#include "ident/ident.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/net.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESOLVERS 4
#define BATCH 64
#define CONN_MAX 4096
#define CONN_IDLE_NS (60LL * 1000000000)
#define CONN_IN_MAX (HDL_ENVELOPE_BYTES + 65536)
#define CONN_OUT_MAX (16u << 20)
#define REASM_MAX 1024
#define REASM_TIMEOUT_NS (5LL * 1000000000)
#define REQ_MSG_MAX 65536
#define JOBS_MAX 10000
#define STATS_FLUSH_NS (5LL * 1000000000)

enum { TAG_UDP = 1, TAG_LISTEN, TAG_WAKE, TAG_CONN_BASE = 16 };

typedef struct conn {
  int fd;
  uint64_t id;
  pl_buf in, out;
  size_t out_off;
  int64_t last_ns;
  int closing;
} conn;

typedef struct job {
  struct job *next;
  int tcp;
  uint64_t conn_id;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  uint8_t *msg; /* the request: envelope + message, re-decoded by the resolver */
  size_t len;
  pl_buf reply; /* filled by the resolver */
} job;

/* A UDP packet waiting in the send queue (its bytes at off in sendbuf). */
typedef struct pending {
  size_t off;
  uint16_t len;
  socklen_t addrlen;
  struct sockaddr_storage addr;
} pending;

#define SENDQ_MAX 256
#define RBUF_BYTES 4096 /* a request datagram is at most 532 bytes (longer ones come in chunks) */

typedef struct reasm_entry {
  hdl_reasm r;
  int64_t started_ns;
} reasm_entry;

struct ident_server {
  ident *id;
  char db_path[1100];
  int udp_fd, tcp_fd, wake_fd, epfd;
  int port, http_port;
  uint8_t address[16];
  store *db;
  pthread_t thread;
  int started;
  atomic_int stopping; /* set by stop (then the eventfd wakes the loop) */
  conn *conns[CONN_MAX];
  uint64_t next_conn_id;
  pl_map *reasm;
  /* resolver pool */
  pthread_t resolvers[RESOLVERS];
  int nresolvers;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *jobs_head, *jobs_tail;
  int njobs;
  job *done_head;
  int quit;
  pl_buf pkts;
  /* UDP batching: received datagrams land in rbufs; replies wait in sendq until the batch is
   * answered, then leave in one sendmmsg. */
  uint8_t *rbufs;
  pending sendq[SENDQ_MAX];
  int nsend;
  pl_buf sendbuf;
};

/* ---- answering one request ---- */

/* Answers a decoded request into out (a whole message with envelope). Returns 1 when done,
 * 0 when it needs a resolver thread (recursion), < 0 on failure. blocking: may recurse. */
static int answer(ident_server *s, store *db, const hdl_message *m, int blocking, pl_buf *out) {
  hdl_reply_ctx c = {m, HDL_RC_SUCCESS, 0, (uint32_t)(pl_now_ms() / 1000 + 3600)};
  if (m->hdr.opcode == HDL_OC_GET_SITEINFO) {
    hdl_site_server sv;
    memset(&sv, 0, sizeof sv);
    sv.server_id = 1;
    memcpy(sv.address, s->address, 16);
    sv.tcp_port = sv.udp_port = (uint16_t)s->port;
    sv.http_port = (uint16_t)s->http_port;
    hdl_siteinfo si = {1, 1, "Plateau identifier resolution node", 1, &sv};
    pl_buf site;
    pl_buf_init(&site, 0);
    int rc = hdl_siteinfo_encode(&site, &si);
    c.opflags_add = HDL_OF_AT;
    if (rc == 0)
      rc = hdl_encode_siteinfo_response(out, &c, (hdl_str){site.data, (uint32_t)site.len});
    pl_buf_free(&site);
    return rc < 0 ? PL_ENOMEM : 1;
  }
  if (m->hdr.opcode != HDL_OC_RESOLUTION) {
    c.response_code = HDL_RC_OPERATION_DENIED;
    return hdl_encode_error(
               out, &c,
               "this node serves resolution and site information only; use the REST API to "
               "register identifiers") < 0
               ? PL_ENOMEM
               : 1;
  }
  hdl_resolution_req req;
  int rc = hdl_resolution_req_decode(m->body, m->hdr.body_len, &req);
  if (rc < 0) {
    c.response_code = HDL_RC_PROTOCOL_ERROR;
    return hdl_encode_error(out, &c, "malformed resolution request") < 0 ? PL_ENOMEM : 1;
  }
  if (ident_check_handle((const char *)req.handle.p, req.handle.len, NULL) < 0) {
    c.response_code = HDL_RC_INVALID_HANDLE;
    return hdl_encode_error(out, &c, "invalid handle: expected PREFIX/SUFFIX") < 0 ? PL_ENOMEM : 1;
  }
  uint32_t indexes[HDL_LIST_MAX];
  hdl_str types[HDL_LIST_MAX];
  for (uint32_t i = 0; i < req.nindexes; i++)
    indexes[i] = hdl_req_index(&req, i);
  uint32_t pos = 0, nt = 0;
  while (nt < req.ntypes && hdl_req_type_next(&req, &pos, &types[nt]))
    nt++;
  ident_query q = {req.handle,
                   indexes,
                   req.nindexes,
                   types,
                   nt,
                   (m->hdr.opflags & HDL_OF_PO) != 0,
                   0,
                   m->hdr.recursion_count,
                   !(m->hdr.opflags & HDL_OF_REC)};
  ident_result res;
  ident_result_init(&res);
  if (blocking) {
    rc = ident_resolve(s->id, db, &q, &res);
  } else {
    rc = ident_resolve_nonblocking(s->id, db, &q, &res);
    if (rc == 0) {
      ident_result_free(&res);
      return 0;
    }
  }
  if (rc < 0) {
    c.response_code = HDL_RC_ERROR;
    rc = hdl_encode_error(out, &c, "internal error; the server log has the details");
  } else if (res.rc == HDL_RC_SUCCESS) {
    c.opflags_add = strcmp(res.source, "local") == 0 ? HDL_OF_AT : 0;
    rc = hdl_encode_resolution_response(
        out, &c, req.handle, res.nvalues,
        (hdl_str){res.values.data ? res.values.data : (const uint8_t *)"",
                  (uint32_t)res.values.len});
  } else {
    c.response_code = res.rc;
    rc = hdl_encode_error(out, &c, res.message[0] ? res.message : hdl_rc_name(res.rc));
  }
  ident_result_free(&res);
  return rc < 0 ? rc : 1;
}

/* Answers raw request bytes; a request that cannot be decoded gets a protocol error when its
 * envelope is readable, else nothing (returns 0 with out empty). */
static int answer_bytes(ident_server *s, store *db, const uint8_t *p, size_t len, int blocking,
                        pl_buf *out) {
  hdl_envelope env;
  if (hdl_envelope_decode(p, len, REQ_MSG_MAX, &env) < 0)
    return -1;
  hdl_message m;
  int rc = hdl_message_decode(&env, p + HDL_ENVELOPE_BYTES, len - HDL_ENVELOPE_BYTES, &m);
  if (rc < 0 || env.msg_len != len - HDL_ENVELOPE_BYTES) {
    memset(&m, 0, sizeof m);
    m.env = env;
    hdl_reply_ctx c = {&m, HDL_RC_PROTOCOL_ERROR, 0, 0};
    return hdl_encode_error(out, &c, "malformed message") < 0 ? PL_ENOMEM : 1;
  }
  return answer(s, db, &m, blocking, out);
}

/* ---- resolver threads ---- */

static void *resolver_main(void *arg) {
  ident_server *s = arg;
  store *db = NULL;
  pl_err err = {{0}};
  if (store_open(s->db_path, &db, &err) < 0)
    PL_LOG(PL_LOG_ERROR, "ident", "resolver cannot open the database: %s", err.msg);
  else
    store_ident_tune(db, 16 << 20, (int64_t)1 << 30);
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->quit && !s->jobs_head)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->quit)
      break;
    job *j = s->jobs_head;
    s->jobs_head = j->next;
    if (!s->jobs_head)
      s->jobs_tail = NULL;
    s->njobs--;
    pthread_mutex_unlock(&s->mu);
    if (db)
      answer_bytes(s, db, j->msg, j->len, 1, &j->reply);
    pthread_mutex_lock(&s->mu);
    j->next = s->done_head;
    s->done_head = j;
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0) {
    }
  }
  pthread_mutex_unlock(&s->mu);
  store_close(db);
  return NULL;
}

static void job_free(job *j) {
  if (!j)
    return;
  free(j->msg);
  pl_buf_free(&j->reply);
  free(j);
}

static int enqueue(ident_server *s, const uint8_t *msg, size_t len, int tcp, uint64_t conn_id,
                   const struct sockaddr_storage *addr, socklen_t addrlen) {
  job *j = calloc(1, sizeof *j);
  if (!j || !(j->msg = malloc(len))) {
    free(j);
    return PL_ENOMEM;
  }
  memcpy(j->msg, msg, len);
  j->len = len;
  j->tcp = tcp;
  j->conn_id = conn_id;
  if (addr)
    memcpy(&j->addr, addr, addrlen);
  j->addrlen = addrlen;
  pl_buf_init(&j->reply, HDL_MESSAGE_MAX + HDL_ENVELOPE_BYTES);
  pthread_mutex_lock(&s->mu);
  if (s->njobs >= JOBS_MAX) {
    pthread_mutex_unlock(&s->mu);
    job_free(j);
    return PL_EBUSY;
  }
  if (s->jobs_tail)
    s->jobs_tail->next = j;
  else
    s->jobs_head = j;
  s->jobs_tail = j;
  s->njobs++;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* ---- UDP ---- */

/* Sends every queued packet, BATCH per sendmmsg. */
static void udp_flush(ident_server *s) {
  struct mmsghdr mm[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < s->nsend;) {
    int k = 0;
    for (; k < BATCH && i + k < s->nsend; k++) {
      pending *p = &s->sendq[i + k];
      iov[k].iov_base = s->sendbuf.data + p->off;
      iov[k].iov_len = p->len;
      memset(&mm[k], 0, sizeof mm[k]);
      mm[k].msg_hdr.msg_name = &p->addr;
      mm[k].msg_hdr.msg_namelen = p->addrlen;
      mm[k].msg_hdr.msg_iov = &iov[k];
      mm[k].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(s->udp_fd, mm, (unsigned)k, 0);
    if (sent < 0 && errno != EAGAIN && errno != EINTR)
      PL_LOG(PL_LOG_DEBUG, "ident", "udp send failed err=%s", strerror(errno));
    i += sent > 0 ? sent : k; /* a full socket buffer drops the rest of this batch, as UDP may */
  }
  s->nsend = 0;
  pl_buf_reset(&s->sendbuf);
}

/* Queues a reply (split into chunks when over 512 message bytes) for addr. */
static void udp_send(ident_server *s, const uint8_t *msg, size_t len,
                     const struct sockaddr_storage *addr, socklen_t addrlen) {
  uint16_t lens[1024];
  pl_buf_reset(&s->pkts);
  int n = hdl_udp_split(msg, len, &s->pkts, lens, 1024);
  if (n < 0) {
    PL_LOG(PL_LOG_WARN, "ident", "udp reply too large bytes=%zu", len);
    return;
  }
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    if (s->nsend == SENDQ_MAX)
      udp_flush(s);
    pending *p = &s->sendq[s->nsend];
    p->off = s->sendbuf.len;
    if (pl_buf_append(&s->sendbuf, s->pkts.data + off, lens[i]) < 0)
      return;
    p->len = lens[i];
    memcpy(&p->addr, addr, addrlen);
    p->addrlen = addrlen;
    s->nsend++;
    off += lens[i];
  }
}

static void reasm_sweep(ident_server *s, int64_t now) {
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  char keys[64][sizeof(struct sockaddr_storage) + 4];
  size_t klens[64];
  size_t n = 0;
  while (n < 64 && pl_map_next(s->reasm, &it, &k, &kl, &v))
    if (now - ((reasm_entry *)v)->started_ns > REASM_TIMEOUT_NS && kl <= sizeof keys[0]) {
      memcpy(keys[n], k, kl);
      klens[n++] = kl;
    }
  for (size_t i = 0; i < n; i++) {
    reasm_entry *e = pl_map_del(s->reasm, keys[i], klens[i]);
    if (e) {
      hdl_reasm_free(&e->r);
      free(e);
    }
  }
}

/* One datagram: a whole request, or a chunk of one. Writes the reply, or queues the job. */
static void udp_datagram(ident_server *s, const uint8_t *p, size_t len,
                         const struct sockaddr_storage *addr, socklen_t addrlen, pl_buf *out) {
  hdl_envelope env;
  if (hdl_envelope_decode(p, len, REQ_MSG_MAX, &env) < 0)
    return;
  const uint8_t *msg = p;
  size_t msg_len = len;
  reasm_entry *e = NULL;
  uint8_t key[sizeof(struct sockaddr_storage) + 4];
  size_t kl = 0;
  uint8_t *whole = NULL;
  if (env.flags & HDL_ENV_TC) {
    memcpy(key, addr, addrlen);
    memcpy(key + addrlen, &env.request_id, 4);
    kl = addrlen + 4;
    e = pl_map_get(s->reasm, key, kl);
    if (!e) {
      if (pl_map_count(s->reasm) >= REASM_MAX)
        reasm_sweep(s, pl_mono_ns());
      if (pl_map_count(s->reasm) >= REASM_MAX || !(e = calloc(1, sizeof *e)))
        return;
      hdl_reasm_init(&e->r, REQ_MSG_MAX);
      e->started_ns = pl_mono_ns();
      if (pl_map_put(s->reasm, key, kl, e, NULL) < 0) {
        free(e);
        return;
      }
    }
    int rc = hdl_reasm_add(&e->r, p, len);
    if (rc == 0)
      return;
    if (rc == 1 && (whole = malloc(HDL_ENVELOPE_BYTES + e->r.msg_len))) {
      hdl_envelope_encode(&e->r.env, whole);
      memcpy(whole + HDL_ENVELOPE_BYTES, e->r.data, e->r.msg_len);
      msg = whole;
      msg_len = HDL_ENVELOPE_BYTES + e->r.msg_len;
    }
    pl_map_del(s->reasm, key, kl);
    hdl_reasm_free(&e->r);
    free(e);
    if (rc != 1 || !whole)
      return;
  }
  pl_buf_reset(out);
  int rc = answer_bytes(s, s->db, msg, msg_len, 0, out);
  if (rc == 0) {
    if (enqueue(s, msg, msg_len, 0, 0, addr, addrlen) < 0) {
      hdl_message m;
      if (hdl_frame_decode(msg, msg_len, REQ_MSG_MAX, &m) > 0) {
        hdl_reply_ctx c = {&m, HDL_RC_SERVER_BUSY, 0, 0};
        pl_buf_reset(out);
        if (hdl_encode_error(out, &c, "server too busy") == 0)
          udp_send(s, out->data, out->len, addr, addrlen);
      }
    }
  } else if (rc > 0 && out->len) {
    udp_send(s, out->data, out->len, addr, addrlen);
  }
  free(whole);
}

static void udp_readable(ident_server *s) {
  const size_t PKT = RBUF_BYTES;
  uint8_t *bufs = s->rbufs;
  struct mmsghdr mm[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage addrs[BATCH];
  pl_buf out;
  pl_buf_init(&out, HDL_MESSAGE_MAX + HDL_ENVELOPE_BYTES);
  for (int round = 0; round < 16; round++) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs + (size_t)i * PKT;
      iov[i].iov_len = PKT;
      memset(&mm[i], 0, sizeof mm[i]);
      mm[i].msg_hdr.msg_name = &addrs[i];
      mm[i].msg_hdr.msg_namelen = sizeof addrs[i];
      mm[i].msg_hdr.msg_iov = &iov[i];
      mm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(s->udp_fd, mm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0)
      break;
    for (int i = 0; i < n; i++)
      if (!(mm[i].msg_hdr.msg_flags & MSG_TRUNC))
        udp_datagram(s, bufs + (size_t)i * PKT, mm[i].msg_len, &addrs[i], mm[i].msg_hdr.msg_namelen,
                     &out);
    udp_flush(s);
    if (n < BATCH)
      break;
  }
  pl_buf_free(&out);
}

/* ---- TCP ---- */

static conn *conn_by_id(ident_server *s, uint64_t id) {
  for (int i = 0; i < CONN_MAX; i++)
    if (s->conns[i] && s->conns[i]->id == id)
      return s->conns[i];
  return NULL;
}

static void conn_close(ident_server *s, int slot) {
  conn *c = s->conns[slot];
  if (!c)
    return;
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  pl_buf_free(&c->in);
  pl_buf_free(&c->out);
  free(c);
  s->conns[slot] = NULL;
}

static void conn_flush(ident_server *s, int slot) {
  conn *c = s->conns[slot];
  while (c->out_off < c->out.len) {
    ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c->out_off += (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
      break;
    conn_close(s, slot);
    return;
  }
  if (c->out_off == c->out.len) {
    pl_buf_reset(&c->out);
    c->out_off = 0;
  }
  struct epoll_event ev = {EPOLLIN | (c->out.len ? EPOLLOUT : 0),
                           {.u64 = (uint64_t)(TAG_CONN_BASE + slot)}};
  epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
  if (c->closing && c->out.len == 0)
    conn_close(s, slot);
}

static void tcp_accept(ident_server *s) {
  for (;;) {
    int fd = accept4(s->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    int slot = -1;
    for (int i = 0; i < CONN_MAX && slot < 0; i++)
      if (!s->conns[i])
        slot = i;
    conn *c = slot >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->id = ++s->next_conn_id;
    c->last_ns = pl_mono_ns();
    pl_buf_init(&c->in, CONN_IN_MAX);
    pl_buf_init(&c->out, CONN_OUT_MAX);
    s->conns[slot] = c;
    struct epoll_event ev = {EPOLLIN, {.u64 = (uint64_t)(TAG_CONN_BASE + slot)}};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
      conn_close(s, slot);
  }
}

static void conn_readable(ident_server *s, int slot) {
  conn *c = s->conns[slot];
  for (;;) {
    if (pl_buf_reserve(&c->in, 16384) < 0) {
      conn_close(s, slot);
      return;
    }
    size_t room = c->in.max_bytes - c->in.len < 16384 ? c->in.max_bytes - c->in.len : 16384;
    ssize_t r = recv(c->fd, c->in.data + c->in.len, room, 0);
    if (r > 0) {
      c->in.len += (size_t)r;
      c->last_ns = pl_mono_ns();
      /* answer every whole frame */
      size_t off = 0;
      for (;;) {
        hdl_message m;
        int n = hdl_frame_decode(c->in.data + off, c->in.len - off, REQ_MSG_MAX, &m);
        if (n == PL_AGAIN)
          break;
        if (n < 0) {
          c->closing = 1;
          off = c->in.len;
          break;
        }
        size_t before = c->out.len;
        int rc = answer_bytes(s, s->db, c->in.data + off, (size_t)n, 0, &c->out);
        if (rc == 0 && enqueue(s, c->in.data + off, (size_t)n, 1, c->id, NULL, 0) < 0) {
          hdl_reply_ctx rc2 = {&m, HDL_RC_SERVER_BUSY, 0, 0};
          hdl_encode_error(&c->out, &rc2, "server too busy");
        }
        if (rc < 0)
          c->out.len = before;
        off += (size_t)n;
      }
      if (off) {
        memmove(c->in.data, c->in.data + off, c->in.len - off);
        c->in.len -= off;
      }
      if (c->in.len == c->in.max_bytes)
        c->closing = 1;
      continue;
    }
    if (r == 0)
      c->closing = 1;
    else if (errno != EAGAIN && errno != EINTR)
      c->closing = 1;
    break;
  }
  conn_flush(s, slot);
}

/* ---- completions ---- */

static void completions(ident_server *s) {
  uint64_t v;
  if (read(s->wake_fd, &v, sizeof v) < 0) {
  }
  pthread_mutex_lock(&s->mu);
  job *done = s->done_head;
  s->done_head = NULL;
  pthread_mutex_unlock(&s->mu);
  while (done) {
    job *j = done;
    done = j->next;
    if (j->reply.len) {
      if (!j->tcp) {
        udp_send(s, j->reply.data, j->reply.len, &j->addr, j->addrlen);
        udp_flush(s);
      } else {
        conn *c = conn_by_id(s, j->conn_id);
        if (c && pl_buf_append(&c->out, j->reply.data, j->reply.len) == 0) {
          for (int i = 0; i < CONN_MAX; i++)
            if (s->conns[i] == c)
              conn_flush(s, i);
        }
      }
    }
    job_free(j);
  }
}

/* ---- the loop ---- */

static void *server_main(void *arg) {
  ident_server *s = arg;
  struct epoll_event evs[64];
  int64_t last_flush = pl_mono_ns(), last_sweep = last_flush;
  while (!atomic_load(&s->stopping)) {
    int n = epoll_wait(s->epfd, evs, 64, 1000);
    for (int i = 0; i < n; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag == TAG_UDP)
        udp_readable(s);
      else if (tag == TAG_LISTEN)
        tcp_accept(s);
      else if (tag == TAG_WAKE)
        completions(s);
      else {
        int slot = (int)(tag - TAG_CONN_BASE);
        if (slot < 0 || slot >= CONN_MAX || !s->conns[slot])
          continue;
        if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN))
          conn_close(s, slot);
        else if (evs[i].events & EPOLLIN)
          conn_readable(s, slot);
        else if (evs[i].events & EPOLLOUT)
          conn_flush(s, slot);
      }
    }
    int64_t now = pl_mono_ns();
    if (now - last_sweep > 1000000000LL) {
      last_sweep = now;
      for (int i = 0; i < CONN_MAX; i++)
        if (s->conns[i] && now - s->conns[i]->last_ns > CONN_IDLE_NS)
          conn_close(s, i);
      reasm_sweep(s, now);
    }
    if (now - last_flush > STATS_FLUSH_NS) {
      last_flush = now;
      ident_stats_flush(s->id, s->db);
    }
  }
  ident_stats_flush(s->id, s->db);
  return NULL;
}

static void server_free(ident_server *s) {
  if (s->nresolvers) {
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nresolvers; i++)
      pthread_join(s->resolvers[i], NULL);
  }
  while (s->jobs_head) {
    job *j = s->jobs_head;
    s->jobs_head = j->next;
    job_free(j);
  }
  while (s->done_head) {
    job *j = s->done_head;
    s->done_head = j->next;
    job_free(j);
  }
  for (int i = 0; i < CONN_MAX; i++)
    conn_close(s, i);
  if (s->reasm) {
    size_t it = 0;
    const void *k;
    size_t kl;
    void *v;
    while (pl_map_next(s->reasm, &it, &k, &kl, &v)) {
      hdl_reasm_free(&((reasm_entry *)v)->r);
      free(v);
    }
    pl_map_free(s->reasm);
  }
  if (s->udp_fd >= 0)
    close(s->udp_fd);
  if (s->tcp_fd >= 0)
    close(s->tcp_fd);
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  if (s->epfd >= 0)
    close(s->epfd);
  store_close(s->db);
  pl_buf_free(&s->pkts);
  pl_buf_free(&s->sendbuf);
  free(s->rbufs);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int ident_server_start(ident *id, const char *db_path, const char *listen, int http_port,
                       ident_server **out, pl_err *err) {
  ident_server *s = calloc(1, sizeof *s);
  if (!s)
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  s->id = id;
  s->udp_fd = s->tcp_fd = s->wake_fd = s->epfd = -1;
  s->http_port = http_port;
  snprintf(s->db_path, sizeof s->db_path, "%s", db_path);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pl_buf_init(&s->pkts, 0);
  pl_buf_init(&s->sendbuf, 0);
  int rc = 0;
  s->reasm = pl_map_new();
  s->rbufs = malloc((size_t)BATCH * RBUF_BYTES);
  if (!s->reasm || !s->rbufs)
    rc = pl_err_set(err, PL_ENOMEM, "out of memory");
  if (rc == 0) {
    s->tcp_fd = pl_net_listen(listen, SOCK_STREAM, 1024, err);
    if (s->tcp_fd < 0)
      rc = s->tcp_fd;
  }
  if (rc == 0) {
    s->port = pl_net_local_port(s->tcp_fd);
    /* UDP on the same port as TCP (port 0 picks TCP's). */
    char host[256], hp[300];
    int port;
    pl_net_split(listen, host, sizeof host, &port);
    snprintf(hp, sizeof hp, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, s->port);
    s->udp_fd = pl_net_listen(hp, SOCK_DGRAM, 0, err);
    if (s->udp_fd < 0)
      rc = s->udp_fd;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (rc == 0 && ident_site_address(id, s->address) == 0) {
      /* configured: announced as it is */
    } else if (rc == 0 && getsockname(s->tcp_fd, (struct sockaddr *)&ss, &sl) == 0) {
      if (ss.ss_family == AF_INET6)
        memcpy(s->address, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
      else
        memcpy(s->address + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    }
    int big = 4 << 20;
    if (rc == 0) {
      setsockopt(s->udp_fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
      setsockopt(s->udp_fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    }
  }
  if (rc == 0 && (rc = store_open(db_path, &s->db, err)) == 0)
    store_ident_tune(s->db, 64 << 20, (int64_t)1 << 30); /* best effort: only faster */
  if (rc == 0) {
    /* What 0.NA/PREFIX answers for the prefixes held here. */
    hdl_site_server sv;
    memset(&sv, 0, sizeof sv);
    sv.server_id = 1;
    memcpy(sv.address, s->address, 16);
    sv.tcp_port = sv.udp_port = (uint16_t)s->port;
    sv.http_port = (uint16_t)s->http_port;
    hdl_siteinfo si = {1, 1, "Plateau identifier resolution node", 1, &sv};
    pl_buf site;
    pl_buf_init(&site, 0);
    if (hdl_siteinfo_encode(&site, &si) == 0)
      ident_set_siteinfo(id, site.data, site.len);
    pl_buf_free(&site);
  }
  if (rc == 0) {
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->wake_fd < 0 || s->epfd < 0)
      rc = pl_err_set(err, PL_EIO, "epoll/eventfd: %s", strerror(errno));
  }
  if (rc == 0) {
    struct epoll_event e1 = {EPOLLIN, {.u64 = TAG_UDP}}, e2 = {EPOLLIN, {.u64 = TAG_LISTEN}},
                       e3 = {EPOLLIN, {.u64 = TAG_WAKE}};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->udp_fd, &e1) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tcp_fd, &e2) < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &e3) < 0)
      rc = pl_err_set(err, PL_EIO, "epoll_ctl: %s", strerror(errno));
  }
  for (int i = 0; rc == 0 && i < RESOLVERS; i++) {
    if (pthread_create(&s->resolvers[i], NULL, resolver_main, s) != 0)
      rc = pl_err_set(err, PL_EIO, "cannot start threads");
    else
      s->nresolvers++;
  }
  if (rc == 0) {
    if (pthread_create(&s->thread, NULL, server_main, s) != 0)
      rc = pl_err_set(err, PL_EIO, "cannot start the thread");
    else
      s->started = 1;
  }
  if (rc < 0) {
    server_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int ident_server_port(const ident_server *s) {
  return s->port;
}

void ident_server_stop(ident_server *s) {
  if (!s)
    return;
  if (s->started) {
    atomic_store(&s->stopping, 1);
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0) {
    }
    pthread_join(s->thread, NULL);
  }
  server_free(s);
}
