// CUDA device selection and properties, and turning CUDA runtime errors into Status.
//
// kiln talks to the GPU only through the CUDA runtime (libcudart), which loads the driver
// (libcuda) itself at first use. So a machine without a GPU or a driver gets a kUnavailable
// Status from device_open(), never a failed program start or an abort.
#pragma once

#include <cuda_runtime_api.h>

#include <optional>
#include <string>
#include <string_view>

#include "kiln/status.h"

namespace kiln::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int sm = 0;               // compute capability as major*10+minor: 90 for sm_90
  int multiprocessors = 0;
  size_t total_memory = 0;
  size_t shared_memory_per_block = 0;
};

// Checks that `device` exists and reads its properties, making it current on this thread.
// Errors: kUnavailable "no CUDA device available (cudaGetDeviceCount: ...)" when there is no
// GPU or no usable driver; kInvalidArgument when `device` is out of range (names the count).
Result<DeviceInfo> device_open(int device);

// Makes `device` current on the calling thread (cheap when it already is).
Status device_set(int device);

// ok for cudaSuccess; otherwise kDeviceError "<what> failed: <cuda error string> (<code name>)",
// with kResourceExhausted for out-of-memory. `what` names the call and where: "cudaMalloc
// (kernel X, node Y)". Also clears the sticky "last error" so one failure is reported once.
Status cuda_status(cudaError_t err, std::string_view what);

#define KILN_CUDA_RETURN_IF_ERROR(call, what) \
  KILN_RETURN_IF_ERROR(::kiln::cuda::cuda_status((call), (what)))

// A 0/1 switch from the environment variable `var` (callers read it once): nullopt when unset or
// empty; any other value is logged as ignored and gives nullopt.
std::optional<bool> env_switch(const char* var);

}  // namespace kiln::cuda
