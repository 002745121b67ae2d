// Every shared model, every data set, on the CUDA backend (label gpu): ONNX -> engine -> Engine::run
// with backend "cuda", compared with onnxruntime's outputs (rtol 1e-3, atol 1e-4), with host inputs
// and with device-resident inputs (outputs then stay on the device).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "tests/util/cuda_testing.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using test::to_device;
using test::to_host;

class CudaModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModelTest, EveryDataSetMatchesReferenceOnCuda) {
  fs::path dir = test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  const std::vector<test::DataSet> sets = test::read_data_sets(dir);
  ASSERT_GE(sets.size(), 2u);
  Result<BuildOptions> options = test::shape_profiles(dir, sets);
  ASSERT_TRUE(options.ok()) << options.status().to_string();
  Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), *options);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::shared_ptr<Engine>> engine = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  RunOptions cuda;
  cuda.backend = "cuda";
  for (bool device_inputs : {false, true}) {
    for (size_t k = 0; k < sets.size(); ++k) {
      std::vector<Tensor> in = sets[k].inputs;
      if (device_inputs)
        for (Tensor& t : in) t = to_device(t);
      Result<std::vector<Tensor>> out = (*engine)->run(in, cuda);
      ASSERT_TRUE(out.ok()) << "data set " << k << ": " << out.status().to_string();
      ASSERT_EQ(out->size(), sets[k].outputs.size());
      for (size_t o = 0; o < out->size(); ++o) {
        const std::string where = GetParam() + " set " + std::to_string(k) + " output " + std::to_string(o) +
                                  (device_inputs ? " (device inputs)" : " (host inputs)");
        EXPECT_EQ((*out)[o].device().type, device_inputs ? DeviceType::kCuda : DeviceType::kCpu) << where;
        const test::Closeness c =
            test::expect_close_to_reference(to_host((*out)[o]), sets[k].outputs[o], 1e-3, 1e-4, where);
        std::printf("[ cuda     ] %s: max_abs_err %.3g\n", where.c_str(), c.max_abs);
      }
    }
  }
}

// Not a timed test: prints median latency per model and data set (CUDA with device inputs, CUDA
// with host inputs, CPU), for the record.
TEST_P(CudaModelTest, PrintLatency) {
  fs::path dir = test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir));
  std::vector<Tensor> in = test::read_tensors(test::data_set_dir(dir, 1), "input");
  Result<std::vector<uint8_t>> bytes = test::build_static_engine(dir, in);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  std::shared_ptr<Engine> engine = Engine::load_from_memory(std::move(bytes).value()).value();
  std::vector<Tensor> dev_in;
  for (const Tensor& t : in) dev_in.push_back(to_device(t));
  auto median_ms = [&](const std::vector<Tensor>& inputs, const char* backend) {
    RunOptions o;
    o.backend = backend;
    std::vector<double> ms;
    for (int i = 0; i < 30; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      Result<std::vector<Tensor>> out = engine->run(inputs, o);
      auto t1 = std::chrono::steady_clock::now();
      EXPECT_TRUE(out.ok()) << out.status().to_string();
      if (i >= 5) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  std::printf("[ latency  ] %s %s: cuda (device I/O) %.3f ms, cuda (host I/O) %.3f ms, cpu %.3f ms\n",
              GetParam().c_str(), dims_to_string(in[0].dims()).c_str(), median_ms(dev_in, "cuda"),
              median_ms(in, "cuda"), median_ms(in, "cpu"));
}

INSTANTIATE_TEST_SUITE_P(SharedModels, CudaModelTest,
                         ::testing::Values("mlp", "tiny_cnn", "encoder_L4_d256", "mobilenet_v3_small"));

}  // namespace
}  // namespace kiln
