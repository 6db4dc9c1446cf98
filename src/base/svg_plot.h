/* svg_plot.h - line charts as standalone SVG files (loss curves, throughput
 * against adapter count). Several series share the axes; the x axis may be
 * logarithmic (base 2). Written atomically. */
#ifndef PREFT_BASE_SVG_PLOT_H
#define PREFT_BASE_SVG_PLOT_H

#include <stdbool.h>

#include "base/error.h"

typedef struct preft_plot_series {
  const char *label;
  const double *x, *y;
  int n;
  bool dashed; /* e.g. a ceiling or reference line */
} preft_plot_series;

typedef struct preft_plot {
  const char *title, *x_label, *y_label;
  bool log2_x;
  bool y_from_zero;
  const preft_plot_series *series;
  int n_series;
} preft_plot;

int preft_plot_write_svg(const preft_plot *p, const char *path, preft_error *err);

#endif
