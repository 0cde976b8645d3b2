/* Open-addressing hash map (see map.h). Deletion uses backward-shift so no tombstones build up.
 * Each slot keeps the full hash, so probes compare keys only on a hash match. */
#include "base/map.h"

#include "base/err.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
  uint64_t hash; /* 0 means empty; real hashes are forced non-zero */
  void *key;
  size_t klen;
  void *value;
} slot;

struct pl_map {
  slot *slots;
  size_t cap; /* power of two */
  size_t count;
};

static inline uint64_t rd64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t mix(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint64_t pl_hash64(const void *data, size_t n, uint64_t seed) {
  const uint8_t *p = data;
  const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  uint64_t h = seed ^ mix(seed ^ k0, k1) ^ n;
  while (n >= 16) {
    h = mix(rd64(p) ^ k1, rd64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = rd64(p);
    b = rd64(p + n - 8);
  } else if (n > 0) {
    for (size_t i = 0; i < n; i++) a |= (uint64_t)p[i] << (8 * i);
  }
  return mix(a ^ k2 ^ h, b ^ k1) ^ h;
}

pl_map *pl_map_new(void) {
  pl_map *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cap = 16;
  m->slots = calloc(m->cap, sizeof(slot));
  if (!m->slots) {
    free(m);
    return NULL;
  }
  return m;
}

void pl_map_free(pl_map *m) {
  if (!m) return;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].hash) free(m->slots[i].key);
  free(m->slots);
  free(m);
}

size_t pl_map_count(const pl_map *m) {
  return m->count;
}

static uint64_t key_hash(const void *key, size_t klen) {
  uint64_t h = pl_hash64(key, klen, 0x9e3779b97f4a7c15ull);
  return h ? h : 1;
}

static slot *find(const pl_map *m, const void *key, size_t klen, uint64_t h) {
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    slot *s = &m->slots[i];
    if (!s->hash) return NULL;
    if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) return s;
  }
}

void *pl_map_get(const pl_map *m, const void *key, size_t klen) {
  slot *s = find(m, key, klen, key_hash(key, klen));
  return s ? s->value : NULL;
}

static void place(slot *slots, size_t cap, slot in) {
  size_t mask = cap - 1;
  size_t i = in.hash & mask;
  while (slots[i].hash) i = (i + 1) & mask;
  slots[i] = in;
}

static int grow(pl_map *m) {
  size_t cap = m->cap * 2;
  slot *slots = calloc(cap, sizeof(slot));
  if (!slots) return PL_ENOMEM;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].hash) place(slots, cap, m->slots[i]);
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

int pl_map_put(pl_map *m, const void *key, size_t klen, void *value, void **old) {
  uint64_t h = key_hash(key, klen);
  slot *s = find(m, key, klen, h);
  if (s) {
    if (old) *old = s->value;
    s->value = value;
    return 0;
  }
  if ((m->count + 1) * 8 > m->cap * 7) {
    int rc = grow(m);
    if (rc < 0) return rc;
  }
  void *k = malloc(klen ? klen : 1);
  if (!k) return PL_ENOMEM;
  if (klen) memcpy(k, key, klen);
  place(m->slots, m->cap, (slot){h, k, klen, value});
  m->count++;
  if (old) *old = NULL;
  return 0;
}

void *pl_map_del(pl_map *m, const void *key, size_t klen) {
  uint64_t h = key_hash(key, klen);
  slot *s = find(m, key, klen, h);
  if (!s) return NULL;
  void *value = s->value;
  free(s->key);
  size_t mask = m->cap - 1;
  size_t i = (size_t)(s - m->slots);
  /* Backward-shift: pull later entries of the probe run into the hole when their home slot
   * does not lie cyclically in (hole, j]. */
  for (size_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
    size_t home = m->slots[j].hash & mask;
    int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i] = (slot){0};
  m->count--;
  return value;
}

int pl_map_next(const pl_map *m, size_t *it, const void **key, size_t *klen, void **value) {
  for (size_t i = *it; i < m->cap; i++) {
    if (m->slots[i].hash) {
      *key = m->slots[i].key;
      *klen = m->slots[i].klen;
      *value = m->slots[i].value;
      *it = i + 1;
      return 1;
    }
  }
  *it = m->cap;
  return 0;
}
