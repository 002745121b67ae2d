#include "backends/cuda/nvrtc.h"

#include <nvrtc.h>

#include <algorithm>
#include <cstdio>

#include "kiln/runtime_cache.h"

namespace kiln::cuda {
namespace {

Status nvrtc_status(nvrtcResult r, std::string_view what) {
  if (r == NVRTC_SUCCESS) return Status();
  return device_error(std::string(what) + " failed: " + nvrtcGetErrorString(r));
}

// The SMs this NVRTC can emit cubin for, ascending.
const std::vector<int>& supported_archs() {
  // Never destroyed: background compiles may still read it while statics are torn down at exit.
  static const std::vector<int>& archs = *new std::vector<int>([] {
    std::vector<int> v;
    int n = 0;
    if (nvrtcGetNumSupportedArchs(&n) == NVRTC_SUCCESS && n > 0) {
      v.resize(static_cast<size_t>(n));
      if (nvrtcGetSupportedArchs(v.data()) != NVRTC_SUCCESS) v.clear();
    }
    std::sort(v.begin(), v.end());
    return v;
  }());
  return archs;
}

bool emits_cubin(int sm) {
  const auto& a = supported_archs();
  return std::find(a.begin(), a.end(), sm) != a.end();
}

}  // namespace

int nvrtc_version() {
  int major = 0, minor = 0;
  if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return 0;
  return major * 1000 + minor * 10;
}

std::vector<std::string> nvrtc_options(int sm) {
  std::string arch;
  if (emits_cubin(sm) || supported_archs().empty()) {
    arch = "--gpu-architecture=sm_" + std::to_string(sm);
  } else {
    int best = supported_archs().front();
    for (int a : supported_archs())
      if (a <= sm) best = a;
    arch = "--gpu-architecture=compute_" + std::to_string(best);
  }
  return {arch, "-default-device", "--std=c++17"};
}

Result<CompiledKernel> nvrtc_compile(const KernelSource& src, int sm) {
  CompiledKernel out;
  out.options = nvrtc_options(sm);
  out.is_ptx = out.options[0].find("compute_") != std::string::npos;
  const std::string where = "NVRTC failed to compile kernel " + src.name + " for sm_" + std::to_string(sm);

  nvrtcProgram prog = nullptr;
  KILN_RETURN_IF_ERROR(nvrtc_status(
      nvrtcCreateProgram(&prog, src.source.c_str(), (src.name + ".cu").c_str(), 0, nullptr, nullptr),
      where + ": nvrtcCreateProgram"));
  struct Destroy {
    nvrtcProgram* p;
    ~Destroy() { nvrtcDestroyProgram(p); }
  } destroy{&prog};

  std::vector<const char*> opts;
  for (const auto& o : out.options) opts.push_back(o.c_str());
  nvrtcResult compiled = nvrtcCompileProgram(prog, static_cast<int>(opts.size()), opts.data());
  size_t log_size = 0;
  if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    out.log.resize(log_size);
    if (nvrtcGetProgramLog(prog, out.log.data()) != NVRTC_SUCCESS) out.log.clear();
    while (!out.log.empty() && (out.log.back() == '\0' || out.log.back() == '\n')) out.log.pop_back();
  }
  if (compiled != NVRTC_SUCCESS)
    return device_error(where + ": " + nvrtcGetErrorString(compiled) + "\n" + out.log);

  size_t size = 0;
  if (out.is_ptx) {
    KILN_RETURN_IF_ERROR(nvrtc_status(nvrtcGetPTXSize(prog, &size), where + ": nvrtcGetPTXSize"));
    out.image.resize(size);
    KILN_RETURN_IF_ERROR(nvrtc_status(nvrtcGetPTX(prog, out.image.data()), where + ": nvrtcGetPTX"));
  } else {
    KILN_RETURN_IF_ERROR(nvrtc_status(nvrtcGetCUBINSize(prog, &size), where + ": nvrtcGetCUBINSize"));
    out.image.resize(size);
    KILN_RETURN_IF_ERROR(nvrtc_status(nvrtcGetCUBIN(prog, out.image.data()), where + ": nvrtcGetCUBIN"));
  }
  return out;
}

std::string kernel_cache_key(std::string_view source, const std::vector<std::string>& options, int sm) {
  std::string joined;
  for (const auto& o : options) joined += o + '\n';
  return make_cache_key(source, joined, nvrtc_version(), "sm_" + std::to_string(sm)).to_hex();
}

}  // namespace kiln::cuda
