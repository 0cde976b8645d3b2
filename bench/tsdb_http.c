/* HTTP client of the time-series benchmark (bench/tsdb.sh), used the same way against InfluxDB
 * and against Plateau so that neither side pays for a different client. Plain HTTP/1.1 over
 * keep-alive TCP connections with blocking sockets: no library, no TLS, no compression.
 *
 *   bench_tsdb_http freeport
 *       prints a TCP port of 127.0.0.1 that is free right now.
 *   bench_tsdb_http ingest --url URL --file FILE [--lines N] [--connections C] [--points P]
 *                          [--content-type T] [--header 'K: V']... [--timeout-s S]
 *       POSTs FILE to URL as requests of N lines each (5000 for line protocol; 1 when each line
 *       of FILE is a whole JSON body), over C connections (default 4) that take the next
 *       request as soon as their last one is answered. The file is mapped and cut into bodies
 *       before the clock starts, so the client only writes bytes from the page cache. Stops at
 *       the first response that is not 2xx and prints it. Reports requests/s, MB/s, P/seconds
 *       (points per second, P being the points in FILE) and request latency quantiles.
 *   bench_tsdb_http query --url URL [--param K=V]... [--each K=V]... [--header 'K: V']...
 *                         [--runs N] [--warmup W] [--max-seconds S] [--print]
 *       GETs URL with the parameters percent-encoded, W times unmeasured, then N times (fewer
 *       when S seconds have passed, but at least 3), and prints the median, min, max and the
 *       response size. With --each, one run is one request per --each parameter, one after the
 *       other on one connection (for a query a server takes in parts, such as one per field),
 *       and its time is theirs together. --print writes the last response body to stdout.
 *   bench_tsdb_http request --url URL [--method M] [--data BODY] [--param K=V]...
 *                           [--header 'K: V']... [--content-type T] [--status]
 *       one request; prints the body (after a line `status=NNN` with --status); exits 0 on
 *       2xx, 1 otherwise (set-up steps, readiness, probing for an endpoint).
 *
 * Results go to stdout as `key=value` pairs on one line, for the shell to pick up.
 */
#include "base/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEADERS_MAX 16
#define RESPONSE_HEAD_BYTES_MAX (64u << 10)
#define RESPONSE_BODY_BYTES_MAX (1u << 30)

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "bench_tsdb_http: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(1);
}

/* ---- URLs ---- */

typedef struct url {
  char host[256];
  char port[16];
  char target[8192]; /* path and query string */
} url;

static void url_parse(const char *s, url *u) {
  if (strncmp(s, "http://", 7) != 0)
    die("only http:// URLs: %s", s);
  const char *h = s + 7, *slash = strchr(h, '/');
  size_t hostport_len = slash ? (size_t)(slash - h) : strlen(h);
  char hostport[256];
  if (hostport_len == 0 || hostport_len >= sizeof hostport)
    die("bad URL %s", s);
  memcpy(hostport, h, hostport_len);
  hostport[hostport_len] = 0;
  char *colon = strrchr(hostport, ':');
  if (snprintf(u->port, sizeof u->port, "%s", colon ? colon + 1 : "80") >= (int)sizeof u->port)
    die("bad port in %s", s);
  if (colon)
    *colon = 0;
  snprintf(u->host, sizeof u->host, "%s", hostport);
  if (snprintf(u->target, sizeof u->target, "%s", slash ? slash : "/") >= (int)sizeof u->target)
    die("URL too long: %s", s);
}

/* Appends K=V to u->target with V percent-encoded (RFC 3986 unreserved characters kept). */
static void url_add_param(url *u, const char *kv) {
  const char *eq = strchr(kv, '=');
  if (!eq)
    die("--param wants K=V: %s", kv);
  size_t n = strlen(u->target);
  char *p = u->target + n, *end = u->target + sizeof u->target - 4;
  *p++ = strchr(u->target, '?') ? '&' : '?';
  for (const char *c = kv; *c && p < end; c++) {
    unsigned char ch = (unsigned char)*c;
    if (c <= eq || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      *p++ = (char)ch;
    } else {
      static const char hex[] = "0123456789ABCDEF";
      *p++ = '%';
      *p++ = hex[ch >> 4];
      *p++ = hex[ch & 15];
    }
  }
  if (p >= end)
    die("URL too long with %s", kv);
  *p = 0;
}

/* ---- connections ---- */

typedef struct conn {
  const url *u;
  int fd;
  int timeout_s;
  pl_buf in; /* bytes received and not yet consumed */
} conn;

typedef struct response {
  int status;
  pl_buf body;
} response;

static int conn_open(conn *c) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  int rc = getaddrinfo(c->u->host, c->u->port, &hints, &ai);
  if (rc != 0) {
    fprintf(stderr, "bench_tsdb_http: %s:%s: %s\n", c->u->host, c->u->port, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *a = ai; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    fprintf(stderr, "bench_tsdb_http: connect %s:%s: %s\n", c->u->host, c->u->port,
            strerror(errno));
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = c->timeout_s};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  c->fd = fd;
  pl_buf_reset(&c->in);
  return 0;
}

static void conn_close(conn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

static int send_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return 0;
}

/* Receives more bytes into c->in; 0 on success, -1 on error or end of stream. */
static int recv_more(conn *c) {
  if (pl_buf_reserve(&c->in, 65536) < 0)
    return -1;
  for (;;) {
    ssize_t r = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (r > 0) {
      c->in.len += (size_t)r;
      return 0;
    }
    if (r < 0 && errno == EINTR)
      continue;
    return -1;
  }
}

static void consume(pl_buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

static const char *find_header(const char *head, size_t len, const char *name) {
  size_t nlen = strlen(name);
  for (const char *p = head; p && p < head + len;) {
    const char *eol = memchr(p, '\n', (size_t)(head + len - p));
    if (!eol)
      break;
    if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
      p += nlen + 1;
      while (*p == ' ' || *p == '\t')
        p++;
      return p;
    }
    p = eol + 1;
  }
  return NULL;
}

/* Reads one response (status, headers, body by Content-Length, chunked, or to the end). */
static int read_response(conn *c, response *res) {
  char *end;
  while (!(end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4))) {
    if (c->in.len > RESPONSE_HEAD_BYTES_MAX || recv_more(c) < 0)
      return -1;
  }
  size_t head_len = (size_t)(end - (char *)c->in.data) + 4;
  const char *head = (const char *)c->in.data;
  if (head_len < 12 || strncmp(head, "HTTP/1.", 7) != 0)
    return -1;
  res->status = atoi(head + 9);
  const char *cl = find_header(head, head_len, "Content-Length");
  const char *te = find_header(head, head_len, "Transfer-Encoding");
  const char *cn = find_header(head, head_len, "Connection");
  int chunked = te && strncasecmp(te, "chunked", 7) == 0;
  int close_after = cn && strncasecmp(cn, "close", 5) == 0;
  long long length = cl ? atoll(cl) : -1;
  consume(&c->in, head_len);
  pl_buf_reset(&res->body);
  if (chunked) {
    for (;;) {
      char *eol;
      while (!(eol = memmem(c->in.data, c->in.len, "\r\n", 2)))
        if (recv_more(c) < 0)
          return -1;
      unsigned long long size = strtoull((const char *)c->in.data, NULL, 16);
      consume(&c->in, (size_t)(eol - (char *)c->in.data) + 2);
      if (size > RESPONSE_BODY_BYTES_MAX)
        return -1;
      while (c->in.len < size + 2)
        if (recv_more(c) < 0)
          return -1;
      if (pl_buf_append(&res->body, c->in.data, size) < 0)
        return -1;
      consume(&c->in, size + 2);
      if (size == 0)
        break; /* no trailers are sent by the servers measured here */
    }
  } else if (length >= 0) {
    if (length > (long long)RESPONSE_BODY_BYTES_MAX)
      return -1;
    while (c->in.len < (size_t)length)
      if (recv_more(c) < 0)
        return -1;
    if (pl_buf_append(&res->body, c->in.data, (size_t)length) < 0)
      return -1;
    consume(&c->in, (size_t)length);
  } else if (res->status != 204 && res->status != 304) {
    while (recv_more(c) == 0) {
    }
    if (pl_buf_append(&res->body, c->in.data, c->in.len) < 0)
      return -1;
    pl_buf_reset(&c->in);
    close_after = 1;
  }
  if (close_after)
    conn_close(c);
  return 0;
}

typedef struct request {
  const char *method;
  const char *target;
  const char *const *headers;
  int nheaders;
  const char *content_type;
  const void *body;
  size_t body_len;
} request;

/* Sends req on c (connecting first when needed) and reads the answer into res. */
static int exchange(conn *c, const request *req, response *res) {
  if (c->fd < 0 && conn_open(c) < 0)
    return -1;
  pl_buf head;
  pl_buf_init(&head, 0);
  pl_buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: plateau-bench\r\n",
                req->method, req->target, c->u->host, c->u->port);
  for (int i = 0; i < req->nheaders; i++)
    pl_buf_printf(&head, "%s\r\n", req->headers[i]);
  if (req->body)
    pl_buf_printf(&head, "Content-Type: %s\r\nContent-Length: %zu\r\n", req->content_type,
                  req->body_len);
  pl_buf_append_str(&head, "\r\n");
  struct iovec iov[2] = {{head.data, head.len}, {(void *)req->body, req->body ? req->body_len : 0}};
  int rc = send_all(c->fd, iov, req->body ? 2 : 1);
  pl_buf_free(&head);
  if (rc < 0 || read_response(c, res) < 0) {
    fprintf(stderr, "bench_tsdb_http: %s %s: %s\n", req->method, req->target,
            errno ? strerror(errno) : "bad response");
    conn_close(c);
    return -1;
  }
  return 0;
}

/* ---- arguments ---- */

typedef struct args {
  const char *url, *file, *method, *data, *content_type;
  const char *headers[HEADERS_MAX];
  int nheaders;
  const char *params[64];
  int nparams;
  const char *each[64];
  int neach;
  long lines, connections, runs, warmup, timeout_s;
  double max_seconds, points;
  int print, status;
} args;

static void parse_args(int argc, char **argv, args *a) {
  *a = (args){.method = "GET",
              .content_type = "text/plain; charset=utf-8",
              .lines = 5000,
              .connections = 4,
              .runs = 10,
              .warmup = 2,
              .timeout_s = 600,
              .max_seconds = 60};
  for (int i = 0; i < argc; i++) {
    const char *k = argv[i];
    if (strcmp(k, "--print") == 0 || strcmp(k, "--status") == 0) {
      *(k[2] == 'p' ? &a->print : &a->status) = 1;
      continue;
    }
    if (i + 1 >= argc)
      die("%s needs a value", k);
    const char *v = argv[++i];
    if (strcmp(k, "--url") == 0)
      a->url = v;
    else if (strcmp(k, "--file") == 0)
      a->file = v;
    else if (strcmp(k, "--method") == 0)
      a->method = v;
    else if (strcmp(k, "--data") == 0)
      a->data = v;
    else if (strcmp(k, "--content-type") == 0)
      a->content_type = v;
    else if (strcmp(k, "--header") == 0 && a->nheaders < HEADERS_MAX)
      a->headers[a->nheaders++] = v;
    else if (strcmp(k, "--param") == 0 && a->nparams < 64)
      a->params[a->nparams++] = v;
    else if (strcmp(k, "--each") == 0 && a->neach < 64)
      a->each[a->neach++] = v;
    else if (strcmp(k, "--lines") == 0)
      a->lines = atol(v);
    else if (strcmp(k, "--connections") == 0)
      a->connections = atol(v);
    else if (strcmp(k, "--runs") == 0)
      a->runs = atol(v);
    else if (strcmp(k, "--warmup") == 0)
      a->warmup = atol(v);
    else if (strcmp(k, "--timeout-s") == 0)
      a->timeout_s = atol(v);
    else if (strcmp(k, "--max-seconds") == 0)
      a->max_seconds = atof(v);
    else if (strcmp(k, "--points") == 0)
      a->points = atof(v);
    else
      die("unknown option %s", k);
  }
  if (!a->url)
    die("%s", "--url is required");
  if (a->lines < 1 || a->connections < 1 || a->connections > 256 || a->runs < 1 || a->warmup < 0 ||
      a->timeout_s < 1)
    die("%s", "bad --lines, --connections, --runs, --warmup or --timeout-s");
}

/* ---- ingest ---- */

typedef struct ingest {
  url u;
  const args *a;
  const char *data;
  size_t *starts; /* body i is data[starts[i] .. starts[i + 1]) */
  size_t nbodies;
  atomic_size_t next;
  atomic_int failed;
  double *latency_s; /* per body */
} ingest;

static void *ingest_worker(void *arg) {
  ingest *in = arg;
  conn c = {.u = &in->u, .fd = -1, .timeout_s = (int)in->a->timeout_s};
  pl_buf_init(&c.in, 0);
  response res = {0};
  pl_buf_init(&res.body, 0);
  size_t i;
  while (!atomic_load(&in->failed) && (i = atomic_fetch_add(&in->next, 1)) < in->nbodies) {
    size_t len = in->starts[i + 1] - in->starts[i];
    /* A JSON body is one line: its newline is not sent. */
    if (in->a->lines == 1 && len && in->data[in->starts[i] + len - 1] == '\n')
      len--;
    request req = {"POST",
                   in->u.target,
                   in->a->headers,
                   in->a->nheaders,
                   in->a->content_type,
                   in->data + in->starts[i],
                   len};
    double t0 = now_s();
    if (exchange(&c, &req, &res) < 0) {
      atomic_store(&in->failed, 1);
      break;
    }
    in->latency_s[i] = now_s() - t0;
    if (res.status < 200 || res.status > 299) {
      if (!atomic_exchange(&in->failed, 1))
        fprintf(stderr, "bench_tsdb_http: request %zu answered %d: %.*s\n", i, res.status,
                (int)(res.body.len > 2000 ? 2000 : res.body.len), (const char *)res.body.data);
      break;
    }
  }
  conn_close(&c);
  pl_buf_free(&c.in);
  pl_buf_free(&res.body);
  return NULL;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static double quantile(double *v, size_t n, double q) {
  if (n == 0)
    return 0;
  qsort(v, n, sizeof *v, cmp_double);
  size_t k = (size_t)(q * (double)(n - 1) + 0.5);
  return v[k];
}

static int cmd_ingest(const args *a) {
  ingest in = {.a = a};
  url_parse(a->url, &in.u);
  for (int i = 0; i < a->nparams; i++)
    url_add_param(&in.u, a->params[i]);
  if (!a->file)
    die("%s", "ingest needs --file");
  int fd = open(a->file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    die("cannot open %s", a->file);
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size == 0)
    die("empty or unreadable %s", a->file);
  size_t size = (size_t)st.st_size;
  in.data = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (in.data == MAP_FAILED)
    die("cannot map %s", a->file);
  close(fd);
  madvise((void *)in.data, size, MADV_WILLNEED);

  /* Cut the file into bodies of `lines` lines; touching every byte also pulls it into memory. */
  size_t cap = 1024, n = 0, line = 0;
  in.starts = malloc(cap * sizeof *in.starts);
  in.starts[n++] = 0;
  for (const char *p = in.data, *end = in.data + size; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
    if (++line == (size_t)a->lines || p == end) {
      if (n == cap)
        in.starts = realloc(in.starts, (cap *= 2) * sizeof *in.starts);
      in.starts[n++] = (size_t)(p - in.data);
      line = 0;
    }
  }
  in.nbodies = n - 1;
  in.latency_s = calloc(in.nbodies, sizeof *in.latency_s);
  if (!in.starts || !in.latency_s)
    die("%s", "out of memory");

  pthread_t th[256];
  double t0 = now_s();
  for (long i = 0; i < a->connections; i++)
    pthread_create(&th[i], NULL, ingest_worker, &in);
  for (long i = 0; i < a->connections; i++)
    pthread_join(th[i], NULL);
  double secs = now_s() - t0;
  if (atomic_load(&in.failed))
    return 1;
  printf("requests=%zu bytes=%zu seconds=%.3f requests_per_s=%.1f mb_per_s=%.1f points=%.0f "
         "points_per_s=%.0f",
         in.nbodies, size, secs, (double)in.nbodies / secs, (double)size / secs / 1e6, a->points,
         a->points / secs);
  printf(" latency_p50_ms=%.2f latency_p99_ms=%.2f latency_max_ms=%.2f\n",
         quantile(in.latency_s, in.nbodies, 0.5) * 1e3,
         quantile(in.latency_s, in.nbodies, 0.99) * 1e3,
         quantile(in.latency_s, in.nbodies, 1.0) * 1e3);
  munmap((void *)in.data, size);
  free(in.starts);
  free(in.latency_s);
  return 0;
}

/* ---- query and request ---- */

static int cmd_query(const args *a, int measure) {
  int nurls = a->neach ? a->neach : 1;
  url *u = calloc((size_t)nurls, sizeof *u);
  if (!u)
    die("%s", "out of memory");
  for (int k = 0; k < nurls; k++) {
    url_parse(a->url, &u[k]);
    for (int i = 0; i < a->nparams; i++)
      url_add_param(&u[k], a->params[i]);
    if (a->neach)
      url_add_param(&u[k], a->each[k]);
  }
  conn c = {.u = &u[0], .fd = -1, .timeout_s = (int)a->timeout_s};
  pl_buf_init(&c.in, 0);
  response res = {0};
  pl_buf_init(&res.body, 0);
  request req = {a->method,
                 u[0].target,
                 a->headers,
                 a->nheaders,
                 a->content_type,
                 a->data,
                 a->data ? strlen(a->data) : 0};
  if (!measure) {
    int rc = exchange(&c, &req, &res);
    if (rc == 0 && a->status)
      printf("status=%d\n", res.status);
    if (rc == 0)
      fwrite(res.body.data, 1, res.body.len, stdout);
    conn_close(&c);
    return rc == 0 && res.status >= 200 && res.status <= 299 ? 0 : 1;
  }
  double *lat = calloc((size_t)a->runs, sizeof *lat);
  long done = 0;
  size_t bytes = 0;
  double started = now_s();
  for (long i = 0; i < a->warmup + a->runs; i++) {
    double t0 = now_s();
    bytes = 0;
    for (int k = 0; k < nurls; k++) {
      req.target = u[k].target;
      if (exchange(&c, &req, &res) < 0)
        return 1;
      if (res.status < 200 || res.status > 299) {
        fprintf(stderr, "bench_tsdb_http: %s answered %d: %.*s\n", u[k].target, res.status,
                (int)(res.body.len > 2000 ? 2000 : res.body.len), (const char *)res.body.data);
        return 1;
      }
      bytes += res.body.len;
      if (a->print && i == a->warmup)
        fwrite(res.body.data, 1, res.body.len, stdout), putchar('\n');
    }
    double t = now_s() - t0;
    if (i >= a->warmup)
      lat[done++] = t;
    if (done >= 3 && now_s() - started > a->max_seconds)
      break;
  }
  double lo = quantile(lat, (size_t)done, 0), hi = quantile(lat, (size_t)done, 1);
  printf("runs=%ld median_ms=%.3f min_ms=%.3f max_ms=%.3f bytes=%zu requests=%d\n", done,
         quantile(lat, (size_t)done, 0.5) * 1e3, lo * 1e3, hi * 1e3, bytes, nurls);
  conn_close(&c);
  free(lat);
  free(u);
  pl_buf_free(&c.in);
  pl_buf_free(&res.body);
  return 0;
}

static int cmd_freeport(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
    die("%s", "cannot find a free port");
  printf("%d\n", ntohs(sa.sin_port));
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_tsdb_http freeport | ingest ... | query ... | request ...\n"
                    "(see the comment at the top of bench/tsdb_http.c)\n");
    return 2;
  }
  if (strcmp(argv[1], "freeport") == 0)
    return cmd_freeport();
  args a;
  parse_args(argc - 2, argv + 2, &a);
  if (strcmp(argv[1], "ingest") == 0)
    return cmd_ingest(&a);
  if (strcmp(argv[1], "query") == 0)
    return cmd_query(&a, 1);
  if (strcmp(argv[1], "request") == 0)
    return cmd_query(&a, 0);
  die("unknown command %s", argv[1]);
  return 2;
}
