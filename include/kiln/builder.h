// Building an engine: ONNX model + BuildOptions -> engine file bytes.
//
// BuildOptions define the program and nothing else: how an engine runs (CUDA graphs, kernel
// specialisation, runtime cache) is runtime state, set through kiln/runtime.h, and can never
// appear here or in an engine file. Building the same model with equal BuildOptions gives
// byte-identical engine files. Building is thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

enum class Precision : uint8_t { kFp32 = 0, kFp16 = 1, kBf16 = 2 };
std::string_view precision_name(Precision p);  // "fp32" | "fp16" | "bf16"
Result<Precision> precision_parse(std::string_view name);

enum class HardwareCompatibility : uint8_t {
  kPortable = 0,      // kernels shipped as sources, JIT-compiled for whatever GPU runs them
  kArchSpecific = 1,  // may also carry PTX for min_compute_capability
};

// The shape range one input accepts: min <= actual <= max per dim; opt is what the engine is
// tuned for. All three have the input's rank; static dims repeat the static size.
struct ShapeProfile {
  std::string input;
  Dims min, opt, max;
};

struct BuildOptions {
  std::vector<ShapeProfile> shapes;  // inputs with dynamic dims and no entry get a default
  Precision precision = Precision::kFp32;
  bool allow_tf32 = false;
  std::string target_platform = "linux-x86_64";
  int min_compute_capability = 75;   // sm_75
  HardwareCompatibility hardware_compatibility = HardwareCompatibility::kPortable;
  int optimization_level = 3;        // 0 = no passes, 3 = all passes
  std::string name;                  // empty: the model file's stem
  std::map<std::string, std::string> metadata;
};

// Default profile of a dynamic dim when the caller gives none.
inline constexpr int64_t kDefaultDynamicMin = 1;
inline constexpr int64_t kDefaultDynamicOpt = 1;
inline constexpr int64_t kDefaultDynamicMax = 4096;

// Progress of a build, for progress bars: stage name and fraction done in [0, 1].
using BuildProgress = std::function<void(std::string_view stage, double fraction)>;

struct BuildReport {
  std::vector<ShapeProfile> resolved_shapes;  // the profile of every input, defaults filled in
  std::vector<std::string> defaulted_inputs;  // inputs whose profile kiln chose
  size_t nodes_before = 0, nodes_after = 0;
};

// Imports `onnx_path` (external data found beside it) and builds an engine.
// Errors: kNotFound / kIoError for the file, kInvalidData for a malformed model,
// kUnsupported naming op, node and opset, kInvalidArgument for a bad profile.
Result<std::vector<uint8_t>> build_engine(const std::string& onnx_path, const BuildOptions& options,
                                          const BuildProgress& progress = nullptr,
                                          BuildReport* report = nullptr);
// Same, from serialized ONNX bytes; external data is resolved relative to `base_dir`.
Result<std::vector<uint8_t>> build_engine_from_bytes(std::string_view onnx_bytes,
                                                     const std::string& base_dir,
                                                     const BuildOptions& options,
                                                     const BuildProgress& progress = nullptr,
                                                     BuildReport* report = nullptr);

}  // namespace kiln
