/* libFuzzer target for WAL recovery (src/tsdb/wal.c).
 *
 * Input: one mode byte, then the bytes of a segment file, written as wal-0000000000000001.log
 * into a scratch directory. With mode bit 0 set, the harness first rewrites the segment header's
 * first LSN to 1 and fixes up the header CRC and the CRC of every record it can frame, so that
 * mutations reach the length and framing rules rather than dying at the first checksum.
 *
 * Properties checked (a violation traps):
 *   - open + replay succeed on any file content, delivering records with consecutive LSNs, and
 *     cut cleanly (a reason for every cut);
 *   - an append after the cut gets the next LSN;
 *   - a second open + replay is clean (no cut) and delivers exactly the same records plus the
 *     appended one.
 * fsync is a no-op here: durability is not what this target exercises, speed is.
 */
#include "base/crc32c.h"
#include "base/log.h"
#include "tsdb/wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "tsdb_wal_fuzz: check failed: %s (line %d)\n", #cond, __LINE__);             \
      __builtin_trap();                                                                            \
    }                                                                                              \
  } while (0)

static int noop_fsync(void *ctx, int fd, int is_dir) {
  return 0;
}

typedef struct acc {
  uint64_t count, last;
  uint32_t digest; /* CRC32C over every (lsn, payload) delivered, in order */
  int bad;
} acc;

static int acc_cb(void *ctx, uint64_t lsn, const uint8_t *p, size_t len) {
  acc *a = ctx;
  if (a->count && lsn != a->last + 1) a->bad = 1;
  if (len == 0) a->bad = 1;
  a->digest = pl_crc32c(a->digest, &lsn, sizeof lsn);
  a->digest = pl_crc32c(a->digest, p, len);
  a->last = lsn;
  a->count++;
  return 0;
}

static void put_u32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Makes the header and every frameable record checksum-valid (see the format in wal.c). */
static void fix_checksums(uint8_t *seg, size_t n) {
  if (n < 32) return;
  for (int i = 0; i < 8; i++) seg[16 + i] = i == 0;
  put_u32le(seg + 28, pl_crc32c(0, seg, 28));
  uint32_t salt = get_u32le(seg + 12);
  uint64_t lsn = 1;
  for (size_t off = 32; n - off >= 8; lsn++) {
    uint32_t len = get_u32le(seg + off);
    if (len == 0 || len > n - off - 8) break;
    uint8_t trailer[16];
    put_u32le(trailer, salt);
    put_u32le(trailer + 4, len);
    for (int i = 0; i < 8; i++) trailer[8 + i] = (uint8_t)(lsn >> (8 * i));
    uint32_t crc = pl_crc32c(pl_crc32c(0, seg + off + 8, len), trailer, sizeof trailer);
    put_u32le(seg + off + 4, crc);
    off += 8 + (size_t)len;
  }
}

static void dir_clear(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, "wal-", 4) != 0) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
}

static char scratch_dir[64];

static void scratch_remove(void) {
  char p[128];
  dir_clear(scratch_dir);
  snprintf(p, sizeof p, "%s/LOCK", scratch_dir);
  unlink(p);
  rmdir(scratch_dir);
}

static tsdb_wal *open_replay(const char *dir, acc *a, tsdb_wal_replay_stats *st) {
  tsdb_wal_opts o = {.dir = dir, .fsync = TSDB_FSYNC_ALWAYS, .segment_bytes = 1 << 20,
                     .fsync_fn = noop_fsync};
  tsdb_wal *w = NULL;
  CHECK(tsdb_wal_open(&o, &w, NULL) == 0);
  memset(a, 0, sizeof *a);
  CHECK(tsdb_wal_replay(w, acc_cb, a, st) == 0);
  CHECK(!a->bad);
  CHECK(st->records == a->count);
  CHECK(!st->tail_cut || st->tail_reason[0] != 0);
  return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *dir = scratch_dir;
  if (!dir[0]) {
    pl_log_set_level(PL_LOG_ERROR);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof scratch_dir, "%s/plateau_wal_fuzz_XXXXXX", base);
    CHECK(mkdtemp(dir) != NULL);
    atexit(scratch_remove);
  }
  if (size == 0) return 0;
  uint8_t mode = data[0];
  size_t n = size - 1;
  uint8_t *seg = malloc(n ? n : 1);
  CHECK(seg != NULL);
  memcpy(seg, data + 1, n);
  if (mode & 1) fix_checksums(seg, n);

  dir_clear(dir);
  char path[512];
  snprintf(path, sizeof path, "%s/wal-0000000000000001.log", dir);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  CHECK(fwrite(seg, 1, n, f) == n);
  fclose(f);
  free(seg);

  acc a1, a2;
  tsdb_wal_replay_stats st1, st2;
  tsdb_wal *w = open_replay(dir, &a1, &st1);
  uint64_t want = a1.count ? a1.last + 1 : 1;
  CHECK(tsdb_wal_next_lsn(w) == want);
  static const char extra[] = "fuzz-append";
  uint64_t lsn = 0;
  CHECK(tsdb_wal_append(w, extra, sizeof extra, &lsn) == 0);
  CHECK(lsn == want);
  tsdb_wal_close(w);

  w = open_replay(dir, &a2, &st2);
  CHECK(!st2.tail_cut);
  CHECK(a2.count == a1.count + 1);
  uint32_t digest = pl_crc32c(a1.digest, &lsn, sizeof lsn);
  digest = pl_crc32c(digest, extra, sizeof extra);
  CHECK(a2.digest == digest);
  tsdb_wal_close(w);
  return 0;
}
