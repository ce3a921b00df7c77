#include <gtest/gtest.h>

#include "tune/cli/config_loader.h"
#include "tune/core/fs.h"

namespace tune::cli {
namespace {

TEST(Yaml, ScalarsFollowCoreSchema) {
  Json j = yaml_to_json("a: 1\nb: 1e-4\nc: true\nd: hello\ne: '1'\nf: ~\ng: [q_proj, v_proj]\n", "t.yaml");
  EXPECT_TRUE(j["a"].is_number_integer());
  EXPECT_DOUBLE_EQ(j["b"].get<double>(), 1e-4);
  EXPECT_EQ(j["c"], true);
  EXPECT_EQ(j["d"], "hello");
  EXPECT_EQ(j["e"], "1");  // quoted stays a string
  EXPECT_TRUE(j["f"].is_null());
  EXPECT_EQ(j["g"][1], "v_proj");
}

TEST(Yaml, SyntaxErrorNamesFileAndLine) {
  try {
    yaml_to_json("a: 1\nb: [1, 2\n", "cfg.yaml");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.yaml:"), std::string::npos) << e.what();
  }
}

TEST(Yaml, DuplicateKeyIsAnError) {
  EXPECT_THROW(yaml_to_json("a: 1\na: 2\n", "dup.yaml"), UsageError);
}

TEST(ConfigTree, PrecedenceFileThenOverridesThenFlags) {
  auto path = std::filesystem::temp_directory_path() / "tune_prec.yaml";
  fs::write_file_atomic(path, "seed: 1\noptim:\n  lr: 0.1\n  warmup: 5\noutput_dir: from_file\n");
  auto t = load_config_tree(path, {"optim.lr=0.2", "seed=2"}, {{"seed", 3}});
  EXPECT_EQ(t.tree["optim"]["lr"], 0.2);
  EXPECT_EQ(t.tree["optim"]["warmup"], 5);
  EXPECT_EQ(t.tree["seed"], 3);
  EXPECT_EQ(t.tree["output_dir"], "from_file");
  EXPECT_EQ(t.sources.of("optim.warmup"), path.string());
  EXPECT_EQ(t.sources.of("optim.lr"), "command line 'optim.lr=0.2'");
  EXPECT_EQ(t.sources.of("seed"), "command-line flag");
}

TEST(ConfigTree, BadOverrideIsUsageError) {
  EXPECT_THROW(parse_override("noequals"), UsageError);
  EXPECT_THROW(parse_override("=3"), UsageError);
  auto [k, v] = parse_override("lora.targets=[q_proj, k_proj]");
  EXPECT_EQ(k, "lora.targets");
  EXPECT_EQ(v.size(), 2u);
}

}  // namespace
}  // namespace tune::cli
