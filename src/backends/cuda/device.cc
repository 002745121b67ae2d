#include "backends/cuda/device.h"

#include <cstdlib>

#include "core/logging.h"

namespace kiln::cuda {

Status cuda_status(cudaError_t err, std::string_view what) {
  if (err == cudaSuccess) return Status();
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  std::string msg = std::string(what) + " failed: " + cudaGetErrorString(err) + " (" +
                    cudaGetErrorName(err) + ")";
  if (err == cudaErrorMemoryAllocation) return resource_exhausted(msg);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
      err == cudaErrorInitializationError || err == cudaErrorStubLibrary)
    return unavailable(msg);
  return device_error(msg);
}

Status device_set(int device) {
  int current = -1;
  if (cudaGetDevice(&current) == cudaSuccess && current == device) return Status();
  return cuda_status(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
}

Result<DeviceInfo> device_open(int device) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return unavailable(std::string("no CUDA device available (cudaGetDeviceCount: ") +
                       cudaGetErrorString(err) + ")");
  }
  if (count == 0) return unavailable("no CUDA device available (cudaGetDeviceCount: 0 devices)");
  if (device < 0 || device >= count)
    return invalid_argument("CUDA device " + std::to_string(device) + " does not exist; this machine has " +
                            std::to_string(count) + " (valid: 0.." + std::to_string(count - 1) + ")");
  KILN_RETURN_IF_ERROR(device_set(device));
  cudaDeviceProp prop{};
  KILN_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  // Initialises the primary context now, so that later failures are about real work.
  KILN_CUDA_RETURN_IF_ERROR(cudaFree(nullptr), "CUDA context creation (cudaFree(0))");
  DeviceInfo info;
  info.index = device;
  info.name = prop.name;
  info.sm = prop.major * 10 + prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.total_memory = prop.totalGlobalMem;
  info.shared_memory_per_block = prop.sharedMemPerBlock;
  return info;
}

std::optional<bool> env_switch(const char* var) {
  const char* v = std::getenv(var);
  if (!v || !*v) return std::nullopt;
  const std::string value = v;
  if (value == "0" || value == "1") return value == "1";
  log_warning(std::string(var) + "='" + value + "': expected 0 or 1; ignored");
  return std::nullopt;
}

}  // namespace kiln::cuda
