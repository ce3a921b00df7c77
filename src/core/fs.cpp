#include "tune/core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "tune/core/error.h"

namespace tune::fs {

std::string read_file(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open ", path.string(), ": ", std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read ", path.string());
  return data;
}

stdfs::path temp_sibling(const stdfs::path& final_path) {
  static std::atomic<int> counter{0};
  auto name = final_path.filename().string();
  return final_path.parent_path() / str(name, ".tmp-", ::getpid(), "-", counter++);
}

namespace {

// Writes all of `content` to `fd`; false with errno set on failure.
bool write_all(int fd, std::string_view content) {
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}

// A path that names a stream rather than a file (/dev/stdout, a FIFO, a terminal): it is written in
// place, since renaming a temporary onto it would replace the device node with a regular file.
bool is_stream(const stdfs::path& path) {
  std::error_code ec;
  const auto st = stdfs::status(path, ec);  // follows /dev/stdout -> /proc/self/fd/1
  return !ec && stdfs::exists(st) && !stdfs::is_regular_file(st) && !stdfs::is_directory(st);
}

}  // namespace

void write_file_atomic(const stdfs::path& path, std::string_view content) {
  if (is_stream(path)) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot write ", path.string(), ": ", std::strerror(errno));
    const bool ok = write_all(fd, content);
    const int e = errno;
    ::close(fd);
    if (!ok) fail("cannot write ", path.string(), ": ", std::strerror(e));
    return;
  }
  if (path.has_parent_path()) ensure_directory(path.parent_path());
  auto tmp = temp_sibling(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot write ", tmp.string(), ": ", std::strerror(errno));
  if (!write_all(fd, content)) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("cannot write ", tmp.string(), ": ", std::strerror(e));
  }
  // Data must be on disk before the rename makes it visible, or a crash can leave an empty file.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("cannot flush ", tmp.string(), ": ", std::strerror(errno));
  }
  std::error_code ec;
  stdfs::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    fail("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message());
  }
}

void ensure_directory(const stdfs::path& dir) {
  std::error_code ec;
  stdfs::create_directories(dir, ec);
  if (ec) fail("cannot create directory ", dir.string(), ": ", ec.message());
}

void replace_directory(const stdfs::path& tmp_dir, const stdfs::path& final_dir) {
  std::error_code ec;
  stdfs::path old;
  if (stdfs::exists(final_dir)) {
    old = temp_sibling(final_dir);
    stdfs::rename(final_dir, old, ec);
    if (ec) fail("cannot move ", final_dir.string(), " aside: ", ec.message());
  }
  stdfs::rename(tmp_dir, final_dir, ec);
  if (ec) {
    if (!old.empty()) stdfs::rename(old, final_dir);  // put the previous one back
    fail("cannot rename ", tmp_dir.string(), " to ", final_dir.string(), ": ", ec.message());
  }
  if (!old.empty()) stdfs::remove_all(old, ec);
}

}  // namespace tune::fs
