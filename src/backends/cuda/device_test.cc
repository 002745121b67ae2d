// Without a GPU or a driver the CUDA backend is a clear kUnavailable error, never a crash; with
// one it opens. Runs everywhere (label nogpu): which branch runs depends on the machine.
#include <gtest/gtest.h>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/device.h"

namespace kiln::cuda {
namespace {

TEST(CudaDeviceTest, OpenGivesDeviceOrUnavailable) {
  Result<DeviceInfo> info = device_open(0);
  if (info.ok()) {
    EXPECT_GE(info->sm, 50);
    EXPECT_GT(info->multiprocessors, 0);
    EXPECT_FALSE(info->name.empty());
  } else {
    EXPECT_EQ(info.status().code(), StatusCode::kUnavailable) << info.status().to_string();
    EXPECT_NE(info.status().message().find("no CUDA device available"), std::string::npos)
        << info.status().message();
  }
}

TEST(CudaDeviceTest, BackendWithoutGpuIsUnavailableNotACrash) {
  Result<std::unique_ptr<Backend>> b = create_cuda_backend(0);
  if (b.ok()) {
    EXPECT_EQ((*b)->name(), "cuda");
    EXPECT_TRUE((*b)->supports(Feature::kDeviceMemory));
  } else {
    EXPECT_EQ(b.status().code(), StatusCode::kUnavailable) << b.status().to_string();
  }
}

TEST(CudaDeviceTest, MissingDeviceIndexIsAnError) {
  Result<DeviceInfo> info = device_open(4096);
  ASSERT_FALSE(info.ok());
  EXPECT_TRUE(info.status().code() == StatusCode::kUnavailable ||
              info.status().code() == StatusCode::kInvalidArgument)
      << info.status().to_string();
}

TEST(CudaDeviceTest, CudaErrorsBecomeStatusNamingTheCall) {
  Status s = cuda_status(cudaErrorMemoryAllocation, "cudaMalloc (kernel k, node n)");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("cudaMalloc (kernel k, node n) failed"), std::string::npos) << s.message();
  EXPECT_EQ(cuda_status(cudaErrorLaunchFailure, "launch").code(), StatusCode::kDeviceError);
  EXPECT_TRUE(cuda_status(cudaSuccess, "x").ok());
}

TEST(CudaDeviceTest, SupportedOpsCoverTheSharedModels) {
  std::vector<std::string> ops = supported_ops();
  for (const char* op : {"Gemm", "MatMul", "Conv", "Add", "Mul", "Div", "Erf", "Softmax", "Relu", "MaxPool",
                         "GlobalAveragePool", "Flatten", "Gather", "LayerNormalization", "Reshape", "Transpose",
                         "Slice", "Concat", "HardSwish", "HardSigmoid", "ReduceMean", "Shape", "Unsqueeze", "Squeeze"})
    EXPECT_NE(std::find(ops.begin(), ops.end(), op), ops.end()) << op;
}

}  // namespace
}  // namespace kiln::cuda
