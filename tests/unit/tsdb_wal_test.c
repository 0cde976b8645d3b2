/* Unit tests for the time-series WAL (src/tsdb/wal.c): round trips across segments and
 * reopens, LSN continuity, torn and corrupt tails at every byte, sticky failure with an injected
 * failing fsync, group commit under concurrent appenders, truncation and limits.
 *
 * Records are generated from their LSN (length and bytes), so every replay checks each record
 * it receives in full: a damaged or half-written record that reached the callback would fail.
 */
#include "base/log.h"
#include "tsdb/wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

/* ---- fixtures --------------------------------------------------------------------------- */

static char *tmpdir_new(void) {
  char tmpl[] = "/tmp/plateau_wal_test_XXXXXX";
  char *d = mkdtemp(tmpl);
  assert_non_null(d);
  return strdup(d);
}

static void tmpdir_free(char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      char p[512];
      snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
  free(dir);
}

/* The injectable fsync: counts calls, can fail, can stall once. */
typedef struct sync_ctl {
  atomic_int noop;       /* succeed without syncing (fast loops) */
  atomic_int fail_file;  /* fail segment-file syncs */
  atomic_int fail_dir;   /* fail directory syncs */
  atomic_int file_syncs; /* calls for files (including failed ones) */
  atomic_int dir_syncs;
  atomic_int stall_next; /* the next file sync waits for `stall_until_started` appenders */
  atomic_int in_stall;
  atomic_int started;
  int stall_until_started;
} sync_ctl;

static int test_fsync(void *ctx, int fd, int is_dir) {
  sync_ctl *c = ctx;
  atomic_fetch_add(is_dir ? &c->dir_syncs : &c->file_syncs, 1);
  if (is_dir ? atomic_load(&c->fail_dir) : atomic_load(&c->fail_file)) return -1;
  if (!is_dir && atomic_exchange(&c->stall_next, 0)) {
    atomic_store(&c->in_stall, 1);
    for (int i = 0; i < 5000 && atomic_load(&c->started) < c->stall_until_started; i++)
      usleep(1000);
    usleep(100 * 1000); /* let the started appenders reach the queue */
  }
  if (atomic_load(&c->noop)) return 0;
  return is_dir ? fsync(fd) : fdatasync(fd);
}

static tsdb_wal *wal_open_ok(const char *dir, tsdb_fsync_policy pol, size_t segment_bytes,
                             sync_ctl *ctl) {
  tsdb_wal_opts o = {.dir = dir, .fsync = pol, .segment_bytes = segment_bytes};
  if (pol == TSDB_FSYNC_INTERVAL) o.fsync_interval_ns = 10 * 1000 * 1000;
  if (ctl) {
    o.fsync_fn = test_fsync;
    o.fsync_ctx = ctl;
  }
  tsdb_wal *w = NULL;
  pl_err err = {{0}};
  int rc = tsdb_wal_open(&o, &w, &err);
  if (rc != 0) print_error("open: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_non_null(w);
  return w;
}

/* Record contents as a function of the LSN. */
static size_t len_for(uint64_t lsn) {
  if (lsn % 100 == 50) return (size_t)3 << 19; /* 1.5 MiB: bigger than replay's read buffer */
  return 1 + (size_t)((lsn * 37) % 61);
}
static void fill_for(uint64_t lsn, uint8_t *p, size_t len) {
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(lsn * 131 + i * 7 + (i >> 8) + (lsn >> 8));
}

static void append_gen(tsdb_wal *w, uint64_t expect_lsn) {
  size_t len = len_for(expect_lsn);
  uint8_t *p = malloc(len);
  assert_non_null(p);
  fill_for(expect_lsn, p, len);
  uint64_t lsn = 0;
  assert_int_equal(tsdb_wal_append(w, p, len, &lsn), 0);
  assert_int_equal(lsn, expect_lsn);
  free(p);
}

static void append_gen_range(tsdb_wal *w, uint64_t from, uint64_t to) {
  for (uint64_t l = from; l <= to; l++) append_gen(w, l);
}

/* Replay callback that checks every record against the generator and LSN continuity. */
typedef struct check {
  uint64_t count, first, last;
  int bad;
  uint64_t fail_at; /* return -42 at this LSN (0 = never) */
} check;

static int cb_check(void *ctx, uint64_t lsn, const uint8_t *p, size_t len) {
  check *c = ctx;
  if (c->fail_at && lsn == c->fail_at) return -42;
  if (c->count && lsn != c->last + 1) c->bad++;
  if (!c->count) c->first = lsn;
  if (len != len_for(lsn)) {
    c->bad++;
  } else {
    uint8_t *want = malloc(len);
    fill_for(lsn, want, len);
    if (memcmp(want, p, len) != 0) c->bad++;
    free(want);
  }
  c->count++;
  c->last = lsn;
  return 0;
}

/* Opens, replays with cb_check; returns the open WAL. */
static tsdb_wal *reopen_check(const char *dir, sync_ctl *ctl, size_t segment_bytes, check *c,
                              tsdb_wal_replay_stats *st) {
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, segment_bytes, ctl);
  memset(c, 0, sizeof *c);
  assert_int_equal(tsdb_wal_replay(w, cb_check, c, st), 0);
  assert_int_equal(c->bad, 0);
  assert_int_equal(st->records, c->count);
  return w;
}

static void seg_path(char *out, size_t outsz, const char *dir, uint64_t first) {
  snprintf(out, outsz, "%s/wal-%016llx.log", dir, (unsigned long long)first);
}

static int list_segments(const char *dir, uint64_t *firsts, int max) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    unsigned long long v;
    char tail[8];
    if (sscanf(de->d_name, "wal-%16llx%7s", &v, tail) == 2 && strcmp(tail, ".log") == 0) {
      if (n < max) firsts[n] = v;
      n++;
    }
  }
  closedir(d);
  for (int i = 1; i < n && i < max; i++) /* insertion sort */
    for (int j = i; j > 0 && firsts[j - 1] > firsts[j]; j--) {
      uint64_t t = firsts[j];
      firsts[j] = firsts[j - 1];
      firsts[j - 1] = t;
    }
  return n;
}

static uint8_t *file_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)n + 1);
  assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return p;
}

static void file_write(const char *path, const uint8_t *p, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, len, f), len);
  fclose(f);
}

static long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Byte offset of record `lsn` in a segment whose first LSN is `first`. */
static size_t rec_offset(uint64_t first, uint64_t lsn) {
  size_t off = 32;
  for (uint64_t l = first; l < lsn; l++) off += 8 + len_for(l);
  return off;
}

/* ---- round trips -------------------------------------------------------------------------- */

static void test_roundtrip_segments_reopen(void **state) {
  const tsdb_fsync_policy pols[] = {TSDB_FSYNC_ALWAYS, TSDB_FSYNC_INTERVAL, TSDB_FSYNC_NEVER};
  for (int pi = 0; pi < 3; pi++) {
    char *dir = tmpdir_new();
    sync_ctl ctl = {.noop = 1};
    tsdb_wal *w = wal_open_ok(dir, pols[pi], 4096, &ctl);
    tsdb_wal_replay_stats st;
    assert_int_equal(tsdb_wal_replay(w, NULL, NULL, &st), 0);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.tail_cut, 0);
    assert_int_equal(tsdb_wal_next_lsn(w), 1);
    append_gen_range(w, 1, 300);
    assert_int_equal(tsdb_wal_next_lsn(w), 301);
    tsdb_wal_close(w);

    uint64_t firsts[512];
    int nseg = list_segments(dir, firsts, 512);
    assert_true(nseg > 5);
    assert_int_equal(firsts[0], 1);

    check c;
    w = reopen_check(dir, &ctl, 4096, &c, &st);
    assert_int_equal(c.count, 300);
    assert_int_equal(st.first_lsn, 1);
    assert_int_equal(st.last_lsn, 300);
    assert_int_equal(st.tail_cut, 0);
    assert_int_equal(st.segments, (uint64_t)nseg);
    uint64_t bytes = 0;
    for (uint64_t l = 1; l <= 300; l++) bytes += len_for(l);
    assert_int_equal(st.bytes, bytes);
    append_gen(w, 301);
    tsdb_wal_close(w);

    w = reopen_check(dir, &ctl, 4096, &c, &st);
    assert_int_equal(c.count, 301);
    assert_int_equal(st.tail_cut, 0);
    tsdb_wal_close(w);
    tmpdir_free(dir);
  }
}

static void test_appendv_roundtrip(void **state) {
  char *dir = tmpdir_new();
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_NEVER, 0, NULL);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  size_t len = len_for(1);
  uint8_t buf[128];
  fill_for(1, buf, len);
  /* Split the record's bytes over three iovecs, one of them empty. */
  struct iovec iov[3] = {{buf, 3}, {buf + 3, 0}, {buf + 3, len - 3}};
  uint64_t lsn = 0;
  assert_int_equal(tsdb_wal_appendv(w, iov, 3, &lsn), 0);
  assert_int_equal(lsn, 1);
  append_gen(w, 2);
  tsdb_wal_close(w);
  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, NULL, 0, &c, &st);
  assert_int_equal(c.count, 2);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

static void test_lsn_continuity(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  tsdb_wal_replay_stats st;
  check c;
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, 10);
  tsdb_wal_close(w);

  w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, 10);
  assert_int_equal(tsdb_wal_next_lsn(w), 11);
  append_gen_range(w, 11, 12);
  /* Drop everything: rotate to an empty segment and truncate before it. The empty segment's
   * header is then all that remembers where LSNs are. */
  assert_int_equal(tsdb_wal_rotate(w), 0);
  assert_int_equal(tsdb_wal_truncate_before(w, 13), 1);
  tsdb_wal_close(w);
  uint64_t firsts[4];
  assert_int_equal(list_segments(dir, firsts, 4), 1);
  assert_int_equal(firsts[0], 13);

  w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, 0);
  assert_int_equal(st.tail_cut, 0);
  assert_int_equal(tsdb_wal_next_lsn(w), 13);
  append_gen(w, 13);
  tsdb_wal_close(w);

  w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, 1);
  assert_int_equal(st.first_lsn, 13);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

/* ---- torn and corrupt tails ------------------------------------------------------------------ */

enum { TAIL_N = 5 };

/* Writes records 1..TAIL_N into one segment and returns its pristine bytes. */
static uint8_t *tail_setup(const char *dir, sync_ctl *ctl, char *path, size_t pathsz,
                           size_t *len) {
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, TAIL_N);
  tsdb_wal_close(w);
  seg_path(path, pathsz, dir, 1);
  uint8_t *p = file_read(path, len);
  assert_int_equal(*len, rec_offset(1, TAIL_N + 1));
  return p;
}

/* After a cut that kept `kept` records: the next append gets kept+1, and a reopen replays
 * kept+1 records without a cut. */
static void after_cut_append_and_replay(const char *dir, sync_ctl *ctl, tsdb_wal *w,
                                        uint64_t kept) {
  assert_int_equal(tsdb_wal_failed(w), 0);
  assert_int_equal(tsdb_wal_next_lsn(w), kept + 1);
  append_gen(w, kept + 1);
  tsdb_wal_close(w);
  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, ctl, 0, &c, &st);
  assert_int_equal(c.count, kept + 1);
  assert_int_equal(st.tail_cut, 0);
  tsdb_wal_close(w);
}

static void test_tail_flip_every_byte(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  char path[512];
  size_t len;
  uint8_t *pristine = tail_setup(dir, &ctl, path, sizeof path, &len);
  size_t last = rec_offset(1, TAIL_N);
  uint8_t *buf = malloc(len);
  for (size_t pos = last; pos < len; pos++) {
    for (int mask = 0x01; mask <= 0xff; mask = mask == 0x01 ? 0x80 : 0x100) {
      memcpy(buf, pristine, len);
      buf[pos] ^= (uint8_t)mask;
      file_write(path, buf, len);
      check c;
      tsdb_wal_replay_stats st;
      tsdb_wal *w = reopen_check(dir, &ctl, 0, &c, &st);
      assert_int_equal(c.count, TAIL_N - 1);
      assert_int_equal(st.last_lsn, TAIL_N - 1);
      assert_int_equal(st.tail_cut, 1);
      assert_true(st.tail_reason[0] != 0);
      assert_int_equal(st.tail_cut_offset, last);
      assert_string_equal(st.tail_segment, "wal-0000000000000001.log");
      assert_int_equal(file_size(path), (long)last);
      after_cut_append_and_replay(dir, &ctl, w, TAIL_N - 1);
    }
  }
  /* A zero-filled tail, as after a crash that extended the file but lost its data. */
  uint8_t *zeros = calloc(1, len + 4096);
  memcpy(zeros, pristine, len);
  file_write(path, zeros, len + 4096);
  check c;
  tsdb_wal_replay_stats st;
  tsdb_wal *w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, TAIL_N);
  assert_int_equal(st.tail_cut, 1);
  assert_string_equal(st.tail_reason, "bad record length");
  assert_int_equal(st.tail_cut_offset, len);
  after_cut_append_and_replay(dir, &ctl, w, TAIL_N);
  free(zeros);
  free(buf);
  free(pristine);
  tmpdir_free(dir);
}

static void test_segment_header_flip_every_byte(void **state) {
  sync_ctl ctl = {.noop = 1};
  /* The only segment: nothing survives, and LSNs restart from the file name. */
  char *dir = tmpdir_new();
  char path[512];
  size_t len;
  uint8_t *pristine = tail_setup(dir, &ctl, path, sizeof path, &len);
  uint8_t *buf = malloc(len);
  for (size_t pos = 0; pos < 32; pos++) {
    memcpy(buf, pristine, len);
    buf[pos] ^= 0x20;
    file_write(path, buf, len);
    check c;
    tsdb_wal_replay_stats st;
    tsdb_wal *w = reopen_check(dir, &ctl, 0, &c, &st);
    assert_int_equal(c.count, 0);
    assert_int_equal(st.tail_cut, 1);
    assert_int_equal(st.tail_cut_offset, 0);
    assert_int_equal(st.segments_removed, 1);
    after_cut_append_and_replay(dir, &ctl, w, 0);
  }
  free(buf);
  free(pristine);
  tmpdir_free(dir);

  /* The newest of two segments: the older one's records survive and LSNs continue after them. */
  for (size_t pos = 0; pos < 32; pos++) {
    dir = tmpdir_new();
    tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
    assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
    append_gen_range(w, 1, 3);
    assert_int_equal(tsdb_wal_rotate(w), 0);
    append_gen_range(w, 4, 5);
    tsdb_wal_close(w);
    char first_path[512];
    seg_path(first_path, sizeof first_path, dir, 1);
    long first_size = file_size(first_path);
    seg_path(path, sizeof path, dir, 4);
    buf = file_read(path, &len);
    buf[pos] ^= 0x01;
    file_write(path, buf, len);
    free(buf);
    check c;
    tsdb_wal_replay_stats st;
    w = reopen_check(dir, &ctl, 0, &c, &st);
    assert_int_equal(c.count, 3);
    assert_int_equal(st.tail_cut, 1);
    assert_string_equal(st.tail_segment, "wal-0000000000000004.log");
    assert_int_equal(st.segments_removed, 1);
    assert_int_equal(file_size(path), -1); /* deleted */
    assert_int_equal(file_size(first_path), first_size);
    after_cut_append_and_replay(dir, &ctl, w, 3);
    tmpdir_free(dir);
  }
}

static void test_tail_truncate_every_length(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  char path[512];
  size_t len;
  uint8_t *pristine = tail_setup(dir, &ctl, path, sizeof path, &len);
  size_t prev = rec_offset(1, TAIL_N - 1), last = rec_offset(1, TAIL_N);
  for (size_t cut = 0; cut < len; cut++) {
    if (cut > 32 && cut < prev) cut = prev; /* the segment header, then the last two records */
    file_write(path, pristine, cut);
    check c;
    tsdb_wal_replay_stats st;
    tsdb_wal *w = reopen_check(dir, &ctl, 0, &c, &st);
    uint64_t kept = cut < last ? TAIL_N - 2 : TAIL_N - 1;
    size_t boundary = cut < last ? prev : last;
    if (cut < 32) {
      kept = 0;
      assert_int_equal(st.tail_cut, 1);
      assert_string_equal(st.tail_reason, "short segment header");
      assert_int_equal(st.segments_removed, 1);
    } else if (cut == 32) {
      kept = 0;
      assert_int_equal(st.tail_cut, 0);
    } else {
      /* Ending exactly on a record boundary is a clean end, not a cut. */
      assert_int_equal(st.tail_cut, cut != boundary);
      if (st.tail_cut) assert_int_equal(st.tail_cut_offset, boundary);
      assert_int_equal(file_size(path), (long)boundary);
    }
    assert_int_equal(c.count, kept);
    after_cut_append_and_replay(dir, &ctl, w, kept);
  }
  free(pristine);
  tmpdir_free(dir);
}

static void test_mid_log_corruption_drops_later_segments(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, 3);
  assert_int_equal(tsdb_wal_rotate(w), 0);
  append_gen_range(w, 4, 5);
  assert_int_equal(tsdb_wal_rotate(w), 0);
  append_gen_range(w, 6, 7);
  tsdb_wal_close(w);

  char path[512];
  size_t len;
  seg_path(path, sizeof path, dir, 1);
  uint8_t *p = file_read(path, &len);
  p[rec_offset(1, 2) + 8] ^= 0x40; /* the first payload byte of record 2 */
  file_write(path, p, len);
  free(p);

  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, 1);
  assert_int_equal(st.tail_cut, 1);
  assert_string_equal(st.tail_reason, "record crc mismatch");
  assert_int_equal(st.segments_removed, 2);
  uint64_t firsts[8];
  assert_int_equal(list_segments(dir, firsts, 8), 1);
  assert_int_equal(file_size(path), (long)rec_offset(1, 2));
  after_cut_append_and_replay(dir, &ctl, w, 1);
  tmpdir_free(dir);
}

static void test_lsn_gap_between_segments(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, 3);
  assert_int_equal(tsdb_wal_rotate(w), 0);
  append_gen_range(w, 4, 5);
  assert_int_equal(tsdb_wal_rotate(w), 0);
  append_gen_range(w, 6, 7);
  tsdb_wal_close(w);
  char path[512];
  seg_path(path, sizeof path, dir, 4);
  unlink(path); /* a hole: segment 6 must not be replayed after segment 1 */
  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, 3);
  assert_string_equal(st.tail_reason, "lsn gap between segments");
  after_cut_append_and_replay(dir, &ctl, w, 3);
  tmpdir_free(dir);
}

/* ---- failures ------------------------------------------------------------------------------ */

static void test_sticky_fsync_failure_always(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {0};
  char path[512];
  seg_path(path, sizeof path, dir, 1);
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, 3);
  atomic_store(&ctl.fail_file, 1);
  int syncs = atomic_load(&ctl.file_syncs);
  uint8_t p[16] = {1};
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), PL_EIO);
  assert_int_equal(tsdb_wal_failed(w), 1);
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs + 1);
  long size = file_size(path);
  for (int i = 0; i < 5; i++) {
    uint64_t lsn = 777;
    assert_int_equal(tsdb_wal_append(w, p, sizeof p, &lsn), PL_EIO);
    assert_int_equal(lsn, 777); /* out-parameters are written only on success */
  }
  assert_int_equal(tsdb_wal_sync(w), PL_EIO);
  assert_int_equal(tsdb_wal_rotate(w), PL_EIO);
  assert_int_equal(file_size(path), size); /* nothing more written */
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs + 1); /* no fsync retried */
  uint64_t firsts[4];
  assert_int_equal(list_segments(dir, firsts, 4), 1);
  tsdb_wal_close(w);
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs + 1); /* close does not pretend */

  /* After a reopen: the acknowledged records are there; the failed one may be. */
  atomic_store(&ctl.fail_file, 0);
  w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  check c = {0};
  tsdb_wal_replay_stats st;
  assert_int_equal(tsdb_wal_replay(w, cb_check, &c, &st), 0);
  assert_true(c.count == 3 || c.count == 4);
  assert_int_equal(c.first, 1);
  assert_int_equal(tsdb_wal_failed(w), 0);
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), 0);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

static void test_sticky_fsync_failure_interval(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {0};
  char path[512];
  seg_path(path, sizeof path, dir, 1);
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_INTERVAL, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  atomic_store(&ctl.fail_file, 1);
  append_gen(w, 1); /* written; the background fsync will fail */
  for (int i = 0; i < 2000 && !tsdb_wal_failed(w); i++) usleep(1000);
  assert_int_equal(tsdb_wal_failed(w), 1);
  long size = file_size(path);
  uint8_t p[16] = {1};
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), PL_EIO);
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), PL_EIO);
  assert_int_equal(file_size(path), size);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

static void test_sticky_failure_creating_segment(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 200, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, 2); /* 32 + 8 + 38 + 8 + 14 = 100 bytes */
  atomic_store(&ctl.fail_dir, 1);
  /* Records 3.. fit until the segment would pass 200 bytes; the rotation then fails. */
  uint64_t acked = 2;
  int rc = 0;
  while (rc == 0 && acked < 100) {
    size_t len = len_for(acked + 1);
    uint8_t buf[128];
    fill_for(acked + 1, buf, len);
    if ((rc = tsdb_wal_append(w, buf, len, NULL)) == 0) acked++;
  }
  assert_int_equal(rc, PL_EIO);
  assert_int_equal(tsdb_wal_failed(w), 1);
  uint8_t p[4] = {1};
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), PL_EIO);
  tsdb_wal_close(w);
  uint64_t firsts[4];
  assert_int_equal(list_segments(dir, firsts, 4), 1); /* the half-made segment is gone */

  atomic_store(&ctl.fail_dir, 0);
  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, &ctl, 200, &c, &st);
  assert_int_equal(c.count, acked);
  assert_int_equal(st.tail_cut, 0);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

/* ---- concurrency ----------------------------------------------------------------------------- */

enum { CONC_THREADS = 4, CONC_PER_THREAD = 1000 };

typedef struct conc_arg {
  tsdb_wal *w;
  int id;
  uint64_t lsns[CONC_PER_THREAD];
  int errors;
} conc_arg;

static void *conc_main(void *arg) {
  conc_arg *a = arg;
  for (int i = 0; i < CONC_PER_THREAD; i++) {
    uint8_t p[64];
    memset(p, (uint8_t)a->id, sizeof p);
    memcpy(p, &a->id, sizeof a->id);
    memcpy(p + 4, &i, sizeof i);
    size_t len = 8 + (size_t)(i % 56);
    if (tsdb_wal_append(a->w, p, len, &a->lsns[i]) != 0) a->errors++;
  }
  return NULL;
}

typedef struct conc_replay {
  uint64_t count, last;
  int bad;
  int64_t owner[CONC_THREADS * CONC_PER_THREAD + 1]; /* lsn -> id * CONC_PER_THREAD + i */
} conc_replay;

static int cb_conc(void *ctx, uint64_t lsn, const uint8_t *p, size_t len) {
  conc_replay *r = ctx;
  int id, i;
  if (lsn != r->last + 1 || len < 8 || lsn > CONC_THREADS * CONC_PER_THREAD) {
    r->bad++;
    return 0;
  }
  memcpy(&id, p, sizeof id);
  memcpy(&i, p + 4, sizeof i);
  if (id < 0 || id >= CONC_THREADS || i < 0 || i >= CONC_PER_THREAD ||
      len != 8 + (size_t)(i % 56)) {
    r->bad++;
    return 0;
  }
  for (size_t k = 8; k < len; k++)
    if (p[k] != (uint8_t)id) r->bad++;
  r->owner[lsn] = (int64_t)id * CONC_PER_THREAD + i;
  r->last = lsn;
  r->count++;
  return 0;
}

static void test_concurrent_appenders_always(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {0};
  /* Small segments so that rotations happen in the middle of groups. */
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 16384, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  int syncs_before = atomic_load(&ctl.file_syncs);
  static conc_arg args[CONC_THREADS];
  pthread_t th[CONC_THREADS];
  for (int t = 0; t < CONC_THREADS; t++) {
    args[t] = (conc_arg){.w = w, .id = t};
    assert_int_equal(pthread_create(&th[t], NULL, conc_main, &args[t]), 0);
  }
  for (int t = 0; t < CONC_THREADS; t++) pthread_join(th[t], NULL);
  int syncs = atomic_load(&ctl.file_syncs) - syncs_before;
  print_message("concurrent: %d appends, %d file fsyncs (incl. rotations)\n",
                CONC_THREADS * CONC_PER_THREAD, syncs);
  static uint8_t seen[CONC_THREADS * CONC_PER_THREAD + 1];
  memset(seen, 0, sizeof seen);
  for (int t = 0; t < CONC_THREADS; t++) {
    assert_int_equal(args[t].errors, 0);
    for (int i = 0; i < CONC_PER_THREAD; i++) {
      uint64_t l = args[t].lsns[i];
      assert_true(l >= 1 && l <= CONC_THREADS * CONC_PER_THREAD);
      assert_int_equal(seen[l], 0); /* distinct */
      seen[l] = 1;
      if (i) assert_true(l > args[t].lsns[i - 1]); /* each thread's order is kept */
    }
  }
  assert_int_equal(tsdb_wal_next_lsn(w), CONC_THREADS * CONC_PER_THREAD + 1);
  tsdb_wal_close(w);

  w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 16384, &ctl);
  static conc_replay r;
  memset(&r, 0, sizeof r);
  tsdb_wal_replay_stats st;
  assert_int_equal(tsdb_wal_replay(w, cb_conc, &r, &st), 0);
  assert_int_equal(r.bad, 0);
  assert_int_equal(r.count, CONC_THREADS * CONC_PER_THREAD);
  assert_int_equal(st.tail_cut, 0);
  assert_true(st.segments > 1);
  for (int t = 0; t < CONC_THREADS; t++)
    for (int i = 0; i < CONC_PER_THREAD; i++)
      assert_int_equal(r.owner[args[t].lsns[i]], (int64_t)t * CONC_PER_THREAD + i);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

typedef struct gc_arg {
  tsdb_wal *w;
  sync_ctl *ctl;
  uint64_t lsn;
  int rc;
} gc_arg;

static void *gc_main(void *arg) {
  gc_arg *a = arg;
  uint8_t p[32] = {7};
  atomic_fetch_add(&a->ctl->started, 1);
  a->rc = tsdb_wal_append(a->w, p, sizeof p, &a->lsn);
  return NULL;
}

/* While one appender's fsync is in flight, three more queue up; they must share one write and
 * one fsync: four appends, two fsyncs. */
static void test_group_commit_shares_fsync(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1, .stall_until_started = 3};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  int syncs_before = atomic_load(&ctl.file_syncs);
  atomic_store(&ctl.stall_next, 1);
  /* The first appender leads; its fsync stalls until the three followers have started. Its
   * own start is counted elsewhere so it does not stand for a follower. */
  sync_ctl leader_ctl = {0};
  gc_arg la = {.w = w, .ctl = &leader_ctl};
  pthread_t leader, th[3];
  assert_int_equal(pthread_create(&leader, NULL, gc_main, &la), 0);
  for (int i = 0; i < 5000 && !atomic_load(&ctl.in_stall); i++) usleep(1000);
  assert_int_equal(atomic_load(&ctl.in_stall), 1);
  gc_arg fa[3];
  for (int i = 0; i < 3; i++) {
    fa[i] = (gc_arg){.w = w, .ctl = &ctl};
    assert_int_equal(pthread_create(&th[i], NULL, gc_main, &fa[i]), 0);
  }
  pthread_join(leader, NULL);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  assert_int_equal(la.rc, 0);
  assert_int_equal(la.lsn, 1);
  uint64_t sum = 0;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fa[i].rc, 0);
    assert_true(fa[i].lsn >= 2 && fa[i].lsn <= 4);
    sum += fa[i].lsn;
  }
  assert_int_equal(sum, 2 + 3 + 4);
  assert_int_equal(atomic_load(&ctl.file_syncs) - syncs_before, 2);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

static void test_interval_syncs_in_background(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {0};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_INTERVAL, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  int before = atomic_load(&ctl.file_syncs);
  append_gen(w, 1); /* returns before any fsync */
  for (int i = 0; i < 2000 && atomic_load(&ctl.file_syncs) == before; i++) usleep(1000);
  assert_true(atomic_load(&ctl.file_syncs) > before);
  /* Nothing new written: the thread does not fsync again. */
  usleep(50 * 1000);
  int settled = atomic_load(&ctl.file_syncs);
  usleep(50 * 1000);
  assert_int_equal(atomic_load(&ctl.file_syncs), settled);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

/* A child process appends generated records and reports each acknowledged LSN down a pipe;
 * it is killed with SIGKILL mid-stream. Every acknowledged record must replay (INTERVAL: a
 * written record survives a process crash), and the next round continues the same log. */
static void test_kill9_under_load(void **state) {
  char *dir = tmpdir_new();
  uint64_t acked_max = 0;
  for (int round = 0; round < 4; round++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      tsdb_wal_opts o = {.dir = dir, .fsync = TSDB_FSYNC_INTERVAL, .segment_bytes = 1 << 20};
      tsdb_wal *w = NULL;
      if (tsdb_wal_open(&o, &w, NULL) != 0 || tsdb_wal_replay(w, NULL, NULL, NULL) != 0) _exit(2);
      static uint8_t buf[(size_t)3 << 19];
      for (uint64_t want = tsdb_wal_next_lsn(w);; want++) {
        uint64_t lsn;
        fill_for(want, buf, len_for(want));
        if (tsdb_wal_append(w, buf, len_for(want), &lsn) != 0 || lsn != want) _exit(3);
        if (write(fds[1], &lsn, sizeof lsn) != (ssize_t)sizeof lsn) _exit(4);
      }
    }
    close(fds[1]);
    usleep(150 * 1000 + round * 50 * 1000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status)); /* not an early exit of its own */
    uint64_t lsn;
    while (read(fds[0], &lsn, sizeof lsn) == (ssize_t)sizeof lsn) {
      assert_true(lsn > acked_max);
      acked_max = lsn;
    }
    close(fds[0]);
    check c;
    tsdb_wal_replay_stats st;
    tsdb_wal *w = reopen_check(dir, NULL, 1 << 20, &c, &st);
    assert_true(acked_max > 0);
    print_message("kill -9 round %d: acked %llu, replayed %llu, tail cut: %s\n", round,
                  (unsigned long long)acked_max, (unsigned long long)c.count,
                  st.tail_cut ? st.tail_reason : "no");
    assert_true(c.count >= acked_max); /* nothing acknowledged is lost */
    assert_int_equal(c.first, 1);
    acked_max = c.count; /* replayed records are the base of the next round */
    tsdb_wal_close(w);
  }
  tmpdir_free(dir);
}

/* ---- rotate, truncate, limits, states --------------------------------------------------------- */

static void test_rotate(void **state) {
  char *dir = tmpdir_new();
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_NEVER, 0, NULL);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  assert_int_equal(tsdb_wal_rotate(w), 0); /* empty: no-op */
  uint64_t firsts[8];
  assert_int_equal(list_segments(dir, firsts, 8), 1);
  append_gen_range(w, 1, 2);
  assert_int_equal(tsdb_wal_rotate(w), 0);
  assert_int_equal(tsdb_wal_rotate(w), 0);
  assert_int_equal(list_segments(dir, firsts, 8), 2);
  assert_int_equal(firsts[1], 3);
  append_gen(w, 3);
  tsdb_wal_close(w);
  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, NULL, 0, &c, &st);
  assert_int_equal(c.count, 3);
  assert_int_equal(st.segments, 2);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

static void test_truncate_before(void **state) {
  char *dir = tmpdir_new();
  sync_ctl ctl = {.noop = 1};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  /* Segments 1 (1..3), 4 (4..6), 7 (7..9), 10 (10, active). */
  for (uint64_t s = 1; s <= 7; s += 3) {
    append_gen_range(w, s, s + 2);
    assert_int_equal(tsdb_wal_rotate(w), 0);
  }
  append_gen(w, 10);
  uint64_t firsts[8];
  assert_int_equal(list_segments(dir, firsts, 8), 4);
  assert_int_equal(tsdb_wal_truncate_before(w, 1), 0);
  assert_int_equal(tsdb_wal_truncate_before(w, 3), 0); /* segment 1 still holds 3 */
  assert_int_equal(tsdb_wal_truncate_before(w, 4), 1);
  assert_int_equal(list_segments(dir, firsts, 8), 3);
  assert_int_equal(firsts[0], 4);
  assert_int_equal(tsdb_wal_truncate_before(w, 6), 0); /* segment 4 still holds 6 */
  assert_int_equal(list_segments(dir, firsts, 8), 3);
  assert_int_equal(tsdb_wal_truncate_before(w, 1000), 2); /* never the active segment */
  assert_int_equal(list_segments(dir, firsts, 8), 1);
  assert_int_equal(firsts[0], 10);
  assert_int_equal(tsdb_wal_truncate_before(w, UINT64_MAX), 0);
  append_gen(w, 11);
  tsdb_wal_close(w);

  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, &ctl, 0, &c, &st);
  assert_int_equal(c.count, 2);
  assert_int_equal(st.first_lsn, 10);
  assert_int_equal(st.last_lsn, 11);
  assert_int_equal(tsdb_wal_next_lsn(w), 12);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

static void test_record_size_limit(void **state) {
  char *dir = tmpdir_new();
  tsdb_wal_opts o = {.dir = dir, .fsync = TSDB_FSYNC_NEVER, .record_bytes_max = 1000};
  tsdb_wal *w = NULL;
  assert_int_equal(tsdb_wal_open(&o, &w, NULL), 0);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  static uint8_t big[2000];
  uint64_t lsn = 0;
  assert_int_equal(tsdb_wal_append(w, big, 1000, &lsn), 0);
  assert_int_equal(lsn, 1);
  assert_int_equal(tsdb_wal_append(w, big, 1001, NULL), PL_ELIMIT);
  struct iovec iov[2] = {{big, 600}, {big, 401}};
  assert_int_equal(tsdb_wal_appendv(w, iov, 2, NULL), PL_ELIMIT);
  assert_int_equal(tsdb_wal_append(w, big, 0, NULL), PL_EINVAL);
  assert_int_equal(tsdb_wal_appendv(w, iov, 0, NULL), PL_EINVAL);
  assert_int_equal(tsdb_wal_failed(w), 0);
  iov[1].iov_len = 400;
  assert_int_equal(tsdb_wal_appendv(w, iov, 2, &lsn), 0);
  assert_int_equal(lsn, 2);
  tsdb_wal_close(w);

  /* Lowering the limit later does not cut records written under the old one. */
  o.record_bytes_max = 10;
  assert_int_equal(tsdb_wal_open(&o, &w, NULL), 0);
  tsdb_wal_replay_stats st;
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, &st), 0);
  assert_int_equal(st.records, 2);
  assert_int_equal(st.bytes, 2000);
  assert_int_equal(st.tail_cut, 0);
  tsdb_wal_close(w);

  o.record_bytes_max = TSDB_WAL_RECORD_BYTES_LIMIT + 1;
  pl_err err = {{0}};
  assert_int_equal(tsdb_wal_open(&o, &w, &err), PL_EINVAL);
  assert_true(err.msg[0] != 0);
  o.record_bytes_max = 0;
  o.fsync = (tsdb_fsync_policy)7;
  assert_int_equal(tsdb_wal_open(&o, &w, NULL), PL_EINVAL);
  tmpdir_free(dir);
}

static void test_states_and_lock(void **state) {
  char *dir = tmpdir_new();
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_NEVER, 0, NULL);
  uint8_t p[8] = {1};
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), PL_ESTATE);
  assert_int_equal(tsdb_wal_sync(w), PL_ESTATE);
  assert_int_equal(tsdb_wal_rotate(w), PL_ESTATE);
  assert_int_equal(tsdb_wal_truncate_before(w, 10), PL_ESTATE);
  assert_int_equal(tsdb_wal_next_lsn(w), 0);

  tsdb_wal_opts o = {.dir = dir};
  tsdb_wal *w2 = NULL;
  pl_err err = {{0}};
  assert_int_equal(tsdb_wal_open(&o, &w2, &err), PL_EBUSY);
  assert_null(w2);

  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), PL_ESTATE);
  append_gen(w, 1);
  assert_int_equal(tsdb_wal_sync(w), 0);
  tsdb_wal_close(w);
  tsdb_wal_close(NULL);

  /* Unrelated files in the directory are left alone. */
  char path[512];
  snprintf(path, sizeof path, "%s/wal-notes.txt", dir);
  file_write(path, (const uint8_t *)"x", 1);
  snprintf(path, sizeof path, "%s/wal-000000000000000G.log", dir);
  file_write(path, (const uint8_t *)"x", 1);
  check c;
  tsdb_wal_replay_stats st;
  w = reopen_check(dir, NULL, 0, &c, &st);
  assert_int_equal(st.records, 1);
  assert_int_equal(st.tail_cut, 0);
  tsdb_wal_close(w);
  assert_int_equal(file_size(path), 1);
  tmpdir_free(dir);
}

static void test_callback_error_leaves_files(void **state) {
  char *dir = tmpdir_new();
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_NEVER, 0, NULL);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  append_gen_range(w, 1, 5);
  tsdb_wal_close(w);
  char path[512];
  seg_path(path, sizeof path, dir, 1);
  long size = file_size(path);

  w = wal_open_ok(dir, TSDB_FSYNC_NEVER, 0, NULL);
  check c = {.fail_at = 3};
  assert_int_equal(tsdb_wal_replay(w, cb_check, &c, NULL), -42);
  assert_int_equal(c.count, 2);
  uint8_t p[8] = {1};
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), PL_ESTATE);
  tsdb_wal_close(w);
  assert_int_equal(file_size(path), size);

  tsdb_wal_replay_stats st;
  w = reopen_check(dir, NULL, 0, &c, &st);
  assert_int_equal(c.count, 5);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}


static int cb_count_records(void *ctx, uint64_t lsn, const uint8_t *p, size_t len) {
  (void)lsn, (void)p, (void)len;
  (*(uint64_t *)ctx)++;
  return 0;
}

/* tsdb_wal_write + tsdb_wal_wait: writes cost no fsync until someone waits; one wait covers
 * every record written before it; a failing fsync fails the wait and the WAL. */
static void test_write_then_wait(void **state) {
  (void)state;
  char *dir = tmpdir_new();
  sync_ctl ctl = {0};
  tsdb_wal *w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  assert_int_equal(tsdb_wal_replay(w, NULL, NULL, NULL), 0);
  int syncs = atomic_load(&ctl.file_syncs);
  uint8_t p[32] = {7};
  uint64_t l1 = 0, l2 = 0, l3 = 0;
  assert_int_equal(tsdb_wal_write(w, p, sizeof p, &l1), 0);
  assert_int_equal(tsdb_wal_write(w, p, sizeof p, &l2), 0);
  assert_int_equal(tsdb_wal_write(w, p, sizeof p, &l3), 0);
  assert_true(l1 < l2 && l2 < l3);
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs);
  assert_int_equal(tsdb_wal_wait(w, l3), 0);
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs + 1);
  assert_int_equal(tsdb_wal_wait(w, l1), 0); /* already durable: no second fsync */
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs + 1);
  /* A plain append still fsyncs by itself. */
  assert_int_equal(tsdb_wal_append(w, p, sizeof p, NULL), 0);
  assert_int_equal(atomic_load(&ctl.file_syncs), syncs + 2);
  uint64_t l4 = 0;
  assert_int_equal(tsdb_wal_write(w, p, sizeof p, &l4), 0);
  atomic_store(&ctl.fail_file, 1);
  assert_int_equal(tsdb_wal_wait(w, l4), PL_EIO);
  assert_int_equal(tsdb_wal_failed(w), 1);
  assert_int_equal(tsdb_wal_write(w, p, sizeof p, NULL), PL_EIO);
  tsdb_wal_close(w);
  /* Records acknowledged by a successful wait are there after a reopen. */
  atomic_store(&ctl.fail_file, 0);
  w = wal_open_ok(dir, TSDB_FSYNC_ALWAYS, 0, &ctl);
  uint64_t count = 0;
  assert_int_equal(tsdb_wal_replay(w, cb_count_records, &count, NULL), 0);
  assert_true(count >= 4);
  tsdb_wal_close(w);
  tmpdir_free(dir);
}

int main(void) {
  pl_log_set_level(PL_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_segments_reopen),
      cmocka_unit_test(test_appendv_roundtrip),
      cmocka_unit_test(test_lsn_continuity),
      cmocka_unit_test(test_tail_flip_every_byte),
      cmocka_unit_test(test_segment_header_flip_every_byte),
      cmocka_unit_test(test_tail_truncate_every_length),
      cmocka_unit_test(test_mid_log_corruption_drops_later_segments),
      cmocka_unit_test(test_lsn_gap_between_segments),
      cmocka_unit_test(test_sticky_fsync_failure_always),
      cmocka_unit_test(test_sticky_fsync_failure_interval),
      cmocka_unit_test(test_sticky_failure_creating_segment),
      cmocka_unit_test(test_concurrent_appenders_always),
      cmocka_unit_test(test_group_commit_shares_fsync),
      cmocka_unit_test(test_interval_syncs_in_background),
      cmocka_unit_test(test_kill9_under_load),
      cmocka_unit_test(test_rotate),
      cmocka_unit_test(test_truncate_before),
      cmocka_unit_test(test_record_size_limit),
      cmocka_unit_test(test_states_and_lock),
      cmocka_unit_test(test_callback_error_leaves_files),
      cmocka_unit_test(test_write_then_wait),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
