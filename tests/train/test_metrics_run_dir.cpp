// metrics.jsonl writing and resume truncation, the progress line, the run directory manifest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "support/temp_dir.h"
#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/hash.h"
#include "tune/core/json.h"
#include "tune/core/str.h"
#include "tune/train/metrics.h"
#include "tune/train/run_dir.h"
#include "tune/version.h"

namespace {

namespace stdfs = std::filesystem;
using namespace tune::train;

std::vector<tune::Json> read_lines(const stdfs::path& path) {
  std::vector<tune::Json> out;
  for (const auto& line : tune::split(tune::fs::read_file(path), '\n'))
    if (!line.empty()) out.push_back(tune::Json::parse(line));
  return out;
}

TEST(MetricsWriter, AppendsFlushedLinesAndTruncatesOnResume) {
  stdfs::path dir = tune::test::fresh_dir("metrics");
  stdfs::path file = dir / "metrics.jsonl";
  {
    MetricsWriter w(file);
    for (int s = 1; s <= 8; ++s) {
      w.write(tune::Json{{"step", s}, {"loss", 1.0 / s}});
      // Flushed: another reader sees the line at once.
      EXPECT_EQ(read_lines(file).size(), static_cast<size_t>(s));
    }
    w.write(tune::Json{{"event", "eval"}, {"accuracy", 0.5}});
    w.write(tune::Json{{"step", 9}, {"loss", NAN}});
  }
  // A crash mid-line leaves a torn last line.
  {
    std::FILE* f = std::fopen(file.c_str(), "a");
    std::fputs("{\"step\": 10, \"lo", f);
    std::fclose(f);
  }
  MetricsWriter resumed(file, 5);  // resumed from checkpoint-5: steps 6.. were logged after it
  resumed.write(tune::Json{{"step", 6}, {"loss", 0.1}});
  auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[4]["step"], 5);
  EXPECT_EQ(lines[5]["event"], "eval");  // lines without a step are kept
  EXPECT_EQ(lines[6]["step"], 6);
  EXPECT_EQ(lines[6]["loss"], 0.1);
  stdfs::remove_all(dir);
}

TEST(Progress, FormatsTheDocumentedLine) {
  EXPECT_EQ(format_progress(12, 200, 1.2344, 2e-5, 1234, 190),
            "step 12/200 | loss 1.234 | lr 2.0e-05 | 1.2k tok/s | ETA 3m10s");
  EXPECT_EQ(format_progress(1, 3, NAN, 1e-6, 0, NAN), "step 1/3 | loss nan | lr 1.0e-06");
}

std::string capture(bool tty, int every_n, int steps) {
  std::FILE* f = std::tmpfile();
  ProgressPrinter p({steps, every_n, f, tty});
  for (int s = 1; s <= steps; ++s) p.update(s, 1.0, 1e-5, 100);
  p.finish();
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST(Progress, PlainLinesEveryNOrCarriageReturnOnATerminal) {
  std::string plain = capture(false, 2, 5);
  auto lines = tune::split(plain, '\n');
  ASSERT_EQ(lines.size(), 4u);  // steps 2, 4, 5 (the last), then the empty tail
  EXPECT_EQ(lines[0].rfind("step 2/5 | loss 1.000 | lr 1.0e-05", 0), 0u) << lines[0];
  EXPECT_EQ(lines[2].rfind("step 5/5", 0), 0u) << lines[2];
  EXPECT_EQ(plain.find('\r'), std::string::npos);

  std::string tty = capture(true, 2, 3);
  EXPECT_EQ(std::count(tty.begin(), tty.end(), '\r'), 3);
  EXPECT_EQ(std::count(tty.begin(), tty.end(), '\n'), 1);  // finish() ends the line once
}

TEST(RunDirectory, WritesConfigAndManifestWithHashesAndVersions) {
  stdfs::path dir = tune::test::fresh_dir("rundir");
  tune::fs::write_file_atomic(dir / "data.jsonl", "abc");
  tune::fs::write_file_atomic(dir / "tokenizer.json", "");
  tune::Json config{{"lr", 1e-5}, {"model", "tiny"}};
  stdfs::path run = dir / "run";
  write_run_directory(run, config, {{"data", dir / "data.jsonl"}, {"tokenizer", dir / "tokenizer.json", "builtin:tiny"},
                                    ManifestFile::generated("data", "synth:addition?count=1", "abc")});

  EXPECT_EQ(tune::read_json_file(run / "config.json"), config);
  tune::Json m = tune::read_json_file(run / "manifest.json");
  // sha256("abc") and sha256("") from FIPS 180-2 / the standard empty-string digest.
  EXPECT_EQ(m["files"][0]["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(m["files"][0]["role"], "data");
  EXPECT_EQ(m["files"][0]["bytes"], 3);
  EXPECT_EQ(m["files"][1]["sha256"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_FALSE(m["files"][0].contains("source"));
  EXPECT_EQ(m["files"][1]["source"], "builtin:tiny");  // a file that stands for a named source
  // A generated source has no path: the bytes and hash are those of its content.
  EXPECT_EQ(m["files"][2]["source"], "synth:addition?count=1");
  EXPECT_FALSE(m["files"][2].contains("path"));
  EXPECT_EQ(m["files"][2]["bytes"], 3);
  EXPECT_EQ(m["files"][2]["sha256"], m["files"][0]["sha256"]);
  EXPECT_EQ(m["config_sha256"], tune::sha256_hex(tune::fs::read_file(run / "config.json")));
  EXPECT_EQ(m["tune_version"], TUNE_VERSION);
  EXPECT_EQ(m["torch_version"].get<std::string>().rfind("2.", 0), 0u);
  EXPECT_EQ(m["created"].get<std::string>().size(), 20u);  // 2026-11-23T14:55:00Z

  // A resumed run keeps the first creation time and records the resume.
  write_run_directory(run, config, {});
  tune::Json again = tune::read_json_file(run / "manifest.json");
  EXPECT_EQ(again["created"], m["created"]);
  EXPECT_EQ(again["resumed"].size(), 1u);

  EXPECT_THROW(write_run_directory(run, config, {{"data", dir / "missing.jsonl"}}), tune::Error);
  stdfs::remove_all(dir);
}

}  // namespace
