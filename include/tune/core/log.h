#pragma once
// Logging facade. spdlog lives only in log.cpp: LibTorch's wheel bundles its own fmt (12.x) while
// Debian's spdlog is built against fmt 9, so files that include <torch/torch.h> must not include
// spdlog. They log through these functions, which take already-built strings.
#include <string>
#include <string_view>

#include "tune/core/str.h"

namespace tune::log {

enum class Level { debug, info, warn, error, off };

void set_level(Level level);
Level level();
void write(Level level, std::string_view message);

template <class... Args>
void debug(const Args&... args) { if (level() <= Level::debug) write(Level::debug, ::tune::str(args...)); }
template <class... Args>
void info(const Args&... args) { if (level() <= Level::info) write(Level::info, ::tune::str(args...)); }
template <class... Args>
void warn(const Args&... args) { if (level() <= Level::warn) write(Level::warn, ::tune::str(args...)); }
template <class... Args>
void error(const Args&... args) { write(Level::error, ::tune::str(args...)); }

}  // namespace tune::log
