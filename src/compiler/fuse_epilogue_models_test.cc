// fuse_epilogues on the shared models: how many patterns each holds (printed for the record and
// checked), and CPU results of the fused graph against the reference outputs of every data set.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
#include "onnx/importer.h"
#include "tests/util/testdata.h"

namespace kiln::compiler {
namespace {

namespace fs = std::filesystem;

Result<std::vector<Tensor>> evaluate(const ir::Graph& g, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> vals(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i)
    if (g.values[i].constant >= 0) vals[i] = g.constants[g.values[i].constant];
  for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i) vals[g.inputs[i]] = inputs[i];
  for (const ir::Node& n : g.nodes) {
    std::vector<Tensor> in, out(n.outputs.size());
    for (int id : n.inputs) in.push_back(id >= 0 ? vals[id] : Tensor());
    KILN_RETURN_IF_ERROR(cpu::run_node(n, in, out));
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (n.outputs[k] >= 0) vals[n.outputs[k]] = out[k];
  }
  std::vector<Tensor> res;
  for (int o : g.outputs) res.push_back(vals[o]);
  return res;
}

struct Expected {
  const char* model;
  size_t matmul_bias, activations, batchnorm_folded;
  size_t transposes_folded = 0, matmul_scale = 0, matmul_residual = 0;
};

class FuseEpilogueModelTest : public ::testing::TestWithParam<Expected> {};

TEST_P(FuseEpilogueModelTest, CountsAndReferenceOutputs) {
  const Expected e = GetParam();
  const fs::path dir = test::model_dir(e.model);
  ASSERT_TRUE(fs::exists(dir)) << "test data not unpacked at " << dir;
  Result<ir::Graph> g = onnx::import_file((dir / "model.onnx").string());
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  ASSERT_TRUE(fold_constants(*g, size_t{64} << 20, nullptr).ok());
  const size_t before = g->nodes.size();
  EpilogueStats st;
  ASSERT_TRUE(fuse_epilogues(*g, &st).ok());
  std::printf("[ epilogue ] %-20s nodes %zu -> %zu: matmul+bias %zu, activations %zu, batchnorm folded %zu, "
              "transposes folded %zu, matmul scale %zu, residual %zu\n",
              e.model, before, g->nodes.size(), st.matmul_bias, st.activations, st.batchnorm_folded,
              st.transposes_folded, st.matmul_scale, st.matmul_residual);
  EXPECT_EQ(st.matmul_bias, e.matmul_bias);
  EXPECT_EQ(st.activations, e.activations);
  EXPECT_EQ(st.batchnorm_folded, e.batchnorm_folded);
  EXPECT_EQ(st.nodes_removed, before - g->nodes.size());
  EXPECT_EQ(st.transposes_folded, e.transposes_folded);
  EXPECT_EQ(st.matmul_scale, e.matmul_scale);
  EXPECT_EQ(st.matmul_residual, e.matmul_residual);
  EXPECT_EQ(st.nodes_removed, e.matmul_bias + e.activations + e.batchnorm_folded + e.transposes_folded +
                                  e.matmul_scale + e.matmul_residual);
  g->prune();
  ASSERT_TRUE(g->validate().ok());
  int sets = 0;
  for (int k = 0; fs::exists(test::data_set_dir(dir, k)); ++k, ++sets) {
    const test::DataSet set = test::read_data_set(test::data_set_dir(dir, k));
    const std::vector<Tensor>& want = set.outputs;
    Result<std::vector<Tensor>> got = evaluate(*g, set.inputs);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    ASSERT_EQ(got->size(), want.size());
    for (size_t o = 0; o < want.size(); ++o) {
      ASSERT_EQ((*got)[o].dims(), want[o].dims());
      ASSERT_EQ(want[o].dtype(), DType::kF32);
      for (int64_t i = 0; i < want[o].numel(); ++i) {
        const double a = (*got)[o].data_as<const float>()[i], b = want[o].data_as<const float>()[i];
        ASSERT_NEAR(a, b, 1e-4 + 1e-3 * std::abs(b)) << e.model << " set " << k << " output " << o << " at " << i;
      }
    }
  }
  EXPECT_GE(sets, 2);
}

// mlp: Gemm -> exact (erf) Gelu written out as Div/Erf/Add/Mul: nothing to fuse.
// tiny_cnn: Conv -> Relu three times. encoder: MatMul -> Add(bias) in each layer's attention input
// projection and both feed-forward linears (4 layers x 3), and one residual Add per layer folded
// into the feed-forward output MatMul (the attention block's residual Add reads its output
// projection, a Gemm, through a Reshape and a Transpose: no pattern). mobilenet_v3_small: Conv -> Relu (its
// BatchNormalizations were folded by the exporter; the other activations are HardSwish).
INSTANTIATE_TEST_SUITE_P(SharedModels, FuseEpilogueModelTest,
                         ::testing::Values(Expected{"mlp", 0, 0, 0}, Expected{"tiny_cnn", 0, 3, 0},
                                           Expected{"encoder_L4_d256", 12, 0, 0, 0, 0, 4},
                                           Expected{"mobilenet_v3_small", 0, 14, 0}),
                         [](const ::testing::TestParamInfo<Expected>& i) { return std::string(i.param.model); });

}  // namespace
}  // namespace kiln::compiler
