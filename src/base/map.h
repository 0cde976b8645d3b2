/* A hash map from byte-string keys to pointer values: open addressing with linear probing and
 * stored hashes, grown at 7/8 load. The map copies keys; it borrows values (the caller frees
 * them, e.g. while iterating before pl_map_free). Not thread-safe: owners lock around it. */
#ifndef PLATEAU_BASE_MAP_H
#define PLATEAU_BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl_map pl_map;

/* A fast 64-bit hash of n bytes (not cryptographic: keys from outside input are bounded in
 * length and count by their callers). */
uint64_t pl_hash64(const void *data, size_t n, uint64_t seed);

pl_map *pl_map_new(void);
void pl_map_free(pl_map *m);
size_t pl_map_count(const pl_map *m);
/* Returns the value or NULL. */
void *pl_map_get(const pl_map *m, const void *key, size_t klen);
/* Inserts or replaces. If old is non-NULL it receives the replaced value (or NULL).
 * Returns 0 or PL_ENOMEM (then the map is unchanged). */
int pl_map_put(pl_map *m, const void *key, size_t klen, void *value, void **old);
/* Removes; returns the removed value or NULL. */
void *pl_map_del(pl_map *m, const void *key, size_t klen);

/* Iteration: `size_t it = 0; const void *k; size_t kl; void *v;
 * while (pl_map_next(m, &it, &k, &kl, &v)) {...}`. The map must not change meanwhile. */
int pl_map_next(const pl_map *m, size_t *it, const void **key, size_t *klen, void **value);

#endif
