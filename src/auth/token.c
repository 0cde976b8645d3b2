/* Tokens: "plt_" (API), "pls_" (session) and "pld_" (device) followed by 32 random bytes in
 * base64url without padding (43 characters), 47 characters in all. Only the BLAKE2b-256 hash
 * of the whole string is stored; the visible prefix is the kind plus the first 8 characters of
 * the random part ("plt_AbCdEfGh"), which identifies a token in lists and logs without
 * weakening it (232 bits stay secret). */
#include "auth/auth_int.h"

#include <sodium.h>
#include <string.h>

#define TOKEN_RANDOM_BYTES 32
#define TOKEN_KIND_CHARS 4
#define TOKEN_PREFIX_CHARS (TOKEN_KIND_CHARS + 8)

_Static_assert(TOKEN_KIND_CHARS + 43 == AUTH_TOKEN_LEN, "token length");
_Static_assert(AUTH_TOKEN_LEN < AUTH_TOKEN_MAX, "token buffer");

static const char *const kind_prefix[] = {
    [AUTH_TOKEN_API] = "plt_",
    [AUTH_TOKEN_SESSION] = "pls_",
    [AUTH_TOKEN_DEVICE] = "pld_",
};

int auth_token_new(auth_token_kind kind, char token[AUTH_TOKEN_MAX], char prefix[16],
                   uint8_t hash[32]) {
  if ((int)kind < AUTH_TOKEN_API || kind > AUTH_TOKEN_DEVICE)
    return PL_EINVAL;
  int rc = auth__sodium_ready();
  if (rc < 0)
    return rc;
  uint8_t raw[TOKEN_RANDOM_BYTES];
  char text[AUTH_TOKEN_MAX];
  randombytes_buf(raw, sizeof raw);
  memcpy(text, kind_prefix[kind], TOKEN_KIND_CHARS);
  sodium_bin2base64(text + TOKEN_KIND_CHARS, sizeof text - TOKEN_KIND_CHARS, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  auth_token_hash(text, AUTH_TOKEN_LEN, hash);
  memcpy(prefix, text, TOKEN_PREFIX_CHARS);
  prefix[TOKEN_PREFIX_CHARS] = 0;
  memcpy(token, text, AUTH_TOKEN_LEN + 1);
  sodium_memzero(text, sizeof text);
  return 0;
}

void auth_token_hash(const char *token, size_t len, uint8_t hash[32]) {
  crypto_generichash(hash, 32, (const unsigned char *)token, len, NULL, 0);
}

/* The value of a base64url symbol, or -1. */
static int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

int auth_token_kind_of(const char *token) {
  if (!token || strnlen(token, AUTH_TOKEN_LEN + 1) != AUTH_TOKEN_LEN)
    return PL_EINVAL;
  int kind = -1;
  for (int k = AUTH_TOKEN_API; k <= AUTH_TOKEN_DEVICE; k++)
    if (memcmp(token, kind_prefix[k], TOKEN_KIND_CHARS) == 0)
      kind = k;
  if (kind < 0)
    return PL_EINVAL;
  int v = 0;
  for (int i = TOKEN_KIND_CHARS; i < AUTH_TOKEN_LEN; i++)
    if ((v = b64url_value((unsigned char)token[i])) < 0)
      return PL_EINVAL;
  /* 43 symbols carry 258 bits for 256: the last symbol's two low bits are zero in the only
   * encoding auth_token_new produces. */
  if (v & 3)
    return PL_EINVAL;
  return kind;
}
