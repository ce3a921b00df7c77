#include <gtest/gtest.h>

#include "tune/core/config.h"

namespace tune {
namespace {

struct OptimCfg {
  double lr = 1e-4;
  int64_t warmup = 0;
  std::string schedule = "cosine";
  template <class V>
  void visit(V& v) {
    v("lr", lr, "peak learning rate", config::greater_than(0.0));
    v("warmup", warmup, "warmup steps", config::at_least<int64_t>(0));
    v("schedule", schedule, "lr schedule", config::one_of({"constant", "linear", "cosine"}));
  }
};

struct DataCfg {
  std::string path;
  double weight = 1.0;
  template <class V>
  void visit(V& v) {
    v("path", path, "JSONL file");
    v("weight", weight, "mixing weight", config::greater_than(0.0));
  }
};

struct RootCfg {
  int64_t seed = 42;
  bool packing = false;
  std::vector<std::string> targets{"q_proj", "v_proj"};
  OptimCfg optim;
  std::vector<DataCfg> datasets;
  template <class V>
  void visit(V& v) {
    v("seed", seed, "random seed");
    v("packing", packing, "pack samples");
    v("targets", targets, "LoRA targets");
    v.section("optim", optim);
    v.list("datasets", datasets);
  }
};

std::string error_of(const Json& tree, const std::string& file = "run.yaml") {
  config::Sources src;
  src.fallback = file;
  try {
    config::bind<RootCfg>(tree, src);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsWhenTreeEmpty) {
  auto cfg = config::bind<RootCfg>(Json::object(), config::Sources{});
  EXPECT_EQ(cfg.seed, 42);
  EXPECT_DOUBLE_EQ(cfg.optim.lr, 1e-4);
  EXPECT_EQ(cfg.targets.size(), 2u);
}

TEST(Config, ReadsNestedValuesAndLists) {
  Json tree = Json::parse(R"({"seed": 7, "optim": {"lr": 2e-5, "warmup": 1e2},
    "datasets": [{"path": "a.jsonl", "weight": 2}, {"path": "b.jsonl"}], "targets": "all-linear"})");
  auto cfg = config::bind<RootCfg>(tree, config::Sources{});
  EXPECT_EQ(cfg.seed, 7);
  EXPECT_DOUBLE_EQ(cfg.optim.lr, 2e-5);
  EXPECT_EQ(cfg.optim.warmup, 100);
  ASSERT_EQ(cfg.datasets.size(), 2u);
  EXPECT_EQ(cfg.datasets[1].path, "b.jsonl");
  EXPECT_DOUBLE_EQ(cfg.datasets[1].weight, 1.0);
  EXPECT_EQ(cfg.targets, std::vector<std::string>{"all-linear"});
}

TEST(Config, UnknownKeyNamesKeyFileAndSuggestion) {
  std::string e = error_of(Json::parse(R"({"optim": {"lrr": 1}})"));
  EXPECT_NE(e.find("unknown key 'optim.lrr'"), std::string::npos) << e;
  EXPECT_NE(e.find("run.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'optim.lr'"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesKey) {
  std::string e = error_of(Json::parse(R"({"optim": {"lr": "fast"}})"));
  EXPECT_NE(e.find("optim.lr expects a number"), std::string::npos) << e;
  e = error_of(Json::parse(R"({"seed": 1.5})"));
  EXPECT_NE(e.find("seed expects an integer"), std::string::npos) << e;
  e = error_of(Json::parse(R"({"packing": "yes"})"));
  EXPECT_NE(e.find("packing expects true or false"), std::string::npos) << e;
}

TEST(Config, OutOfRangeNamesKeyAndSource) {
  config::Sources src;
  src.fallback = "run.yaml";
  src.by_path["optim.lr"] = "command line 'optim.lr=-1'";
  try {
    config::bind<RootCfg>(Json::parse(R"({"optim": {"lr": -1}})"), src);
    FAIL();
  } catch (const UsageError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("optim.lr must be > 0"), std::string::npos) << m;
    EXPECT_NE(m.find("command line 'optim.lr=-1'"), std::string::npos) << m;
  }
  std::string e = error_of(Json::parse(R"({"optim": {"schedule": "cosin"}})"));
  EXPECT_NE(e.find("must be one of: constant, linear, cosine"), std::string::npos) << e;
  e = error_of(Json::parse(R"({"datasets": [{"path": "x", "weight": 0}]})"));
  EXPECT_NE(e.find("datasets[0].weight must be > 0"), std::string::npos) << e;
}

TEST(Config, WriterRoundTripsAndTableIsDotted) {
  Json tree = Json::parse(R"({"seed": 3, "optim": {"lr": 0.5}})");
  auto cfg = config::bind<RootCfg>(tree, config::Sources{});
  Json out = config::to_json(cfg);
  EXPECT_EQ(out["seed"], 3);
  EXPECT_EQ(out["optim"]["lr"], 0.5);
  auto again = config::bind<RootCfg>(out, config::Sources{});
  EXPECT_EQ(config::to_json(again), out);
  std::string table = config::format_table(out);
  EXPECT_NE(table.find("optim.lr"), std::string::npos) << table;
}

TEST(Config, SetPathCreatesNestedObjects) {
  Json tree = Json::object();
  config::set_path(tree, "a.b.c", 1);
  EXPECT_EQ(tree["a"]["b"]["c"], 1);
  EXPECT_THROW(config::set_path(tree, "a..c", 1), UsageError);
  // List items by index: existing ones are updated, one past the end appends.
  Json t2 = Json::parse(R"({"data": {"datasets": [{"path": "a", "weight": 2}]}})");
  config::set_path(t2, "data.datasets[0].path", "b");
  config::set_path(t2, "data.datasets[1].path", "c");
  EXPECT_EQ(t2["data"]["datasets"][0]["path"], "b");
  EXPECT_EQ(t2["data"]["datasets"][0]["weight"], 2);
  EXPECT_EQ(t2["data"]["datasets"][1]["path"], "c");
  EXPECT_THROW(config::set_path(t2, "data.datasets[5].path", "x"), UsageError);
  EXPECT_THROW(config::set_path(t2, "data.datasets[x].path", "x"), UsageError);
}

}  // namespace
}  // namespace tune
