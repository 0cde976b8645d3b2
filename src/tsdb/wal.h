/* The time-series write-ahead log: where every acknowledged telemetry write lands first.
 *
 * The engine appends one record per batch of points and acknowledges the batch once
 * tsdb_wal_append() returns; on start it replays the log into its heads, and once the heads are
 * persisted as chunks it drops the covered segments with tsdb_wal_truncate_before(). Payloads
 * are opaque bytes to the WAL. The on-disk format is specified at the top of wal.c.
 *
 * LSNs are record sequence numbers: the first record ever written has LSN 1 and each record
 * has the LSN of the one before plus one, across segments and restarts. LSN 0 means "none".
 *
 * Life cycle: tsdb_wal_open() -> tsdb_wal_replay() (exactly once) -> appends, syncs, rotations
 * and truncations from any number of threads -> tsdb_wal_close().
 *
 * Thread safety: tsdb_wal_append, tsdb_wal_appendv, tsdb_wal_sync, tsdb_wal_rotate,
 * tsdb_wal_truncate_before, tsdb_wal_next_lsn and tsdb_wal_failed may be called concurrently
 * from any threads. tsdb_wal_open, tsdb_wal_replay and tsdb_wal_close must not run concurrently
 * with any other call on the same WAL.
 *
 * Failure is sticky (STYLE.md): after any failed write or fsync of a segment, the WAL refuses
 * every later append, sync and rotation with PL_EIO and writes nothing more, because after a
 * failed fsync the kernel may already have dropped the data it could not write. The engine
 * must stop acknowledging writes; recovery is a close and a reopen (which replays what is on
 * disk). A record whose append returned an error may or may not be replayed after a reopen
 * (it was written but perhaps not synced); a record is never replayed in part.
 */
#ifndef PLATEAU_TSDB_WAL_H
#define PLATEAU_TSDB_WAL_H

#include "base/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef enum {
  TSDB_FSYNC_ALWAYS,   /* append returns after its record is fsynced (group commit) */
  TSDB_FSYNC_INTERVAL, /* append returns after write(); a thread fsyncs every interval */
  TSDB_FSYNC_NEVER,    /* append returns after write(); fsync only on rotate, sync, close */
} tsdb_fsync_policy;

/* Defaults applied to zero fields of tsdb_wal_opts. */
#define TSDB_WAL_FSYNC_INTERVAL_NS_DEFAULT (100LL * 1000 * 1000) /* 100 ms */
#define TSDB_WAL_SEGMENT_BYTES_DEFAULT ((size_t)64 << 20)        /* 64 MiB */
#define TSDB_WAL_RECORD_BYTES_MAX_DEFAULT ((size_t)64 << 20)     /* 64 MiB */
/* The format's hard limit on a record payload; record_bytes_max may not exceed it. Replay
 * accepts records up to this size whatever record_bytes_max is now, so lowering the option
 * never discards records written under a higher one. */
#define TSDB_WAL_RECORD_BYTES_LIMIT ((size_t)1 << 30) /* 1 GiB */

typedef struct tsdb_wal_opts {
  const char *dir;           /* the WAL directory (created if missing); copied */
  tsdb_fsync_policy fsync;   /* default TSDB_FSYNC_ALWAYS (the zero value) */
  int64_t fsync_interval_ns; /* TSDB_FSYNC_INTERVAL only; 0 = 100 ms */
  size_t segment_bytes;      /* rotate before a record would take a segment past this; 0 = 64 MiB.
                                A segment always takes at least one record, however big. */
  size_t record_bytes_max;   /* largest payload append accepts; 0 = 64 MiB; <= 1 GiB */
  /* Makes a file or directory durable: fsync(2)-like, 0 on success, non-zero on failure. NULL
   * uses fdatasync(2) for segment files and fsync(2) for the directory. Tests inject failures
   * here; benchmarks count calls. Called from appending threads and the interval thread. */
  int (*fsync_fn)(void *ctx, int fd, int is_dir);
  void *fsync_ctx;
} tsdb_wal_opts;

typedef struct tsdb_wal tsdb_wal;

typedef struct tsdb_wal_replay_stats {
  uint64_t records;          /* records passed to the callback */
  uint64_t bytes;            /* their payload bytes */
  uint64_t first_lsn;        /* LSN of the first replayed record, 0 if none */
  uint64_t last_lsn;         /* LSN of the last replayed record, 0 if none */
  uint64_t segments;         /* segment files read (including a cut one) */
  uint64_t segments_removed; /* segment files deleted by the cut */
  int tail_cut;              /* 1 when a torn or corrupt record or segment ended replay */
  char tail_reason[128];     /* why, e.g. "record crc mismatch"; "" without a cut */
  uint64_t tail_cut_offset;  /* byte offset in tail_segment where the log now ends */
  char tail_segment[256];    /* file name (no directory) of the cut segment */
} tsdb_wal_replay_stats;

/* Opens (creating if needed) the WAL in opts->dir and takes an exclusive lock on it (a second
 * open of the same directory, from this or another process, fails with PL_EBUSY). Reads no
 * records: call tsdb_wal_replay() next. opts is copied. Errors: PL_EINVAL (bad options),
 * PL_EBUSY, PL_EIO, PL_ENOMEM, with a message in err (which may be NULL). *out is written only
 * on success. */
int tsdb_wal_open(const tsdb_wal_opts *opts, tsdb_wal **out, pl_err *err);

/* Calls cb(ctx, lsn, payload, len) for every valid record in LSN order, starting from the
 * oldest retained segment (so it may deliver records whose data the engine already persisted:
 * the engine skips LSNs it has). The payload is borrowed for the duration of the call. cb may
 * be NULL (validate and cut only).
 *
 * The first torn or corrupt record or segment header (bad length, CRC mismatch, short read,
 * LSN gap) ends replay: that file is truncated there (and fsynced), or deleted when its header is
 * bad; later segments are deleted; the directory is fsynced; st says so. Records after a cut
 * are never delivered, even if they look valid. Appends then continue after the last valid
 * record, whose LSN + 1 is the next LSN.
 *
 * Must be called exactly once, after open and before anything else (else PL_ESTATE). A
 * non-zero return from cb stops replay, is returned, and leaves the files untouched; the WAL
 * then accepts no appends (close it). Other errors: PL_EIO, PL_ENOMEM; the WAL is then unusable
 * too. st (may be NULL) is written in every case. */
int tsdb_wal_replay(tsdb_wal *w, int (*cb)(void *ctx, uint64_t lsn, const uint8_t *p, size_t len),
                    void *ctx, tsdb_wal_replay_stats *st);

/* Appends one record and returns once it is durable under the policy: ALWAYS = fsynced
 * (concurrent appenders share one write and one fsync); INTERVAL = written to the file (it
 * survives a process crash; the interval thread fsyncs it within fsync_interval_ns); NEVER =
 * written. The payload is borrowed until the call returns (not copied into a queue). Writes the
 * record's LSN to *lsn (may be NULL) on success.
 * Errors: PL_EINVAL (len 0: empty records are not representable), PL_ELIMIT (len >
 * record_bytes_max; the WAL stays usable), PL_ESTATE (before replay), PL_EIO (the WAL is
 * failed, now or earlier; see above). */
int tsdb_wal_append(tsdb_wal *w, const void *payload, size_t len, uint64_t *lsn);

/* As tsdb_wal_append, the payload being the concatenation of iov[0..iovcnt) (borrowed until the
 * call returns), so a batch can be framed without copying. iovcnt must be 1..1023. */
int tsdb_wal_appendv(tsdb_wal *w, const struct iovec *iov, int iovcnt, uint64_t *lsn);

/* The two halves of tsdb_wal_append, for callers that must write records in an order they
 * control (under their own lock) without holding that lock through an fsync:
 * tsdb_wal_write writes the record (it survives a process crash once this returns) and gives
 * its LSN; tsdb_wal_wait(lsn) returns once that record is durable under the policy (under
 * ALWAYS it fsyncs, one caller for all waiting; otherwise it returns at once). Errors as for
 * tsdb_wal_append; a failed WAL makes tsdb_wal_wait return PL_EIO. */
int tsdb_wal_write(tsdb_wal *w, const void *payload, size_t len, uint64_t *lsn);
int tsdb_wal_wait(tsdb_wal *w, uint64_t lsn);

/* Fsyncs every record written so far, under any policy. 0, PL_ESTATE (before replay), or PL_EIO
 * (the WAL is failed: a failing fsync here fails it too). */
int tsdb_wal_sync(tsdb_wal *w);

/* Fsyncs the current segment and starts a new one, whose first LSN is then the next LSN; a no-op
 * when the current segment holds no record. The engine calls it before flushing its heads, then
 * truncates before the new segment's first LSN once the flush is durable. If it needs that LSN
 * exactly while other threads append, it must read tsdb_wal_next_lsn() with its own appends
 * quiesced. 0, PL_ESTATE, PL_EIO (the WAL is failed). */
int tsdb_wal_rotate(tsdb_wal *w);

/* Deletes the segments all of whose records have an LSN < lsn (their data is persisted
 * elsewhere), oldest first, fsyncing the directory after each. The current segment is never
 * deleted. Works on a failed WAL too.
 * Returns the number of segments deleted, PL_ESTATE before replay, or PL_EIO (some deletion or
 * the directory fsync failed; this does not fail the WAL, since no acknowledged data is at
 * risk: at worst a segment reappears after a crash and is replayed again). */
int tsdb_wal_truncate_before(tsdb_wal *w, uint64_t lsn);

/* The LSN the next appended record will get (when no other append is in flight); 0 before
 * replay. */
uint64_t tsdb_wal_next_lsn(tsdb_wal *w);

/* 1 when the WAL has failed (see above), else 0. */
int tsdb_wal_failed(tsdb_wal *w);

/* Fsyncs what was written (unless failed), stops the interval thread, closes the files, releases
 * the lock and frees. NULL is a no-op. */
void tsdb_wal_close(tsdb_wal *w);

#endif
