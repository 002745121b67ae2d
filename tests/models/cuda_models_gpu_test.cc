// Every shared model, every data set, on the CUDA backend (label gpu): ONNX -> engine -> Engine::run
// with backend "cuda", compared with onnxruntime's outputs (rtol 1e-3, atol 1e-4), with host inputs
// and with device-resident inputs (outputs then stay on the device).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/importer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::vector<Tensor> read_set(const fs::path& dir, const std::string& prefix) {
  std::vector<Tensor> out;
  for (int i = 0;; ++i) {
    fs::path p = dir / (prefix + "_" + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    Result<Tensor> t = onnx::read_tensor_file(p.string());
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    if (!t.ok()) break;
    out.push_back(std::move(t).value());
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

template <typename T>
double max_violation(const Tensor& got, const Tensor& want, double rtol, double atol, double* max_abs) {
  double worst = 0;
  const T* g = got.data_as<const T>();
  const T* w = want.data_as<const T>();
  for (int64_t i = 0; i < want.numel(); ++i) {
    double a = static_cast<double>(g[i]), b = static_cast<double>(w[i]);
    if (std::isnan(a) && std::isnan(b)) continue;
    double err = std::fabs(a - b);
    *max_abs = std::max(*max_abs, err);
    worst = std::max(worst, std::isnan(err) ? 1.0 : err - (atol + rtol * std::fabs(b)));
  }
  return worst;
}

class CudaModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModelTest, EveryDataSetMatchesReferenceOnCuda) {
  const char* env = std::getenv("KILN_TESTDATA");  // test binaries may run on another machine
  fs::path dir = fs::path(env && *env ? env : KILN_TESTDATA_DIR) / "models" / GetParam();
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  std::vector<std::vector<Tensor>> inputs, expected;
  for (int k = 0; fs::exists(dir / ("test_data_set_" + std::to_string(k))); ++k) {
    fs::path set = dir / ("test_data_set_" + std::to_string(k));
    inputs.push_back(read_set(set, "input"));
    expected.push_back(read_set(set, "output"));
  }
  ASSERT_GE(inputs.size(), 2u);
  Result<ir::Graph> g = onnx::import_file((dir / "model.onnx").string());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  BuildOptions options;
  for (size_t i = 0; i < inputs[0].size(); ++i) {
    ShapeProfile p;
    p.input = g->values[g->inputs[i]].name;
    p.min = p.opt = p.max = inputs[0][i].dims();
    for (const auto& set : inputs)
      for (size_t d = 0; d < p.min.size(); ++d) {
        p.min[d] = std::min(p.min[d], set[i].dims()[d]);
        p.max[d] = std::max(p.max[d], set[i].dims()[d]);
      }
    options.shapes.push_back(p);
  }
  Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::shared_ptr<Engine>> engine = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  RunOptions cuda;
  cuda.backend = "cuda";
  for (bool device_inputs : {false, true}) {
    for (size_t k = 0; k < inputs.size(); ++k) {
      std::vector<Tensor> in = inputs[k];
      if (device_inputs)
        for (Tensor& t : in) t = to_device(t);
      Result<std::vector<Tensor>> out = (*engine)->run(in, cuda);
      ASSERT_TRUE(out.ok()) << "data set " << k << ": " << out.status().to_string();
      ASSERT_EQ(out->size(), expected[k].size());
      for (size_t o = 0; o < out->size(); ++o) {
        const std::string where = GetParam() + " set " + std::to_string(k) + " output " + std::to_string(o) +
                                  (device_inputs ? " (device inputs)" : " (host inputs)");
        EXPECT_EQ((*out)[o].device().type, device_inputs ? DeviceType::kCuda : DeviceType::kCpu) << where;
        Tensor got = to_host((*out)[o]);
        const Tensor& want = expected[k][o];
        ASSERT_EQ(got.dtype(), want.dtype()) << where;
        ASSERT_EQ(got.dims(), want.dims()) << where;
        double max_abs = 0, violation = 0;
        if (want.dtype() == DType::kF32) {
          violation = max_violation<float>(got, want, 1e-3, 1e-4, &max_abs);
        } else if (want.dtype() == DType::kI64) {
          violation = max_violation<int64_t>(got, want, 0, 0, &max_abs);
        } else {
          FAIL() << "unexpected output dtype " << dtype_name(want.dtype());
        }
        EXPECT_LE(violation, 0) << where << " max_abs_err " << max_abs;
        std::printf("[ cuda     ] %s: max_abs_err %.3g\n", where.c_str(), max_abs);
      }
    }
  }
}

// Not a timed test: prints median latency per model and data set (CUDA with device inputs, CUDA
// with host inputs, CPU), for the record.
TEST_P(CudaModelTest, PrintLatency) {
  fs::path dir = fs::path(std::getenv("KILN_TESTDATA") ? std::getenv("KILN_TESTDATA") : KILN_TESTDATA_DIR) /
                 "models" / GetParam();
  ASSERT_TRUE(fs::exists(dir));
  std::vector<Tensor> in = read_set(dir / "test_data_set_1", "input");
  Result<ir::Graph> g = onnx::import_file((dir / "model.onnx").string());
  ASSERT_TRUE(g.ok());
  BuildOptions options;
  for (size_t i = 0; i < in.size(); ++i)
    options.shapes.push_back({g->values[g->inputs[i]].name, in[i].dims(), in[i].dims(), in[i].dims()});
  Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), options);
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
