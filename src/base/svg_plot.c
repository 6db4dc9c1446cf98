/* svg_plot.c - a small SVG line-chart writer (see svg_plot.h). */
#include "base/svg_plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

typedef struct {
  char *buf;
  size_t len, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 256);
    b->buf = preft_xrealloc(b->buf, b->cap);
  }
}

/* XML-escapes s into the buffer. */
static void sb_text(strbuf *b, const char *s) {
  for (; s && *s; s++) {
    if (*s == '<')
      sb_printf(b, "&lt;");
    else if (*s == '>')
      sb_printf(b, "&gt;");
    else if (*s == '&')
      sb_printf(b, "&amp;");
    else
      sb_printf(b, "%c", *s);
  }
}

/* A "nice" tick step covering span with about n ticks. */
static double nice_step(double span, int n) {
  double raw = span / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

int preft_plot_write_svg(const preft_plot *p, const char *path, preft_error *err) {
  static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                 "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  const double W = 720, H = 440, L = 80, R = 180, T = 40, B = 60;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (int s = 0; s < p->n_series; s++)
    for (int i = 0; i < p->series[s].n; i++) {
      double x = p->log2_x ? log2(p->series[s].x[i]) : p->series[s].x[i], y = p->series[s].y[i];
      if (!isfinite(x) || !isfinite(y)) continue;
      xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
    }
  if (!(xmin <= xmax)) return preft_fail(err, "%s: nothing to plot", path);
  if (p->y_from_zero) ymin = fmin(0, ymin);
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  double ystep = nice_step(ymax - ymin, 6);
  ymin = floor(ymin / ystep) * ystep;
  ymax = ceil(ymax / ystep) * ystep;
#define PX(x) (L + ((x)-xmin) / (xmax - xmin) * (W - L - R))
#define PY(y) (H - B - ((y)-ymin) / (ymax - ymin) * (H - T - B))
  strbuf b = {preft_xmalloc(4096), 0, 4096};
  sb_printf(
      &b,
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      W, H);
  sb_printf(&b, "<text x=\"%.0f\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">", (L + W - R) / 2);
  sb_text(&b, p->title);
  sb_printf(&b, "</text>\n");
  for (double y = ymin; y <= ymax + ystep / 2; y += ystep) {
    sb_printf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, W - R, PY(y),
              PY(y));
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, PY(y) + 4, y);
  }
  double xstep = p->log2_x ? 1 : nice_step(xmax - xmin, 8);
  for (double x = ceil(xmin / xstep) * xstep; x <= xmax + 1e-9; x += xstep) {
    sb_printf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", PX(x), PX(x), T,
              H - B);
    sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(x), H - B + 18,
              p->log2_x ? pow(2, x) : x);
  }
  sb_printf(&b,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#333\"/>\n", L,
            T, W - L - R, H - T - B);
  sb_printf(&b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">", (L + W - R) / 2, H - 16);
  sb_text(&b, p->x_label);
  sb_printf(&b, "</text>\n<text transform=\"translate(18,%.0f) rotate(-90)\" text-anchor=\"middle\">",
            (T + H - B) / 2);
  sb_text(&b, p->y_label);
  sb_printf(&b, "</text>\n");
  for (int s = 0; s < p->n_series; s++) {
    const preft_plot_series *ser = &p->series[s];
    const char *color = colors[s % 8];
    sb_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color,
              ser->dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (int i = 0; i < ser->n; i++) {
      double x = p->log2_x ? log2(ser->x[i]) : ser->x[i];
      if (isfinite(x) && isfinite(ser->y[i])) sb_printf(&b, "%.1f,%.1f ", PX(x), PY(ser->y[i]));
    }
    sb_printf(&b, "\"/>\n");
    for (int i = 0; i < ser->n && ser->n <= 64; i++) {
      double x = p->log2_x ? log2(ser->x[i]) : ser->x[i];
      if (isfinite(x) && isfinite(ser->y[i]))
        sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", PX(x), PY(ser->y[i]), color);
    }
    double ly = T + 14 + 20 * s;
    sb_printf(&b,
              "\n<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>",
              W - R + 12, W - R + 36, ly, ly, color, ser->dashed ? " stroke-dasharray=\"6,4\"" : "");
    sb_printf(&b, "<text x=\"%.0f\" y=\"%.1f\">", W - R + 42, ly + 4);
    sb_text(&b, ser->label);
    sb_printf(&b, "</text>\n");
  }
  sb_printf(&b, "</svg>\n");
#undef PX
#undef PY
  int rc = preft_write_atomic(path, b.buf, b.len, err);
  free(b.buf);
  return rc;
}
