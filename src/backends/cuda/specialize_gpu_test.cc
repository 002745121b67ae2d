// Kernel specialisation strategies on a GPU (label gpu): lazy never makes a call wait for NVRTC,
// eager's first call at a new shape compiles, none never compiles after creation, and all three
// compute the same results. Also prints the cold/warm-start and dynamic-shape benchmarks
// (tools/gpu/spec_bench.sh runs them in fresh processes).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "kiln/runtime.h"
#include "tests/util/testdata.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

fs::path models_dir() { return test::testdata_dir() / "models"; }

std::vector<uint8_t> build(const std::string& model, std::vector<ShapeProfile> shapes) {
  BuildOptions opts;
  opts.shapes = std::move(shapes);
  Result<std::vector<uint8_t>> bytes = build_engine((models_dir() / model / "model.onnx").string(), opts);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

std::vector<uint8_t> encoder_bytes() { return build("encoder_L4_d256", {{"ids", {1, 1}, {2, 77}, {4, 320}}}); }

Tensor ids(int64_t batch, int64_t seq) {
  std::vector<int64_t> v(static_cast<size_t>(batch * seq));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>((i * 7919) % 1000);
  return Tensor::from_vector(DType::kI64, {batch, seq}, v);
}

std::shared_ptr<Engine> load(const std::vector<uint8_t>& bytes, KernelSpecializationStrategy strategy) {
  Result<std::shared_ptr<Engine>> e = Engine::load_from_memory(bytes);
  EXPECT_TRUE(e.ok()) << e.status().to_string();
  if (!e.ok()) return nullptr;
  RuntimeSettings s;
  s.kernel_specialization = strategy;
  s.runtime_cache = RuntimeCacheSetting::none();  // what is measured here is NVRTC, not the disk
  (*e)->set_runtime_overrides(s);
  return *e;
}

uint64_t counter(const Engine& e, const std::string& name) {
  auto c = e.stats().backend_counters;
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

std::vector<Tensor> run(const Engine& e, const Tensor& x, double* ms = nullptr) {
  RunOptions o;
  o.backend = "cuda";
  auto t = Clock::now();
  Result<std::vector<Tensor>> out = e.run(std::span<const Tensor>(&x, 1), o);
  if (ms) *ms = ms_since(t);
  EXPECT_TRUE(out.ok()) << out.status().to_string();
  return out.ok() ? *out : std::vector<Tensor>{};
}

double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].dims(), b[i].dims());
    if (a[i].dtype() != DType::kF32 || a[i].dims() != b[i].dims()) continue;
    for (int64_t k = 0; k < a[i].numel(); ++k)
      d = std::max(d, static_cast<double>(std::fabs(a[i].data_as<float>()[k] - b[i].data_as<float>()[k])));
  }
  return d;
}

// Waits until the engine's background specialisations are done (at most `seconds`).
bool wait_idle(const Engine& e, double seconds) {
  auto t = Clock::now();
  while (counter(e, "specialize_pending") > 0) {
    if (ms_since(t) > seconds * 1000) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The shape arithmetic of a dynamic export (Shape -> Gather -> Concat ...) runs once per input
// signature; later calls at that signature take its values from the program's shape memo, and
// every call still computes what the CPU backend does.
TEST(SpecializeGpuTest, ShapeArithmeticIsMemoisedPerSignature) {
  const std::vector<uint8_t> bytes = encoder_bytes();
  ASSERT_FALSE(bytes.empty());
  auto gpu = load(bytes, KernelSpecializationStrategy::kNone);
  Result<std::shared_ptr<Engine>> cpu = Engine::load_from_memory(bytes);
  ASSERT_TRUE(gpu && cpu.ok());
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{2, 77}, {1, 33}, {2, 77}, {1, 33}, {3, 5}, {2, 77}};
  for (auto [b, s] : shapes) {
    const Tensor x = ids(b, s);
    std::vector<Tensor> got = run(*gpu, x);
    Result<std::vector<Tensor>> want = (*cpu)->run(std::span<const Tensor>(&x, 1), RunOptions{});
    ASSERT_TRUE(want.ok()) << want.status().to_string();
    EXPECT_LT(max_diff(got, *want), 1e-3) << "at " << b << "x" << s;
  }
  EXPECT_EQ(counter(*gpu, "shape_memo_signatures"), 3u);
  EXPECT_GE(counter(*gpu, "shape_memo_hits"), 3u) << "calls at a signature seen before";
}

TEST(SpecializeGpuTest, LazyNeverWaitsEagerCompilesNoneNeverCompilesSameResults) {
  const std::vector<uint8_t> bytes = encoder_bytes();
  ASSERT_FALSE(bytes.empty());
  // One engine per strategy, each meeting shapes no other has used (the kernel table is per process).
  auto none = load(bytes, KernelSpecializationStrategy::kNone);
  auto lazy = load(bytes, KernelSpecializationStrategy::kLazy);
  auto eager = load(bytes, KernelSpecializationStrategy::kEager);
  ASSERT_TRUE(none && lazy && eager);
  run(*none, ids(2, 77));  // context creation: generic kernels for the opt shape
  run(*lazy, ids(2, 77));
  run(*eager, ids(2, 77));
  const uint64_t lazy_created = counter(*lazy, "kernels_compiled");

  double none_ms = 0, lazy_ms = 0, eager_ms = 0;
  std::vector<Tensor> none_out = run(*none, ids(2, 101), &none_ms);
  EXPECT_EQ(counter(*none, "call_compiles"), 0u);
  EXPECT_EQ(counter(*none, "specializations"), 0u);
  EXPECT_EQ(counter(*none, "specialized_launches"), 0u);
  EXPECT_GT(counter(*none, "generic_launches"), 0u);

  ASSERT_TRUE(wait_idle(*lazy, 60));
  const uint64_t bridged_before = counter(*lazy, "gemm_bridged");
  std::vector<Tensor> lazy_first = run(*lazy, ids(2, 103), &lazy_ms);
  EXPECT_EQ(counter(*lazy, "call_compiles"), 0u) << "a lazy call waited for NVRTC";
  EXPECT_GT(counter(*lazy, "gemm_bridged"), bridged_before)
      << "new GEMM problems run on kiln's kernel while cuBLASLt gets ready";
  EXPECT_EQ(counter(*none, "gemm_bridged"), 0u) << "only lazy bridges";
  EXPECT_EQ(counter(*none, "gemm_family_starts"), 0u) << "only lazy starts a new M from its family";
  ASSERT_TRUE(wait_idle(*lazy, 60));
  EXPECT_GT(counter(*lazy, "kernels_compiled"), lazy_created);  // compiled in the background
  EXPECT_GE(counter(*lazy, "swaps"), 1u);
  EXPECT_GT(counter(*lazy, "gemm_readied"), 0u) << "the background job got cuBLASLt ready";
  const uint64_t generic_before = counter(*lazy, "generic_launches");
  const uint64_t bridged_after = counter(*lazy, "gemm_bridged");
  std::vector<Tensor> lazy_second = run(*lazy, ids(2, 103));
  EXPECT_EQ(counter(*lazy, "generic_launches"), generic_before) << "after the swap every kernel is specialised";
  EXPECT_EQ(counter(*lazy, "gemm_bridged"), bridged_after) << "after the swap every GEMM is cuBLASLt's";
  EXPECT_EQ(counter(*lazy, "call_compiles"), 0u);
  EXPECT_LT(max_diff(lazy_first, lazy_second), 1e-4);

  const uint64_t eager_before = counter(*eager, "call_compiles");
  std::vector<Tensor> eager_out = run(*eager, ids(2, 107), &eager_ms);
  EXPECT_GT(counter(*eager, "call_compiles"), eager_before) << "eager's first call at a new shape compiles";
  EXPECT_EQ(counter(*eager, "generic_launches"), 0u);
  std::printf("[ first call at a new shape ] none %.2f ms, lazy %.2f ms, eager %.2f ms (includes NVRTC)\n",
              none_ms, lazy_ms, eager_ms);
  EXPECT_LT(lazy_ms, eager_ms);

  // Same inputs, three strategies: the same results.
  const Tensor x = ids(2, 64);
  std::vector<Tensor> a = run(*none, x), b = run(*lazy, x), c = run(*eager, x);
  ASSERT_TRUE(wait_idle(*lazy, 60));
  std::vector<Tensor> b2 = run(*lazy, x);
  EXPECT_LT(max_diff(a, b), 1e-4);
  EXPECT_LT(max_diff(a, c), 1e-4);
  EXPECT_LT(max_diff(a, b2), 1e-4);
  EXPECT_EQ(counter(*none, "call_compiles"), 0u);
  EXPECT_EQ(counter(*lazy, "call_compiles"), 0u);
}

TEST(SpecializeGpuTest, DestroyingAnEngineWithPendingCompilesNeitherHangsNorCrashes) {
  const std::vector<uint8_t> bytes = encoder_bytes();
  ASSERT_FALSE(bytes.empty());
  for (int round = 0; round < 3; ++round) {
    auto e = load(bytes, KernelSpecializationStrategy::kLazy);
    ASSERT_TRUE(e);
    for (int64_t seq = 130 + round * 10; seq < 136 + round * 10; ++seq) run(*e, ids(1, seq));
    auto t = Clock::now();
    e.reset();
    EXPECT_LT(ms_since(t), 5000);
  }
}

TEST(SpecializeGpuTest, StaticEngineSpecialisesEverythingAtCreation) {
  const std::vector<uint8_t> bytes = build("tiny_cnn", {{"x", {4, 3, 32, 32}, {4, 3, 32, 32}, {4, 3, 32, 32}}});
  ASSERT_FALSE(bytes.empty());
  auto e = load(bytes, KernelSpecializationStrategy::kLazy);
  ASSERT_TRUE(e);
  const BindingInfo& in = e->inputs()[0];
  ASSERT_EQ(in.min, in.max) << "tiny_cnn was expected to have a static input";
  Tensor x = Tensor::zeros(in.dtype, in.min);
  std::vector<Tensor> out = run(*e, x);
  EXPECT_EQ(counter(*e, "call_compiles"), 0u);
  EXPECT_EQ(counter(*e, "generic_launches"), 0u);
  EXPECT_GT(counter(*e, "specialized_launches"), 0u);
}

// The GEMM bridge on a static engine under lazy: the first call computes its GEMMs with kiln's own
// kernel (cuBLASLt's first use would load its kernels on the call), the background job gets
// cuBLASLt ready, later calls use it; whole_graph_capture captures only then (the kernels are
// final), and every call computes the same results.
TEST(SpecializeGpuTest, LazyBridgesGemmsUntilCublasLtIsReadyThenCaptures) {
  const std::vector<uint8_t> bytes = build("encoder_L4_d256", {{"ids", {1, 45}, {1, 45}, {1, 45}}});
  ASSERT_FALSE(bytes.empty());
  auto lazy = load(bytes, KernelSpecializationStrategy::kLazy);
  auto none = load(bytes, KernelSpecializationStrategy::kNone);
  ASSERT_TRUE(lazy && none);
  RuntimeSettings s;
  s.kernel_specialization = KernelSpecializationStrategy::kLazy;
  s.runtime_cache = RuntimeCacheSetting::none();
  s.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  lazy->set_runtime_overrides(s);
  const Tensor x = ids(1, 45);
  std::vector<Tensor> first = run(*lazy, x);
  EXPECT_GT(counter(*lazy, "gemm_bridged"), 0u);
  EXPECT_EQ(counter(*lazy, "graphs_captured"), 0u) << "not final while GEMMs wait for cuBLASLt";
  EXPECT_EQ(counter(*lazy, "call_compiles"), 0u) << "the bridge kernels were compiled at creation";
  ASSERT_TRUE(wait_idle(*lazy, 60));
  const uint64_t bridged = counter(*lazy, "gemm_bridged");
  std::vector<Tensor> second = run(*lazy, x), third = run(*lazy, x);
  EXPECT_EQ(counter(*lazy, "gemm_bridged"), bridged);
  EXPECT_EQ(counter(*lazy, "graphs_captured"), 1u);
  EXPECT_GE(counter(*lazy, "graph_replays"), 1u);
  std::vector<Tensor> want = run(*none, x);
  EXPECT_EQ(counter(*none, "gemm_bridged"), 0u);
  EXPECT_LT(max_diff(first, want), 1e-4);
  EXPECT_LT(max_diff(second, want), 1e-4);
  EXPECT_LT(max_diff(third, want), 1e-4);
}

// ---- benchmarks: print numbers, assert nothing about speed -----------------------------------

// One fresh process: load the engine and run its first inference with the runtime cache the
// environment names (KILN_RUNTIME_CACHE). tools/gpu/spec_bench.sh runs it cold and then warm.
TEST(SpecializeBench, FirstInference) {
  const char* model = std::getenv("KILN_BENCH_MODEL");
  if (!model) GTEST_SKIP() << "set KILN_BENCH_MODEL (encoder_L4_d256 | mobilenet_v3_small)";
  const bool encoder = std::string(model) == "encoder_L4_d256";
  std::vector<uint8_t> bytes;
  if (encoder) {
    bytes = encoder_bytes();
  } else {
    const Dims image = {2, 3, 224, 224};
    bytes = build(model, {{"x", image, image, image}});
  }
  ASSERT_FALSE(bytes.empty());
  Tensor x = encoder ? ids(2, 77) : Tensor::zeros(DType::kF32, {2, 3, 224, 224});
  ASSERT_EQ(cudaFree(nullptr), cudaSuccess);  // the CUDA context itself is not what is measured
  auto t = Clock::now();
  Result<std::shared_ptr<Engine>> e = Engine::load_from_memory(bytes);
  ASSERT_TRUE(e.ok());
  const double load_ms = ms_since(t);
  double run_ms = 0;
  run(**e, x, &run_ms);
  const double total = ms_since(t);
  double steady = 1e9;
  for (int i = 0; i < 10; ++i) {
    double ms = 0;
    run(**e, x, &ms);
    steady = std::min(steady, ms);
  }
  const std::string cache = current_runtime_settings().runtime_cache.to_string();
  std::printf("[ first inference ] %s cache=%s: load+first run %.1f ms (load %.1f, context+first run %.1f; "
              "kernels compiled %llu, cache hits %llu, gemm tuning hits %llu), steady %.3f ms\n",
              model, cache.c_str(), total, load_ms, run_ms,
              static_cast<unsigned long long>(counter(**e, "kernels_compiled")),
              static_cast<unsigned long long>(counter(**e, "cache_hits")),
              static_cast<unsigned long long>(counter(**e, "gemm_tuning_hits")), steady);
}

// The encoder at seq 16, 48, ..., 304 (batch 2), in order, under the strategy KILN_BENCH_STRATEGY
// names: first-call and steady latency per shape (lazy: steady after its swap).
TEST(SpecializeBench, DynamicShapes) {
  const char* strategy = std::getenv("KILN_BENCH_STRATEGY");
  if (!strategy) GTEST_SKIP() << "set KILN_BENCH_STRATEGY (lazy | eager | none)";
  Result<KernelSpecializationStrategy> s = parse_kernel_specialization_strategy(strategy);
  ASSERT_TRUE(s.ok());
  const std::vector<uint8_t> bytes = encoder_bytes();
  auto e = load(bytes, *s);
  ASSERT_TRUE(e);
  run(*e, ids(2, 77));  // context creation
  std::printf("[ dynamic shapes ] strategy %s\n  seq   first ms   steady ms   first/steady\n", strategy);
  for (int64_t seq = 16; seq <= 304; seq += 32) {
    const Tensor x = ids(2, seq);
    double first = 0;
    run(*e, x, &first);
    if (*s == KernelSpecializationStrategy::kLazy) wait_idle(*e, 60);
    std::vector<double> t(20);
    for (double& ms : t) run(*e, x, &ms);
    std::sort(t.begin(), t.end());
    std::printf("  %4lld   %8.3f   %9.3f   %6.2f\n", static_cast<long long>(seq), first, t[t.size() / 2],
                first / t[t.size() / 2]);
  }
  std::printf("  counters: call_compiles %llu, kernels_compiled %llu, swaps %llu\n",
              static_cast<unsigned long long>(counter(*e, "call_compiles")),
              static_cast<unsigned long long>(counter(*e, "kernels_compiled")),
              static_cast<unsigned long long>(counter(*e, "swaps")));
}

}  // namespace
}  // namespace kiln
