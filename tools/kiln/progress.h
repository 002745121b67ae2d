// Build progress on stderr: a redrawn bar when stderr is a terminal, plain stage lines otherwise
// (logs, CI), nothing when disabled. Not thread-safe: call from the thread that builds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace kiln::cli {

class ProgressReporter {
 public:
  // `enabled` false prints nothing; otherwise the mode follows isatty(stderr).
  explicit ProgressReporter(bool enabled);
  ~ProgressReporter();  // ends a bar line that finish() did not

  // Reports that `stage` is running and `fraction` (clamped to [0, 1]) of the work is done.
  void update(std::string_view stage, double fraction);
  // Ends the bar line (a terminal) so later output starts on a fresh line. Idempotent.
  void finish();

 private:
  bool enabled_;
  bool tty_;
  bool bar_open_ = false;
  std::string last_stage_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kiln::cli
