// Every shared model, every test data set: ONNX -> engine bytes -> Engine -> CPU run, compared
// with onnxruntime's outputs (rtol 1e-3, atol 1e-4). One engine per model serves both data sets.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/importer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

fs::path models_dir() { return fs::path(KILN_TESTDATA_DIR) / "models"; }

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
    worst = std::max(worst, err - (atol + rtol * std::fabs(b)));
  }
  return worst;
}

class ModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelTest, EveryDataSetMatchesReferenceOnCpu) {
  fs::path dir = models_dir() / GetParam();
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  std::vector<std::vector<Tensor>> inputs, expected;
  for (int k = 0; fs::exists(dir / ("test_data_set_" + std::to_string(k))); ++k) {
    fs::path set = dir / ("test_data_set_" + std::to_string(k));
    inputs.push_back(read_set(set, "input"));
    expected.push_back(read_set(set, "output"));
  }
  ASSERT_GE(inputs.size(), 2u);

  // One profile covering every data set: min/max over the sets, opt = the first set.
  BuildOptions options;
  for (size_t i = 0; i < inputs[0].size(); ++i) {
    Result<ir::Graph> g = onnx::import_file((dir / "model.onnx").string());
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    ShapeProfile p;
    p.input = g->values[g->inputs[i]].name;
    p.min = p.opt = p.max = inputs[0][i].dims();
    for (const auto& set : inputs) {
      for (size_t d = 0; d < p.min.size(); ++d) {
        p.min[d] = std::min(p.min[d], set[i].dims()[d]);
        p.max[d] = std::max(p.max[d], set[i].dims()[d]);
      }
    }
    options.shapes.push_back(p);
  }
  Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::vector<uint8_t>> again = build_engine((dir / "model.onnx").string(), options);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*bytes == *again) << "engine build is not deterministic";

  Result<std::shared_ptr<Engine>> engine = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Result<std::vector<Tensor>> out = (*engine)->run(inputs[k]);
    ASSERT_TRUE(out.ok()) << "data set " << k << ": " << out.status().to_string();
    ASSERT_EQ(out->size(), expected[k].size());
    for (size_t o = 0; o < out->size(); ++o) {
      const Tensor& got = (*out)[o];
      const Tensor& want = expected[k][o];
      ASSERT_EQ(got.dtype(), want.dtype()) << "output " << o;
      ASSERT_EQ(got.dims(), want.dims()) << "output " << o;
      double max_abs = 0, violation = 0;
      if (want.dtype() == DType::kF32) {
        violation = max_violation<float>(got, want, 1e-3, 1e-4, &max_abs);
      } else if (want.dtype() == DType::kI64) {
        violation = max_violation<int64_t>(got, want, 0, 0, &max_abs);
      } else {
        FAIL() << "unexpected output dtype " << dtype_name(want.dtype());
      }
      EXPECT_LE(violation, 0) << GetParam() << " set " << k << " output " << o << " max_abs_err " << max_abs;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, ModelTest,
                         ::testing::Values("mlp", "tiny_cnn", "encoder_L4_d256", "mobilenet_v3_small"));

}  // namespace
}  // namespace kiln
