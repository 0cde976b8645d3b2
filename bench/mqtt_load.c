/* MQTT load generator for bench/mqtt.sh: the same program drives Plateau and Mosquitto, over
 * 127.0.0.1 only, bounded in message count and time. It speaks MQTT 3.1.1 through Plateau's own
 * codec (src/mqtt/codec.h) on one epoll thread.
 *
 *   bench_mqtt_load idle  --port P --count N [--first F] [--user U] [--pass W] [--users FILE] [--hold S]
 *       opens N connections, each CONNECT (keep-alive 600 s; user names from FILE in turn, e.g.
 *       device tokens, else U; client ids and names start at index F) and waits for every CONNACK, prints
 *       "connected=N", then holds them S seconds (or until stdin closes) so the caller can read the
 *       server's memory.
 *
 *   bench_mqtt_load fanin --port P --publishers K --messages M --size B --qos Q
 *                         [--window W] [--pub-topic FMT] [--pub-users FILE] [--sub-topic F]
 *                         [--sub-user U] [--sub-pass W] [--timeout S]
 *       K publishers send M messages each of B bytes at QoS Q (QoS 1: at most W unacknowledged)
 *       to FMT (printf with the publisher's index, e.g. "v1/devices/dev%d/telemetry"; default
 *       "bench/%d"), user names from FILE (one a line, e.g. device tokens); one subscriber on F
 *       (default "bench/+") at the same QoS. Each publisher ends with one QoS 1 marker and waits
 *       for its PUBACK: for Plateau, whose acknowledgements follow the order of storing, that
 *       PUBACK means every earlier message of the run is stored. Payloads are JSON telemetry
 *       {"t":<send time ns>,"seq":N,"pad":"..."} padded to B bytes.
 *       Prints one line of key=value results:
 *         published, received, seconds (first send to last marker PUBACK), pub_rate (messages
 *         accepted a second), sub_seconds, sub_rate, ack_p50_us, ack_p99_us (QoS 1: PUBLISH to
 *         PUBACK), lat_p50_us, lat_p99_us (PUBLISH to delivery to the subscriber).
 */
#include "base/buf.h"
#include "base/clock.h"
#include "mqtt/codec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PUBLISHERS 64
#define OUT_CHUNK (256 * 1024)

typedef struct conn {
  int fd;
  int idx;        /* publisher index, -1 for the subscriber */
  int connected;
  pl_buf in, out;
  size_t out_off;
  /* publisher state */
  uint64_t sent, acked, next_seq;
  int inflight;
  int64_t *sent_at;  /* by packet id */
  int marker_sent, marker_acked;
  uint16_t next_pid, marker_pid;
  char topic[256];
} conn;

static int64_t now_ns(void) {
  return pl_mono_ns();
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, cmp_i64);
  size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
  return (double)v[i] / 1000.0;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static void send_connect(conn *c, const char *client_id, const char *user, const char *pass, int keepalive) {
  mqtt_packet p;
  memset(&p, 0, sizeof p);
  p.type = MQTT_CONNECT;
  p.u.connect.version = MQTT_V311;
  p.u.connect.clean_start = 1;
  p.u.connect.keep_alive_s = (uint16_t)keepalive;
  p.u.connect.client_id = (mqtt_bytes){(const uint8_t *)client_id, (uint32_t)strlen(client_id)};
  if (user && *user) {
    p.u.connect.has_username = 1;
    p.u.connect.username = (mqtt_bytes){(const uint8_t *)user, (uint32_t)strlen(user)};
  }
  if (pass && *pass) {
    p.u.connect.has_password = 1;
    p.u.connect.password = (mqtt_bytes){(const uint8_t *)pass, (uint32_t)strlen(pass)};
  }
  mqtt_encode(&p, MQTT_V311, &c->out);
}

static int flush_out(conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
    if (n > 0) {
      c->out_off += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
  }
  c->out.len = c->out_off = 0;
  return 0;
}

/* Reads what is there; calls on_packet for each whole packet. Returns -1 on close/error. */
static int read_in(conn *c, void (*on_packet)(conn *c, mqtt_packet *p, void *ctx), void *ctx) {
  for (;;) {
    if (pl_buf_reserve(&c->in, 65536) < 0) return -1;
    ssize_t n = read(c->fd, c->in.data + c->in.len, 65536);
    if (n == 0) return -1;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      return -1;
    }
    c->in.len += (size_t)n;
    size_t pos = 0;
    for (;;) {
      mqtt_packet p;
      size_t used;
      uint8_t reason;
      int rc = mqtt_decode(c->in.data + pos, c->in.len - pos, MQTT_V311, 0, &p, &used, &reason);
      if (rc == PL_AGAIN) break;
      if (rc < 0) return -1;
      on_packet(c, &p, ctx);
      pos += used;
    }
    memmove(c->in.data, c->in.data + pos, c->in.len - pos);
    c->in.len -= pos;
    if ((size_t)n < 65536) break;
  }
  return 0;
}

/* ---- idle ---- */

static void idle_packet(conn *c, mqtt_packet *p, void *ctx) {
  if (p->type == MQTT_CONNACK && p->u.connack.reason == 0 && !c->connected) {
    c->connected = 1;
    ++*(int *)ctx;
  }
}

static int run_idle(int port, int count, int first, const char *user, const char *pass, const char *users_file,
                    int hold_s) {
  char **users = NULL;
  size_t nusers = 0;
  if (users_file) {
    FILE *fp = fopen(users_file, "r");
    if (!fp) {
      fprintf(stderr, "idle: cannot read %s\n", users_file);
      return 2;
    }
    char line[256];
    while (fgets(line, sizeof line, fp)) {
      line[strcspn(line, "\r\n")] = 0;
      if (!*line) continue;
      users = realloc(users, (nusers + 1) * sizeof *users);
      users[nusers++] = strdup(line);
    }
    fclose(fp);
  }
  conn *cs = calloc((size_t)count, sizeof *cs);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int ok = 0, opened = 0;
  int64_t start = now_ns();
  for (int i = 0; i < count; i++) {
    conn *c = &cs[i];
    c->fd = dial(port);
    if (c->fd < 0) {
      fprintf(stderr, "idle: could not open connection %d: %s\n", i, strerror(errno));
      break;
    }
    opened++;
    pl_buf_init(&c->in, 0);
    pl_buf_init(&c->out, 0);
    char id[32];
    snprintf(id, sizeof id, "idle-%d", first + i);
    send_connect(c, id, nusers ? users[(size_t)(first + i) % nusers] : user, pass, 600);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  while (ok < opened && now_ns() - start < 120LL * 1000000000) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, 1000);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) {
        flush_out(c);
        if (c->out.len == 0) {
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (read_in(c, idle_packet, &ok) < 0) {
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          c->fd = -1;
          opened--;
        }
      }
    }
  }
  /* The buffers are not needed any more; the memory measured is the server's. */
  for (int i = 0; i < count; i++) {
    pl_buf_free(&cs[i].in);
    pl_buf_free(&cs[i].out);
  }
  printf("connected=%d seconds=%.2f\n", ok, (double)(now_ns() - start) / 1e9);
  fflush(stdout);
  /* Hold until the caller closes stdin or the time is up. */
  struct pollfd pf = {.fd = 0, .events = POLLIN};
  int64_t until = now_ns() + (int64_t)hold_s * 1000000000;
  char b[64];
  while (now_ns() < until) {
    int r = poll(&pf, 1, 500);
    if (r > 0 && read(0, b, sizeof b) <= 0) break;
  }
  for (int i = 0; i < count; i++)
    if (cs[i].fd >= 0) close(cs[i].fd);
  free(cs);
  for (size_t i = 0; i < nusers; i++) free(users[i]);
  free(users);
  close(ep);
  return ok == count ? 0 : 1;
}

/* ---- fan-in ---- */

typedef struct fanin {
  int qos, size, window;
  uint64_t messages;
  uint64_t received, expected;
  int64_t first_send, last_recv, last_marker;
  int64_t *ack_lat, *lat;
  size_t nack, nlat, cap_ack, cap_lat;
  int markers_left;
  int sub_ready;
} fanin;

static void put_publish(conn *c, fanin *f, int qos, int marker) {
  char payload[4096];
  int64_t t = now_ns();
  int n = snprintf(payload, sizeof payload, "{\"t\":%lld,\"seq\":%llu,\"pad\":\"", (long long)t,
                   (unsigned long long)c->next_seq);
  int want = f->size < (int)sizeof payload - 8 ? f->size : (int)sizeof payload - 8;
  while (n < want - 2) payload[n++] = 'x';
  payload[n++] = '"';
  payload[n++] = '}';
  mqtt_packet p;
  memset(&p, 0, sizeof p);
  p.type = MQTT_PUBLISH;
  p.u.publish.qos = (uint8_t)qos;
  p.u.publish.topic = (mqtt_bytes){(const uint8_t *)c->topic, (uint32_t)strlen(c->topic)};
  p.u.publish.payload = (mqtt_bytes){(const uint8_t *)payload, (uint32_t)n};
  if (qos) {
    uint16_t pid = c->next_pid;
    c->next_pid = c->next_pid == 65535 ? 1 : (uint16_t)(c->next_pid + 1);
    p.u.publish.packet_id = pid;
    c->sent_at[pid] = t;
    c->inflight++;
    if (marker) c->marker_pid = pid;
  }
  mqtt_encode(&p, MQTT_V311, &c->out);
  if (!f->first_send) f->first_send = t;
  c->next_seq++;
  if (!marker) c->sent++;
}

static void fanin_packet(conn *c, mqtt_packet *p, void *ctx) {
  fanin *f = ctx;
  int64_t t = now_ns();
  if (p->type == MQTT_CONNACK) {
    c->connected = p->u.connack.reason == 0;
    if (!c->connected) fprintf(stderr, "fanin: CONNACK refused (code %d)\n", p->u.connack.reason);
    return;
  }
  if (p->type == MQTT_SUBACK) {
    f->sub_ready = 1;
    return;
  }
  if (p->type == MQTT_PUBACK && c->idx >= 0) {
    uint16_t pid = p->u.ack.packet_id;
    c->inflight--;
    if (pid == c->marker_pid && c->marker_sent && !c->marker_acked) {
      c->marker_acked = 1;
      f->markers_left--;
      f->last_marker = t;
      return;
    }
    c->acked++;
    if (f->nack < f->cap_ack) f->ack_lat[f->nack++] = t - c->sent_at[pid];
    return;
  }
  if (p->type == MQTT_PUBLISH && c->idx < 0) {
    const mqtt_publish *pb = &p->u.publish;
    if (pb->qos == 1) {
      mqtt_packet a;
      memset(&a, 0, sizeof a);
      a.type = MQTT_PUBACK;
      a.u.ack.packet_id = pb->packet_id;
      mqtt_encode(&a, MQTT_V311, &c->out);
    }
    /* {"t":<ns>,... */
    if (pb->payload.len > 6 && memcmp(pb->payload.p, "{\"t\":", 5) == 0) {
      char num[24];
      size_t k = 0;
      while (k < 20 && 5 + k < pb->payload.len && pb->payload.p[5 + k] >= '0' && pb->payload.p[5 + k] <= '9') {
        num[k] = (char)pb->payload.p[5 + k];
        k++;
      }
      num[k] = 0;
      int64_t sent = strtoll(num, NULL, 10);
      if (f->nlat < f->cap_lat && sent) f->lat[f->nlat++] = t - sent;
    }
    f->received++;
    f->last_recv = t;
  }
}

static int run_fanin(int port, int pubs, uint64_t messages, int size, int qos, int window, const char *pub_topic,
                     const char *users_file, const char *sub_topic, const char *sub_user, const char *sub_pass,
                     int timeout_s) {
  char users[MAX_PUBLISHERS][128];
  memset(users, 0, sizeof users);
  if (users_file) {
    FILE *fp = fopen(users_file, "r");
    if (!fp) {
      fprintf(stderr, "fanin: cannot read %s\n", users_file);
      return 2;
    }
    for (int i = 0; i < pubs && fgets(users[i], sizeof users[i], fp); i++) users[i][strcspn(users[i], "\r\n")] = 0;
    fclose(fp);
  }
  fanin f;
  memset(&f, 0, sizeof f);
  f.qos = qos;
  f.size = size;
  f.window = window;
  f.messages = messages;
  f.expected = messages * (uint64_t)pubs;
  f.cap_ack = f.cap_lat = (size_t)f.expected + 16;
  f.ack_lat = malloc(f.cap_ack * sizeof *f.ack_lat);
  f.lat = malloc(f.cap_lat * sizeof *f.lat);
  f.markers_left = pubs;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  conn sub;
  memset(&sub, 0, sizeof sub);
  sub.idx = -1;
  pl_buf_init(&sub.in, 0);
  pl_buf_init(&sub.out, 0);
  if ((sub.fd = dial(port)) < 0) return 2;
  send_connect(&sub, "bench-sub", sub_user, sub_pass, 600);
  mqtt_sub_entry e = {{(const uint8_t *)sub_topic, (uint32_t)strlen(sub_topic)}, (uint8_t)qos};
  mqtt_packet sp;
  memset(&sp, 0, sizeof sp);
  sp.type = MQTT_SUBSCRIBE;
  sp.u.subscribe.packet_id = 1;
  sp.u.subscribe.entries = &e;
  sp.u.subscribe.count = 1;
  mqtt_encode(&sp, MQTT_V311, &sub.out);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &sub};
  epoll_ctl(ep, EPOLL_CTL_ADD, sub.fd, &ev);
  conn *pc = calloc((size_t)pubs, sizeof *pc);
  for (int i = 0; i < pubs; i++) {
    conn *c = &pc[i];
    c->idx = i;
    c->next_pid = 1;
    pl_buf_init(&c->in, 0);
    pl_buf_init(&c->out, 0);
    c->sent_at = calloc(65536, sizeof *c->sent_at);
    snprintf(c->topic, sizeof c->topic, pub_topic, i);
    if ((c->fd = dial(port)) < 0) return 2;
    char id[32];
    snprintf(id, sizeof id, "bench-pub-%d", i);
    send_connect(c, id, users[i], NULL, 600);
  }
  /* Wait for the subscription, then register the publishers. */
  int64_t deadline = now_ns() + 20LL * 1000000000;
  while (!f.sub_ready && now_ns() < deadline) {
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, 100);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) flush_out(c);
      if (evs[i].events & EPOLLIN) read_in(c, fanin_packet, &f);
    }
  }
  if (!f.sub_ready) {
    fprintf(stderr, "fanin: the subscription was not acknowledged\n");
    return 2;
  }
  for (int i = 0; i < pubs; i++) {
    struct epoll_event pe = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &pc[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, pc[i].fd, &pe);
  }
  deadline = now_ns() + (int64_t)timeout_s * 1000000000;
  int64_t done_at = 0;
  while (now_ns() < deadline) {
    /* Publishers fill their buffers (bounded by chunk and window). */
    for (int i = 0; i < pubs; i++) {
      conn *c = &pc[i];
      if (!c->connected) {
        if (c->out.len) flush_out(c); /* the CONNECT */
        continue;
      }
      while (c->sent < messages && c->out.len < OUT_CHUNK && (qos == 0 || c->inflight < window))
        put_publish(c, &f, qos, 0);
      if (c->sent == messages && !c->marker_sent && c->inflight < window) {
        c->marker_sent = 1;
        put_publish(c, &f, 1, 1);
      }
      if (c->out.len) flush_out(c);
    }
    if (sub.out.len) flush_out(&sub);
    if (!f.markers_left && (f.received >= f.expected || (done_at && now_ns() - done_at > 5000000000LL))) break;
    if (!f.markers_left && !done_at) done_at = now_ns();
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 50);
    for (int i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (read_in(c, fanin_packet, &f) < 0) {
          fprintf(stderr, "fanin: connection %d closed by the server\n", c->idx);
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          if (c->idx >= 0) {
            c->connected = 0;
            if (!c->marker_acked) f.markers_left--;
          }
        }
      }
    }
  }
  double secs = f.last_marker > f.first_send ? (double)(f.last_marker - f.first_send) / 1e9 : 0;
  double sub_secs = f.last_recv > f.first_send ? (double)(f.last_recv - f.first_send) / 1e9 : 0;
  uint64_t published = 0;
  for (int i = 0; i < pubs; i++) published += pc[i].sent;
  printf("published=%llu received=%llu seconds=%.3f pub_rate=%.0f sub_seconds=%.3f sub_rate=%.0f ack_p50_us=%.0f "
         "ack_p99_us=%.0f lat_p50_us=%.0f lat_p99_us=%.0f markers_missing=%d\n",
         (unsigned long long)published, (unsigned long long)f.received, secs, secs ? (double)published / secs : 0,
         sub_secs, sub_secs ? (double)f.received / sub_secs : 0, pct(f.ack_lat, f.nack, 50), pct(f.ack_lat, f.nack, 99),
         pct(f.lat, f.nlat, 50), pct(f.lat, f.nlat, 99), f.markers_left);
  for (int i = 0; i < pubs; i++) {
    close(pc[i].fd);
    free(pc[i].sent_at);
    pl_buf_free(&pc[i].in);
    pl_buf_free(&pc[i].out);
  }
  close(sub.fd);
  pl_buf_free(&sub.in);
  pl_buf_free(&sub.out);
  free(pc);
  free(f.ack_lat);
  free(f.lat);
  close(ep);
  return f.markers_left ? 1 : 0;
}

static const char *arg(int argc, char **argv, const char *name, const char *dflt) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return dflt;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_mqtt_load idle|fanin --port P ... (see bench/mqtt_load.c)\n");
    return 2;
  }
  int port = atoi(arg(argc, argv, "--port", "1883"));
  if (strcmp(argv[1], "idle") == 0)
    return run_idle(port, atoi(arg(argc, argv, "--count", "1000")), atoi(arg(argc, argv, "--first", "0")),
                    arg(argc, argv, "--user", NULL),
                    arg(argc, argv, "--pass", NULL), arg(argc, argv, "--users", NULL),
                    atoi(arg(argc, argv, "--hold", "60")));
  if (strcmp(argv[1], "fanin") == 0) {
    int pubs = atoi(arg(argc, argv, "--publishers", "4"));
    if (pubs < 1 || pubs > MAX_PUBLISHERS) {
      fprintf(stderr, "--publishers: 1 to %d\n", MAX_PUBLISHERS);
      return 2;
    }
    return run_fanin(port, pubs, strtoull(arg(argc, argv, "--messages", "100000"), NULL, 10),
                     atoi(arg(argc, argv, "--size", "100")), atoi(arg(argc, argv, "--qos", "0")),
                     atoi(arg(argc, argv, "--window", "1000")), arg(argc, argv, "--pub-topic", "bench/%d"),
                     arg(argc, argv, "--pub-users", NULL), arg(argc, argv, "--sub-topic", "bench/+"),
                     arg(argc, argv, "--sub-user", NULL), arg(argc, argv, "--sub-pass", NULL),
                     atoi(arg(argc, argv, "--timeout", "120")));
  }
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
