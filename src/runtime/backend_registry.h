// Which backends this build has, and how to get one. Backends are created once per
// (name, device) and shared; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"

namespace kiln {

// "cpu" always; "cuda" when kiln was built with the CUDA backend. Errors: kInvalidArgument for an
// unknown name (listing the valid ones), kUnavailable when the backend exists but cannot run here
// (no GPU, no driver).
Result<std::shared_ptr<const Backend>> backend_get(std::string_view name, int device = 0);
std::vector<std::string> backend_names();

}  // namespace kiln
