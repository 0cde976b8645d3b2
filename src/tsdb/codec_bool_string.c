/* Bool and string column codecs of the chunk codec (codec.c): bools as a bit stream, one
 * constant or runs; strings as a dictionary, zstd-compressed or plain. The conventions (byte
 * order, varints, bit streams) are in codec.c.
 *
 * BOOL CODEC, n values
 *   u8 mode 0: bit stream of n bits; mode 1: u8 value (0 or 1), all equal; mode 2: u8 first
 *   value (0 or 1), then uvarint run lengths (>= 1, summing to n) of alternating values.
 *
 * STRING CODEC, n values
 *   u8 mode 0, dictionary: uvarint count (1..256), count times (uvarint len, len bytes), then a
 *     bit stream of n indices (< count) of bit_len(count - 1) bits each.
 *   u8 mode 1, zstd: uvarint raw_len (<= TSDB_CHUNK_BYTES_MAX), then zstd frames that
 *     decompress to exactly raw_len bytes: the mode 2 payload.
 *   u8 mode 2, plain: n uvarint lengths, then the n strings' bytes back to back.
 *
 * Every decoder consumes exactly the bytes it was given; anything else is PL_ECORRUPT.
 */
#include "tsdb/codec_int.h"

#include <stdlib.h>
#include <zstd.h>

/* ---- bool codec ----------------------------------------------------------------------------- */

int tsdb_codec_bool_encode(const uint8_t *v, size_t n, pl_buf *out) {
  int rc;
  if (!out || (n && !v) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return 0;
  size_t runs_bytes = 2, run = 1, n_runs = 1;
  for (size_t i = 1; i < n; i++) {
    if (!v[i] == !v[i - 1]) {
      run++;
    } else {
      runs_bytes += uvarint_len(run);
      run = 1;
      n_runs++;
    }
  }
  runs_bytes += uvarint_len(run);
  size_t bitmap_bytes = 1 + bits_to_bytes(n), start = out->len;
  if ((rc = pl_buf_reserve(out, (runs_bytes < bitmap_bytes ? runs_bytes : bitmap_bytes) + 8)) < 0)
    return rc;
  uint8_t *dst = out->data + start;
  if (n_runs == 1) {
    dst[0] = 1;
    dst[1] = v[0] ? 1 : 0;
    out->len += 2;
  } else if (runs_bytes < bitmap_bytes) {
    size_t pos = 0;
    dst[pos++] = 2;
    dst[pos++] = v[0] ? 1 : 0;
    run = 1;
    for (size_t i = 1; i < n; i++) {
      if (!v[i] == !v[i - 1]) {
        run++;
      } else {
        put_uvarint_at(dst, &pos, run);
        run = 1;
      }
    }
    put_uvarint_at(dst, &pos, run);
    out->len += pos;
  } else {
    dst[0] = 0;
    memset(dst + 1, 0, bitmap_bytes - 1);
    for (size_t i = 0; i < n; i++)
      dst[1 + i / 8] |= (uint8_t)((v[i] ? 1u : 0u) << (i % 8));
    out->len += bitmap_bytes;
  }
  return 0;
}

int tsdb_codec_bool_decode(const uint8_t *p, size_t len, size_t n, uint8_t *out) {
  if ((!p && len) || (n && !out) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return len == 0 ? 0 : PL_ECORRUPT;
  if (len < 2)
    return PL_ECORRUPT;
  switch (p[0]) {
  case 0:
    if (len != 1 + bits_to_bytes(n))
      return PL_ECORRUPT;
    if (n % 8 && p[len - 1] >> (n % 8))
      return PL_ECORRUPT;
    for (size_t i = 0; i < n; i++)
      out[i] = (p[1 + i / 8] >> (i % 8)) & 1;
    return 0;
  case 1:
    if (len != 2 || p[1] > 1)
      return PL_ECORRUPT;
    memset(out, p[1], n);
    return 0;
  case 2: {
    size_t pos = 2, done = 0;
    uint8_t val = p[1];
    uint64_t run;
    if (val > 1)
      return PL_ECORRUPT;
    while (done < n) {
      RD(get_uvarint(p, len, &pos, &run));
      if (run == 0 || run > n - done)
        return PL_ECORRUPT;
      memset(out + done, val, run);
      done += run;
      val ^= 1;
    }
    return pos == len ? 0 : PL_ECORRUPT;
  }
  default: return PL_ECORRUPT;
  }
}

/* ---- string codec --------------------------------------------------------------------------- */

#define DICT_MAX 256
#define DICT_SLOTS 512 /* open addressing, at most half full */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3u;
  return h;
}

/* Fills idx[i] with the dictionary index of string i and first[] with the row of each
 * entry's first occurrence; returns the number of entries, or 0 when there are more than
 * DICT_MAX distinct strings. */
static size_t dict_build(const char *const *s, const uint32_t *lens, size_t n, uint8_t *idx,
                         uint32_t *first) {
  int16_t slot[DICT_SLOTS];
  size_t count = 0;
  memset(slot, 0xff, sizeof slot);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *str = (const uint8_t *)s[i];
    size_t h = (size_t)(hash_bytes(str, lens[i]) % DICT_SLOTS);
    for (;;) {
      if (slot[h] < 0) {
        if (count == DICT_MAX)
          return 0;
        slot[h] = (int16_t)count;
        first[count] = (uint32_t)i;
        idx[i] = (uint8_t)count++;
        break;
      }
      uint32_t f = first[slot[h]];
      if (lens[f] == lens[i] && (lens[i] == 0 || memcmp(s[f], str, lens[i]) == 0)) {
        idx[i] = (uint8_t)slot[h];
        break;
      }
      h = (h + 1) % DICT_SLOTS;
    }
  }
  return count;
}

static int string_plain_payload(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out) {
  int rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = pl_buf_put_uvarint(out, lens[i])) < 0)
      return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = pl_buf_append(out, s[i], lens[i])) < 0)
      return rc;
  return 0;
}

static int string_encode(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out) {
  int rc = 0;
  size_t total = 0, plain = 0;
  for (size_t i = 0; i < n; i++) {
    if (lens[i] && !s[i])
      return PL_EINVAL;
    total += lens[i];
    plain += uvarint_len(lens[i]);
    if (total > TSDB_CHUNK_BYTES_MAX)
      return PL_ELIMIT;
  }
  plain += total;

  uint8_t *idx = malloc(n);
  uint32_t first[DICT_MAX];
  if (!idx)
    return PL_ENOMEM;
  size_t count = dict_build(s, lens, n, idx, first), dict = SIZE_MAX;
  unsigned w = count ? bit_len(count - 1) : 0;
  if (count) {
    dict = uvarint_len(count) + bits_to_bytes(n * w);
    for (size_t k = 0; k < count; k++)
      dict += uvarint_len(lens[first[k]]) + lens[first[k]];
  }

  /* zstd only pays when there is something to squeeze. */
  pl_buf raw, z;
  pl_buf_init(&raw, 0);
  pl_buf_init(&z, 0);
  size_t zsize = SIZE_MAX;
  if (plain >= 64 && (dict == SIZE_MAX || dict > 64)) {
    size_t bound = ZSTD_compressBound(plain);
    if ((rc = string_plain_payload(s, lens, n, &raw)) < 0 || (rc = pl_buf_reserve(&z, bound)) < 0)
      goto done;
    size_t c = ZSTD_compress(z.data, bound, raw.data, raw.len, 3);
    if (!ZSTD_isError(c)) {
      z.len = c;
      zsize = uvarint_len(plain) + c;
    }
  }

  if (dict <= plain && dict <= zsize) {
    if ((rc = pl_buf_append_byte(out, 0)) < 0 || (rc = pl_buf_put_uvarint(out, count)) < 0)
      goto done;
    for (size_t k = 0; k < count; k++) {
      uint32_t f = first[k];
      if ((rc = pl_buf_put_uvarint(out, lens[f])) < 0 ||
          (rc = pl_buf_append(out, s[f], lens[f])) < 0)
        goto done;
    }
    if ((rc = pl_buf_reserve(out, bits_to_bytes(n * w) + 8)) < 0)
      goto done;
    bitw bw = {out->data + out->len, 0, 0};
    for (size_t i = 0; i < n; i++)
      bitw_put(&bw, idx[i], w);
    out->len = (size_t)(bitw_finish(&bw) - out->data);
  } else if (zsize < plain) {
    if ((rc = pl_buf_append_byte(out, 1)) < 0 || (rc = pl_buf_put_uvarint(out, plain)) < 0 ||
        (rc = pl_buf_append(out, z.data, z.len)) < 0)
      goto done;
  } else {
    if ((rc = pl_buf_append_byte(out, 2)) < 0)
      goto done;
    rc = string_plain_payload(s, lens, n, out);
  }
done:
  free(idx);
  pl_buf_free(&raw);
  pl_buf_free(&z);
  return rc;
}

int tsdb_codec_string_encode(const char *const *s, const uint32_t *lens, size_t n, pl_buf *out) {
  if (!out || (n && (!s || !lens)) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return 0;
  size_t start = out->len;
  int rc = string_encode(s, lens, n, out);
  if (rc < 0)
    out->len = start;
  return rc;
}

/* Parses a plain payload (mode 2) at p[0..len) whose bytes stay where they are: s[] points
 * into p. */
static int plain_parse(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens) {
  size_t pos = 0, total = 0;
  uint64_t l;
  for (size_t i = 0; i < n; i++) {
    RD(get_uvarint(p, len, &pos, &l));
    if (l > len || l > UINT32_MAX)
      return PL_ECORRUPT;
    lens[i] = (uint32_t)l;
    total += l;
    if (total > len)
      return PL_ECORRUPT;
  }
  if (len - pos != total)
    return PL_ECORRUPT;
  for (size_t i = 0; i < n; i++) {
    s[i] = lens[i] ? (const char *)p + pos : "";
    pos += lens[i];
  }
  return 0;
}

static int string_decode(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens,
                         pl_buf *arena) {
  int rc;
  size_t pos = 1;
  uint64_t v;
  switch (p[0]) {
  case 0: {
    size_t off[DICT_MAX];
    uint32_t dlen[DICT_MAX];
    size_t dict_bytes = 0;
    RD(get_uvarint(p, len, &pos, &v));
    if (v == 0 || v > DICT_MAX)
      return PL_ECORRUPT;
    size_t count = (size_t)v;
    for (size_t k = 0; k < count; k++) {
      RD(get_uvarint(p, len, &pos, &v));
      if (v > len - pos)
        return PL_ECORRUPT;
      off[k] = pos;
      dlen[k] = (uint32_t)v;
      pos += (size_t)v;
      dict_bytes += (size_t)v;
    }
    unsigned w = bit_len(count - 1);
    if (len - pos != bits_to_bytes(n * w))
      return PL_ECORRUPT;
    /* Reserving first keeps arena->data still while we append and take pointers. */
    if ((rc = pl_buf_reserve(arena, dict_bytes)) < 0)
      return rc;
    const char *entry[DICT_MAX];
    for (size_t k = 0; k < count; k++) {
      entry[k] = dlen[k] ? (const char *)arena->data + arena->len : "";
      pl_buf_append(arena, p + off[k], dlen[k]); /* reserved */
    }
    bitr r;
    bitr_init(&r, p + pos, len - pos);
    for (size_t i = 0; i < n; i++) {
      uint64_t k = 0;
      if (w)
        RD(bitr_get(&r, w, &k));
      if (k >= count)
        return PL_ECORRUPT;
      s[i] = entry[k];
      lens[i] = dlen[k];
    }
    return 0;
  }
  case 1: {
    RD(get_uvarint(p, len, &pos, &v));
    if (v > TSDB_CHUNK_BYTES_MAX)
      return PL_ECORRUPT;
    size_t raw_len = (size_t)v;
    if ((rc = pl_buf_reserve(arena, raw_len)) < 0)
      return rc;
    uint8_t *dst = arena->data + arena->len;
    size_t got = ZSTD_decompress(dst, raw_len, p + pos, len - pos);
    if (ZSTD_isError(got) || got != raw_len)
      return PL_ECORRUPT;
    if ((rc = plain_parse(dst, raw_len, n, s, lens)) < 0)
      return rc;
    arena->len += raw_len;
    return 0;
  }
  case 2: {
    if ((rc = plain_parse(p + 1, len - 1, n, s, lens)) < 0)
      return rc;
    /* Copy the bytes (they follow the lengths) and move the pointers into the arena. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
      total += lens[i];
    if ((rc = pl_buf_reserve(arena, total)) < 0)
      return rc;
    const uint8_t *src = p + len - total;
    uint8_t *dst = arena->data + arena->len;
    if (total)
      memcpy(dst, src, total);
    for (size_t i = 0; i < n; i++)
      if (lens[i])
        s[i] = (const char *)dst + ((const uint8_t *)s[i] - src);
    arena->len += total;
    return 0;
  }
  default: return PL_ECORRUPT;
  }
}

int tsdb_codec_string_decode(const uint8_t *p, size_t len, size_t n, const char **s, uint32_t *lens,
                             pl_buf *arena) {
  if ((!p && len) || (n && (!s || !lens || !arena)) || n > TSDB_CHUNK_POINTS_MAX)
    return PL_EINVAL;
  if (n == 0)
    return len == 0 ? 0 : PL_ECORRUPT;
  if (len < 1)
    return PL_ECORRUPT;
  size_t start = arena->len;
  int rc = string_decode(p, len, n, s, lens, arena);
  if (rc < 0)
    arena->len = start;
  return rc;
}
