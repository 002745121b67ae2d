// Every shared model, every test data set: ONNX -> engine bytes -> Engine -> CPU run, compared
// with onnxruntime's outputs (rtol 1e-3, atol 1e-4). One engine per model serves both data sets.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class ModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelTest, EveryDataSetMatchesReferenceOnCpu) {
  fs::path dir = test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  const std::vector<test::DataSet> sets = test::read_data_sets(dir);
  ASSERT_GE(sets.size(), 2u);

  // One profile covering every data set: min/max over the sets, opt = the first set.
  Result<BuildOptions> options = test::shape_profiles(dir, sets);
  ASSERT_TRUE(options.ok()) << options.status().to_string();
  Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), *options);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::vector<uint8_t>> again = build_engine((dir / "model.onnx").string(), *options);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*bytes == *again) << "engine build is not deterministic";

  Result<std::shared_ptr<Engine>> engine = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  for (size_t k = 0; k < sets.size(); ++k) {
    Result<std::vector<Tensor>> out = (*engine)->run(sets[k].inputs);
    ASSERT_TRUE(out.ok()) << "data set " << k << ": " << out.status().to_string();
    ASSERT_EQ(out->size(), sets[k].outputs.size());
    for (size_t o = 0; o < out->size(); ++o) {
      test::expect_close_to_reference((*out)[o], sets[k].outputs[o], 1e-3, 1e-4,
                                      GetParam() + " set " + std::to_string(k) + " output " +
                                          std::to_string(o));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, ModelTest,
                         ::testing::Values("mlp", "tiny_cnn", "encoder_L4_d256", "mobilenet_v3_small"));

}  // namespace
}  // namespace kiln
