#include "tune/algo/symptoms.h"

#include <algorithm>
#include <cmath>

#include "tune/core/str.h"

namespace tune::algo {

double slope(const std::vector<std::pair<double, double>>& points) {
  if (points.size() < 2) return 0.0;
  double mx = 0, my = 0;
  for (const auto& [x, y] : points) {
    mx += x;
    my += y;
  }
  mx /= static_cast<double>(points.size());
  my /= static_cast<double>(points.size());
  double sxy = 0, sxx = 0;
  for (const auto& [x, y] : points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) * (x - mx);
  }
  return sxx > 0 ? sxy / sxx : 0.0;
}

namespace {

const char* const kCollapseRemedy =
    "beta too low or lr too high: generations may get worse than the SFT model; raise dpo.beta, "
    "lower optim.lr, or add dpo.nll_alpha (an NLL term on the chosen answer)";

template <class Points>
double head_mean(const Points& p, size_t k) {
  double sum = 0;
  for (size_t i = 0; i < k; ++i) sum += p[i].value;
  return sum / static_cast<double>(k);
}

template <class Points>
double tail_mean(const Points& p, size_t k) {
  double sum = 0;
  for (size_t i = p.size() - k; i < p.size(); ++i) sum += p[i].value;
  return sum / static_cast<double>(k);
}

}  // namespace

void DpoSymptomDetector::report(std::vector<Symptom>& out, Symptom s) {
  if (!seen_.insert(s.id).second) return;
  reported_.push_back(s);
  out.push_back(std::move(s));
}

std::vector<Symptom> DpoSymptomDetector::observe(int64_t step, const std::map<std::string, double>& m) {
  std::vector<Symptom> out;
  const auto& c = config_;
  if (auto it = m.find("rewards/margins"); it != m.end()) {
    margins_.push_back({step, it->second});
    while (static_cast<int64_t>(margins_.size()) > c.window) margins_.pop_front();
  }
  if (auto it = m.find("loss"); it != m.end()) losses_.push_back({step, it->second});
  if (auto it = m.find("logps/chosen"); it != m.end()) chosen_.push_back({step, it->second});

  // Margin growing slowly.
  if (step >= c.min_steps && static_cast<int64_t>(margins_.size()) >= std::min<int64_t>(c.window, 5)) {
    std::vector<std::pair<double, double>> pts;
    double mean = 0;
    for (const auto& p : margins_) {
      pts.emplace_back(static_cast<double>(p.step), p.value);
      mean += p.value;
    }
    mean /= static_cast<double>(margins_.size());
    const double gain = slope(pts) * c.horizon_steps;
    if (gain < c.min_margin_gain && mean < c.target_margin)
      report(out, {"margin_slow", step,
                   str("rewards/margins grows slowly: ", fixed(mean, 4), " on average over the last ",
                       margins_.size(), " steps, +", fixed(gain, 4), " per ", fixed(c.horizon_steps, 0),
                       " steps at the current rate"),
                   "beta is probably too high: lower dpo.beta (e.g. 0.1 -> 0.05), or raise optim.lr"});
  }

  // Loss falling while the chosen answers become much less likely: fast, or slow and large.
  if (!losses_.empty() && !chosen_.empty() && losses_.front().value > 0) {
    const Point& first = losses_.front();
    const Point& now = losses_.back();
    const double drop = (first.value - now.value) / first.value;
    const double chosen_fall = chosen_.front().value - chosen_.back().value;
    const bool fast = now.step - first.step <= c.fast_steps && drop >= c.fast_loss_drop && chosen_fall >= c.chosen_drop;
    bool slow = false;
    double chosen_from = chosen_.front().value, chosen_to = chosen_.back().value;
    const auto k = static_cast<size_t>(std::max<int64_t>(c.smooth, 1));
    if (losses_.size() >= 2 * k && chosen_.size() >= 2 * k) {
      chosen_from = head_mean(chosen_, k);
      chosen_to = tail_mean(chosen_, k);
      const double fall = chosen_from - chosen_to;
      slow = tail_mean(losses_, k) < head_mean(losses_, k) && fall >= c.chosen_drop &&
             fall >= c.chosen_relative_drop * std::abs(chosen_from);
    }
    if (fast)
      report(out, {"chosen_collapse", step,
                   str("loss fell ", fixed(100 * drop, 0), "% in ", now.step - first.step,
                       " steps while logps/chosen fell by ", fixed(chosen_fall, 2), " (", fixed(chosen_.front().value, 2),
                       " -> ", fixed(chosen_.back().value, 2), ")"),
                   kCollapseRemedy});
    else if (slow)
      report(out, {"chosen_collapse", step,
                   str("loss is falling while logps/chosen fell from ", fixed(chosen_from, 2), " to ", fixed(chosen_to, 2),
                       " (means over ", k, " steps): the chosen answers became much less likely"),
                   kCollapseRemedy});
  }
  return out;
}

}  // namespace tune::algo
