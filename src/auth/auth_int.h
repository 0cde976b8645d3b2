/* Internals shared by the files of the auth module. */
#ifndef PLATEAU_AUTH_AUTH_INT_H
#define PLATEAU_AUTH_AUTH_INT_H

#include "auth/auth.h"

/* Initialises libsodium (thread-safe and idempotent, so every entry point that needs random
 * bytes or Argon2 calls it rather than relying on start-up order). 0 or PL_EIO. */
int auth__sodium_ready(void);

#endif
