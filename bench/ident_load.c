/* Handle protocol load generator for bench/ident.sh: resolves random identifiers
 * PREFIX/SN%07d (0 <= n < COUNT) against a server over UDP (one socket, a window of requests in
 * flight, batched with sendmmsg/recvmmsg) or TCP (CONNECTIONS connections, each with WINDOW
 * pipelined requests), for DURATION seconds, and prints throughput and latency percentiles.
 *
 *   bench_ident_load --server HOST:PORT [--tcp] --prefix P --count N [--duration S]
 *                    [--window W] [--connections C]
 *
 * Lost UDP requests are replaced after 1 s and counted as timeouts. Every answer is checked:
 * a response code other than success counts as an error. */
#include "base/clock.h"
#include "base/net.h"
#include "ident/handle_codec.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOTS_MAX 4096
#define LAT_MAX (1 << 22)

typedef struct slot {
  int64_t sent_ns;
  uint32_t request_id;
  int busy;
} slot;

static uint64_t rng = 88172645463325252ULL;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static int64_t *lat;
static size_t nlat;
static int64_t ok, errors, timeouts;

static void record(int64_t ns) {
  if (nlat < LAT_MAX)
    lat[nlat++] = ns;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int build(pl_buf *b, const char *prefix, int count, uint32_t request_id) {
  char h[256];
  int n = snprintf(h, sizeof h, "%s/SN%07u", prefix, next_rand() % (uint32_t)count);
  hdl_request_opts o = {request_id, 0, 0, NULL, 0, NULL, 0};
  return hdl_encode_resolution_request(b, (hdl_str){(const uint8_t *)h, (uint32_t)n}, &o);
}

static int connect_to(const char *hostport, int type) {
  char host[256], port[16];
  int p;
  if (pl_net_split(hostport, host, sizeof host, &p) < 0)
    return -1;
  snprintf(port, sizeof port, "%d", p);
  struct addrinfo hints = {0}, *ai;
  hints.ai_socktype = type;
  if (getaddrinfo(host, port, &hints, &ai) != 0)
    return -1;
  int fd = socket(ai->ai_family, type, 0);
  if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

static void answer(const uint8_t *p, size_t len, slot *slots, int window, int64_t now) {
  hdl_message m;
  if (hdl_frame_decode(p, len, HDL_MESSAGE_MAX, &m) <= 0) {
    errors++;
    return;
  }
  slot *s = &slots[m.env.request_id % (uint32_t)window];
  if (!s->busy || s->request_id != m.env.request_id)
    return; /* late answer of a replaced request */
  s->busy = 0;
  record(now - s->sent_ns);
  if (m.hdr.response_code == HDL_RC_SUCCESS)
    ok++;
  else
    errors++;
}

static void run_udp(const char *server, const char *prefix, int count, double duration,
                    int window) {
  int fd = connect_to(server, SOCK_DGRAM);
  if (fd < 0) {
    fprintf(stderr, "cannot reach %s\n", server);
    exit(1);
  }
  int big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  slot *slots = calloc((size_t)window, sizeof *slots);
  uint32_t next_id = 1;
  int64_t end = pl_mono_ns() + (int64_t)(duration * 1e9);
  pl_buf out;
  pl_buf_init(&out, 0);
  static uint8_t rbuf[64][2048];
  struct mmsghdr mm[64];
  struct iovec iov[64];
  size_t offs[SLOTS_MAX];
  for (;;) {
    int64_t now = pl_mono_ns();
    if (now >= end)
      break;
    /* Fill every free slot (and replace the lost), in one sendmmsg. */
    pl_buf_reset(&out);
    int nsend = 0;
    int idx[SLOTS_MAX];
    for (int i = 0; i < window; i++) {
      slot *s = &slots[i];
      if (s->busy && now - s->sent_ns < 1000000000LL)
        continue;
      if (s->busy)
        timeouts++;
      /* request ids map to their slot: id % window == i */
      uint32_t id = next_id - (next_id % (uint32_t)window) + (uint32_t)i;
      if (id < next_id)
        id += (uint32_t)window;
      next_id = id + 1;
      offs[nsend] = out.len;
      build(&out, prefix, count, id);
      s->busy = 1;
      s->request_id = id;
      s->sent_ns = now;
      idx[nsend++] = i;
    }
    for (int k = 0; k < nsend;) {
      int batch = nsend - k > 64 ? 64 : nsend - k;
      for (int j = 0; j < batch; j++) {
        size_t end_off = k + j + 1 < nsend ? offs[k + j + 1] : out.len;
        iov[j].iov_base = out.data + offs[k + j];
        iov[j].iov_len = end_off - offs[k + j];
        memset(&mm[j], 0, sizeof mm[j]);
        mm[j].msg_hdr.msg_iov = &iov[j];
        mm[j].msg_hdr.msg_iovlen = 1;
      }
      int sent = sendmmsg(fd, mm, (unsigned)batch, 0);
      if (sent <= 0)
        break;
      k += sent;
    }
    (void)idx;
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    for (int j = 0; j < 64; j++) {
      iov[j].iov_base = rbuf[j];
      iov[j].iov_len = sizeof rbuf[j];
      memset(&mm[j], 0, sizeof mm[j]);
      mm[j].msg_hdr.msg_iov = &iov[j];
      mm[j].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, mm, 64, MSG_DONTWAIT, NULL);
    now = pl_mono_ns();
    for (int j = 0; j < n; j++)
      answer(rbuf[j], mm[j].msg_len, slots, window, now);
  }
  pl_buf_free(&out);
  free(slots);
  close(fd);
}

typedef struct conn {
  int fd;
  slot *slots;
  pl_buf in, out;
  uint32_t next_id;
} conn;

static void run_tcp(const char *server, const char *prefix, int count, double duration, int window,
                    int nconn) {
  int ep = epoll_create1(0);
  conn *cs = calloc((size_t)nconn, sizeof *cs);
  for (int c = 0; c < nconn; c++) {
    cs[c].fd = connect_to(server, SOCK_STREAM);
    if (cs[c].fd < 0) {
      fprintf(stderr, "cannot reach %s\n", server);
      exit(1);
    }
    cs[c].slots = calloc((size_t)window, sizeof(slot));
    pl_buf_init(&cs[c].in, 0);
    pl_buf_init(&cs[c].out, 0);
    cs[c].next_id = 1;
    struct epoll_event ev = {EPOLLIN, {.u32 = (uint32_t)c}};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[c].fd, &ev);
    int64_t now = pl_mono_ns();
    for (int i = 0; i < window; i++) {
      uint32_t id = (uint32_t)i;
      cs[c].slots[i] = (slot){now, id, 1};
      build(&cs[c].out, prefix, count, id);
    }
    cs[c].next_id = (uint32_t)window;
    if (write(cs[c].fd, cs[c].out.data, cs[c].out.len) < 0)
      exit(1);
    pl_buf_reset(&cs[c].out);
  }
  int64_t end = pl_mono_ns() + (int64_t)(duration * 1e9);
  struct epoll_event evs[64];
  while (pl_mono_ns() < end) {
    int n = epoll_wait(ep, evs, 64, 100);
    for (int e = 0; e < n; e++) {
      conn *c = &cs[evs[e].data.u32];
      pl_buf_reserve(&c->in, 65536);
      ssize_t r = read(c->fd, c->in.data + c->in.len, 65536);
      if (r <= 0) {
        fprintf(stderr, "connection closed\n");
        exit(1);
      }
      c->in.len += (size_t)r;
      size_t off = 0;
      int64_t now = pl_mono_ns();
      pl_buf_reset(&c->out);
      for (;;) {
        hdl_message m;
        int used = hdl_frame_decode(c->in.data + off, c->in.len - off, HDL_MESSAGE_MAX, &m);
        if (used <= 0)
          break;
        answer(c->in.data + off, (size_t)used, c->slots, window, now);
        off += (size_t)used;
        /* the slot is free again: send the next request on it */
        uint32_t i = m.env.request_id % (uint32_t)window;
        uint32_t id = c->next_id - (c->next_id % (uint32_t)window) + i;
        if (id < c->next_id)
          id += (uint32_t)window;
        c->next_id = id + 1;
        c->slots[i] = (slot){now, id, 1};
        build(&c->out, prefix, count, id);
      }
      memmove(c->in.data, c->in.data + off, c->in.len - off);
      c->in.len -= off;
      if (c->out.len && write(c->fd, c->out.data, c->out.len) < 0)
        exit(1);
    }
  }
  for (int c = 0; c < nconn; c++) {
    close(cs[c].fd);
    free(cs[c].slots);
    pl_buf_free(&cs[c].in);
    pl_buf_free(&cs[c].out);
  }
  free(cs);
  close(ep);
}

int main(int argc, char **argv) {
  const char *server = "127.0.0.1:2641", *prefix = "88.118.9";
  int count = 1000000, window = 64, nconn = 4, tcp = 0;
  double duration = 10;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(a, "--tcp"))
      tcp = 1;
    else if (!strcmp(a, "--udp"))
      tcp = 0;
    else if (!strcmp(a, "--server"))
      server = v, i++;
    else if (!strcmp(a, "--prefix"))
      prefix = v, i++;
    else if (!strcmp(a, "--count"))
      count = atoi(v), i++;
    else if (!strcmp(a, "--window"))
      window = atoi(v), i++;
    else if (!strcmp(a, "--connections"))
      nconn = atoi(v), i++;
    else if (!strcmp(a, "--duration"))
      duration = atof(v), i++;
    else {
      fprintf(stderr,
              "usage: %s --server HOST:PORT [--tcp] --prefix P --count N [--duration S] [--window "
              "W] [--connections C]\n",
              argv[0]);
      return 2;
    }
  }
  if (window < 1 || window > SLOTS_MAX || count < 1 || nconn < 1)
    return 2;
  lat = malloc(sizeof *lat * LAT_MAX);
  int64_t t0 = pl_mono_ns();
  if (tcp)
    run_tcp(server, prefix, count, duration, window, nconn);
  else
    run_udp(server, prefix, count, duration, window);
  double secs = (double)(pl_mono_ns() - t0) / 1e9;
  qsort(lat, nlat, sizeof *lat, cmp64);
  double p50 = nlat ? (double)lat[nlat / 2] / 1e3 : 0,
         p99 = nlat ? (double)lat[nlat * 99 / 100] / 1e3 : 0;
  double p999 = nlat ? (double)lat[nlat * 999 / 1000] / 1e3 : 0;
  printf("{\"transport\": \"%s\", \"seconds\": %.2f, \"answers\": %lld, \"errors\": %lld, "
         "\"timeouts\": %lld, "
         "\"qps\": %.0f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f}\n",
         tcp ? "tcp" : "udp", secs, (long long)ok, (long long)errors, (long long)timeouts,
         (double)(ok + errors) / secs, p50, p99, p999);
  free(lat);
  return errors > (ok + errors) / 100 ? 1 : 0;
}
