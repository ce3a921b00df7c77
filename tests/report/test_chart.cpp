// SVG charts: smoothing, ticks, labels, and the SVG elements that carry the data.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "tune/report/chart.h"

namespace {

using namespace tune::report;

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(Chart, EmaIsDebiased) {
  EXPECT_EQ(ema({1, 2, 3}, 0.0), (std::vector<double>{1, 2, 3}));
  const auto flat = ema({5, 5, 5}, 0.9);  // a constant stays constant: no pull towards 0
  for (double v : flat) EXPECT_NEAR(v, 5.0, 1e-12);
  const auto s = ema({0, 2}, 0.5);        // (0.5*0 + 0.5*2) / (1 - 0.25)
  EXPECT_NEAR(s[0], 0.0, 1e-12);
  EXPECT_NEAR(s[1], 4.0 / 3.0, 1e-12);
  const auto gap = ema({1, std::nan(""), 1}, 0.5);
  EXPECT_TRUE(std::isnan(gap[1]));
  EXPECT_NEAR(gap[2], 1.0, 1e-12);
}

TEST(Chart, NiceTicks) {
  EXPECT_EQ(nice_ticks(0, 300, 6), (std::vector<double>{0, 50, 100, 150, 200, 250, 300}));
  const auto t = nice_ticks(0, 1, 5);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_NEAR(t[3], 0.6, 1e-12);
  EXPECT_NEAR(nice_ticks(-4.4, -3.1, 5).front(), -4.4, 1e-12);
  EXPECT_FALSE(nice_ticks(2, 2).empty());  // an empty range still gets a tick
}

TEST(Chart, TickLabels) {
  EXPECT_EQ(tick_label(0), "0");
  EXPECT_EQ(tick_label(0.0005), "5e-4");
  EXPECT_EQ(tick_label(-2e-5), "-2e-5");
  EXPECT_EQ(tick_label(2.5e-6), "2.5e-6");
  EXPECT_EQ(tick_label(1200), "1200");
  EXPECT_EQ(tick_label(0.25), "0.25");
  EXPECT_EQ(tick_label(1.5e6), "1.5e6");
  EXPECT_EQ(tick_label(0.1 + 0.2), "0.3");
}

TEST(Chart, XmlEscape) { EXPECT_EQ(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"); }

ChartSpec two_lines() {
  ChartSpec c;
  c.id = "loss";
  c.title = "Loss <train>";
  ChartLine train;
  train.run = "run-a";
  train.key = "loss";
  train.label = "loss";
  for (int i = 1; i <= 10; ++i) {
    train.x.push_back(10.0 * i);
    train.y.push_back(1.0 / i);
  }
  train.y[4] = std::nan("");  // not drawn
  ChartLine eval;
  eval.run = "run-a";
  eval.key = "eval_loss";
  eval.label = "eval_loss";
  eval.x = {0, 50, 100};
  eval.y = {2.0, 0.5, 0.25};
  eval.smooth = false;
  eval.color = "#ff7f0e";
  c.lines = {train, eval};
  c.markers = {{40, "chosen_collapse"}, {5000, "outside"}};
  return c;
}

TEST(Chart, SvgCarriesEveryLineAndItsData) {
  const std::string svg = render_svg(two_lines(), false);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "class=\"series\""), 2);
  EXPECT_NE(svg.find("data-key=\"loss\" data-points=\"9\""), std::string::npos);
  EXPECT_NE(svg.find("data-key=\"eval_loss\" data-points=\"3\""), std::string::npos);
  EXPECT_NE(svg.find("data-steps=\"10 20 30 40 60 70 80 90 100\""), std::string::npos);
  EXPECT_NE(svg.find("data-values=\"2 0.5 0.25\""), std::string::npos);
  EXPECT_EQ(count(svg, "class=\"smoothed\""), 1);  // the eval line is drawn as points
  EXPECT_EQ(count(svg, "<circle"), 3);
  EXPECT_EQ(count(svg, "class=\"legend\""), 2);
  EXPECT_EQ(count(svg, "class=\"marker\""), 1);     // the marker outside the steps is left out
  EXPECT_NE(svg.find("data-label=\"chosen_collapse\""), std::string::npos);
  EXPECT_NE(svg.find("Loss &lt;train&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("http"), std::string::npos);   // inline: no namespace URI, nothing external
  // Each raw polyline has as many points as its data.
  std::smatch m;
  const std::string first = svg.substr(svg.find("class=\"raw\""));
  ASSERT_TRUE(std::regex_search(first, m, std::regex("points=\"([^\"]*)\"")));
  EXPECT_EQ(count(m[1].str(), ",") , 9);
}

TEST(Chart, StandaloneFileHasTheNamespace) {
  const std::string svg = render_svg(two_lines(), true);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
}

TEST(Chart, PointsStayInsideThePlot) {
  const std::string svg = render_svg(two_lines(), false);
  std::regex pt("(-?[0-9.]+),(-?[0-9.]+)");
  const std::string raw = svg.substr(svg.find("class=\"raw\""));
  const std::string pts = raw.substr(raw.find("points=\"") + 8, raw.find('"', raw.find("points=\"") + 8) - raw.find("points=\"") - 8);
  for (auto it = std::sregex_iterator(pts.begin(), pts.end(), pt); it != std::sregex_iterator(); ++it) {
    const double x = std::stod((*it)[1]), y = std::stod((*it)[2]);
    EXPECT_GE(x, 64.0);
    EXPECT_LE(x, 584.0);
    EXPECT_GE(y, 34.0);
    EXPECT_LE(y, 254.0);
  }
}

TEST(Chart, NoDataStillRenders) {
  ChartSpec c;
  c.id = "empty";
  c.title = "Empty";
  EXPECT_NE(render_svg(c, false).find("</svg>"), std::string::npos);
}

}  // namespace
