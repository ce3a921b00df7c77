#include "tune/report/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

#include "tune/core/error.h"
#include "tune/core/fs.h"
#include "tune/core/str.h"

namespace tune::report {

namespace stdfs = std::filesystem;

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// --- protobuf wire format (only what Event needs).
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, int field, int wire_type) { put_varint(out, static_cast<uint64_t>(field) << 3 | wire_type); }
template <class T>
void put_le(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_double(std::string& out, int field, double v) {
  put_key(out, field, 1);
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_le(out, bits);
}
void put_float(std::string& out, int field, float v) {
  put_key(out, field, 5);
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_le(out, bits);
}
void put_int(std::string& out, int field, int64_t v) {
  put_key(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));  // int64: negative values as ten-byte two's complement
}
void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string event_head(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  if (step != 0) put_int(e, 2, step);  // proto3: a default value is not written
  return e;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  std::string name = buf;
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  return name;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  const auto& t = crc_table();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) c = t[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t c = crc32c(bytes);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

std::string tfrecord(std::string_view payload) {
  std::string length;
  put_le(length, static_cast<uint64_t>(payload.size()));
  std::string out = length;
  put_le(out, masked_crc32c(length));
  out.append(payload);
  put_le(out, masked_crc32c(payload));
  return out;
}

std::string event_file_version(double wall_time) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string event_scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& values) {
  std::string summary;
  for (const auto& [tag, v] : values) {
    std::string value;
    put_bytes(value, 1, tag);
    put_float(value, 2, v);
    put_bytes(summary, 1, value);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string event_session_start(double wall_time, int64_t step) {
  std::string log;
  put_int(log, 1, 1);  // SessionLog.status = START
  std::string e = event_head(wall_time, step);
  put_bytes(e, 6, log);
  return e;
}

double wall_clock_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::TensorBoardWriter(const stdfs::path& dir, std::optional<int64_t> resume_step) {
  fs::ensure_directory(dir);
  static std::atomic<int> counter{0};
  const double now = wall_clock_seconds();
  path_ = dir / str("events.out.tfevents.", static_cast<int64_t>(now), ".", host_name(), ".", getpid(), ".", counter++);
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) fail("cannot open ", path_.string(), " for writing: ", std::strerror(errno));
  write(tfrecord(event_file_version(now)));
  if (resume_step) write(tfrecord(event_session_start(now, *resume_step)));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write(const std::string& record) {
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0)
    fail("cannot write to ", path_.string(), ": ", std::strerror(errno));
}

void TensorBoardWriter::add_scalars(int64_t step, const std::map<std::string, double>& values, std::optional<double> wall_time) {
  std::vector<std::pair<std::string, float>> scalars;
  for (const auto& [tag, v] : values)
    if (std::isfinite(v)) scalars.emplace_back(tag, static_cast<float>(v));
  if (scalars.empty()) return;
  write(tfrecord(event_scalars(wall_time ? *wall_time : wall_clock_seconds(), step, scalars)));
}

void remove_event_files(const stdfs::path& dir) {
  std::error_code ec;
  if (!stdfs::is_directory(dir, ec)) return;
  for (const auto& entry : stdfs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      stdfs::remove(entry.path(), ec);
}

}  // namespace tune::report
