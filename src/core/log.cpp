// The only file that includes spdlog (see log.h for why).
#include "tune/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>

namespace tune::log {
namespace {

std::atomic<Level> g_level{Level::info};

spdlog::logger& logger() {
  // Logs go to stderr so that stdout stays clean for command output (JSONL, completions).
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("tune");
    l->set_pattern("%^[%H:%M:%S %L]%$ %v");
    l->set_level(spdlog::level::trace);
    if (const char* env = std::getenv("TUNE_LOG")) {
      std::string v = env;
      if (v == "debug") g_level = Level::debug;
      if (v == "warn") g_level = Level::warn;
      if (v == "error") g_level = Level::error;
      if (v == "off") g_level = Level::off;
    }
    return l;
  }();
  return *instance;
}

}  // namespace

void set_level(Level level) { g_level = level; }

Level level() {
  logger();  // applies TUNE_LOG on first use
  return g_level;
}

void write(Level lvl, std::string_view message) {
  if (lvl < level()) return;
  auto& l = logger();
  switch (lvl) {
    case Level::debug: l.debug("{}", message); break;
    case Level::info: l.info("{}", message); break;
    case Level::warn: l.warn("{}", message); break;
    case Level::error: l.error("{}", message); break;
    case Level::off: break;
  }
}

}  // namespace tune::log
