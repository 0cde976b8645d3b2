/* QR labels (see label.h). The symbol comes from libqrencode (error correction level M,
 * 8-bit mode, so URIs keep their case); the picture is ours: SVG as one path of unit squares,
 * PNG written here.
 *
 * PNG layout (ISO/IEC 15948): the 8-byte signature, then chunks of (length u32 BE, type, data,
 * CRC-32 of type and data): IHDR (width, height, bit depth 8, colour type 0 greyscale,
 * compression 0, filter 0, interlace 0), one IDAT holding the zlib stream of the rows, each
 * row prefixed with filter type 0, and an empty IEND.
 */
#include "ident/label.h"

#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define QUIET 4

static QRcode *encode(const char *text, pl_err *err) {
  size_t n = text ? strlen(text) : 0;
  if (n == 0 || n > LABEL_TEXT_MAX)
    return pl_err_set(err, PL_EINVAL, "label text must be 1 to %d bytes", LABEL_TEXT_MAX), NULL;
  QRcode *qr = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
  if (!qr)
    pl_err_set(err, PL_EINVAL, "the text does not fit a QR code");
  return qr;
}

/* Appends the symbol's dark modules as one SVG path at (x0, y0) with module size s. */
static int svg_path(const QRcode *qr, double x0, double y0, double s, pl_buf *out) {
  int rc = pl_buf_printf(out, "<path fill=\"#000\" d=\"");
  for (int y = 0; y < qr->width && rc == 0; y++) {
    for (int x = 0; x < qr->width && rc == 0; x++) {
      if (!(qr->data[y * qr->width + x] & 1))
        continue;
      /* run of dark modules */
      int run = 1;
      while (x + run < qr->width && (qr->data[y * qr->width + x + run] & 1))
        run++;
      rc = pl_buf_printf(out, "M%.3f %.3fh%.3fv%.3fh-%.3fz", x0 + (x + QUIET) * s,
                         y0 + (y + QUIET) * s, run * s, s, run * s);
      x += run - 1;
    }
  }
  if (rc == 0)
    rc = pl_buf_printf(out, "\"/>");
  return rc;
}

int label_qr_svg(const char *text, int scale, pl_buf *out, pl_err *err) {
  if (scale < 1 || scale > 64)
    return pl_err_set(err, PL_EINVAL, "scale must be 1 to 64");
  QRcode *qr = encode(text, err);
  if (!qr)
    return PL_EINVAL;
  int size = (qr->width + 2 * QUIET) * scale;
  int rc = pl_buf_printf(
      out,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>",
      size, size, size, size);
  if (rc == 0)
    rc = svg_path(qr, 0, 0, scale, out);
  if (rc == 0)
    rc = pl_buf_printf(out, "</svg>\n");
  QRcode_free(qr);
  return rc;
}

static int chunk(pl_buf *out, const char *type, const uint8_t *data, size_t n) {
  int rc;
  if ((rc = pl_buf_put_u32be(out, (uint32_t)n)) < 0)
    return rc;
  size_t start = out->len;
  if ((rc = pl_buf_append(out, type, 4)) < 0 || (rc = pl_buf_append(out, data, n)) < 0)
    return rc;
  uLong crc = crc32(0L, out->data + start, (uInt)(n + 4));
  return pl_buf_put_u32be(out, (uint32_t)crc);
}

int label_png_gray(const uint8_t *pixels, uint32_t width, uint32_t height, pl_buf *out) {
  if (!width || !height || width > 16384 || height > 16384)
    return PL_EINVAL;
  size_t raw_len = (size_t)height * (width + 1);
  uint8_t *raw = malloc(raw_len);
  if (!raw)
    return PL_ENOMEM;
  for (uint32_t y = 0; y < height; y++) {
    raw[(size_t)y * (width + 1)] = 0; /* filter: none */
    memcpy(raw + (size_t)y * (width + 1) + 1, pixels + (size_t)y * width, width);
  }
  uLongf zlen = compressBound((uLong)raw_len);
  uint8_t *z = malloc(zlen);
  int rc = z ? 0 : PL_ENOMEM;
  if (rc == 0 && compress2(z, &zlen, raw, (uLong)raw_len, 9) != Z_OK)
    rc = PL_ENOMEM;
  free(raw);
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  uint8_t ihdr[13] = {(uint8_t)(width >> 24),
                      (uint8_t)(width >> 16),
                      (uint8_t)(width >> 8),
                      (uint8_t)width,
                      (uint8_t)(height >> 24),
                      (uint8_t)(height >> 16),
                      (uint8_t)(height >> 8),
                      (uint8_t)height,
                      8,
                      0,
                      0,
                      0,
                      0};
  size_t mark = out->len;
  if (rc == 0)
    rc = pl_buf_append(out, sig, sizeof sig);
  if (rc == 0)
    rc = chunk(out, "IHDR", ihdr, sizeof ihdr);
  if (rc == 0)
    rc = chunk(out, "IDAT", z, zlen);
  if (rc == 0)
    rc = chunk(out, "IEND", NULL, 0);
  if (rc < 0)
    out->len = mark;
  free(z);
  return rc;
}

int label_qr_png(const char *text, int scale, pl_buf *out, pl_err *err) {
  if (scale < 1 || scale > 64)
    return pl_err_set(err, PL_EINVAL, "scale must be 1 to 64");
  QRcode *qr = encode(text, err);
  if (!qr)
    return PL_EINVAL;
  uint32_t side = (uint32_t)(qr->width + 2 * QUIET) * (uint32_t)scale;
  uint8_t *px = malloc((size_t)side * side);
  if (!px) {
    QRcode_free(qr);
    return PL_ENOMEM;
  }
  memset(px, 255, (size_t)side * side);
  for (int y = 0; y < qr->width; y++)
    for (int x = 0; x < qr->width; x++) {
      if (!(qr->data[y * qr->width + x] & 1))
        continue;
      for (int dy = 0; dy < scale; dy++)
        memset(px + ((size_t)(y + QUIET) * scale + dy) * side + (size_t)(x + QUIET) * scale, 0,
               (size_t)scale);
    }
  int rc = label_png_gray(px, side, side, out);
  free(px);
  QRcode_free(qr);
  return rc;
}

static int put_escaped(pl_buf *out, const char *s) {
  int rc = 0;
  for (; s && *s && rc == 0; s++) {
    switch (*s) {
    case '<': rc = pl_buf_append_str(out, "&lt;"); break;
    case '>': rc = pl_buf_append_str(out, "&gt;"); break;
    case '&': rc = pl_buf_append_str(out, "&amp;"); break;
    case '"': rc = pl_buf_append_str(out, "&quot;"); break;
    case '\'': rc = pl_buf_append_str(out, "&#39;"); break;
    default: rc = pl_buf_append_byte(out, (uint8_t)*s);
    }
  }
  return rc;
}

/* A4 at 1 user unit = 1 mm: 210 x 297, 10 mm margins. */
int label_sheet_svg(const label_item *items, size_t n, int columns, pl_buf *out, pl_err *err) {
  if (columns < 1 || columns > 10)
    return pl_err_set(err, PL_EINVAL, "columns must be 1 to 10");
  double cell_w = 190.0 / columns, code = cell_w * 0.8, cell_h = code + 12;
  int rows_per_page = (int)(277 / cell_h);
  if (rows_per_page < 1)
    rows_per_page = 1;
  size_t per_page = (size_t)rows_per_page * (size_t)columns;
  size_t pages = n ? (n + per_page - 1) / per_page : 1;
  int rc = pl_buf_printf(
      out,
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
      "width=\"210mm\" height=\"%zumm\" viewBox=\"0 0 210 %zu\" shape-rendering=\"crispEdges\">"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
      297 * pages, 297 * pages);
  for (size_t i = 0; i < n && rc == 0; i++) {
    size_t page = i / per_page, k = i % per_page;
    double x = 10 + (double)(k % (size_t)columns) * cell_w;
    double y = 297.0 * (double)page + 10 + (double)(k / (size_t)columns) * cell_h;
    QRcode *qr = encode(items[i].text, err);
    if (!qr)
      return PL_EINVAL;
    double s = code / (qr->width + 2 * QUIET);
    rc = svg_path(qr, x + (cell_w - code) / 2, y, s, out);
    QRcode_free(qr);
    const char *lines[2] = {items[i].caption, items[i].caption2};
    for (int l = 0; l < 2 && rc == 0; l++) {
      if (!lines[l])
        continue;
      rc = pl_buf_printf(out,
                         "<text x=\"%.2f\" y=\"%.2f\" font-family=\"sans-serif\" font-size=\"3\" "
                         "text-anchor=\"middle\">",
                         x + cell_w / 2, y + code + 4 + 4 * l);
      if (rc == 0)
        rc = put_escaped(out, lines[l]);
      if (rc == 0)
        rc = pl_buf_append_str(out, "</text>\n");
    }
  }
  if (rc == 0)
    rc = pl_buf_append_str(out, "</svg>\n");
  return rc;
}

int label_sheet_html(const label_item *items, size_t n, int columns, const char *title, pl_buf *out,
                     pl_err *err) {
  if (columns < 1 || columns > 10)
    return pl_err_set(err, PL_EINVAL, "columns must be 1 to 10");
  int rc = pl_buf_printf(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
  if (rc == 0)
    rc = put_escaped(out, title ? title : "Labels");
  if (rc == 0)
    rc = pl_buf_printf(
        out,
        "</title><style>@page{size:A4;margin:10mm}body{font-family:sans-serif;margin:0}"
        ".sheet{display:grid;grid-template-columns:repeat(%d,1fr);gap:2mm}"
        ".label{break-inside:avoid;text-align:center;font-size:8pt;padding:2mm}"
        ".label svg{width:100%%;height:auto}</style></head><body><div class=\"sheet\">\n",
        columns);
  for (size_t i = 0; i < n && rc == 0; i++) {
    QRcode *qr = encode(items[i].text, err);
    if (!qr)
      return PL_EINVAL;
    int side = qr->width + 2 * QUIET;
    rc = pl_buf_printf(
        out, "<div class=\"label\"><svg viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">",
        side, side);
    if (rc == 0)
      rc = svg_path(qr, 0, 0, 1, out);
    QRcode_free(qr);
    if (rc == 0)
      rc = pl_buf_append_str(out, "</svg>");
    const char *lines[2] = {items[i].caption, items[i].caption2};
    for (int l = 0; l < 2 && rc == 0; l++) {
      if (!lines[l])
        continue;
      rc = pl_buf_append_str(out, "<div>");
      if (rc == 0)
        rc = put_escaped(out, lines[l]);
      if (rc == 0)
        rc = pl_buf_append_str(out, "</div>");
    }
    if (rc == 0)
      rc = pl_buf_append_str(out, "</div>\n");
  }
  if (rc == 0)
    rc = pl_buf_append_str(out, "</div></body></html>\n");
  return rc;
}
