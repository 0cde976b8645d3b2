/* WAL append throughput: records/s and MB/s (10^6 bytes of payload) for 1 KB and 64 KB records
 * under each fsync policy, with 1 and 4 appending threads, plus replay throughput. Also prints
 * how many records share one data fsync (the group commit at work).
 *
 *   bench_wal [seconds per case (default 2)] [directory for the scratch WALs (default /tmp)]
 *
 * Each case runs in a fresh directory that is removed afterwards; segments are the default
 * 64 MiB. Time spent in the final close (its fsync) is not counted.
 */
#include "base/clock.h"
#include "base/log.h"
#include "tsdb/wal.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct counter {
  atomic_long data_syncs;
} counter;

static int counting_fsync(void *ctx, int fd, int is_dir) {
  counter *c = ctx;
  if (is_dir) return fsync(fd);
  atomic_fetch_add(&c->data_syncs, 1);
  return fdatasync(fd);
}

typedef struct worker {
  tsdb_wal *w;
  size_t rec_bytes;
  int64_t deadline_ns;
  long records;
  int errors;
} worker;

static void *worker_main(void *arg) {
  worker *k = arg;
  uint8_t *p = malloc(k->rec_bytes);
  if (!p) {
    k->errors++;
    return NULL;
  }
  for (size_t i = 0; i < k->rec_bytes; i++) p[i] = (uint8_t)(i * 31 + 7);
  /* Check the clock every few records only: it is not free next to a page-cache write. */
  while (pl_mono_ns() < k->deadline_ns) {
    for (int i = 0; i < 16; i++) {
      memcpy(p, &k->records, sizeof k->records);
      if (tsdb_wal_append(k->w, p, k->rec_bytes, NULL) != 0) {
        k->errors++;
        free(p);
        return NULL;
      }
      k->records++;
    }
  }
  free(p);
  return NULL;
}

static void dir_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

static int replay_cb(void *ctx, uint64_t lsn, const uint8_t *p, size_t len) {
  *(uint64_t *)ctx += p[len - 1]; /* touch the payload */
  return 0;
}

static const char *policy_name(tsdb_fsync_policy p) {
  return p == TSDB_FSYNC_ALWAYS ? "always" : p == TSDB_FSYNC_INTERVAL ? "interval" : "never";
}

static int run_case(const char *base, tsdb_fsync_policy pol, size_t rec_bytes, int threads,
                    double seconds, int measure_replay) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/plateau_bench_wal_XXXXXX", base);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return -1;
  }
  counter c = {0};
  tsdb_wal_opts o = {.dir = dir, .fsync = pol, .fsync_fn = counting_fsync, .fsync_ctx = &c};
  tsdb_wal *w = NULL;
  pl_err err = {{0}};
  if (tsdb_wal_open(&o, &w, &err) != 0 || tsdb_wal_replay(w, NULL, NULL, NULL) != 0) {
    fprintf(stderr, "open: %s\n", err.msg);
    return -1;
  }
  long syncs0 = atomic_load(&c.data_syncs);
  worker k[8];
  pthread_t th[8];
  int64_t t0 = pl_mono_ns();
  for (int i = 0; i < threads; i++) {
    k[i] = (worker){.w = w, .rec_bytes = rec_bytes, .deadline_ns = t0 + (int64_t)(seconds * 1e9)};
    pthread_create(&th[i], NULL, worker_main, &k[i]);
  }
  long records = 0;
  int errors = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    records += k[i].records;
    errors += k[i].errors;
  }
  double secs = (double)(pl_mono_ns() - t0) / 1e9;
  long syncs = atomic_load(&c.data_syncs) - syncs0;
  tsdb_wal_close(w);
  char per_sync[32] = "-";
  if (syncs > 0) snprintf(per_sync, sizeof per_sync, "%.1f", (double)records / (double)syncs);
  printf("%-9s %9zu %7d %12.0f %9.1f %11s %7ld%s\n", policy_name(pol), rec_bytes, threads,
         (double)records / secs, (double)records * (double)rec_bytes / secs / 1e6, per_sync,
         syncs, errors ? "  ERRORS" : "");
  fflush(stdout);

  if (measure_replay) {
    o.fsync = TSDB_FSYNC_NEVER;
    uint64_t sink = 0;
    tsdb_wal_replay_stats st;
    if (tsdb_wal_open(&o, &w, &err) != 0) return -1;
    int64_t r0 = pl_mono_ns();
    int rc = tsdb_wal_replay(w, replay_cb, &sink, &st);
    double rs = (double)(pl_mono_ns() - r0) / 1e9;
    tsdb_wal_close(w);
    if (rc != 0) return -1;
    printf("%-9s %9zu %7s %12.0f %9.1f %11s %7s  (replay of %llu records, %llu segments)\n",
           "replay", rec_bytes, "1", (double)st.records / rs, (double)st.bytes / rs / 1e6, "-",
           "-", (unsigned long long)st.records, (unsigned long long)st.segments);
  }
  dir_remove(dir);
  return errors ? -1 : 0;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  const char *base = argc > 2 ? argv[2] : "/tmp";
  if (seconds <= 0) seconds = 2.0;
  pl_log_set_level(PL_LOG_ERROR);
  printf("WAL append, %.1f s per case, scratch in %s (fsync interval 100 ms, segments 64 MiB)\n",
         seconds, base);
  printf("%-9s %9s %7s %12s %9s %11s %7s\n", "policy", "rec_bytes", "threads", "records/s",
         "MB/s", "recs/fsync", "fsyncs");
  const tsdb_fsync_policy pols[] = {TSDB_FSYNC_ALWAYS, TSDB_FSYNC_INTERVAL, TSDB_FSYNC_NEVER};
  const size_t sizes[] = {1024, 65536};
  const int thread_counts[] = {1, 4};
  int rc = 0;
  for (int pi = 0; pi < 3; pi++)
    for (int si = 0; si < 2; si++)
      for (int ti = 0; ti < 2; ti++) {
        int replay = pols[pi] == TSDB_FSYNC_NEVER && thread_counts[ti] == 1;
        if (run_case(base, pols[pi], sizes[si], thread_counts[ti], seconds, replay) < 0) rc = 1;
      }
  return rc;
}
