/* The tamper-evident audit log: a keyed hash chain over the rows of the store's audit table.
 *
 * Key file: exactly 32 random bytes, mode 0600, outside the database (whoever can rewrite the
 * database but not read the key cannot forge a consistent chain). It is created once, by
 * writing a temporary file opened with O_CREAT|O_EXCL and mode 0600, fsyncing it, hard-linking
 * it to the final name (link() fails if the name exists, so two processes creating at once end
 * up sharing whichever key was published first, and nobody ever reads a half-written key),
 * removing the temporary name and fsyncing the directory.
 *
 * Record hash (format 1):
 *
 *   hash = BLAKE2b-256(key = the 32-byte key,
 *                      message = prev_hash (32 bytes) || record bytes)
 *
 *   record bytes = 0x01                      format version
 *                  u64le(seq)
 *                  u64le(ts_ms)              two's complement
 *                  str(actor)
 *                  u64le(tenant_id)          two's complement
 *                  str(action)
 *                  str(target)
 *                  str(result)
 *                  str(detail)
 *                  str(source)
 *                  str(remote)
 *   str(s)       = u32le(byte length of s) || the bytes of s (no NUL)
 *
 * Every field has a fixed width or a length in front of it, so the encoding is injective: two
 * different records never produce the same bytes (moving text from one field to the next
 * changes a length). prev_hash is the previous record's hash, 32 zero bytes for seq 1.
 *
 * Verification walks the rows in seq order and requires, for each: seq = previous seq + 1
 * (starting at 1), prev_hash = the previous row's stored hash, and hash = the recomputed
 * value. The first row failing any check is reported. An edited row fails its own hash; a
 * deleted row makes the next one fail the seq check (and its link); a re-keyed chain fails at
 * seq 1. Cutting rows off the end leaves a shorter valid chain: detecting that needs the last
 * seq and hash kept elsewhere (a backup, or an anchor published outside the platform).
 */
#include "auth/auth_int.h"

#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"

#define AUDIT_KEY_BYTES 32
#define AUDIT_FORMAT 1
/* Attempts of one append when the database stays busy past the busy timeout. */
#define AUDIT_APPEND_ATTEMPTS 4

struct auth_audit {
  uint8_t key[AUDIT_KEY_BYTES];
};

/* ---- key file ---- */

static int read_key(const char *path, uint8_t key[AUDIT_KEY_BYTES], pl_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return pl_err_set(err, PL_ENOTFOUND, "audit key %s does not exist", path);
    return pl_err_set(err, PL_EIO, "opening audit key %s: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return pl_err_set(err, PL_EIO, "stat of audit key %s: %s", path, strerror(errno));
  }
  if (st.st_size != AUDIT_KEY_BYTES) {
    close(fd);
    return pl_err_set(err, PL_ECORRUPT, "audit key %s has %lld bytes, expected %d", path,
                      (long long)st.st_size, AUDIT_KEY_BYTES);
  }
  if (st.st_mode & 077)
    PL_LOG(PL_LOG_WARN, "auth", "audit key file is readable by others path=%s mode=%03o", path,
           (unsigned)(st.st_mode & 0777));
  size_t got = 0;
  while (got < AUDIT_KEY_BYTES) {
    ssize_t r = read(fd, key + got, AUDIT_KEY_BYTES - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      close(fd);
      sodium_memzero(key, AUDIT_KEY_BYTES);
      return pl_err_set(err, PL_EIO, "reading audit key %s", path);
    }
    got += (size_t)r;
  }
  close(fd);
  return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Creates the key file as described at the top. PL_EEXIST when another process won. */
static int create_key(const char *path, uint8_t key[AUDIT_KEY_BYTES], pl_err *err) {
  char tmp[4096], dir[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%08x", path, (long)getpid(), randombytes_random()) >=
          (int)sizeof tmp ||
      snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
    return pl_err_set(err, PL_EINVAL, "audit key path too long");
  randombytes_buf(key, AUDIT_KEY_BYTES);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return pl_err_set(err, PL_EIO, "creating %s: %s", tmp, strerror(errno));
  if (write_all(fd, key, AUDIT_KEY_BYTES) < 0 || fsync(fd) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return pl_err_set(err, PL_EIO, "writing audit key: %s", strerror(e));
  }
  if (close(fd) < 0) {
    unlink(tmp);
    return pl_err_set(err, PL_EIO, "writing audit key: %s", strerror(errno));
  }
  int linked = link(tmp, path);
  int link_errno = errno;
  unlink(tmp);
  if (linked < 0) {
    sodium_memzero(key, AUDIT_KEY_BYTES);
    if (link_errno == EEXIST)
      return PL_EEXIST;
    return pl_err_set(err, PL_EIO, "publishing audit key %s: %s", path, strerror(link_errno));
  }
  if (pl_fs_fsync_dir(dirname(dir)) < 0)
    return pl_err_set(err, PL_EIO, "fsync of the directory of %s failed", path);
  PL_LOG(PL_LOG_INFO, "auth", "created audit key path=%s", path);
  return 0;
}

int auth_audit_open(const char *key_path, int create, auth_audit **out, pl_err *err) {
  if (!key_path || !out)
    return pl_err_set(err, PL_EINVAL, "no audit key path");
  if (auth__sodium_ready() < 0)
    return pl_err_set(err, PL_EIO, "libsodium failed to initialise");
  uint8_t key[AUDIT_KEY_BYTES];
  int rc = read_key(key_path, key, err);
  if (rc == PL_ENOTFOUND && create) {
    rc = create_key(key_path, key, err);
    if (rc == PL_EEXIST)
      rc = read_key(key_path, key, err);
  }
  if (rc < 0)
    return rc;
  /* sodium_malloc: guarded pages, kept out of swap where possible, wiped by sodium_free. */
  auth_audit *a = sodium_malloc(sizeof *a);
  if (!a) {
    sodium_memzero(key, sizeof key);
    return pl_err_set(err, PL_ENOMEM, "out of memory");
  }
  memcpy(a->key, key, sizeof key);
  sodium_memzero(key, sizeof key);
  *out = a;
  return 0;
}

void auth_audit_free(auth_audit *a) {
  if (a)
    sodium_free(a);
}

/* ---- record hash ---- */

static void put_u64(crypto_generichash_state *h, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  crypto_generichash_update(h, b, sizeof b);
}

/* A field of a fixed buffer; callers have checked that it is NUL-terminated inside it. */
static void put_str(crypto_generichash_state *h, const char *s, size_t bufsz) {
  size_t n = strnlen(s, bufsz);
  uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
  crypto_generichash_update(h, len, sizeof len);
  crypto_generichash_update(h, (const uint8_t *)s, n);
}

#define PUT_STR(h, field) put_str((h), (field), sizeof(field))

static void record_hash(const auth_audit *a, const store_audit *r, uint8_t out[32]) {
  crypto_generichash_state h;
  const uint8_t format = AUDIT_FORMAT;
  crypto_generichash_init(&h, a->key, sizeof a->key, 32);
  crypto_generichash_update(&h, r->prev_hash, 32);
  crypto_generichash_update(&h, &format, 1);
  put_u64(&h, (uint64_t)r->seq);
  put_u64(&h, (uint64_t)r->ts_ms);
  PUT_STR(&h, r->actor);
  put_u64(&h, (uint64_t)r->tenant_id);
  PUT_STR(&h, r->action);
  PUT_STR(&h, r->target);
  PUT_STR(&h, r->result);
  PUT_STR(&h, r->detail);
  PUT_STR(&h, r->source);
  PUT_STR(&h, r->remote);
  crypto_generichash_final(&h, out, 32);
  sodium_memzero(&h, sizeof h);
}

#define TERMINATED(field) (memchr((field), 0, sizeof(field)) != NULL)

static int record_strings_valid(const store_audit *r) {
  return TERMINATED(r->actor) && TERMINATED(r->action) && TERMINATED(r->target) &&
         TERMINATED(r->result) && TERMINATED(r->detail) && TERMINATED(r->source) &&
         TERMINATED(r->remote);
}

/* ---- append ---- */

static void backoff(int attempt) {
  long ms = 20L * (attempt + 1) + (long)randombytes_uniform(20);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One try: read the chain's end, link and hash the record, insert it. Runs inside a
 * transaction that holds the write lock, so no other appender can slip in between. */
static int append_locked(auth_audit *a, store *s, store_audit *r) {
  int64_t last_seq;
  int rc = store_audit_last(s, &last_seq, r->prev_hash);
  if (rc < 0)
    return rc;
  r->seq = last_seq + 1;
  record_hash(a, r, r->hash);
  return store_audit_insert(s, r);
}

int auth_audit_append(auth_audit *a, store *s, store_audit *rec) {
  if (!a || !s || !rec || !record_strings_valid(rec))
    return PL_EINVAL;
  store_audit r = *rec;
  if (r.ts_ms == 0)
    r.ts_ms = pl_now_ms();
  int rc;
  if (store_in_transaction(s)) {
    /* The caller's transaction (BEGIN IMMEDIATE) already serialises us; the record commits or
     * rolls back together with the change it describes. */
    rc = append_locked(a, s, &r);
  } else {
    for (int attempt = 0;; attempt++) {
      rc = store_begin(s);
      if (rc == 0) {
        rc = append_locked(a, s, &r);
        if (rc == 0)
          rc = store_commit(s);
        if (rc < 0)
          store_rollback(s);
      }
      if (rc != PL_EBUSY || attempt + 1 >= AUDIT_APPEND_ATTEMPTS)
        break;
      backoff(attempt);
    }
  }
  if (rc < 0)
    return rc;
  *rec = r;
  return 0;
}

/* ---- verify ---- */

typedef struct verify_state {
  auth_audit *a;
  int64_t next_seq;
  uint8_t prev_hash[32];
  int64_t count;
  int64_t bad_seq;
  pl_err *err;
} verify_state;

static int verify_record(void *ctx, const store_audit *r) {
  verify_state *v = ctx;
  if (r->seq != v->next_seq) {
    /* The first broken record is the first one missing. */
    v->bad_seq = v->next_seq;
    if (r->seq == v->next_seq + 1)
      return pl_err_set(v->err, PL_ECORRUPT, "record %lld is missing (record %lld follows record %lld)",
                        (long long)v->next_seq, (long long)r->seq, (long long)(v->next_seq - 1));
    return pl_err_set(v->err, PL_ECORRUPT, "records %lld to %lld are missing (record %lld follows record %lld)",
                      (long long)v->next_seq, (long long)(r->seq - 1), (long long)r->seq,
                      (long long)(v->next_seq - 1));
  }
  if (sodium_memcmp(r->prev_hash, v->prev_hash, 32) != 0) {
    v->bad_seq = r->seq;
    return pl_err_set(v->err, PL_ECORRUPT, "record %lld does not link to the record before it",
                      (long long)r->seq);
  }
  uint8_t want[32];
  record_hash(v->a, r, want);
  if (sodium_memcmp(want, r->hash, 32) != 0) {
    v->bad_seq = r->seq;
    return pl_err_set(v->err, PL_ECORRUPT,
                      "record %lld does not match its hash: edited, or written with another key",
                      (long long)r->seq);
  }
  memcpy(v->prev_hash, r->hash, 32);
  v->next_seq = r->seq + 1;
  v->count++;
  return 0;
}

int auth_audit_verify(auth_audit *a, store *s, int64_t *count, int64_t *first_bad, pl_err *err) {
  if (!a || !s)
    return pl_err_set(err, PL_EINVAL, "no audit key or store");
  verify_state v = {.a = a, .next_seq = 1, .err = err};
  /* One SELECT reads one snapshot (WAL), so appends running meanwhile cannot confuse it. */
  int rc = store_audit_scan(s, verify_record, &v);
  if (rc == PL_ECORRUPT && v.bad_seq) {
    if (first_bad)
      *first_bad = v.bad_seq;
    return rc;
  }
  if (rc < 0)
    return pl_err_set(err, rc, "reading the audit log: %s", pl_strerror(rc));
  if (count)
    *count = v.count;
  return 0;
}
