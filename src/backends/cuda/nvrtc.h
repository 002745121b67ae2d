// NVRTC: CUDA C++ source -> machine code (cubin) for one GPU architecture, at run time.
//
// NVRTC needs no GPU, so everything here also runs (and is tested) on machines without one.
// All functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"

namespace kiln::cuda {

// One generated kernel: a self-contained translation unit (no #include) defining
// `extern "C" __global__ void <name>(...)`.
struct KernelSource {
  std::string name;
  std::string source;
};

struct CompiledKernel {
  std::vector<char> image;   // cubin, or NUL-terminated PTX when `is_ptx`
  bool is_ptx = false;
  std::vector<std::string> options;  // the options it was compiled with
  std::string log;           // NVRTC's log (warnings), possibly empty
};

// NVRTC's version as major*1000 + minor*10 (13000 for 13.0).
int nvrtc_version();

// The options kiln compiles with for SM `sm` (90 for sm_90): --gpu-architecture=sm_90
// -default-device --std=c++17. When this NVRTC cannot emit machine code for `sm` (a GPU newer
// than the toolkit), the newest virtual architecture it knows is used instead and PTX comes
// back, which the driver compiles at load time.
std::vector<std::string> nvrtc_options(int sm);

// Compiles `src` for `sm`. Errors: kDeviceError "NVRTC failed to compile kernel <name> for
// sm_<sm>: <error>" followed by NVRTC's log (which names the line).
Result<CompiledKernel> nvrtc_compile(const KernelSource& src, int sm);

// The runtime-cache key of a kernel as 64 hex digits: make_cache_key (kiln/runtime_cache.h, SHA-256)
// of (source, options, NVRTC version, target SM). Equal keys mean interchangeable machine code.
std::string kernel_cache_key(std::string_view source, const std::vector<std::string>& options, int sm);

}  // namespace kiln::cuda
