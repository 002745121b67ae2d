// Every shared model, at fp32 and fp16, computes bit-identical outputs on the CPU with and
// without fuse_elementwise (the CPU's fused kernel runs the same op kernels step by step, and
// rounds half intermediates as the unfused graph does), and the fused fp32 graph matches the
// test data. Prints the fusion statistics per model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "compiler/passes.h"
#include "compiler/run_cpu_test_util.h"
#include "onnx/importer.h"
#include "tests/util/testdata.h"

namespace kiln::compiler {
namespace {

namespace fs = std::filesystem;

class FuseModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FuseModelTest, FusedGraphComputesTheSameBits) {
  fs::path dir = test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  for (DType precision : {DType::kF32, DType::kF16}) {
    Result<ir::Graph> imported = onnx::import_file((dir / "model.onnx").string());
    ASSERT_TRUE(imported.ok()) << imported.status().to_string();
    ir::Graph plain = std::move(imported).value();
    ASSERT_TRUE(fold_constants(plain, size_t{64} << 20, nullptr).ok());
    if (precision != DType::kF32) {
      ASSERT_TRUE(lower_precision(plain, precision, nullptr).ok());
    }
    plain.prune();
    ir::Graph fused = plain;
    FuseStats stats;
    ASSERT_TRUE(fuse_elementwise(fused, &stats).ok());
    fused.prune();
    ASSERT_TRUE(fused.validate().ok());
    std::map<std::string, int> ops;
    for (const ir::Node& n : plain.nodes) ops[n.op]++;
    std::printf("[fusion] %s %s: %zu nodes -> %zu, %zu groups replace %zu nodes\n", GetParam().c_str(),
                precision == DType::kF32 ? "fp32" : "fp16", plain.nodes.size(), fused.nodes.size(), stats.groups,
                stats.nodes_fused);
    EXPECT_EQ(plain.nodes.size() - fused.nodes.size(), stats.nodes_fused - stats.groups);
    for (int k = 0; fs::exists(test::data_set_dir(dir, k)); ++k) {
      const test::DataSet set = test::read_data_set(test::data_set_dir(dir, k));
      const std::vector<Tensor>& in = set.inputs;
      const std::vector<Tensor>& want = set.outputs;
      std::vector<Tensor> a = run_cpu(plain, in), b = run_cpu(fused, in);
      ASSERT_EQ(a.size(), b.size());
      ASSERT_EQ(a.size(), want.size());
      for (size_t o = 0; o < a.size(); ++o) {
        ASSERT_EQ(a[o].dtype(), b[o].dtype());
        ASSERT_EQ(a[o].dims(), b[o].dims());
        EXPECT_EQ(std::memcmp(a[o].data(), b[o].data(), a[o].nbytes()), 0)
            << GetParam() << " output " << o << " set " << k;
        if (precision != DType::kF32 || want[o].dtype() != DType::kF32) continue;
        ASSERT_EQ(b[o].dims(), want[o].dims());
        for (int64_t i = 0; i < want[o].numel(); ++i) {
          const float g = b[o].data_as<const float>()[i], w = want[o].data_as<const float>()[i];
          ASSERT_LE(std::fabs(g - w), 1e-4 + 1e-3 * std::fabs(w)) << GetParam() << " output " << o << " at " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, FuseModelTest, ::testing::ValuesIn(test::shared_model_names()));

}  // namespace
}  // namespace kiln::compiler
