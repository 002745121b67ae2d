// The shared convolutional models on both CUDA convolution paths (label gpu): cuDNN and the JIT
// kernels, plain launches and whole_graph_capture, each compared with onnxruntime's outputs
// (rtol 1e-3, atol 1e-4) and with each other.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/cuda/conv_cudnn.h"
#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/importer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

fs::path model_dir(const std::string& name) {
  const char* env = std::getenv("KILN_TESTDATA");
  return fs::path(env && *env ? env : KILN_TESTDATA_DIR) / "models" / name;
}

std::vector<Tensor> read_set(const fs::path& dir, const std::string& prefix) {
  std::vector<Tensor> out;
  for (int i = 0; fs::exists(dir / (prefix + "_" + std::to_string(i) + ".pb")); ++i) {
    Result<Tensor> t = onnx::read_tensor_file((dir / (prefix + "_" + std::to_string(i) + ".pb")).string());
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    if (t.ok()) out.push_back(std::move(t).value());
  }
  return out;
}

Tensor to_device(const Tensor& t) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(t.nbytes(), 1)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(p, t.data(), t.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  return Tensor::wrap(t.dtype(), t.dims(), p, std::shared_ptr<void>(p, [](void* q) { cudaFree(q); }),
                      Device{DeviceType::kCuda, 0});
}

Tensor to_host(const Tensor& t) {
  if (t.device().type != DeviceType::kCuda) return t;
  Tensor h = Tensor::zeros(t.dtype(), t.dims());
  EXPECT_EQ(cudaMemcpy(h.data(), t.data(), t.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

// Largest |got - want| - (atol + rtol |want|) over f32 outputs (<= 0: within tolerance).
double violation(const Tensor& got, const Tensor& want, double* max_abs) {
  EXPECT_EQ(got.dtype(), DType::kF32);
  EXPECT_EQ(got.dims(), want.dims());
  double worst = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double a = got.data_as<const float>()[i], b = want.data_as<const float>()[i];
    const double err = std::fabs(a - b);
    *max_abs = std::max(*max_abs, err);
    worst = std::max(worst, std::isnan(err) ? 1.0 : err - (1e-4 + 1e-3 * std::fabs(b)));
  }
  return worst;
}

class CudnnModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudnnModelTest, BothConvolutionPathsMatchTheReference) {
  const fs::path dir = model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir)) << dir << " (set KILN_TESTDATA)";
  const std::vector<Tensor> inputs = read_set(dir / "test_data_set_1", "input");
  const std::vector<Tensor> expected = read_set(dir / "test_data_set_1", "output");
  Result<ir::Graph> g = onnx::import_file((dir / "model.onnx").string());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  BuildOptions options;  // static shapes: data set 1's
  for (size_t i = 0; i < inputs.size(); ++i)
    options.shapes.push_back({g->values[g->inputs[i]].name, inputs[i].dims(), inputs[i].dims(), inputs[i].dims()});
  Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();

  std::vector<Tensor> dev_in;
  for (const Tensor& t : inputs) dev_in.push_back(to_device(t));
  const cuda::ConvPath before = cuda::conv_path();
  for (cuda::ConvPath path : {cuda::ConvPath::kCudnn, cuda::ConvPath::kJit}) {
    cuda::set_conv_path(path);
    // A fresh engine per path: captured graphs keep the convolutions they captured.
    Result<std::shared_ptr<Engine>> engine = Engine::load_from_memory(*bytes);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    for (CudaGraphStrategy strategy : {CudaGraphStrategy::kDisabled, CudaGraphStrategy::kWholeGraphCapture}) {
      RuntimeSettings settings;
      settings.cuda_graph_strategy = strategy;
      settings.kernel_specialization = KernelSpecializationStrategy::kNone;
      RunOptions o;
      o.backend = "cuda";
      o.settings = &settings;
      const cuda::ConvStats stats_before = cuda::conv_stats();
      for (int call = 0; call < 4; ++call) {  // with graphs: plain, capture, replays
        const std::string what = GetParam() + " on " + std::string(cuda::conv_path_name(path)) +
                                 (strategy == CudaGraphStrategy::kDisabled ? "" : " (whole_graph_capture)") +
                                 " call " + std::to_string(call);
        Result<std::vector<Tensor>> out = (*engine)->run(dev_in, o);
        ASSERT_TRUE(out.ok()) << what << ": " << out.status().to_string();
        ASSERT_EQ(out->size(), expected.size());
        for (size_t k = 0; k < out->size(); ++k) {
          double max_abs = 0;
          EXPECT_LE(violation(to_host((*out)[k]), expected[k], &max_abs), 0.0)
              << what << " output " << k << ": max abs error " << max_abs;
          if (call == 3 && k == 0)
            std::printf("[ cudnn    ] %s output 0: max abs error %.3g\n", what.c_str(), max_abs);
        }
      }
      const cuda::ConvStats stats_after = cuda::conv_stats();
      if (path == cuda::ConvPath::kCudnn) {
        EXPECT_GT(stats_after.cudnn_convs, stats_before.cudnn_convs) << GetParam() << ": cuDNN ran no convolution";
      } else {
        EXPECT_EQ(stats_after.cudnn_convs, stats_before.cudnn_convs) << GetParam() << ": path jit used cuDNN";
      }
    }
    auto counters = (*engine)->stats().backend_counters;
    EXPECT_EQ(counters["graph_fallbacks"], 0u);
    EXPECT_GE(counters["graphs_captured"], 1u);
  }
  cuda::set_conv_path(before);
}

INSTANTIATE_TEST_SUITE_P(Models, CudnnModelTest, ::testing::Values("tiny_cnn", "mobilenet_v3_small"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln
