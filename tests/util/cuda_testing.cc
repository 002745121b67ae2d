#include "tests/util/cuda_testing.h"

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <memory>

#include "backends/cuda/conv_cudnn.h"

namespace kiln::test {
namespace {

// After the last test: frees the cuDNN handles the process-wide pool keeps (a leak in
// compute-sanitizer's leak check otherwise). Every gpu test binary links this file.
class ReleaseCudnnHandles final : public ::testing::Environment {
 public:
  void TearDown() override { cuda::release_cudnn_handles(); }
};
[[maybe_unused]] ::testing::Environment* const g_release_cudnn =
    ::testing::AddGlobalTestEnvironment(new ReleaseCudnnHandles);

// Makes `device` current for its lifetime and restores the caller's device after.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    cudaGetDevice(&previous_);
    EXPECT_EQ(cudaSetDevice(device), cudaSuccess) << "cuda:" << device;
  }
  ~DeviceScope() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace

Tensor device_empty(DType dtype, const Dims& dims, int device) {
  const size_t nbytes = static_cast<size_t>(dims_numel(dims)) * dtype_size(dtype);
  void* p = nullptr;
  {
    DeviceScope scope(device);
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(nbytes, 1)), cudaSuccess);
  }
  // Unchecked: the last copy may die after the test, or at exit after the runtime unloaded.
  return Tensor::wrap(dtype, dims, p, std::shared_ptr<void>(p, [device](void* q) {
                        int previous = 0;
                        cudaGetDevice(&previous);
                        cudaSetDevice(device);
                        cudaFree(q);
                        cudaSetDevice(previous);
                      }),
                      Device{DeviceType::kCuda, device});
}

Tensor to_device(const Tensor& t, int device) {
  Tensor d = device_empty(t.dtype(), t.dims(), device);
  DeviceScope scope(device);
  EXPECT_EQ(cudaMemcpy(d.data(), t.data(), t.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

Tensor to_host(const Tensor& t) {
  if (t.device().type != DeviceType::kCuda) return t;
  Tensor h = Tensor::zeros(t.dtype(), t.dims());
  DeviceScope scope(t.device().index);
  EXPECT_EQ(cudaMemcpy(h.data(), t.data(), t.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace kiln::test
