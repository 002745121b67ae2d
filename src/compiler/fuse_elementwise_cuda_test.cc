// The CUDA side of fusion, without a GPU (nogpu): for every shared model built at fp32 and fp16,
// the CUDA planner (the handlers' own launch decisions at the test data's shapes) gives one
// fused kernel per kiln.FusedElementwise node, each compiles with NVRTC for sm_90 (generic and
// specialised variants), and a run launches fewer kernels than the unfused graph.
#ifdef KILN_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "backends/cuda/kernel_plan.h"
#include "backends/cuda/nvrtc_test_util.h"
#include "compiler/passes.h"
#include "format/engine_file.h"
#include "kiln/builder.h"
#include "onnx/importer.h"
#include "tests/util/testdata.h"

namespace kiln::compiler {
namespace {

namespace fs = std::filesystem;

std::vector<Dims> input_shapes(const fs::path& set) {
  std::vector<Dims> out;
  for (const Tensor& t : test::read_tensors(set, "input")) out.push_back(t.dims());
  return out;
}

// import -> fold -> precision [-> fuse] -> prune, as the builder runs them.
ir::Graph pipeline(const fs::path& model, Precision precision, bool fuse) {
  Result<ir::Graph> g = onnx::import_file(model.string());
  EXPECT_TRUE(g.ok()) << g.status().to_string();
  if (!g.ok()) return {};
  EXPECT_TRUE(fold_constants(*g, size_t{64} << 20, nullptr).ok());
  if (precision == Precision::kFp16) {
    EXPECT_TRUE(lower_precision(*g, DType::kF16, nullptr).ok());
  }
  if (fuse) {
    EXPECT_TRUE(fuse_elementwise(*g, nullptr).ok());
  }
  g->prune();
  return std::move(g).value();
}

class FuseCudaModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FuseCudaModelTest, FusedKernelsCompileAndLaunchesDrop) {
  const fs::path dir = test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir / "model.onnx")) << "test data not unpacked at " << dir;
  const std::vector<Dims> shapes = input_shapes(test::data_set_dir(dir, 0));
  for (Precision precision : {Precision::kFp32, Precision::kFp16}) {
    const char* pname = precision == Precision::kFp32 ? "fp32" : "fp16";
    BuildOptions options;
    options.precision = precision;
    Result<std::vector<uint8_t>> bytes = build_engine((dir / "model.onnx").string(), options);
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    Result<format::EngineModel> engine = format::engine_parse(*bytes, nullptr);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    size_t fused_nodes = 0;
    for (const ir::Node& n : engine->graph.nodes) fused_nodes += n.op == "kiln.FusedElementwise";
    Result<cuda::KernelPlan> plan = cuda::plan_kernels(engine->graph, shapes);
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    std::vector<Result<cuda::KernelSource>> sources;
    for (const cuda::KernelVariant& v : plan->kernels) {
      if (v.key.rfind("ewf:", 0) != 0) continue;
      sources.push_back(v.build());
      if (v.spec_build) sources.push_back(v.spec_build());
    }
    // Every fused node runs on the GPU as its own kernel (host-sized ones run on the CPU).
    size_t fused_kernels = 0;
    for (const cuda::KernelVariant& v : plan->kernels) fused_kernels += v.key.rfind("ewf:", 0) == 0;
    EXPECT_LE(fused_kernels, fused_nodes);
    if (fused_nodes > 0) {
      EXPECT_GT(fused_kernels, 0u) << GetParam() << " " << pname;
    }
    const std::vector<std::string> failures = cuda::testing::compile_all(sources, 90);
    EXPECT_TRUE(failures.empty()) << GetParam() << " " << pname << ": " << failures.size() << " of "
                                  << sources.size() << " fused kernels failed; first:\n"
                                  << (failures.empty() ? "" : failures[0]);
    // The same pipeline with and without fusion: fusion only ever removes launches.
    Result<cuda::KernelPlan> plain = cuda::plan_kernels(pipeline(dir / "model.onnx", precision, false), shapes);
    Result<cuda::KernelPlan> fused = cuda::plan_kernels(pipeline(dir / "model.onnx", precision, true), shapes);
    ASSERT_TRUE(plain.ok() && fused.ok());
    std::printf("[fusion-cuda] %s %s: %zu fused nodes, %zu fused kernels compiled; launches per run %llu -> %llu\n",
                GetParam().c_str(), pname, fused_nodes, sources.size(),
                static_cast<unsigned long long>(plain->launches), static_cast<unsigned long long>(fused->launches));
    EXPECT_LE(fused->launches, plain->launches);
    if (fused_nodes > 0) {
      EXPECT_LT(fused->launches, plain->launches);
    }
    EXPECT_LE(fused->fallback_nodes, plain->fallback_nodes);
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, FuseCudaModelTest, ::testing::ValuesIn(test::shared_model_names()));

}  // namespace
}  // namespace kiln::compiler

#endif  // KILN_HAVE_CUDA
