// kiln.FusedElementwise on the GPU (label gpu): random elementwise graphs over broadcast shapes
// (f32, f16, bf16, integers, bool) are fused by the compiler pass and run on CUDA against the
// CPU backend running the unfused graph; each fused node is one launch. The shared models, fused,
// run on CUDA at fp32 and fp16 against the test data, with fewer launches than unfused.
//
// Tolerances: f32 1e-4 relative (CUDA's libm differs from the host's by an ulp or two, and the
// compiler may contract a multiply in one step with an add in the next into one FMA); half types
// round every step to their type on both backends, so only those ulp differences can flip a
// rounding: f16 4e-3, bf16 3e-2. Integer and bool results are exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include "backends/cuda/op_test_util.h"
#include "compiler/passes.h"
#include "onnx/importer.h"
#include "tests/util/testdata.h"

namespace kiln::cuda {
namespace {

using namespace kiln::cuda::testing;
namespace fs = std::filesystem;

// Sends every node to the GPU (small test tensors would otherwise run on the host).
struct AllOnGpu {
  AllOnGpu() { set_host_execution_limit(-1); }
  ~AllOnGpu() { set_host_execution_limit(4096); }
};

struct RunResult {
  std::vector<Tensor> out;
  CudaProgramStats stats;
};

RunResult run_on(const Backend& b, const ir::Graph& g, const std::vector<Tensor>& inputs, bool device_inputs) {
  RunResult r;
  auto prog = b.prepare(std::make_shared<ir::Graph>(g), {});
  EXPECT_TRUE(prog.ok()) << prog.status().to_string();
  if (!prog.ok()) return r;
  std::vector<Tensor> in;
  for (const Tensor& t : inputs) in.push_back(device_inputs ? to_device(t) : t);
  Status s = (*prog)->run(in, &r.out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  for (Tensor& t : r.out) t = to_host(t);
  if (Result<CudaProgramStats> st = program_stats(**prog); st.ok()) r.stats = *st;
  return r;
}

// A random graph builder: values of one dtype class, random broadcast shapes.
class RandomGraph {
 public:
  RandomGraph(DType dt, uint32_t seed) : dt_(dt), rng_(seed) {}

  // Three inputs whose shapes broadcast to a random output shape of rank 1..4.
  void make_inputs() {
    const int rank = 1 + static_cast<int>(rng_() % 4);
    Dims out;
    const int64_t sizes[] = {1, 2, 3, 5, 7, 16, 33, 130};
    for (int d = 0; d < rank; ++d) out.push_back(sizes[rng_() % std::size(sizes)]);
    for (int k = 0; k < 3; ++k) {
      Dims s(out.begin() + static_cast<std::ptrdiff_t>(rng_() % (out.size())), out.end());
      for (int64_t& d : s)
        if (rng_() % 3 == 0) d = 1;
      const int id = g_.add_value("x" + std::to_string(k), dt_, ir::Shape::of(s));
      g_.inputs.push_back(id);
      values_.push_back(id);
      inputs_.push_back(random_tensor(dt_, s, lo(), hi(), rng_()));
    }
  }
  int pick() { return values_[rng_() % values_.size()]; }
  int op(const std::string& name, std::vector<int> in, DType out, ir::Attributes a = {}) {
    const int id = g_.add_value("v" + std::to_string(g_.values.size()), out);
    g_.add_node(ir::Node{"n" + std::to_string(g_.nodes.size()), name, std::move(a), std::move(in), {id}});
    if (out == dt_) values_.push_back(id);
    return id;
  }
  int scalar(double v) {
    Tensor t = random_tensor(dt_, {}, v, v, 1);
    return g_.add_constant("c" + std::to_string(g_.values.size()), t);
  }
  bool floating() const { return dt_ == DType::kF32 || dt_ == DType::kF16 || dt_ == DType::kBF16 || dt_ == DType::kF64; }
  double lo() const { return dt_ == DType::kBool ? 0 : floating() ? -2 : -20; }
  double hi() const { return dt_ == DType::kBool ? 1 : floating() ? 2 : 20; }

  ir::Graph& graph() { return g_; }
  std::vector<Tensor>& inputs() { return inputs_; }
  std::mt19937& rng() { return rng_; }

 private:
  DType dt_;
  std::mt19937 rng_;
  ir::Graph g_;
  std::vector<int> values_;
  std::vector<Tensor> inputs_;
};

// A chain of `steps` random float ops ending in one output.
void float_chain(RandomGraph& r, DType dt, int steps) {
  const char* unary[] = {"Tanh", "Sigmoid", "Erf", "Abs", "Neg", "Relu", "Softplus", "Silu", "Gelu", "Sin", "Cos"};
  const char* binary[] = {"Add", "Sub", "Mul", "Max", "Min"};
  int cur = r.pick();
  for (int s = 0; s < steps; ++s) {
    switch (r.rng()() % 6) {
      case 0: case 1: cur = r.op(unary[r.rng()() % std::size(unary)], {cur}, dt); break;
      case 2: case 3: cur = r.op(binary[r.rng()() % std::size(binary)], {cur, r.pick()}, dt); break;
      case 4: {  // a scalar constant becomes a literal; Tanh keeps magnitudes bounded
        cur = r.op("Tanh", {r.op("Mul", {cur, r.scalar(0.75)}, dt)}, dt);
        break;
      }
      default: {
        const int other = r.pick();
        const int gt = r.op("Greater", {cur, other}, DType::kBool);
        cur = r.op("Where", {gt, cur, other}, dt);
      }
    }
  }
  r.graph().outputs = {r.op("Tanh", {cur}, dt)};
}

void int_chain(RandomGraph& r, DType dt, int steps) {
  const char* binary[] = {"Add", "Sub", "Max", "Min", "Mod", "Div"};
  int cur = r.pick();
  for (int s = 0; s < steps; ++s) {
    switch (r.rng()() % 5) {
      case 0: cur = r.op(r.rng()() % 2 ? "Neg" : "Abs", {cur}, dt); break;
      case 1: case 2: cur = r.op(binary[r.rng()() % std::size(binary)], {cur, r.pick()}, dt); break;
      case 3: {  // Mul stays small: clipped right away (bounds become literals)
        const int m = r.op("Mul", {cur, r.pick()}, dt);
        cur = r.op("Clip", {m, r.scalar(-100), r.scalar(100)}, dt);
        break;
      }
      default: {
        const int other = r.pick();
        cur = r.op("Where", {r.op("Less", {cur, other}, DType::kBool), cur, other}, dt);
      }
    }
  }
  r.graph().outputs = {r.op("Add", {cur, r.scalar(3)}, dt)};
}

void bool_chain(RandomGraph& r, int steps) {
  const char* binary[] = {"And", "Or", "Xor", "Equal"};
  int cur = r.pick();
  for (int s = 0; s < steps; ++s) {
    if (r.rng()() % 3 == 0) cur = r.op("Not", {cur}, DType::kBool);
    else cur = r.op(binary[r.rng()() % std::size(binary)], {cur, r.pick()}, DType::kBool);
  }
  r.graph().outputs = {r.op("Where", {cur, r.pick(), r.op("Not", {r.pick()}, DType::kBool)}, DType::kBool)};
}

void check_random(DType dt, double tol, const std::function<void(RandomGraph&)>& build) {
  AllOnGpu all;
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  auto cpu = cpu::create_cpu_backend();
  for (uint32_t seed = 1; seed <= 25; ++seed) {
    RandomGraph r(dt, seed);
    r.make_inputs();
    build(r);
    const ir::Graph plain = r.graph();
    ir::Graph fused = plain;
    compiler::FuseStats stats;
    Status fs_ok = compiler::fuse_elementwise(fused, &stats);
    ASSERT_TRUE(fs_ok.ok()) << fs_ok.to_string();
    fused.prune();
    const std::string label = std::string(dtype_name(dt)) + " seed " + std::to_string(seed);
    RunResult want = run_on(*cpu, plain, r.inputs(), false);
    RunResult got = run_on(*gpu, fused, r.inputs(), true);
    ASSERT_EQ(got.out.size(), 1u) << label;
    expect_close(got.out[0], want.out[0], tol, tol, label);
    EXPECT_EQ(got.stats.fallback_nodes, 0u) << label;
    EXPECT_EQ(got.stats.kernel_launches, got.stats.gpu_nodes) << label << ": one launch per node";
    EXPECT_EQ(got.stats.gpu_nodes, fused.nodes.size()) << label;
    RunResult unfused = run_on(*gpu, plain, r.inputs(), true);
    if (stats.groups > 0) {
      EXPECT_LT(got.stats.kernel_launches, unfused.stats.kernel_launches) << label;
    }
  }
}

TEST(FusedGpuTest, RandomFloatChainsMatchTheCpu) {
  check_random(DType::kF32, 1e-4, [](RandomGraph& r) { float_chain(r, DType::kF32, 8); });
}
TEST(FusedGpuTest, RandomF16ChainsMatchTheCpu) {
  check_random(DType::kF16, 4e-3, [](RandomGraph& r) { float_chain(r, DType::kF16, 8); });
}
TEST(FusedGpuTest, RandomBf16ChainsMatchTheCpu) {
  check_random(DType::kBF16, 3e-2, [](RandomGraph& r) { float_chain(r, DType::kBF16, 8); });
}
TEST(FusedGpuTest, RandomIntegerChainsAreExact) {
  check_random(DType::kI32, 0, [](RandomGraph& r) { int_chain(r, DType::kI32, 8); });
  check_random(DType::kI64, 0, [](RandomGraph& r) { int_chain(r, DType::kI64, 8); });
}
TEST(FusedGpuTest, RandomBoolChainsAreExact) {
  check_random(DType::kBool, 0, [](RandomGraph& r) { bool_chain(r, 8); });
}
TEST(FusedGpuTest, CastsThroughHalfRoundInsideTheKernel) {
  check_random(DType::kF32, 1e-3, [](RandomGraph& r) {  // one f16 ulp: expf vs the host's exp
    ir::Attributes to16, to32;
    to16.set_int("to", static_cast<int64_t>(DType::kF16));
    to32.set_int("to", static_cast<int64_t>(DType::kF32));
    const int h = r.op("Cast", {r.op("Mul", {r.pick(), r.pick()}, DType::kF32)}, DType::kF16, to16);
    const int e = r.op("Exp", {h}, DType::kF16);
    r.graph().outputs = {r.op("Cast", {e}, DType::kF32, to32)};
  });
}

// The shared models, fused as the builder fuses them, on CUDA.
class FusedGpuModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FusedGpuModelTest, ModelsMatchTestDataWithFewerLaunches) {
  const Backend* gpu = cuda_backend();
  ASSERT_NE(gpu, nullptr);
  const fs::path dir = kiln::test::model_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir / "model.onnx")) << "test data not unpacked at " << dir;
  for (DType low : {DType::kF32, DType::kF16}) {
    Result<ir::Graph> imported = onnx::import_file((dir / "model.onnx").string());
    ASSERT_TRUE(imported.ok()) << imported.status().to_string();
    ir::Graph plain = std::move(imported).value();
    ASSERT_TRUE(compiler::fold_constants(plain, size_t{64} << 20, nullptr).ok());
    if (low != DType::kF32) {
      ASSERT_TRUE(compiler::lower_precision(plain, low, nullptr).ok());
    }
    plain.prune();
    ir::Graph fused = plain;
    compiler::FuseStats stats;
    ASSERT_TRUE(compiler::fuse_elementwise(fused, &stats).ok());
    fused.prune();
    for (int k = 0; fs::exists(kiln::test::data_set_dir(dir, k)); ++k) {
      const std::string label = GetParam() + (low == DType::kF32 ? " fp32" : " fp16") + " set " + std::to_string(k);
      const kiln::test::DataSet set = kiln::test::read_data_set(kiln::test::data_set_dir(dir, k));
      const std::vector<Tensor>& in = set.inputs;
      const std::vector<Tensor>& want = set.outputs;
      RunResult a = run_on(*gpu, plain, in, true), b = run_on(*gpu, fused, in, true);
      ASSERT_EQ(b.out.size(), want.size()) << label;
      for (size_t o = 0; o < want.size(); ++o) {
        if (low == DType::kF32) {
          expect_close(b.out[o], want[o], 1e-3, 1e-4, label + " vs test data");
          expect_close(b.out[o], a.out[o], 1e-4, 1e-5, label + " vs unfused CUDA");
        } else {  // fp16 engine: relative L2 against the f32 reference, as the precision tests;
                  // outputs whose reference is below f16's resolution (mobilenet's probabilities
                  // of ~1e-9) are held to an absolute bound instead
          double num = 0, den = 0, worst = 0;
          for (int64_t i = 0; i < want[o].numel(); ++i) {
            const double g = element(b.out[o], i), w = element(want[o], i);
            num += (g - w) * (g - w);
            den += w * w;
            worst = std::max(worst, std::fabs(g - w));
          }
          const double rel = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
          EXPECT_TRUE(rel <= 5e-3 || worst <= 1e-4) << label << ": relative L2 " << rel << ", max abs err " << worst;
          expect_close(b.out[o], a.out[o], 4e-3, 4e-3, label + " vs unfused CUDA");
        }
      }
      std::printf("[fused-gpu] %s: %zu groups; launches per run %llu -> %llu\n", label.c_str(), stats.groups,
                  static_cast<unsigned long long>(a.stats.kernel_launches),
                  static_cast<unsigned long long>(b.stats.kernel_launches));
      EXPECT_EQ(b.stats.fallback_nodes, a.stats.fallback_nodes) << label;
      if (stats.groups > 0) {
        EXPECT_LT(b.stats.kernel_launches, a.stats.kernel_launches) << label;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, FusedGpuModelTest, ::testing::ValuesIn(kiln::test::shared_model_names()));

}  // namespace
}  // namespace kiln::cuda
