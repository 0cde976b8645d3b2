/* UTF-8 decoding (see utf8.h). */
#include "base/utf8.h"

size_t pl_utf8_decode(const void *s, size_t left, uint32_t *cp) {
  const unsigned char *p = s;
  unsigned c = p[0];
  uint32_t v, min;
  size_t n;
  if (c < 0x80) {
    if (cp)
      *cp = c;
    return 1;
  }
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2, v = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3, v = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n > left)
    return 0;
  for (size_t k = 1; k < n; k++) {
    if ((p[k] & 0xc0) != 0x80)
      return 0;
    v = v << 6 | (p[k] & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
    return 0;
  if (cp)
    *cp = v;
  return n;
}
