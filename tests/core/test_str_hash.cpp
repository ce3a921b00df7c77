#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/hash.h"
#include "tune/core/json.h"
#include "tune/core/str.h"

namespace tune {

TEST(Str, SplitJoinTrim) {
  EXPECT_EQ(split("a.b..c", '.'), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(join({"x", "y"}, ", "), "x, y");
  EXPECT_EQ(trim("  hi \n"), "hi");
  EXPECT_EQ(trim("   "), "");
}

TEST(Str, HumanFormats) {
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_duration(3725), "1h02m05s");
  EXPECT_EQ(human_duration(65), "1m05s");
  EXPECT_EQ(human_count(1.5e6), "1.50M");
}

TEST(Str, ClosestMatch) {
  EXPECT_EQ(closest_match("lrr", {"lr", "seed", "max_steps"}), "lr");
  EXPECT_EQ(closest_match("zzzzzz", {"lr", "seed"}), "");
}

TEST(Hash, Sha256KnownVectors) {
  // FIPS 180-4 examples.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// `--out /dev/stdout` or a FIFO: written in place. A temporary renamed onto /dev/stdout replaced the
// device's link with a regular file (as root) and the output never reached the reader.
TEST(Fs, AWriteToAStreamGoesIntoTheStream) {
  auto dir = std::filesystem::temp_directory_path() / "tune_fs_fifo_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string got;
  std::thread reader([&] { got = fs::read_file(fifo); });
  fs::write_file_atomic(fifo, "through the pipe");
  reader.join();
  EXPECT_EQ(got, "through the pipe");
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1);  // no temporary beside it
  std::filesystem::remove_all(dir);
}

TEST(Fs, AtomicWriteReplacesAndLeavesNoTemp) {
  auto dir = std::filesystem::temp_directory_path() / "tune_fs_test";
  std::filesystem::remove_all(dir);
  fs::write_file_atomic(dir / "a.txt", "one");
  fs::write_file_atomic(dir / "a.txt", "two");
  EXPECT_EQ(fs::read_file(dir / "a.txt"), "two");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  std::filesystem::remove_all(dir);
}

TEST(Json, ParseErrorNamesFileLineColumn) {
  auto path = std::filesystem::temp_directory_path() / "tune_bad.json";
  fs::write_file_atomic(path, "{\n  \"a\": 1,\n  \"b\": ]\n}");
  try {
    read_json_file(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tune_bad.json:3:"), std::string::npos) << e.what();
  }
}

TEST(Fs, ReadMissingFileNamesIt) {
  try {
    fs::read_file("/nonexistent/dir/file.bin");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/file.bin"), std::string::npos);
  }
}

}  // namespace tune
