// TensorBoard event files on their bytes: CRC32C against the published check values, the TFRecord
// framing, hand-encoded Event messages, and the writer's file read back record by record.
#include <gtest/gtest.h>

#include <cstring>

#include "report_test_util.h"
#include "tune/core/fs.h"
#include "tune/report/tensorboard.h"

namespace {

using namespace tune::report;

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

uint64_t le64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  return v;
}
uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  return v;
}

TEST(Crc32c, KnownVectors) {
  // The CRC-32C check value, and the iSCSI test vectors of RFC 3720 (B.4).
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string up, down;
  for (int i = 0; i < 32; ++i) {
    up.push_back(static_cast<char>(i));
    down.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down), 0x113FDB5Cu);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32c, MaskRotatesAndAddsTheConstant) {
  EXPECT_EQ(masked_crc32c(""), 0xA282EAD8u);
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xA282EAD8u);
}

TEST(TfRecord, FramesLengthPayloadAndChecksums) {
  const std::string payload = "hello event";
  const std::string r = tfrecord(payload);
  ASSERT_EQ(r.size(), 8 + 4 + payload.size() + 4);
  EXPECT_EQ(le64(r, 0), payload.size());
  EXPECT_EQ(le32(r, 8), masked_crc32c(r.substr(0, 8)));
  EXPECT_EQ(r.substr(12, payload.size()), payload);
  EXPECT_EQ(le32(r, 12 + payload.size()), masked_crc32c(payload));
}

TEST(TensorBoardEvent, FileVersionBytes) {
  // wall_time (field 1, fixed64) 1.5, file_version (field 3, length-delimited) "brain.Event:2".
  const std::string expected = bytes({0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0x1A, 13}) + "brain.Event:2";
  EXPECT_EQ(event_file_version(1.5), expected);
}

TEST(TensorBoardEvent, ScalarBytes) {
  // wall_time 2.0; step (field 2, varint) 300 = AC 02; summary (field 5) { value (field 1) { tag (1)
  // "loss", simple_value (field 2, fixed32) 0.5f = 00 00 00 3F } }.
  const std::string value = bytes({0x0A, 4}) + "loss" + bytes({0x15, 0, 0, 0, 0x3F});
  const std::string summary = bytes({0x0A, static_cast<int>(value.size())}) + value;
  const std::string expected = bytes({0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x10, 0xAC, 0x02, 0x2A,
                                      static_cast<int>(summary.size())}) + summary;
  EXPECT_EQ(event_scalars(2.0, 300, {{"loss", 0.5f}}), expected);
}

TEST(TensorBoardEvent, TwoValuesAndStepZero) {
  // Step 0 is proto3's default and is not written; two values are two repeated entries.
  const std::string e = event_scalars(0.0, 0, {{"a", 1.0f}, {"b", 2.0f}});
  const std::string v1 = bytes({0x0A, 1}) + "a" + bytes({0x15, 0, 0, 0x80, 0x3F});
  const std::string v2 = bytes({0x0A, 1}) + "b" + bytes({0x15, 0, 0, 0, 0x40});
  const std::string summary = bytes({0x0A, 8}) + v1 + bytes({0x0A, 8}) + v2;
  EXPECT_EQ(e, bytes({0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x2A, static_cast<int>(summary.size())}) + summary);
}

TEST(TensorBoardEvent, SessionStartBytes) {
  // step 7, session_log (field 6) { status (field 1) START = 1 }.
  EXPECT_EQ(event_session_start(1.0, 7), bytes({0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 7, 0x32, 2, 0x08, 1}));
}

// Splits an event file into its payloads, checking every checksum.
std::vector<std::string> records(const std::string& file) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_LE(at + 12, file.size());
    const uint64_t n = le64(file, at);
    EXPECT_EQ(le32(file, at + 8), masked_crc32c(file.substr(at, 8)));
    const std::string payload = file.substr(at + 12, n);
    EXPECT_EQ(le32(file, at + 12 + n), masked_crc32c(payload));
    out.push_back(payload);
    at += 12 + n + 4;
  }
  return out;
}

TEST(TensorBoardWriter, WritesVersionThenOneEventPerCall) {
  tune::report::testing::TempDir dir("tb");
  std::filesystem::path path;
  {
    TensorBoardWriter w(dir.path());
    path = w.path();
    EXPECT_EQ(path.filename().string().rfind("events.out.tfevents.", 0), 0u);
    w.add_scalars(10, {{"loss", 1.25}, {"lr", 1e-3}, {"nan", std::nan("")}}, 100.0);
    w.add_scalars(20, {{"loss", 0.75}}, 101.0);
    w.add_scalars(30, {{"only_nan", std::nan("")}}, 102.0);  // nothing finite: no event
  }
  const auto rs = records(tune::fs::read_file(path));
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].substr(9), bytes({0x1A, 13}) + "brain.Event:2");
  EXPECT_EQ(rs[1], event_scalars(100.0, 10, {{"loss", 1.25f}, {"lr", 1e-3f}}));  // sorted by tag, NaN left out
  EXPECT_EQ(rs[2], event_scalars(101.0, 20, {{"loss", 0.75f}}));
}

TEST(TensorBoardWriter, ResumedRunStartsASession) {
  tune::report::testing::TempDir dir("tb_resume");
  std::filesystem::path path;
  {
    TensorBoardWriter w(dir.path(), 40);
    path = w.path();
  }
  const auto rs = records(tune::fs::read_file(path));
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[1].substr(9), bytes({0x10, 40, 0x32, 2, 0x08, 1}));
}

TEST(TensorBoardWriter, RemoveEventFilesKeepsTheRest) {
  tune::report::testing::TempDir dir("tb_remove");
  { TensorBoardWriter w(dir.path()); }
  tune::report::testing::write_text(dir.path() / "metrics.jsonl", "{}\n");
  remove_event_files(dir.path());
  int left = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) left += e.path().filename() == "metrics.jsonl" ? 1 : 100;
  EXPECT_EQ(left, 1);
}

}  // namespace
