#pragma once
// TensorBoard event files, written by hand (no TensorFlow, no protobuf library): the TFRecord
// framing (length, masked CRC32C of the length, payload, masked CRC32C of the payload) around
// tensorflow.Event messages encoded field by field:
//   Event        wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
//                summary = 5 (Summary), session_log = 6 (SessionLog)
//   Summary      value = 1 (repeated Value);  Value: tag = 1 (string), simple_value = 2 (float)
//   SessionLog   status = 1 (enum; START = 1)
// The first record of a file carries file_version "brain.Event:2", as TensorBoard expects.
// Torch-free.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tune::report {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), and the TFRecord mask of it.
uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);

// One TFRecord: [uint64 length][uint32 masked crc of length][payload][uint32 masked crc of payload], little endian.
std::string tfrecord(std::string_view payload);

// Encoded Event messages.
std::string event_file_version(double wall_time);
std::string event_scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& values);
// SessionLog START at `step`: TensorBoard drops the events of a step >= it that an earlier
// attempt wrote (a run resumed from a checkpoint continues without a second history).
std::string event_session_start(double wall_time, int64_t step);

// Appends scalar events to <dir>/events.out.tfevents.<seconds>.<host>.<pid>.<n>, one flushed
// record per call (like metrics.jsonl, appended, so a crash loses at most the record being written).
class TensorBoardWriter {
 public:
  // resume_step: the step a resumed run continues from (a SessionLog START is written for it).
  explicit TensorBoardWriter(const std::filesystem::path& dir, std::optional<int64_t> resume_step = std::nullopt);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalars(int64_t step, const std::map<std::string, double>& values, std::optional<double> wall_time = std::nullopt);
  const std::filesystem::path& path() const { return path_; }

 private:
  void write(const std::string& record);
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

// Removes the event files of an earlier run in `dir` (a fresh start replaces them, as metrics.jsonl).
void remove_event_files(const std::filesystem::path& dir);

double wall_clock_seconds();

}  // namespace tune::report
