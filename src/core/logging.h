// Minimal leveled logging to stderr. Thread-safe; one line per call.
#pragma once

#include <string_view>

namespace kiln {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log(LogLevel level, std::string_view message);
// Logs `message` only the first time `key` is seen in this process.
void log_once(LogLevel level, std::string_view key, std::string_view message);

inline void log_warning(std::string_view m) { log(LogLevel::kWarning, m); }
inline void log_info(std::string_view m) { log(LogLevel::kInfo, m); }

}  // namespace kiln
