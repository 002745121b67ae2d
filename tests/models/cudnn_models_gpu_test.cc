// The shared convolutional models on both CUDA convolution paths (label gpu): cuDNN and the JIT
// kernels, plain launches and whole_graph_capture, each compared with onnxruntime's outputs
// (rtol 1e-3, atol 1e-4) and with each other.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "backends/cuda/conv_cudnn.h"
#include "kiln/builder.h"
#include "kiln/engine.h"
#include "tests/util/cuda_testing.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class CudnnModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudnnModelTest, BothConvolutionPathsMatchTheReference) {
  const fs::path dir = test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir)) << dir << " (set KILN_TESTDATA)";
  const test::DataSet set = test::read_data_set(test::data_set_dir(dir, 1));
  const std::vector<Tensor>& inputs = set.inputs;
  const std::vector<Tensor>& expected = set.outputs;
  // static shapes: data set 1's
  Result<std::vector<uint8_t>> bytes = test::build_static_engine(dir, inputs);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();

  std::vector<Tensor> dev_in;
  for (const Tensor& t : inputs) dev_in.push_back(test::to_device(t));
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
          const Tensor got = test::to_host((*out)[k]);
          EXPECT_EQ(got.dtype(), DType::kF32);
          EXPECT_EQ(got.dims(), expected[k].dims());
          const test::Closeness c = test::closeness(got, expected[k], 1e-3, 1e-4);
          EXPECT_LE(c.violation, 0.0) << what << " output " << k << ": max abs error " << c.max_abs;
          if (call == 3 && k == 0)
            std::printf("[ cudnn    ] %s output 0: max abs error %.3g\n", what.c_str(), c.max_abs);
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
