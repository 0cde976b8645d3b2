/* Webhook delivery for EPCIS subscriptions: a worker thread posting JSON bodies to subscribers'
 * URLs with libcurl, fed by a bounded queue so that capture never waits for a subscriber.
 *
 * States of a delivery: queued (due now) -> in flight (the worker posts it, the lock released)
 * -> done (2xx), or back to queued with a later due time (attempts 1..TRACE_HUB_ATTEMPTS, waits of
 * 1 s, 4 s, 16 s), or dropped after the last attempt. A full queue refuses new deliveries
 * (trace_hub_post returns PL_ELIMIT, counted in `dropped`): the queue's memory is bounded by
 * queue_max bodies of at most TRACE_HUB_BODY_MAX bytes. Only http and https URLs, no redirects,
 * a 10 s timeout per attempt. */
#include "trace/trace.h"

#include "base/clock.h"
#include "base/log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_HUB_ATTEMPTS 4

typedef struct delivery {
  char *url, *body;
  size_t len;
  int attempts;
  int64_t due_ms;
} delivery;

struct trace_hub {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  delivery *q;
  size_t n, max;
  int stop;
  uint64_t sent, failed, dropped;
};

static size_t discard(char *p, size_t size, size_t n, void *ctx) {
  (void)p;
  (void)ctx;
  return size * n;
}

static int post(CURL *c, const delivery *d) {
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, d->url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)d->len);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "plateau-epcis/" PLATEAU_VERSION);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  return rc == CURLE_OK && status >= 200 && status < 300 ? 0 : PL_EIO;
}

static void *worker(void *arg) {
  trace_hub *h = arg;
  CURL *c = curl_easy_init();
  pthread_mutex_lock(&h->lock);
  while (!h->stop) {
    int64_t now = pl_now_ms(), next = 0;
    size_t at = h->n;
    for (size_t i = 0; i < h->n; i++) {
      if (h->q[i].due_ms <= now) {
        at = i;
        break;
      }
      if (!next || h->q[i].due_ms < next)
        next = h->q[i].due_ms;
    }
    if (at == h->n) {
      if (next) {
        struct timespec ts;
        int64_t wait_ms = next - now;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
      } else {
        pthread_cond_wait(&h->wake, &h->lock);
      }
      continue;
    }
    delivery d = h->q[at];
    memmove(&h->q[at], &h->q[at + 1], (h->n - at - 1) * sizeof *h->q);
    h->n--;
    pthread_mutex_unlock(&h->lock);
    int rc = c ? post(c, &d) : PL_ENOMEM;
    pthread_mutex_lock(&h->lock);
    d.attempts++;
    if (rc == 0) {
      h->sent++;
    } else if (d.attempts < TRACE_HUB_ATTEMPTS && h->n < h->max && !h->stop) {
      d.due_ms = pl_now_ms() + (1000LL << (2 * (d.attempts - 1)));
      h->q[h->n++] = d;
      continue;
    } else {
      h->failed++;
      PL_LOG(PL_LOG_WARN, "trace", "webhook=failed attempts=%d", d.attempts);
    }
    free(d.url);
    free(d.body);
  }
  pthread_mutex_unlock(&h->lock);
  if (c)
    curl_easy_cleanup(c);
  return NULL;
}

int trace_hub_new(size_t queue_max, trace_hub **out) {
  /* curl_global_init is thread-safe in libcurl >= 7.84 and idempotent; call it before the
   * first handle as the documentation asks. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return PL_EIO;
  trace_hub *h = calloc(1, sizeof *h);
  if (!h)
    return PL_ENOMEM;
  h->max = queue_max ? queue_max : 1024;
  h->q = calloc(h->max, sizeof *h->q);
  if (!h->q) {
    free(h);
    return PL_ENOMEM;
  }
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->wake, NULL);
  if (pthread_create(&h->thread, NULL, worker, h) != 0) {
    free(h->q);
    free(h);
    return PL_ENOMEM;
  }
  *out = h;
  return 0;
}

void trace_hub_free(trace_hub *h) {
  if (!h)
    return;
  pthread_mutex_lock(&h->lock);
  h->stop = 1;
  pthread_cond_signal(&h->wake);
  pthread_mutex_unlock(&h->lock);
  pthread_join(h->thread, NULL);
  for (size_t i = 0; i < h->n; i++) {
    free(h->q[i].url);
    free(h->q[i].body);
  }
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->wake);
  free(h->q);
  free(h);
}

int trace_hub_post(trace_hub *h, const char *url, const char *body, size_t len) {
  if (!h || !url || !body || len > TRACE_HUB_BODY_MAX)
    return PL_EINVAL;
  delivery d = {strdup(url), malloc(len + 1), len, 0, 0};
  if (!d.url || !d.body) {
    free(d.url);
    free(d.body);
    return PL_ENOMEM;
  }
  memcpy(d.body, body, len);
  d.body[len] = 0;
  pthread_mutex_lock(&h->lock);
  int rc = 0;
  if (h->n >= h->max) {
    h->dropped++;
    rc = PL_ELIMIT;
  } else {
    h->q[h->n++] = d;
    pthread_cond_signal(&h->wake);
  }
  pthread_mutex_unlock(&h->lock);
  if (rc < 0) {
    free(d.url);
    free(d.body);
  }
  return rc;
}
