#include "tune/reward/config.h"

#include "tune/core/error.h"

namespace tune::reward {

std::unique_ptr<Reward> build_term(const TermConfig& t, const std::string& key, const ModelFactory& model) {
  try {
    if (t.kind == "answer_match") return std::make_unique<AnswerMatch>(t.answer_match);
    if (t.kind == "format") return std::make_unique<Format>(t.format);
    if (t.kind == "length") return std::make_unique<Length>(t.length);
    if (t.kind == "repetition") return std::make_unique<Repetition>(t.repetition);
    if (t.kind == "overlong") return std::make_unique<Overlong>(t.overlong);
    if (t.kind == "truncation") return std::make_unique<Truncation>(t.truncation);
    if (t.kind == "program") return std::make_unique<ProgramReward>(t.program);
  } catch (const UsageError& e) {
    usage_fail("config error: ", key, ": ", e.what());
  }
  if (t.kind == "model") {
    if (!model)
      usage_fail("config error: ", key, ".kind: model needs LibTorch; this command builds rewards without it");
    return model(t.model, key);
  }
  usage_fail("config error: ", key, ".kind must be one of: ", join(term_kinds(), ", "), " (got '", t.kind, "')");
}

Composite build(const RewardConfig& config, const ModelFactory& model, const std::string& prefix) {
  if (config.empty())
    usage_fail("config error: ", prefix, " has no terms: set ", prefix, ".terms (a list of {kind, weight, ...}) or ",
               prefix, ".command");
  Composite out;
  auto add = [&](const std::string& name, double weight, std::unique_ptr<Reward> term, const std::string& key) {
    try {
      out.add(name, weight, std::move(term));
    } catch (const UsageError& e) {
      usage_fail("config error: ", key, ".name: ", e.what());
    }
  };
  for (size_t i = 0; i < config.terms.size(); ++i) {
    const auto& t = config.terms[i];
    const std::string key = str(prefix, ".terms[", i, "]");
    // Names are checked before a term starts anything (a program, a model load).
    for (size_t j = 0; j < i; ++j)
      if (config.terms[j].term_name() == t.term_name())
        usage_fail("config error: ", key, ".name: '", t.term_name(), "' is also the name of ", prefix, ".terms[", j,
                   "] (each term is logged as reward/<name>; name them apart)");
    add(t.term_name(), t.weight, build_term(t, key, model), key);
  }
  if (!config.command.empty()) {
    ProgramOptions p;
    p.command = config.command;
    p.timeout_s = config.timeout_s;
    add("program", 1.0, std::make_unique<ProgramReward>(p), prefix + ".command");
  }
  return out;
}

}  // namespace tune::reward
