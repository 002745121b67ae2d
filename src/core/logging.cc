#include "core/logging.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>

namespace kiln {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kWarning)};
std::mutex g_mu;
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  static const char* const kNames[] = {"debug", "info", "warning", "error"};
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "kiln %s: %.*s\n", kNames[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

void log_once(LogLevel level, std::string_view key, std::string_view message) {
  static std::set<std::string, std::less<>>* seen = new std::set<std::string, std::less<>>();
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!seen->emplace(key).second) return;
  }
  log(level, message);
}

}  // namespace kiln
