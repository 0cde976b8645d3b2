/* The time-series write-ahead log (see wal.h for the API and its contract).
 *
 * Every acknowledged write lands here first, as one record per batch. This file owns the
 * segment files, the group commit of concurrent appenders, the fsync policy, and the recovery
 * rules that cut a torn tail on start. It knows nothing of what a payload means.
 *
 * ON-DISK FORMAT
 *
 * The WAL is a directory. It holds segment files named
 *
 *     wal-<first LSN as 16 lower-case hex digits>.log       e.g. wal-00000000000003e8.log
 *
 * and a file LOCK, flock()ed by the process that has the WAL open. Other names are ignored. A
 * first LSN is 1 .. 2^63-1; a name outside that range, or not spelled exactly so, is ignored.
 *
 * An LSN is a record sequence number. The first record of an empty WAL has LSN 1; each record's
 * LSN is its predecessor's plus one, across segments and restarts. The LSN is not stored in the
 * record: it is the segment's first LSN plus the record's index in the segment. It is covered by
 * the record's CRC, so a record is only valid at its own position.
 *
 * A segment starts with a 32-byte header (all integers little-endian):
 *
 *     offset size
 *       0     8   magic "PLTSWAL\0"
 *       8     4   format version, 1
 *      12     4   salt: random, chosen when the segment is created
 *      16     8   first LSN: that of the segment's first record; equals the one in the name
 *      24     4   reserved, 0
 *      28     4   CRC32C of bytes 0..27
 *
 * Records follow from offset 32, back to back, without padding:
 *
 *       0     4   payload length n, 1 .. 2^30 (TSDB_WAL_RECORD_BYTES_LIMIT)
 *       4     4   CRC32C of: payload || salt (u32le) || n (u32le) || LSN (u64le)
 *       8     n   payload
 *
 * (CRC32C is pl_crc32c, started from 0.) The payload comes first in the CRC so that appending
 * threads can checksum their payload in parallel before they take the lock; the writer then
 * extends it with the 16 bytes it alone knows (which segment, which LSN). Salt and LSN in the
 * CRC make a record copied or left over from another segment or position invalid.
 *
 * Validity. Segments are read in LSN order. A segment is valid when its file holds a complete
 * header with the right magic, version, reserved field and CRC, whose first LSN equals its name
 * and, for every segment but the oldest, the LSN after the last record of the previous segment.
 * Its records are read in order; the log ends cleanly at the end of a file that ends exactly on
 * a record boundary, and is torn at the first record that
 *   - has fewer than 8 bytes left for its header ("short record header"),
 *   - has length 0 or above the limit ("bad record length"); an empty payload is not allowed so
 *     that a zero-filled tail (a file extended whose data never reached the disk) is recognised
 *     by rule rather than by CRC chance,
 *   - extends past the end of the file ("short record"),
 *   - fails its CRC ("record crc mismatch").
 * Recovery keeps every record before the first invalid one and nothing after it: the file is
 * truncated to the last valid record (deleted if its header is invalid), every later segment is
 * deleted, and the directory is fsynced.
 *
 * Durability invariants.
 *   - A segment is created as: open(O_CREAT|O_EXCL), write the header, fsync the file, fsync the
 *     directory; only then is a record written to it.
 *   - Every segment but the newest is fully fsynced before the next is created, under every
 *     policy. So after a power loss only the newest segment can have a torn tail (short of media
 *     corruption), and tsdb_wal_sync need only fsync the newest.
 *   - Under ALWAYS an append returns only after the fsync that covers its record succeeded.
 *   - After a failed write or fsync nothing more is written (state "failed", below).
 *   - Segments are deleted oldest first, the directory fsynced after each, so the segments on
 *     disk always form a run without an LSN gap; a gap therefore means damage, and is cut.
 *   - Replay's cut fsyncs the truncated file and the directory before any new record is
 *     written, so a deleted later segment cannot reappear behind new records.
 *
 * CONCURRENCY
 *
 * State, all under w->mu unless said otherwise:
 *   state      OPENED (after open) -> ACTIVE (after replay) | UNUSABLE (replay failed)
 *   failed     0 -> 1 on the first failed write/fsync/segment creation; never back. While
 *              failed, appends, syncs and rotations return PL_EIO without I/O.
 *   io_busy    the writer token. Its holder alone writes to the active segment and rotates it,
 *              without holding mu: the group-commit leader, tsdb_wal_rotate. Fields marked
 *              "token" are touched only by the holder.
 *   next_lsn, written_end, synced_end
 *              every record with LSN < written_end is written to a segment file, every record
 *              with LSN < synced_end is fsynced; synced_end may run ahead of written_end while a
 *              leader's batch is half written across a rotation.
 *   fd         the active segment, replaced (under mu) only by the token holder.
 *
 * Group commit (leader/follower): an appender checksums its payload, then under mu queues a
 * request that lives on its own stack (so the payload is never copied) and waits. Whoever finds
 * the token free takes it and leads: it takes the whole queue as its batch, gives the requests
 * their LSNs, drops mu, frames the records and writes the batch with as few writev() calls as
 * the iovec limit allows, rotates on the way if a segment fills, and under ALWAYS fsyncs once;
 * then under mu publishes the new written/synced ends, marks each request done, frees the token
 * and wakes everyone. Appenders that arrive meanwhile queue up and form the next group. Each
 * follower's request stays valid while it waits, since it waits until the leader marks it done.
 *
 * Under INTERVAL a thread wakes every interval and, if written_end > synced_end, dup()s the
 * active fd under mu and fsyncs it without mu or the token, so appends keep going meanwhile;
 * tsdb_wal_sync does the same. The dup keeps the file open if a rotation swaps it out.
 */
#include "tsdb/wal.h"

#include "base/crc32c.h"
#include "base/fs.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define WAL_MAGIC "PLTSWAL" /* with its NUL: 8 bytes */
#define WAL_VERSION 1u
#define WAL_SEG_HDR_BYTES 32
#define WAL_REC_HDR_BYTES 8
#define WAL_NAME_BYTES 25 /* "wal-" + 16 hex + ".log" + NUL */
#define WAL_FIRST_LSN_MAX ((uint64_t)1 << 63)
#define WAL_READ_BUF_BYTES ((size_t)1 << 20)
#define WAL_LOG "tsdb"

/* iovecs per writev(); IOV_MAX is 1024 on Linux. */
#if defined(IOV_MAX) && IOV_MAX < 1024
#define WAL_IOV_BATCH IOV_MAX
#else
#define WAL_IOV_BATCH 1024
#endif
#define WAL_APPENDV_IOV_MAX (WAL_IOV_BATCH - 1) /* one slot for the record header */

enum { WAL_OPENED, WAL_ACTIVE, WAL_UNUSABLE };

/* One append waiting for (or being written by) a leader. Lives on the appender's stack. */
typedef struct wal_req {
  const struct iovec *iov;
  int iovcnt;
  uint32_t len;
  uint32_t payload_crc;
  uint8_t hdr[WAL_REC_HDR_BYTES]; /* framed by the leader */
  uint64_t lsn;                   /* given by the leader */
  int nosync;                     /* written only: the caller waits with tsdb_wal_wait */
  int rc;
  int done;
  struct wal_req *next;
} wal_req;

struct tsdb_wal {
  /* Set by open, then read-only. */
  char *dir;
  int dir_fd;
  int lock_fd;
  tsdb_fsync_policy policy;
  int64_t fsync_interval_ns;
  size_t segment_bytes;
  size_t record_bytes_max;
  int (*fsync_fn)(void *ctx, int fd, int is_dir);
  void *fsync_ctx;

  pthread_mutex_t mu;
  pthread_cond_t cv;        /* a request is done or the token was freed */
  pthread_cond_t syncer_cv; /* CLOCK_MONOTONIC; wakes the interval thread to stop */
  pthread_mutex_t trunc_mu; /* serialises tsdb_wal_truncate_before */

  /* Under mu. */
  int state;
  int failed;
  int io_busy;
  int syncing; /* a tsdb_wal_wait caller is fsyncing */
  int stopping;
  wal_req *pending_head, *pending_tail;
  uint64_t next_lsn, written_end, synced_end;
  int fd;
  uint64_t *seg_first; /* first LSNs of the segments on disk, ascending; the last is active */
  size_t nseg, seg_cap;

  /* Token. */
  uint64_t seg_bytes; /* size of the active segment */
  uint32_t seg_salt;
  char seg_name[WAL_NAME_BYTES];
  struct iovec iov[WAL_IOV_BATCH];

  int syncer_started;
  pthread_t syncer;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void put_u32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64le(const uint8_t *p) {
  return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

static void seg_name(char out[WAL_NAME_BYTES], uint64_t first_lsn) {
  snprintf(out, WAL_NAME_BYTES, "wal-%016" PRIx64 ".log", first_lsn);
}

/* Accepts exactly "wal-" + 16 lower-case hex digits + ".log" naming a first LSN in range. */
static int seg_name_parse(const char *name, uint64_t *first_lsn) {
  if (strlen(name) != WAL_NAME_BYTES - 1 || memcmp(name, "wal-", 4) != 0 ||
      strcmp(name + 20, ".log") != 0)
    return 0;
  uint64_t v = 0;
  for (int i = 4; i < 20; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = v << 4 | (uint64_t)d;
  }
  if (v == 0 || v >= WAL_FIRST_LSN_MAX) return 0;
  *first_lsn = v;
  return 1;
}

/* The CRC of a record, given the CRC of its payload. */
static uint32_t rec_crc(uint32_t payload_crc, uint32_t salt, uint32_t len, uint64_t lsn) {
  uint8_t trailer[16];
  put_u32le(trailer, salt);
  put_u32le(trailer + 4, len);
  put_u64le(trailer + 8, lsn);
  return pl_crc32c(payload_crc, trailer, sizeof trailer);
}

static void seg_header_encode(uint8_t hdr[WAL_SEG_HDR_BYTES], uint32_t salt, uint64_t first_lsn) {
  memset(hdr, 0, WAL_SEG_HDR_BYTES);
  memcpy(hdr, WAL_MAGIC, 8);
  put_u32le(hdr + 8, WAL_VERSION);
  put_u32le(hdr + 12, salt);
  put_u64le(hdr + 16, first_lsn);
  put_u32le(hdr + 28, pl_crc32c(0, hdr, 28));
}

/* A pure check of a segment header; returns a reason, or NULL when valid. */
static const char *seg_header_check(const uint8_t hdr[WAL_SEG_HDR_BYTES], uint32_t *salt,
                                    uint64_t *first_lsn) {
  if (memcmp(hdr, WAL_MAGIC, 8) != 0) return "bad segment magic";
  if (get_u32le(hdr + 28) != pl_crc32c(0, hdr, 28)) return "segment header crc mismatch";
  if (get_u32le(hdr + 8) != WAL_VERSION) return "unsupported segment version";
  if (get_u32le(hdr + 24) != 0) return "bad segment header";
  *salt = get_u32le(hdr + 12);
  *first_lsn = get_u64le(hdr + 16);
  return NULL;
}

static uint32_t salt_new(void) {
  uint32_t salt;
  if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) == (ssize_t)sizeof salt) return salt;
  /* No entropy yet (early boot): the salt only needs to differ between segments, not be secret. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)getpid() << 16;
}

static int wal_fsync(tsdb_wal *w, int fd, int is_dir) {
  int r;
  if (w->fsync_fn) return w->fsync_fn(w->fsync_ctx, fd, is_dir) == 0 ? 0 : PL_EIO;
  do {
    r = is_dir ? fsync(fd) : fdatasync(fd);
  } while (r < 0 && errno == EINTR);
  return r == 0 ? 0 : PL_EIO;
}

/* Writes all of iov[0..n) (every entry non-empty), advancing the entries in place. */
static int writev_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t r = writev(fd, iov, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return PL_EIO;
    }
    if (r == 0) {
      errno = EIO;
      return PL_EIO;
    }
    size_t left = (size_t)r;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

static int write_all(int fd, const void *data, size_t len) {
  struct iovec iov = {(void *)data, len};
  return writev_all(fd, &iov, 1);
}

static int seg_list_reserve(tsdb_wal *w, size_t extra) {
  if (w->nseg + extra <= w->seg_cap) return 0;
  size_t cap = w->seg_cap ? w->seg_cap * 2 : 16;
  while (cap < w->nseg + extra) cap *= 2;
  uint64_t *p = realloc(w->seg_first, cap * sizeof *p);
  if (!p) return PL_ENOMEM;
  w->seg_first = p;
  w->seg_cap = cap;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Marks the WAL failed and fails every queued request. Called with mu held. */
static void wal_set_failed(tsdb_wal *w, const char *op, int errnum) {
  if (!w->failed) {
    w->failed = 1;
    PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_failed op=%s errno=%d dir=%s", op, errnum, w->dir);
  }
  for (wal_req *r = w->pending_head, *next; r; r = next) {
    next = r->next;
    r->rc = PL_EIO;
    r->done = 1;
  }
  w->pending_head = w->pending_tail = NULL;
  pthread_cond_broadcast(&w->cv);
}

/* ---- segments (token holder) ------------------------------------------------------------- */

/* Creates segment first_lsn, durable (header fsynced, directory fsynced), open for appending. */
static int seg_create(tsdb_wal *w, uint64_t first_lsn, int *fd_out, uint32_t *salt_out,
                      const char **op) {
  char name[WAL_NAME_BYTES];
  uint8_t hdr[WAL_SEG_HDR_BYTES];
  uint32_t salt = salt_new();
  seg_name(name, first_lsn);
  *op = "create";
  int fd = openat(w->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return PL_EIO;
  seg_header_encode(hdr, salt, first_lsn);
  int rc = write_all(fd, hdr, sizeof hdr);
  if (rc < 0) *op = "write";
  if (rc == 0 && (rc = wal_fsync(w, fd, 0)) < 0) *op = "fsync";
  if (rc == 0 && (rc = wal_fsync(w, w->dir_fd, 1)) < 0) *op = "fsync_dir";
  if (rc < 0) {
    int e = errno;
    close(fd);
    unlinkat(w->dir_fd, name, 0); /* best effort; replay would discard it anyway */
    errno = e;
    return rc;
  }
  *fd_out = fd;
  *salt_out = salt;
  return 0;
}

/* Makes the active segment durable and starts segment first_lsn. Token held, mu not. */
static int seg_rotate(tsdb_wal *w, uint64_t first_lsn, const char **op) {
  int rc, fd;
  uint32_t salt;
  *op = "fsync";
  if ((rc = wal_fsync(w, w->fd, 0)) < 0) return rc;
  pthread_mutex_lock(&w->mu);
  rc = seg_list_reserve(w, 1);
  pthread_mutex_unlock(&w->mu);
  if (rc < 0) {
    *op = "alloc";
    errno = ENOMEM;
    return rc;
  }
  if ((rc = seg_create(w, first_lsn, &fd, &salt, op)) < 0) return rc;
  pthread_mutex_lock(&w->mu);
  int old = w->fd;
  w->fd = fd;
  w->seg_first[w->nseg++] = first_lsn;
  if (w->synced_end < first_lsn) w->synced_end = first_lsn; /* the old segment is synced */
  pthread_mutex_unlock(&w->mu);
  close(old);
  w->seg_bytes = WAL_SEG_HDR_BYTES;
  w->seg_salt = salt;
  seg_name(w->seg_name, first_lsn);
  PL_LOG(PL_LOG_DEBUG, WAL_LOG, "event=wal_rotate segment=%s", w->seg_name);
  return 0;
}

/* Adds one iovec to the scratch list, writing the list out first when it is full. */
static int iov_push(tsdb_wal *w, int *n, void *base, size_t len) {
  if (len == 0) return 0;
  if (*n == WAL_IOV_BATCH) {
    int rc = writev_all(w->fd, w->iov, *n);
    *n = 0;
    if (rc < 0) return rc;
  }
  w->iov[(*n)++] = (struct iovec){base, len};
  return 0;
}

/* Frames and writes a batch (LSNs given, ascending), rotating when a segment fills, and fsyncs
 * under ALWAYS. Token held, mu not. */
static int wal_write_batch(tsdb_wal *w, wal_req *batch, const char **op) {
  int n = 0, rc;
  *op = "write";
  for (wal_req *r = batch; r; r = r->next) {
    uint64_t rec_bytes = WAL_REC_HDR_BYTES + (uint64_t)r->len;
    if (w->seg_bytes > WAL_SEG_HDR_BYTES && w->seg_bytes + rec_bytes > w->segment_bytes) {
      rc = writev_all(w->fd, w->iov, n);
      n = 0;
      if (rc < 0) return rc;
      if ((rc = seg_rotate(w, r->lsn, op)) < 0) return rc;
      *op = "write";
    }
    put_u32le(r->hdr, r->len);
    put_u32le(r->hdr + 4, rec_crc(r->payload_crc, w->seg_salt, r->len, r->lsn));
    if ((rc = iov_push(w, &n, r->hdr, WAL_REC_HDR_BYTES)) < 0) return rc;
    for (int i = 0; i < r->iovcnt; i++)
      if ((rc = iov_push(w, &n, r->iov[i].iov_base, r->iov[i].iov_len)) < 0) return rc;
    w->seg_bytes += rec_bytes;
  }
  if ((rc = writev_all(w->fd, w->iov, n)) < 0) return rc;
  int want_sync = 0;
  for (wal_req *r = batch; r; r = r->next) want_sync |= !r->nosync;
  if (w->policy == TSDB_FSYNC_ALWAYS && want_sync) {
    *op = "fsync";
    if ((rc = wal_fsync(w, w->fd, 0)) < 0) return rc;
  }
  return 0;
}

/* Fsyncs what is written, if anything is not yet synced. Called with mu held; drops it around
 * the fsync. A failing fsync fails the WAL; a failing dup() does not (nothing was lost). */
static int wal_sync_locked(tsdb_wal *w) {
  if (w->failed) return PL_EIO;
  uint64_t target = w->written_end;
  if (w->synced_end >= target) return 0;
  int fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    PL_LOG(PL_LOG_WARN, WAL_LOG, "event=wal_sync_dup_failed errno=%d", errno);
    return PL_EIO;
  }
  pthread_mutex_unlock(&w->mu);
  int rc = wal_fsync(w, fd, 0);
  int e = errno;
  close(fd);
  pthread_mutex_lock(&w->mu);
  if (rc < 0) {
    wal_set_failed(w, "fsync", e);
    return PL_EIO;
  }
  if (w->failed) return PL_EIO;
  if (w->synced_end < target) w->synced_end = target;
  return 0;
}

static void *wal_syncer_main(void *arg) {
  tsdb_wal *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stopping) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    int64_t ns = deadline.tv_nsec + w->fsync_interval_ns;
    deadline.tv_sec += (time_t)(ns / 1000000000);
    deadline.tv_nsec = (long)(ns % 1000000000);
    int r = 0;
    while (!w->stopping && r != ETIMEDOUT)
      r = pthread_cond_timedwait(&w->syncer_cv, &w->mu, &deadline);
    if (w->stopping) break;
    if (w->state == WAL_ACTIVE) (void)wal_sync_locked(w);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void wal_free(tsdb_wal *w) {
  if (w->fd >= 0) close(w->fd);
  if (w->dir_fd >= 0) close(w->dir_fd);
  if (w->lock_fd >= 0) close(w->lock_fd);
  pthread_mutex_destroy(&w->mu);
  pthread_mutex_destroy(&w->trunc_mu);
  pthread_cond_destroy(&w->cv);
  pthread_cond_destroy(&w->syncer_cv);
  free(w->seg_first);
  free(w->dir);
  free(w);
}

static int wal_list_segments(tsdb_wal *w) {
  int fd = fcntl(w->dir_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return PL_EIO;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return PL_EIO;
  }
  int rc = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    uint64_t first;
    if (!seg_name_parse(de->d_name, &first)) continue;
    if ((rc = seg_list_reserve(w, 1)) < 0) break;
    w->seg_first[w->nseg++] = first;
    errno = 0;
  }
  if (rc == 0 && errno != 0) rc = PL_EIO;
  closedir(d);
  if (rc == 0 && w->nseg > 1) qsort(w->seg_first, w->nseg, sizeof *w->seg_first, cmp_u64);
  return rc;
}

int tsdb_wal_open(const tsdb_wal_opts *opts, tsdb_wal **out, pl_err *err) {
  if (!opts || !out || !opts->dir || !opts->dir[0])
    return pl_err_set(err, PL_EINVAL, "wal: options and a directory are required");
  if ((unsigned)opts->fsync > TSDB_FSYNC_NEVER)
    return pl_err_set(err, PL_EINVAL, "wal: unknown fsync policy %d", (int)opts->fsync);
  if (opts->fsync_interval_ns < 0)
    return pl_err_set(err, PL_EINVAL, "wal: negative fsync interval");
  if (opts->record_bytes_max > TSDB_WAL_RECORD_BYTES_LIMIT)
    return pl_err_set(err, PL_EINVAL, "wal: record_bytes_max %zu above the limit %zu",
                      opts->record_bytes_max, TSDB_WAL_RECORD_BYTES_LIMIT);
  if (strlen(opts->dir) > PATH_MAX - 64)
    return pl_err_set(err, PL_EINVAL, "wal: directory path too long");

  tsdb_wal *w = calloc(1, sizeof *w);
  if (!w) return pl_err_set(err, PL_ENOMEM, "wal: out of memory");
  w->fd = w->dir_fd = w->lock_fd = -1;
  w->policy = opts->fsync;
  w->fsync_interval_ns =
      opts->fsync_interval_ns ? opts->fsync_interval_ns : TSDB_WAL_FSYNC_INTERVAL_NS_DEFAULT;
  w->segment_bytes = opts->segment_bytes ? opts->segment_bytes : TSDB_WAL_SEGMENT_BYTES_DEFAULT;
  w->record_bytes_max =
      opts->record_bytes_max ? opts->record_bytes_max : TSDB_WAL_RECORD_BYTES_MAX_DEFAULT;
  w->fsync_fn = opts->fsync_fn;
  w->fsync_ctx = opts->fsync_ctx;
  w->state = WAL_OPENED;

  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&w->mu, NULL);
  pthread_mutex_init(&w->trunc_mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  pthread_cond_init(&w->syncer_cv, &ca);
  pthread_condattr_destroy(&ca);

  int rc;
  char path[PATH_MAX];
  if (!(w->dir = strdup(opts->dir))) {
    rc = pl_err_set(err, PL_ENOMEM, "wal: out of memory");
    goto fail;
  }
  if (pl_fs_mkdir_p(w->dir, 0755) < 0) {
    rc = pl_err_set(err, PL_EIO, "wal: cannot create %s: %s", w->dir, strerror(errno));
    goto fail;
  }
  if ((w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rc = pl_err_set(err, PL_EIO, "wal: cannot open %s: %s", w->dir, strerror(errno));
    goto fail;
  }
  snprintf(path, sizeof path, "%s/LOCK", w->dir);
  if ((w->lock_fd = pl_fs_lock(path)) < 0) {
    rc = w->lock_fd;
    w->lock_fd = -1;
    rc = pl_err_set(err, rc, rc == PL_EBUSY ? "wal: %s is in use by another open WAL"
                                            : "wal: cannot lock %s",
                    w->dir);
    goto fail;
  }
  if ((rc = wal_list_segments(w)) < 0) {
    rc = pl_err_set(err, rc, "wal: cannot list %s", w->dir);
    goto fail;
  }
  if (w->policy == TSDB_FSYNC_INTERVAL) {
    if (pthread_create(&w->syncer, NULL, wal_syncer_main, w) != 0) {
      rc = pl_err_set(err, PL_ENOMEM, "wal: cannot start the fsync thread");
      goto fail;
    }
    w->syncer_started = 1;
  }
  *out = w;
  return 0;
fail:
  wal_free(w);
  return rc;
}

void tsdb_wal_close(tsdb_wal *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = 1;
  pthread_cond_signal(&w->syncer_cv);
  pthread_mutex_unlock(&w->mu);
  if (w->syncer_started) pthread_join(w->syncer, NULL);
  pthread_mutex_lock(&w->mu);
  while (w->io_busy) pthread_cond_wait(&w->cv, &w->mu); /* misuse guard: close during append */
  if (w->state == WAL_ACTIVE && !w->failed && wal_sync_locked(w) < 0)
    PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_close_sync_failed dir=%s", w->dir);
  pthread_mutex_unlock(&w->mu);
  wal_free(w);
}

/* ---- replay ------------------------------------------------------------------------------ */

/* A forward-only buffered reader over one segment file. */
typedef struct seg_reader {
  int fd;
  uint64_t file_bytes;
  uint8_t *buf;
  size_t cap, start, end; /* buf[start, end) is unread */
} seg_reader;

/* Makes n bytes available at buf + start: 0, PL_AGAIN (the file ended first), PL_EIO,
 * PL_ENOMEM. Callers bound n by the file size, so the buffer is bounded by it too. */
static int rd_need(seg_reader *r, size_t n) {
  if (r->end - r->start >= n) return 0;
  if (r->start > 0) {
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
  }
  /* Read in large chunks: up to 1 MiB, or the whole file when smaller. */
  size_t cap = r->file_bytes < WAL_READ_BUF_BYTES ? (size_t)r->file_bytes : WAL_READ_BUF_BYTES;
  if (cap < n) cap = n;
  if (cap > r->cap) {
    uint8_t *p = realloc(r->buf, cap);
    if (!p) return PL_ENOMEM;
    r->buf = p;
    r->cap = cap;
  }
  while (r->end < n) {
    ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end);
    if (got < 0) {
      if (errno == EINTR) continue;
      return PL_EIO;
    }
    if (got == 0) return PL_AGAIN;
    r->end += (size_t)got;
  }
  return 0;
}

typedef struct replay_cut {
  int cut;
  size_t seg;          /* index of the cut segment */
  uint64_t offset;     /* where its valid bytes end; < header size: delete the file */
  const char *reason;
} replay_cut;

/* Reads segment i, passing its valid records to cb. Stops at the first invalid record or at an
 * invalid header (recorded in *cut). *expect is the LSN the segment must start at (0 = any) and
 * becomes the LSN after its last valid record. On a valid header, *salt and *valid_bytes describe
 * it. Returns 0, cb's non-zero result (setting *cb_failed), or PL_EIO / PL_ENOMEM. */
static int replay_segment(tsdb_wal *w, size_t i, seg_reader *rd, uint64_t *expect,
                          uint32_t *salt, uint64_t *valid_bytes, replay_cut *cut,
                          int (*cb)(void *, uint64_t, const uint8_t *, size_t), void *ctx,
                          tsdb_wal_replay_stats *st, int *cb_failed) {
  char name[WAL_NAME_BYTES];
  struct stat sb;
  int rc;
  seg_name(name, w->seg_first[i]);
  rd->fd = openat(w->dir_fd, name, O_RDONLY | O_CLOEXEC);
  if (rd->fd < 0 || fstat(rd->fd, &sb) < 0) {
    PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_replay_open_failed segment=%s errno=%d", name, errno);
    if (rd->fd >= 0) close(rd->fd);
    return PL_EIO;
  }
  rd->file_bytes = (uint64_t)sb.st_size;
  rd->start = rd->end = 0;
  st->segments++;

  *cut = (replay_cut){1, i, 0, NULL};
  uint64_t first, off = WAL_SEG_HDR_BYTES;
  if ((rc = rd_need(rd, WAL_SEG_HDR_BYTES)) < 0) {
    if (rc != PL_AGAIN) goto out;
    cut->reason = "short segment header";
    rc = 0;
    goto out;
  }
  if ((cut->reason = seg_header_check(rd->buf + rd->start, salt, &first)) != NULL) goto out;
  if (first != w->seg_first[i]) {
    cut->reason = "segment first lsn differs from its name";
    goto out;
  }
  if (*expect != 0 && first != *expect) {
    cut->reason = "lsn gap between segments";
    goto out;
  }
  rd->start += WAL_SEG_HDR_BYTES;

  uint64_t lsn = first;
  for (;;) {
    cut->offset = off;
    if (off == rd->file_bytes) {
      cut->cut = 0; /* a clean end */
      break;
    }
    if (rd->file_bytes - off < WAL_REC_HDR_BYTES) {
      cut->reason = "short record header";
      break;
    }
    if ((rc = rd_need(rd, WAL_REC_HDR_BYTES)) < 0) {
      if (rc != PL_AGAIN) goto out;
      cut->reason = "short record header"; /* the file shrank under us */
      rc = 0;
      break;
    }
    const uint8_t *h = rd->buf + rd->start;
    uint32_t len = get_u32le(h), crc = get_u32le(h + 4);
    if (len == 0 || len > TSDB_WAL_RECORD_BYTES_LIMIT) {
      cut->reason = "bad record length";
      break;
    }
    if (len > rd->file_bytes - off - WAL_REC_HDR_BYTES) {
      cut->reason = "short record";
      break;
    }
    if ((rc = rd_need(rd, WAL_REC_HDR_BYTES + (size_t)len)) < 0) {
      if (rc != PL_AGAIN) goto out;
      cut->reason = "short record";
      rc = 0;
      break;
    }
    const uint8_t *p = rd->buf + rd->start + WAL_REC_HDR_BYTES;
    if (rec_crc(pl_crc32c(0, p, len), *salt, len, lsn) != crc) {
      cut->reason = "record crc mismatch";
      break;
    }
    if (cb && (rc = cb(ctx, lsn, p, len)) != 0) {
      *cb_failed = 1;
      goto out;
    }
    if (st->records++ == 0) st->first_lsn = lsn;
    st->last_lsn = lsn;
    st->bytes += len;
    rd->start += WAL_REC_HDR_BYTES + (size_t)len;
    off += WAL_REC_HDR_BYTES + (uint64_t)len;
    lsn++;
  }
  *expect = lsn;
  *valid_bytes = off;
  rc = 0;
out:
  close(rd->fd);
  rd->fd = -1;
  return rc;
}

/* Applies a cut: truncates (or deletes) the cut segment, deletes every later one, fsyncs. */
static int replay_apply_cut(tsdb_wal *w, const replay_cut *cut, tsdb_wal_replay_stats *st) {
  char name[WAL_NAME_BYTES];
  for (size_t j = w->nseg; j-- > cut->seg + 1;) { /* newest first */
    seg_name(name, w->seg_first[j]);
    if (unlinkat(w->dir_fd, name, 0) < 0 && errno != ENOENT) return PL_EIO;
    st->segments_removed++;
  }
  w->nseg = cut->seg + 1;
  seg_name(name, w->seg_first[cut->seg]);
  if (cut->offset < WAL_SEG_HDR_BYTES) {
    if (unlinkat(w->dir_fd, name, 0) < 0 && errno != ENOENT) return PL_EIO;
    st->segments_removed++;
    w->nseg = cut->seg;
  } else {
    int fd = openat(w->dir_fd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return PL_EIO;
    int rc = ftruncate(fd, (off_t)cut->offset) < 0 ? PL_EIO : wal_fsync(w, fd, 0);
    close(fd);
    if (rc < 0) return rc;
  }
  return wal_fsync(w, w->dir_fd, 1);
}

int tsdb_wal_replay(tsdb_wal *w, int (*cb)(void *ctx, uint64_t lsn, const uint8_t *p, size_t len),
                    void *ctx, tsdb_wal_replay_stats *st) {
  tsdb_wal_replay_stats local;
  if (!st) st = &local;
  memset(st, 0, sizeof *st);
  if (!w) return PL_EINVAL;
  pthread_mutex_lock(&w->mu);
  int state = w->state;
  pthread_mutex_unlock(&w->mu);
  if (state != WAL_OPENED) return PL_ESTATE;

  seg_reader rd = {.fd = -1};
  int cb_failed = 0;
  replay_cut cut = {0};
  uint64_t expect = 0, valid_bytes = 0;
  uint32_t salt = 0;
  int have_active = 0, rc = 0;
  uint32_t active_salt = 0;
  uint64_t active_bytes = 0;
  for (size_t i = 0; i < w->nseg; i++) {
    if ((rc = replay_segment(w, i, &rd, &expect, &salt, &valid_bytes, &cut, cb, ctx, st,
                             &cb_failed)) != 0)
      break;
    if (!cut.cut || cut.offset >= WAL_SEG_HDR_BYTES) {
      have_active = 1;
      active_salt = salt;
      active_bytes = valid_bytes;
    }
    if (cut.cut) break;
  }
  free(rd.buf);
  const char *op = "replay";
  if (rc == 0 && cut.cut) {
    seg_name(st->tail_segment, w->seg_first[cut.seg]);
    snprintf(st->tail_reason, sizeof st->tail_reason, "%s", cut.reason);
    st->tail_cut = 1;
    st->tail_cut_offset = cut.offset < WAL_SEG_HDR_BYTES ? 0 : cut.offset;
    char q[160];
    PL_LOG(PL_LOG_WARN, WAL_LOG,
           "event=wal_tail_cut segment=%s offset=%" PRIu64 " reason=%s records_kept=%" PRIu64
           " segments_removed_after=%zu",
           st->tail_segment, st->tail_cut_offset, pl_log_quote(cut.reason, q, sizeof q),
           st->records, w->nseg - cut.seg - 1);
    /* With no valid segment left, LSNs continue from the name of the first one, which is
     * where the log began (or resumed after a truncation). */
    if (!have_active) expect = w->seg_first[0];
    if ((rc = replay_apply_cut(w, &cut, st)) < 0) op = "cut";
  }
  if (rc == 0) {
    uint64_t next = expect ? expect : 1;
    if (have_active) {
      seg_name(w->seg_name, w->seg_first[w->nseg - 1]);
      op = "open";
      w->fd = openat(w->dir_fd, w->seg_name, O_WRONLY | O_APPEND | O_CLOEXEC);
      /* The tail may still be only in the page cache if the last process crashed: sync it so
       * synced_end can start at next. */
      rc = w->fd < 0 ? PL_EIO : wal_fsync(w, w->fd, 0);
      w->seg_salt = active_salt;
      w->seg_bytes = active_bytes;
    } else if ((rc = seg_list_reserve(w, 1)) == 0 &&
               (rc = seg_create(w, next, &w->fd, &w->seg_salt, &op)) == 0) {
      w->seg_first[w->nseg++] = next;
      w->seg_bytes = WAL_SEG_HDR_BYTES;
      seg_name(w->seg_name, next);
    }
    if (rc == 0) {
      pthread_mutex_lock(&w->mu);
      w->next_lsn = w->written_end = w->synced_end = next;
      w->state = WAL_ACTIVE;
      pthread_mutex_unlock(&w->mu);
      return 0;
    }
  }
  if (!cb_failed)
    PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_replay_failed op=%s errno=%d dir=%s", op, errno,
           w->dir);
  pthread_mutex_lock(&w->mu);
  w->state = WAL_UNUSABLE;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

/* ---- append ------------------------------------------------------------------------------ */

static int appendv(tsdb_wal *w, const struct iovec *iov, int iovcnt, uint64_t *lsn, int nosync);

int tsdb_wal_appendv(tsdb_wal *w, const struct iovec *iov, int iovcnt, uint64_t *lsn) {
  return appendv(w, iov, iovcnt, lsn, 0);
}

int tsdb_wal_write(tsdb_wal *w, const void *payload, size_t len, uint64_t *lsn) {
  if (!payload && len) return PL_EINVAL;
  struct iovec iov = {(void *)payload, len};
  return appendv(w, &iov, 1, lsn, 1);
}

int tsdb_wal_wait(tsdb_wal *w, uint64_t lsn) {
  if (!w) return PL_EINVAL;
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  if (w->state != WAL_ACTIVE) {
    rc = PL_ESTATE;
  } else if (w->policy == TSDB_FSYNC_ALWAYS) {
    /* One waiter fsyncs for everyone written so far; the others wait for it. */
    while (rc == 0 && !w->failed && w->synced_end <= lsn) {
      if (w->syncing || w->io_busy) {
        pthread_cond_wait(&w->cv, &w->mu);
        continue;
      }
      w->syncing = 1;
      rc = wal_sync_locked(w);
      w->syncing = 0;
      pthread_cond_broadcast(&w->cv);
    }
  }
  if (w->failed) rc = PL_EIO;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

static int appendv(tsdb_wal *w, const struct iovec *iov, int iovcnt, uint64_t *lsn, int nosync) {
  if (!w || !iov || iovcnt < 1 || iovcnt > WAL_APPENDV_IOV_MAX) return PL_EINVAL;
  size_t len = 0;
  uint32_t crc = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > w->record_bytes_max - len) return PL_ELIMIT;
    if (iov[i].iov_len && !iov[i].iov_base) return PL_EINVAL;
    len += iov[i].iov_len;
  }
  if (len == 0) return PL_EINVAL;
  /* The expensive part of the CRC, outside the lock so appenders checksum in parallel. */
  for (int i = 0; i < iovcnt; i++) crc = pl_crc32c(crc, iov[i].iov_base, iov[i].iov_len);

  wal_req req = {.iov = iov, .iovcnt = iovcnt, .len = (uint32_t)len, .payload_crc = crc, .nosync = nosync};
  pthread_mutex_lock(&w->mu);
  if (w->state != WAL_ACTIVE || w->failed) {
    int rc = w->state != WAL_ACTIVE ? PL_ESTATE : PL_EIO;
    pthread_mutex_unlock(&w->mu);
    return rc;
  }
  if (w->pending_tail)
    w->pending_tail->next = &req;
  else
    w->pending_head = &req;
  w->pending_tail = &req;

  while (!req.done) {
    if (w->io_busy) {
      pthread_cond_wait(&w->cv, &w->mu);
      continue;
    }
    /* Lead: take the whole queue (this request is in it). */
    wal_req *batch = w->pending_head;
    w->pending_head = w->pending_tail = NULL;
    for (wal_req *r = batch; r; r = r->next) r->lsn = w->next_lsn++;
    uint64_t end = w->next_lsn;
    w->io_busy = 1;
    pthread_mutex_unlock(&w->mu);

    const char *op;
    int rc = wal_write_batch(w, batch, &op);
    int e = errno;

    pthread_mutex_lock(&w->mu);
    if (rc < 0) {
      PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_io_error op=%s segment=%s errno=%d", op,
             w->seg_name, e);
      wal_set_failed(w, op, e);
    } else if (w->failed) {
      rc = PL_EIO; /* an fsync failed meanwhile: what we wrote may not survive */
    } else {
      w->written_end = end;
      int synced = 0;
      for (wal_req *r = batch; r; r = r->next) synced |= !r->nosync;
      if (w->policy == TSDB_FSYNC_ALWAYS && synced && w->synced_end < end) w->synced_end = end;
    }
    for (wal_req *r = batch, *next; r; r = next) {
      next = r->next;
      r->rc = rc < 0 ? PL_EIO : 0;
      r->done = 1; /* a follower's request may vanish once we drop mu */
    }
    w->io_busy = 0;
    pthread_cond_broadcast(&w->cv);
  }
  int rc = req.rc;
  if (rc == 0 && lsn) *lsn = req.lsn;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int tsdb_wal_append(tsdb_wal *w, const void *payload, size_t len, uint64_t *lsn) {
  if (!payload && len) return PL_EINVAL;
  struct iovec iov = {(void *)payload, len};
  return tsdb_wal_appendv(w, &iov, 1, lsn);
}

/* ---- sync, rotate, truncate ------------------------------------------------------------- */

int tsdb_wal_sync(tsdb_wal *w) {
  if (!w) return PL_EINVAL;
  pthread_mutex_lock(&w->mu);
  int rc = w->state != WAL_ACTIVE ? PL_ESTATE : wal_sync_locked(w);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int tsdb_wal_rotate(tsdb_wal *w) {
  if (!w) return PL_EINVAL;
  pthread_mutex_lock(&w->mu);
  while (w->state == WAL_ACTIVE && !w->failed && w->io_busy) pthread_cond_wait(&w->cv, &w->mu);
  int rc = w->state != WAL_ACTIVE ? PL_ESTATE : w->failed ? PL_EIO : 0;
  /* With the token free and mu held, the token-only fields are ours to read. */
  if (rc < 0 || w->seg_bytes == WAL_SEG_HDR_BYTES) {
    pthread_mutex_unlock(&w->mu);
    return rc;
  }
  w->io_busy = 1;
  uint64_t first = w->next_lsn;
  pthread_mutex_unlock(&w->mu);

  const char *op;
  rc = seg_rotate(w, first, &op);
  int e = errno;

  pthread_mutex_lock(&w->mu);
  if (rc < 0) {
    PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_io_error op=%s segment=%s errno=%d", op,
           w->seg_name, e);
    wal_set_failed(w, op, e);
    rc = PL_EIO;
  }
  w->io_busy = 0;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int tsdb_wal_truncate_before(tsdb_wal *w, uint64_t lsn) {
  if (!w) return PL_EINVAL;
  /* Only truncation removes entries, from the front, and it is serialised by trunc_mu; rotation
   * only appends. So the first k entries stay put while we delete their files without mu. */
  pthread_mutex_lock(&w->trunc_mu);
  pthread_mutex_lock(&w->mu);
  if (w->state != WAL_ACTIVE) {
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_unlock(&w->trunc_mu);
    return PL_ESTATE;
  }
  /* Segment k holds LSNs [seg_first[k], seg_first[k+1]): all below lsn iff seg_first[k+1] <= lsn.
   * The last (active) segment has no successor and is never deleted. */
  size_t k = 0;
  while (k + 1 < w->nseg && w->seg_first[k + 1] <= lsn) k++;
  pthread_mutex_unlock(&w->mu);

  /* Oldest first, with a directory fsync after each deletion: a crash can then only undo a
   * suffix of the deletions, so the segments left always run without a gap. (Were a newer
   * deletion durable and an older one not, replay would see a gap and cut everything after it.) */
  size_t deleted = 0;
  int rc = 0;
  while (deleted < k) {
    char name[WAL_NAME_BYTES];
    pthread_mutex_lock(&w->mu);
    seg_name(name, w->seg_first[deleted]);
    pthread_mutex_unlock(&w->mu);
    if (unlinkat(w->dir_fd, name, 0) < 0 && errno != ENOENT) {
      PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_truncate_failed segment=%s errno=%d", name, errno);
      rc = PL_EIO;
      break;
    }
    deleted++;
    if (wal_fsync(w, w->dir_fd, 1) < 0) {
      PL_LOG(PL_LOG_ERROR, WAL_LOG, "event=wal_truncate_failed op=fsync_dir errno=%d", errno);
      rc = PL_EIO;
      break;
    }
  }
  pthread_mutex_lock(&w->mu);
  memmove(w->seg_first, w->seg_first + deleted, (w->nseg - deleted) * sizeof *w->seg_first);
  w->nseg -= deleted;
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_unlock(&w->trunc_mu);
  if (deleted > 0)
    PL_LOG(PL_LOG_DEBUG, WAL_LOG, "event=wal_truncate before=%" PRIu64 " segments=%zu", lsn,
           deleted);
  return rc < 0 ? rc : (int)deleted;
}

uint64_t tsdb_wal_next_lsn(tsdb_wal *w) {
  if (!w) return 0;
  pthread_mutex_lock(&w->mu);
  uint64_t v = w->state == WAL_ACTIVE ? w->next_lsn : 0;
  pthread_mutex_unlock(&w->mu);
  return v;
}

int tsdb_wal_failed(tsdb_wal *w) {
  if (!w) return 0;
  pthread_mutex_lock(&w->mu);
  int v = w->failed;
  pthread_mutex_unlock(&w->mu);
  return v;
}
