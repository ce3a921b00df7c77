#pragma once
// SVG line charts for `tune report`: axes with "nice" ticks, a legend, several lines (runs and
// metrics overlaid on the same axes), each line's raw values drawn faint under their EMA-smoothed
// curve, and vertical markers (symptoms at their steps). Nothing external: plain SVG elements.
// Every line carries its data (data-run, data-key, data-steps, data-values) so a test or a script
// can read the numbers back. Torch-free.
#include <string>
#include <string_view>
#include <vector>

namespace tune::report {

struct ChartLine {
  std::string run;            // run name
  std::string key;            // metric key
  std::string label;          // legend text
  std::vector<double> x, y;   // steps and values (non-finite values are not drawn)
  bool smooth = true;         // draw the EMA curve over the faint raw line (else points and a line)
  std::string color = "#1f77b4";
  std::string dash;           // SVG stroke-dasharray ("" = solid)
};

struct ChartMarker {
  double x = 0;
  std::string label;
  std::string color = "#d62728";
};

struct ChartSpec {
  std::string id;             // file-name part: "loss" -> report-loss.svg
  std::string title;
  std::string y_label;
  std::vector<ChartLine> lines;
  std::vector<ChartMarker> markers;
  double smoothing = 0.6;     // EMA weight of the previous value (0 = raw only), as TensorBoard's slider
};

// Debiased exponential moving average: s_t = w s_{t-1} + (1 - w) y_t, divided by 1 - w^t (so the
// first values are not pulled towards 0). Non-finite inputs are passed through and skipped.
std::vector<double> ema(const std::vector<double>& y, double weight);

// About `target` round tick values (1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// A short tick label: 0.0005 -> "5e-4", 1200 -> "1200", 0.25 -> "0.25", 1.5e6 -> "1.5e6".
std::string tick_label(double v);

std::string xml_escape(std::string_view text);

// The chart as SVG. standalone: a complete .svg file (XML declaration and namespace); otherwise an
// <svg> element to inline in HTML.
std::string render_svg(const ChartSpec& chart, bool standalone);

}  // namespace tune::report
