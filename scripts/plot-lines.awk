# plot-lines.awk - a line chart as SVG from "LABEL X Y" lines on stdin (one
# series per LABEL, no spaces in it, in the order LABELs first appear; the y
# axis starts at 0, or below it when a value is negative). Used by scripts/study-rl.sh.
# Usage: awk -v title=T -v xlab=X -v ylab=Y -f scripts/plot-lines.awk <data >plot.svg
{ if (!($1 in idx)) { idx[$1] = ns + 0; name[ns++] = $1 }
  s = idx[$1]; k = cnt[s]++; X[s, k] = $2; Y[s, k] = $3
  if (n++ == 0 || $2 < x0) x0 = $2; if (n == 1 || $2 > x1) x1 = $2
  if ($3 > y1) y1 = $3; if ($3 < y0) y0 = $3 }
END {
  W = 640; H = 400; L = 60; R = 150; T = 40; B = 50
  if (y1 <= 0 && y0 == 0) y1 = 1; y1 = y1 * 1.05; y0 = y0 * 1.05; if (x1 == x0) x1 = x0 + 1
  split("#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b", col, " ")
  printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
  printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
  printf "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n", (L + W - R) / 2, title
  pw = W - L - R; ph = H - T - B
  printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw, ph
  for (i = 0; i <= 5; i++) { v = y0 + (y1 - y0) * i / 5; y = T + ph - ph * i / 5
    printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L, L + pw, y, y, L - 5, y + 4, v }
  for (i = 0; i <= 5; i++) { v = x0 + (x1 - x0) * i / 5; x = L + pw * i / 5
    printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", x, T + ph + 16, v }
  printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", L + pw / 2, H - 10, xlab
  printf "<text x=\"15\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 15 %d)\">%s</text>\n", T + ph / 2, T + ph / 2, ylab
  for (s = 0; s < ns; s++) { c = col[s % 6 + 1]; pts = ""
    for (k = 0; k < cnt[s]; k++) {
      px = L + pw * (X[s, k] - x0) / (x1 - x0); py = T + ph - ph * (Y[s, k] - y0) / (y1 - y0)
      pts = pts sprintf("%.1f,%.1f ", px, py)
      printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px, py, c }
    printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", pts, c
    printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">%s</text>\n", L + pw + 10, L + pw + 30, T + 10 + 18 * s, T + 10 + 18 * s, c, L + pw + 35, T + 14 + 18 * s, name[s] }
  print "</svg>" }
