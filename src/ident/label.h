/* QR code labels for identifiers and Digital Link URIs: a single code as SVG or PNG (libqrencode
 * for the symbol, our own minimal PNG writer over zlib), and printable sheets of labels (SVG or
 * HTML) for a bulk batch. Pure: text in, bytes out. */
#ifndef PLATEAU_IDENT_LABEL_H
#define PLATEAU_IDENT_LABEL_H

#include "base/buf.h"
#include "base/err.h"

#include <stddef.h>
#include <stdint.h>

#define LABEL_TEXT_MAX 2048 /* bytes encoded in one code */

/* One QR code (error correction M, 4-module quiet zone) of text. scale: pixels (PNG) or
 * user units (SVG) per module, 1..64. Appends to out. PL_EINVAL for empty or over-long text. */
int label_qr_svg(const char *text, int scale, pl_buf *out, pl_err *err);
int label_qr_png(const char *text, int scale, pl_buf *out, pl_err *err);

/* A PNG of a width x height 8-bit greyscale image (rows top to bottom), deflated with zlib. */
int label_png_gray(const uint8_t *pixels, uint32_t width, uint32_t height, pl_buf *out);

typedef struct label_item {
  const char *text;     /* what the code encodes (a URI) */
  const char *caption;  /* printed under it (the identifier), may be NULL */
  const char *caption2; /* a second line (GS1 element string), may be NULL */
} label_item;

/* A sheet of labels in a grid (columns across, as many rows as needed): an A4 SVG page
 * sequence in one SVG, or an HTML page that prints with CSS page breaks. Captions are
 * escaped. */
int label_sheet_svg(const label_item *items, size_t n, int columns, pl_buf *out, pl_err *err);
int label_sheet_html(const label_item *items, size_t n, int columns, const char *title, pl_buf *out,
                     pl_err *err);

#endif
