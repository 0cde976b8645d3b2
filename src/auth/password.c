/* Passwords: Argon2id through libsodium's crypto_pwhash_str (the self-describing
 * "$argon2id$v=19$m=...,t=...,p=1$salt$hash" string, with a random salt), interactive limits,
 * and generated passwords for `plateau init`. Passwords never reach a log. */
#include "auth/auth_int.h"

#include <sodium.h>
#include <string.h>

_Static_assert(crypto_pwhash_STRBYTES == AUTH_HASH_STR_MAX, "hash string buffer size");

int auth__sodium_ready(void) {
  return sodium_init() < 0 ? PL_EIO : 0;
}

int auth_password_hash(const char *password, char out[AUTH_HASH_STR_MAX]) {
  if (!password)
    return PL_EINVAL;
  size_t n = strnlen(password, AUTH_PASSWORD_MAX + 1);
  if (n < AUTH_PASSWORD_MIN || n > AUTH_PASSWORD_MAX)
    return PL_EINVAL;
  int rc = auth__sodium_ready();
  if (rc < 0)
    return rc;
  char hash[crypto_pwhash_STRBYTES];
  /* crypto_pwhash_str fails only when it cannot allocate the memory Argon2 asks for. */
  if (crypto_pwhash_str(hash, password, n, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return PL_ENOMEM;
  memcpy(out, hash, sizeof hash);
  return 0;
}

int auth_password_verify(const char *hash, const char *password) {
  if (!hash || !password)
    return PL_EAUTH;
  if (strnlen(hash, AUTH_HASH_STR_MAX) == AUTH_HASH_STR_MAX)
    return PL_EAUTH;
  /* Over-long input is refused before Argon2 runs, so it cannot be used to burn CPU. */
  size_t n = strnlen(password, AUTH_PASSWORD_MAX + 1);
  if (n > AUTH_PASSWORD_MAX)
    return PL_EAUTH;
  if (auth__sodium_ready() < 0)
    return PL_EAUTH;
  return crypto_pwhash_str_verify(hash, password, n) == 0 ? 0 : PL_EAUTH;
}

void auth_password_generate(char out[32]) {
  /* No 0/O, 1/l/I: easy to read aloud and to type from a terminal. 56 symbols, 20 of them:
   * about 116 bits. */
  static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const uint32_t count = (uint32_t)(sizeof alphabet - 1);
  if (auth__sodium_ready() < 0) {
    /* libsodium cannot start only when the system has no randomness source at all; hand back
     * an empty string, which no password check accepts, rather than a weak password. */
    out[0] = 0;
    return;
  }
  for (int i = 0; i < 20; i++)
    out[i] = alphabet[randombytes_uniform(count)];
  out[20] = 0;
}
