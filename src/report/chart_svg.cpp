#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tune/core/str.h"
#include "tune/report/chart.h"

namespace tune::report {
namespace {

constexpr double kWidth = 600, kLeft = 64, kRight = 584, kTop = 34, kBottom = 254;
constexpr double kLegendTop = kBottom + 48, kLegendRow = 16;

double nice_step(double lo, double hi, int target) {
  const double span = hi > lo ? hi - lo : 1.0;
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

std::string num(double v) { return fixed(v, 1); }

// Steps print as integers, values with enough digits to read them back exactly enough (float32 and more).
std::string data_number(double v) {
  char buf[40];
  if (std::abs(v) < 1e15 && v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

}  // namespace

std::vector<double> ema(const std::vector<double>& y, double weight) {
  std::vector<double> out;
  out.reserve(y.size());
  double s = 0, decay = 1;
  for (double v : y) {
    if (!std::isfinite(v)) {
      out.push_back(v);
      continue;
    }
    s = weight * s + (1 - weight) * v;
    decay *= weight;
    out.push_back(decay < 1 ? s / (1 - decay) : v);
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  const double step = nice_step(lo, hi, target);
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string tick_label(double v) {
  char buf[40];
  const double a = std::abs(v);
  if (a == 0) return "0";
  if (a < 1e-3 || a >= 1e5) {
    std::snprintf(buf, sizeof buf, "%.1e", v);  // "5.0e-04"
    std::string s = buf;
    const size_t e = s.find('e');
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    if (mant.size() > 2 && mant.compare(mant.size() - 2, 2, ".0") == 0) mant.resize(mant.size() - 2);
    const bool neg = exp[0] == '-';
    size_t i = (exp[0] == '-' || exp[0] == '+') ? 1 : 0;
    while (i + 1 < exp.size() && exp[i] == '0') ++i;
    return mant + "e" + (neg ? "-" : "") + exp.substr(i);
  }
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const ChartSpec& chart, bool standalone) {
  Range xr, yr;
  for (const auto& line : chart.lines)
    for (size_t i = 0; i < line.x.size() && i < line.y.size(); ++i)
      if (std::isfinite(line.y[i])) {
        xr.add(line.x[i]);
        yr.add(line.y[i]);
      }
  if (xr.empty()) xr = {0, 1};
  if (yr.empty()) yr = {0, 1};
  if (xr.hi == xr.lo) {
    xr.lo -= 1;
    xr.hi += 1;
  }
  if (yr.hi == yr.lo) {
    const double pad = yr.lo == 0 ? 1 : std::abs(yr.lo) * 0.1;
    yr.lo -= pad;
    yr.hi += pad;
  }
  // The y range widened to round ticks; the x range is the steps as they are.
  const double ystep = nice_step(yr.lo, yr.hi, 5);
  yr.lo = std::floor(yr.lo / ystep + 1e-9) * ystep;
  yr.hi = std::ceil(yr.hi / ystep - 1e-9) * ystep;
  auto px = [&](double x) { return kLeft + (x - xr.lo) / (xr.hi - xr.lo) * (kRight - kLeft); };
  auto py = [&](double y) { return kBottom - (y - yr.lo) / (yr.hi - yr.lo) * (kBottom - kTop); };

  const double height = kLegendTop + kLegendRow * static_cast<double>(chart.lines.size()) + 6;
  std::string s;
  if (standalone) s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += str("<svg", standalone ? " xmlns=\"http://www.w3.org/2000/svg\"" : "", " class=\"chart\" data-chart=\"",
           xml_escape(chart.id), "\" width=\"", num(kWidth), "\" height=\"", num(height), "\" viewBox=\"0 0 ", num(kWidth),
           " ", num(height), "\" font-family=\"sans-serif\" font-size=\"11\">\n");
  s += str("<rect x=\"0\" y=\"0\" width=\"", num(kWidth), "\" height=\"", num(height), "\" fill=\"#ffffff\"/>\n");
  s += str("<text x=\"", num(kLeft), "\" y=\"20\" font-size=\"14\" font-weight=\"bold\" fill=\"#222222\">",
           xml_escape(chart.title), "</text>\n");
  if (!chart.y_label.empty())
    s += str("<text x=\"", num(kRight), "\" y=\"20\" text-anchor=\"end\" fill=\"#666666\">", xml_escape(chart.y_label),
             "</text>\n");

  // Grid and ticks.
  s += "<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n";
  const auto yticks = nice_ticks(yr.lo, yr.hi, 5), xticks = nice_ticks(xr.lo, xr.hi, 6);
  for (double t : yticks)
    s += str("<line x1=\"", num(kLeft), "\" y1=\"", num(py(t)), "\" x2=\"", num(kRight), "\" y2=\"", num(py(t)), "\"/>\n");
  for (double t : xticks)
    s += str("<line x1=\"", num(px(t)), "\" y1=\"", num(kTop), "\" x2=\"", num(px(t)), "\" y2=\"", num(kBottom), "\"/>\n");
  s += "</g>\n<g class=\"axes\" fill=\"#444444\">\n";
  s += str("<line x1=\"", num(kLeft), "\" y1=\"", num(kBottom), "\" x2=\"", num(kRight), "\" y2=\"", num(kBottom),
           "\" stroke=\"#444444\"/>\n");
  s += str("<line x1=\"", num(kLeft), "\" y1=\"", num(kTop), "\" x2=\"", num(kLeft), "\" y2=\"", num(kBottom),
           "\" stroke=\"#444444\"/>\n");
  for (double t : yticks)
    s += str("<text class=\"ytick\" x=\"", num(kLeft - 6), "\" y=\"", num(py(t) + 4), "\" text-anchor=\"end\">",
             tick_label(t), "</text>\n");
  for (double t : xticks)
    s += str("<text class=\"xtick\" x=\"", num(px(t)), "\" y=\"", num(kBottom + 16), "\" text-anchor=\"middle\">",
             tick_label(t), "</text>\n");
  s += str("<text x=\"", num((kLeft + kRight) / 2), "\" y=\"", num(kBottom + 34), "\" text-anchor=\"middle\">step</text>\n");
  s += "</g>\n";

  // Lines: the raw values faint under their smoothed curve, or points joined when there are few.
  for (const auto& line : chart.lines) {
    std::string pts, steps, values;
    size_t n = 0;
    for (size_t i = 0; i < line.x.size() && i < line.y.size(); ++i) {
      if (!std::isfinite(line.y[i])) continue;
      pts += str(n ? " " : "", num(px(line.x[i])), ",", num(py(line.y[i])));
      steps += str(n ? " " : "", data_number(line.x[i]));
      values += str(n ? " " : "", data_number(line.y[i]));
      ++n;
    }
    const std::string dash = line.dash.empty() ? "" : str(" stroke-dasharray=\"", line.dash, "\"");
    const bool smoothed = line.smooth && chart.smoothing > 0 && n >= 3;
    s += str("<g class=\"series\" data-run=\"", xml_escape(line.run), "\" data-key=\"", xml_escape(line.key),
             "\" data-points=\"", n, "\">\n");
    s += str("<polyline class=\"raw\" fill=\"none\" stroke=\"", line.color, "\" stroke-width=\"", smoothed ? "1" : "1.5",
             "\" stroke-opacity=\"", smoothed ? "0.25" : "1", "\"", dash, " points=\"", pts, "\" data-steps=\"", steps,
             "\" data-values=\"", values, "\"/>\n");
    if (smoothed) {
      std::vector<double> xs, ys;
      for (size_t i = 0; i < line.x.size() && i < line.y.size(); ++i)
        if (std::isfinite(line.y[i])) {
          xs.push_back(line.x[i]);
          ys.push_back(line.y[i]);
        }
      const auto sm = ema(ys, chart.smoothing);
      std::string spts;
      for (size_t i = 0; i < xs.size(); ++i) spts += str(i ? " " : "", num(px(xs[i])), ",", num(py(sm[i])));
      s += str("<polyline class=\"smoothed\" fill=\"none\" stroke=\"", line.color, "\" stroke-width=\"2\"", dash,
               " points=\"", spts, "\"/>\n");
    } else {
      for (size_t i = 0; i < line.x.size() && i < line.y.size(); ++i)
        if (std::isfinite(line.y[i]))
          s += str("<circle cx=\"", num(px(line.x[i])), "\" cy=\"", num(py(line.y[i])), "\" r=\"2.5\" fill=\"", line.color,
                   "\"/>\n");
    }
    s += "</g>\n";
  }

  // Markers (symptoms at their steps).
  for (const auto& m : chart.markers) {
    if (m.x < xr.lo || m.x > xr.hi) continue;
    s += str("<g class=\"marker\" data-step=\"", data_number(m.x), "\" data-label=\"", xml_escape(m.label), "\">");
    s += str("<line x1=\"", num(px(m.x)), "\" y1=\"", num(kTop), "\" x2=\"", num(px(m.x)), "\" y2=\"", num(kBottom),
             "\" stroke=\"", m.color, "\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>");
    s += str("<text x=\"", num(px(m.x) + 3), "\" y=\"", num(kTop + 10), "\" font-size=\"10\" fill=\"", m.color, "\">",
             xml_escape(m.label), "</text></g>\n");
  }

  // Legend.
  for (size_t i = 0; i < chart.lines.size(); ++i) {
    const auto& line = chart.lines[i];
    const double y = kLegendTop + kLegendRow * static_cast<double>(i);
    const std::string dash = line.dash.empty() ? "" : str(" stroke-dasharray=\"", line.dash, "\"");
    s += str("<g class=\"legend\"><line x1=\"", num(kLeft), "\" y1=\"", num(y - 4), "\" x2=\"", num(kLeft + 22), "\" y2=\"",
             num(y - 4), "\" stroke=\"", line.color, "\" stroke-width=\"2\"", dash, "/><text x=\"", num(kLeft + 28),
             "\" y=\"", num(y), "\" fill=\"#222222\">", xml_escape(line.label), "</text></g>\n");
  }
  s += "</svg>\n";
  return s;
}

}  // namespace tune::report
