/* UTF-8 decoding, one sequence at a time, by RFC 3629's rules: no overlong forms, no surrogates,
 * nothing past U+10FFFF. The one decoder for text from outside: JSON bodies (pl_utf8_valid),
 * InfluxQL queries (its lexer), and the stored strings the InfluxQL and telemetry answers write
 * as JSON or CSV, where invalid bytes become U+FFFD. */
#ifndef PLATEAU_BASE_UTF8_H
#define PLATEAU_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length (1 to 4) of the valid UTF-8 sequence at s, of which left >= 1 bytes may be read,
 * with its code point in *cp (cp may be NULL); 0 when the bytes there are not one. NUL is a
 * valid one-byte sequence. */
size_t pl_utf8_decode(const void *s, size_t left, uint32_t *cp);

#endif
