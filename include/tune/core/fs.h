#pragma once
// File helpers. Everything the tool writes goes to a temporary name first and is renamed into
// place, so an interrupted write never destroys what was already saved.
#include <filesystem>
#include <string>
#include <string_view>

namespace tune::fs {

namespace stdfs = std::filesystem;

// Whole file as bytes; the error names the path.
std::string read_file(const stdfs::path& path);
// Writes to "<path>.tmp-<pid>", flushes, then renames over path.
void write_file_atomic(const stdfs::path& path, std::string_view content);
// A unique temporary sibling of `final_path` ("<name>.tmp-<pid>-<n>").
stdfs::path temp_sibling(const stdfs::path& final_path);
// Moves the finished directory `tmp_dir` to `final_dir`, replacing an existing one; the old one is
// only removed after the new one is in place.
void replace_directory(const stdfs::path& tmp_dir, const stdfs::path& final_dir);
void ensure_directory(const stdfs::path& dir);

}  // namespace tune::fs
