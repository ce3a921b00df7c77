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

void write_file_atomic(const stdfs::path& path, std::string_view content) {
  if (path.has_parent_path()) ensure_directory(path.parent_path());
  auto tmp = temp_sibling(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot write ", tmp.string(), ": ", std::strerror(errno));
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write ", tmp.string(), ": ", std::strerror(e));
    }
    p += n;
    left -= static_cast<size_t>(n);
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
