/* File-system helpers (see fs.h). */
#include "base/fs.h"

#include "base/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int pl_fs_mkdir_p(const char *path, mode_t mode) {
  char tmp[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp) return PL_EINVAL;
  memcpy(tmp, path, n + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, mode) < 0 && errno != EEXIST) return PL_EIO;
      *p = '/';
    }
  }
  if (mkdir(tmp, mode) < 0 && errno != EEXIST) return PL_EIO;
  return 0;
}

int pl_fs_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PL_EIO;
  int rc = fsync(fd) < 0 ? PL_EIO : 0;
  close(fd);
  return rc;
}

int pl_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode) {
  char tmp[4096], dir[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) return PL_EINVAL;
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return PL_EINVAL;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return PL_EIO;
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      goto fail;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fchmod(fd, mode) < 0 || fsync(fd) < 0) goto fail;
  if (close(fd) < 0) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) < 0) goto fail;
  return pl_fs_fsync_dir(dirname(dir));
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  return PL_EIO;
}

int pl_fs_read_file(const char *path, size_t max_bytes, pl_buf *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? PL_ENOTFOUND : PL_EIO;
  size_t total = 0;
  int rc = 0;
  for (;;) {
    uint8_t chunk[16384];
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      rc = PL_EIO;
      break;
    }
    if (r == 0) break;
    total += (size_t)r;
    if (total > max_bytes) {
      rc = PL_ELIMIT;
      break;
    }
    if ((rc = pl_buf_append(out, chunk, (size_t)r)) < 0) break;
  }
  close(fd);
  return rc;
}

int pl_fs_lock(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return PL_EIO;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int busy = errno == EWOULDBLOCK;
    close(fd);
    return busy ? PL_EBUSY : PL_EIO;
  }
  return fd;
}

int pl_fs_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}
