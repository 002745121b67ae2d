#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace kiln::cli {

ProgressReporter::ProgressReporter(bool enabled)
    : enabled_(enabled),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

ProgressReporter::~ProgressReporter() { finish(); }

void ProgressReporter::update(std::string_view stage, double fraction) {
  if (!enabled_) return;
  fraction = std::clamp(fraction, 0.0, 1.0);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (!tty_) {
    if (stage == last_stage_) return;
    last_stage_ = std::string(stage);
    std::fprintf(stderr, "kiln: %.*s (%.0f%%, %.2f s)\n", static_cast<int>(stage.size()),
                 stage.data(), fraction * 100, elapsed);
    return;
  }
  constexpr int kWidth = 30;
  int filled = static_cast<int>(fraction * kWidth + 0.5);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '-');
  // \r returns to column 0 and \033[K clears what a longer previous line left behind.
  std::fprintf(stderr, "\r\033[K[%s] %3.0f%% %-10.*s %.1f s", bar.c_str(), fraction * 100,
               static_cast<int>(stage.size()), stage.data(), elapsed);
  std::fflush(stderr);
  bar_open_ = true;
}

void ProgressReporter::finish() {
  if (bar_open_) std::fputc('\n', stderr);
  bar_open_ = false;
}

}  // namespace kiln::cli
