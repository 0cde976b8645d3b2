/* File-system helpers with the durability rules of STYLE.md: atomic replacement fsyncs the file
 * and then its directory; reads are bounded. */
#ifndef PLATEAU_BASE_FS_H
#define PLATEAU_BASE_FS_H

#include "base/buf.h"

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p with the given mode for created directories. 0 or PL_EIO. */
int pl_fs_mkdir_p(const char *path, mode_t mode);
/* fsync a directory so a created or renamed entry in it is durable. */
int pl_fs_fsync_dir(const char *dir);
/* Writes data to path atomically: a temporary file in the same directory with `mode`, fsync,
 * rename, fsync of the directory. 0 or PL_EIO. */
int pl_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Reads a whole file into out (appending), failing with PL_ELIMIT past max_bytes,
 * PL_ENOTFOUND when it does not exist, PL_EIO otherwise. */
int pl_fs_read_file(const char *path, size_t max_bytes, pl_buf *out);
/* Takes an exclusive, non-blocking lock on path (created 0600) for the life of the process.
 * Returns the fd (keep it open) or PL_EBUSY when another process holds it, PL_EIO otherwise. */
int pl_fs_lock(const char *path);
int pl_fs_exists(const char *path);

#endif
