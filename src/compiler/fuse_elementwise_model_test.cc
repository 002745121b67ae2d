// Every shared model, at fp32 and fp16, computes bit-identical outputs on the CPU with and
// without fuse_elementwise (the CPU's fused kernel runs the same op kernels step by step, and
// rounds half intermediates as the unfused graph does), and the fused fp32 graph matches the
// test data. Prints the fusion statistics per model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
#include "onnx/importer.h"

namespace kiln::compiler {
namespace {

namespace fs = std::filesystem;

std::vector<Tensor> read_set(const fs::path& dir, const std::string& prefix) {
  std::vector<Tensor> out;
  for (int i = 0; fs::exists(dir / (prefix + "_" + std::to_string(i) + ".pb")); ++i) {
    Result<Tensor> t = onnx::read_tensor_file((dir / (prefix + "_" + std::to_string(i) + ".pb")).string());
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    if (t.ok()) out.push_back(std::move(t).value());
  }
  return out;
}

std::vector<Tensor> run_cpu(const ir::Graph& g, const std::vector<Tensor>& inputs) {
  auto backend = cpu::create_cpu_backend();
  auto prog = backend->prepare(std::make_shared<ir::Graph>(g), PrepareOptions{});
  EXPECT_TRUE(prog.ok()) << prog.status().to_string();
  std::vector<Tensor> out;
  if (!prog.ok()) return out;
  Status s = (*prog)->run(inputs, &out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

class FuseModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FuseModelTest, FusedGraphComputesTheSameBits) {
  fs::path dir = fs::path(KILN_TESTDATA_DIR) / "models" / GetParam();
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir << " (set KILN_TESTDATA)";
  for (DType precision : {DType::kF32, DType::kF16}) {
    Result<ir::Graph> imported = onnx::import_file((dir / "model.onnx").string());
    ASSERT_TRUE(imported.ok()) << imported.status().to_string();
    ir::Graph plain = std::move(imported).value();
    ASSERT_TRUE(fold_constants(plain, size_t{64} << 20, nullptr).ok());
    if (precision != DType::kF32) ASSERT_TRUE(lower_precision(plain, precision, nullptr).ok());
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
    for (int k = 0; fs::exists(dir / ("test_data_set_" + std::to_string(k))); ++k) {
      fs::path set = dir / ("test_data_set_" + std::to_string(k));
      std::vector<Tensor> in = read_set(set, "input"), want = read_set(set, "output");
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

std::vector<std::string> shared_models() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(KILN_TESTDATA_DIR) / "models", ec))
    if (fs::exists(e.path() / "model.onnx")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  if (names.empty()) names.push_back("missing_test_data");
  return names;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, FuseModelTest, ::testing::ValuesIn(shared_models()));

}  // namespace
}  // namespace kiln::compiler
