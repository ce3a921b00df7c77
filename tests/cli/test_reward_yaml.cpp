// The `reward:` section as users write it: every ```yaml block of docs/rewards.md must bind (so the
// documentation cannot drift from the config), and YAML's quoting of a regex reaches PCRE2 intact.
#include <gtest/gtest.h>

#include "tune/cli/config_loader.h"
#include "tune/core/fs.h"
#include "tune/reward/config.h"

namespace tune::cli {
namespace {

struct Top {
  reward::RewardConfig reward;
  template <class V>
  void visit(V& v) {
    v.section("reward", reward);
  }
};

std::vector<std::string> yaml_blocks(const std::string& markdown) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = markdown.find("```yaml\n", at)) != std::string::npos) {
    size_t start = at + 8, end = markdown.find("```", start);
    out.push_back(markdown.substr(start, end - start));
    at = end + 3;
  }
  return out;
}

TEST(RewardYaml, EveryDocumentedBlockBinds) {
  auto doc = fs::read_file(std::string(TUNE_SOURCE_DIR) + "/docs/rewards.md");
  auto blocks = yaml_blocks(doc);
  ASSERT_GE(blocks.size(), 5u);
  for (const auto& block : blocks) {
    // A block is either the whole section or list items of reward.terms.
    std::string text = block.starts_with("reward:") ? block : "reward:\n  terms:\n" + [&] {
      std::string indented;
      for (const auto& line : split(block, '\n'))
        if (!trim(line).empty()) indented += "    " + line + "\n";
      return indented;
    }();
    config::Sources sources;
    sources.fallback = "docs/rewards.md";
    EXPECT_NO_THROW(config::bind<Top>(yaml_to_json(text, "docs/rewards.md"), sources)) << text;
  }
}

TEST(RewardYaml, QuotedRegexAndShorthand) {
  config::Sources sources;
  auto top = config::bind<Top>(yaml_to_json("reward:\n  terms:\n    - {kind: format, pattern: \"^\\\\d+$\", weight: 0.1}\n"
                                            "    - kind: format\n      name: tags\n      pattern: '<answer>\\d+</answer>'\n",
                                            "t.yaml"),
                               sources);
  EXPECT_EQ(top.reward.terms[0].format.pattern, "^\\d+$");
  EXPECT_EQ(top.reward.terms[1].format.pattern, "<answer>\\d+</answer>");
  reward::Format digits(top.reward.terms[0].format);
  EXPECT_TRUE(digits.matches("123"));
  EXPECT_FALSE(digits.matches("12a"));
  auto shorthand = config::bind<Top>(yaml_to_json("reward: {command: \"python3 my_reward.py\", timeout_s: 5}\n", "t.yaml"),
                                     sources);
  EXPECT_EQ(shorthand.reward.command, "python3 my_reward.py");
  EXPECT_DOUBLE_EQ(shorthand.reward.timeout_s, 5.0);
  EXPECT_TRUE(shorthand.reward.terms.empty());
}

}  // namespace
}  // namespace tune::cli
