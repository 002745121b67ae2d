// The GEMM bridge's host-side pieces without a GPU (label nogpu): problem keys and the alignment
// they carry, the ready/declined marks and their generations, which problems the bridge kernel
// takes, how planning counts it, and the runtime-cache lookup that never compiles (the warm
// start's). The kernel itself runs in the gpu label (check_op reruns every GEMM case on cuBLASLt
// after its bridged first call; SpecializeGpuTest.LazyBridgesGemms...).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>
#include <unistd.h>

#include "backends/cuda/gemm.h"
#include "backends/cuda/kernel_jit.h"
#include "backends/cuda/kernel_plan.h"
#include "backends/cuda/kernels/gemm.h"
#include "ir/graph.h"
#include "kiln/runtime_cache.h"

namespace kiln::cuda {
namespace {

namespace fs = std::filesystem;

GemmDesc desc_f32(int64_t m, int64_t n, int64_t k) {
  GemmDesc g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.lda = k;
  g.ldb = n;
  g.ldd = n;
  return g;
}

const void* at(uintptr_t address) { return reinterpret_cast<const void*>(address); }

void add_node(ir::Graph& g, std::string name, std::string op, std::vector<int> inputs, std::vector<int> outputs) {
  ir::Node node;
  node.name = std::move(name);
  node.op = std::move(op);
  node.inputs = std::move(inputs);
  node.outputs = std::move(outputs);
  g.add_node(std::move(node));
}

TEST(GemmBridgeTest, ProblemKeysCarryTheOperandsAlignment) {
  const GemmDesc g = desc_f32(128, 768, 256);
  const GemmProblem a = gemm_problem(g, at(0x10000), at(0x20000), at(0x30000), nullptr, nullptr);
  const GemmProblem b = gemm_problem(g, at(0x50000), at(0x60000), at(0x70000), nullptr, nullptr);
  EXPECT_EQ(a.align, 256u);
  EXPECT_EQ(a.key, b.key) << "other addresses, same alignment: the same problem";
  const GemmProblem c = gemm_problem(g, at(0x10004), at(0x20000), at(0x30000), nullptr, nullptr);
  EXPECT_EQ(c.align, 4u);
  EXPECT_NE(a.key, c.key) << "an A only 4-byte aligned is another cuBLASLt problem";
  const GemmProblem d = gemm_problem(g, at(0x10000), at(0x20000), at(0x30000), nullptr, at(0x40010));
  EXPECT_EQ(d.align, 16u);
  EXPECT_TRUE(d.has_c);
  EXPECT_FALSE(a.has_c);
  GemmDesc odd = g;
  odd.lda = 257;  // a row stride of 1028 bytes: 4-byte rows, whatever the base address
  EXPECT_EQ(gemm_problem(odd, at(0x10000), at(0x20000), at(0x30000), nullptr, nullptr).align, 4u);
  GemmDesc other_m = g;
  other_m.m = 129;
  EXPECT_NE(gemm_problem(other_m, at(0x10000), at(0x20000), at(0x30000), nullptr, nullptr).key, a.key);
}

// The problem key names algorithm choices in runtime caches: its text must not change. The
// reference is the printf format it had before it was written with std::to_chars.
TEST(GemmBridgeTest, ProblemKeyTextIsStable) {
  std::mt19937_64 rng(7);
  auto pick = [&](int64_t hi) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(hi)); };
  for (int i = 0; i < 2000; ++i) {
    GemmDesc g;
    g.dtype = i % 3 == 0 ? DType::kF16 : i % 3 == 1 ? DType::kBF16 : DType::kF32;
    g.trans_a = pick(2) != 0;
    g.trans_b = pick(2) != 0;
    g.m = 1 + pick(i % 7 == 0 ? int64_t{1} << 40 : 5000);
    g.n = 1 + pick(5000);
    g.k = pick(70000);
    g.lda = 1 + pick(70000);
    g.ldb = 1 + pick(70000);
    g.ldd = 1 + pick(70000);
    g.batch = 1 + pick(300);
    g.stride_a = pick(2) ? 0 : pick(int64_t{1} << 50);
    g.stride_b = pick(1 << 20);
    g.stride_d = pick(1 << 20);
    g.bias = pick(2) != 0;
    g.allow_tf32 = pick(2) != 0;
    g.act = static_cast<GemmActivation>(pick(3));
    const GemmProblem p = gemm_problem(g, at(0x10000 + 16 * static_cast<uintptr_t>(pick(64))), at(0x20000), at(0x30000),
                                       nullptr, nullptr);
    char want[320];
    std::snprintf(want, sizeof want, "%d|%d%d|%lld,%lld,%lld|%lld,%lld,%lld|%lld|%lld,%lld,%lld|%d|%d|%u|%d",
                  static_cast<int>(g.dtype), g.trans_a, g.trans_b, static_cast<long long>(g.m),
                  static_cast<long long>(g.n), static_cast<long long>(g.k), static_cast<long long>(g.lda),
                  static_cast<long long>(g.ldb), static_cast<long long>(g.ldd), static_cast<long long>(g.batch),
                  static_cast<long long>(g.stride_a), static_cast<long long>(g.stride_b),
                  static_cast<long long>(g.stride_d), g.bias, g.allow_tf32, p.align, static_cast<int>(g.act));
    ASSERT_EQ(p.key, want) << "case " << i;
  }
}

TEST(GemmBridgeTest, MarksTakeEffectForCallsThatStartAfterThem) {
  const int device = 77;  // no such device: these marks touch nothing real
  const std::string key = "test|" + std::to_string(::getpid());
  const uint64_t before = gemm_library_generation();
  EXPECT_EQ(gemm_library_state(device, key, before), GemmLibraryState::kCold);
  gemm_library_mark(device, key, GemmLibraryState::kReady);
  EXPECT_EQ(gemm_library_state(device, key, before), GemmLibraryState::kCold)
      << "a call that began before the mark keeps the bridge for the whole call";
  const uint64_t after = gemm_library_generation();
  EXPECT_GT(after, before);
  EXPECT_EQ(gemm_library_state(device, key, after), GemmLibraryState::kReady);
  EXPECT_EQ(gemm_library_state(device, key, UINT64_MAX), GemmLibraryState::kReady);
  EXPECT_EQ(gemm_library_state(device + 1, key, UINT64_MAX), GemmLibraryState::kCold) << "marks are per device";
  gemm_library_mark(device, key + "|declined", GemmLibraryState::kDeclined);
  EXPECT_EQ(gemm_library_state(device, key + "|declined", UINT64_MAX), GemmLibraryState::kDeclined);
}

TEST(GemmBridgeTest, BridgeTakesFloatProblemsWithinTheGrid) {
  GemmDesc g = desc_f32(128, 768, 256);
  EXPECT_TRUE(gemm_bridge_supported(g));
  for (DType dt : {DType::kF16, DType::kBF16}) {
    g.dtype = dt;
    EXPECT_TRUE(gemm_bridge_supported(g)) << dtype_name(dt);
  }
  for (DType dt : {DType::kF64, DType::kI32, DType::kI8}) {
    g.dtype = dt;
    EXPECT_FALSE(gemm_bridge_supported(g)) << dtype_name(dt);
  }
  g.dtype = DType::kF32;
  g.batch = 70000;  // beyond gridDim.z
  EXPECT_FALSE(gemm_bridge_supported(g));
  g.batch = 1;
  g.m = 0;
  EXPECT_FALSE(gemm_bridge_supported(g));
  g.m = int64_t{kernels::kGemmTileM} * 70000;  // beyond gridDim.y
  EXPECT_FALSE(gemm_bridge_supported(g));
  g.m = int64_t{kernels::kGemmTileM} * 65535;
  EXPECT_TRUE(gemm_bridge_supported(g));
}

// Split K only where the output tiles leave SMs idle, into about two blocks per SM, in whole K steps
// of at least two tile depths that cover k exactly, never beyond the stream's scratch.
TEST(GemmBridgeTest, SplitsKOnlyForProblemsThatLeaveTheGpuIdle) {
  using kernels::gemm_split;
  using kernels::kGemmTileK;
  const int sms = 132;
  // The benchmark encoder at seq 16: FFN down-projection, 8 tiles of 32x32 over K = 1024.
  kernels::GemmSplit s = gemm_split(8, 1024, sms);
  EXPECT_EQ(s.splits, 16);
  EXPECT_EQ(s.kc, 64);
  // QKV projection at seq 16: 24 tiles, K = 256: four splits of 64.
  s = gemm_split(24, 256, sms);
  EXPECT_EQ(s.splits, 4);
  EXPECT_EQ(s.kc, 64);
  // At seq 112: 96 tiles, three splits (of 96, 96 and 64).
  s = gemm_split(96, 256, sms);
  EXPECT_EQ(s.splits, 3);
  EXPECT_EQ(s.kc, 96);
  // A tile per SM already, or K too short to split: one pass over K.
  for (auto [tiles, k] : {std::pair<long long, long long>{132, 1024}, {240, 256}, {400, 4096}, {4, 127}, {4, 0}, {0, 1024}}) {
    s = gemm_split(tiles, k, sms);
    EXPECT_EQ(s.splits, 1) << tiles << " tiles, k " << k;
    EXPECT_EQ(s.kc, k) << tiles << " tiles, k " << k;
  }
  for (long long tiles = 1; tiles < sms; ++tiles) {
    for (long long k : {128LL, 200LL, 256LL, 257LL, 1000LL, 1024LL, 4097LL, 1LL << 20}) {
      s = gemm_split(tiles, k, sms);
      ASSERT_GE(s.splits, 1);
      EXPECT_LE(s.splits, 16);
      EXPECT_LE(s.splits * tiles, kernels::kGemmSplitScratchTiles) << tiles << " tiles, k " << k;
      if (s.splits == 1) continue;
      EXPECT_EQ(s.kc % kGemmTileK, 0);
      EXPECT_GE(s.kc, 2 * kGemmTileK) << "every split at least two steps of K";
      EXPECT_LT((s.splits - 1) * s.kc, k) << "every split has work";
      EXPECT_GE(s.splits * s.kc, k) << "the splits cover k";
    }
  }
  EXPECT_EQ(gemm_split(4, 1024, 0).splits, 1) << "an unknown SM count never splits";
}

// Planning records the bridge's kernel (so creation and `kiln cache warm` compile it) but counts
// GEMMs as no launches.
TEST(GemmBridgeTest, PlanningCountsBridgeKernelsApartFromLaunches) {
  ir::Graph g;
  // Big enough for the GPU (small all-host nodes run on the host).
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({64, 128}));
  g.inputs.push_back(x);
  const int wid = g.add_constant("w", Tensor::zeros(DType::kF32, {128, 64}));
  const int y = g.add_value("y");
  add_node(g, "mm", "MatMul", {x, wid}, {y});
  g.outputs.push_back(y);
  const Dims shapes[] = {{64, 128}};
  Result<KernelPlan> plan = plan_kernels(g, shapes);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->launches, 0u) << "a MatMul launches no kernel of kiln's";
  if (!gemm_bridge_enabled()) GTEST_SKIP() << "KILN_GEMM_BRIDGE=0";
  EXPECT_EQ(plan->gemm_bridges, 1u);
  ASSERT_EQ(plan->kernels.size(), 1u);
  EXPECT_EQ(plan->kernels[0].key, kernels::gemm_kernel_key({DType::kF32}));
}

// One-row and one-column products (gemv_applies): which GEMM descriptors the GEMV kernel takes.
TEST(GemvPlanTest, GemvTakesOneRowOrOneContiguousColumn) {
  if (const char* e = std::getenv("KILN_GEMV"); e && std::string(e) == "0") GTEST_SKIP() << "KILN_GEMV=0";
  GemmDesc row = desc_f32(1, 1000, 512);
  EXPECT_TRUE(gemv_applies(row));
  row.bias = true;
  EXPECT_TRUE(gemv_applies(row)) << "a bias along the row";
  row.bias_rows = true;
  EXPECT_FALSE(gemv_applies(row)) << "both biases";
  GemmDesc col = desc_f32(1000, 1, 512);
  EXPECT_TRUE(gemv_applies(col));
  col.bias_rows = true;
  EXPECT_TRUE(gemv_applies(col)) << "a per-row bias is the transposed row's bias";
  col.bias_rows = false;
  col.bias = true;
  EXPECT_FALSE(gemv_applies(col)) << "a per-column bias would run across the transposed row";
  GemmDesc strided = desc_f32(1000, 1, 512);
  strided.ldd = 4;
  EXPECT_FALSE(gemv_applies(strided)) << "a column of a wider D";
  GemmDesc batched = desc_f32(1, 1000, 512);
  batched.batch = 2;
  EXPECT_FALSE(gemv_applies(batched));
  EXPECT_FALSE(gemv_applies(desc_f32(2, 1000, 512)));
  GemmDesc f64 = desc_f32(1, 1000, 512);
  f64.dtype = DType::kF64;
  EXPECT_FALSE(gemv_applies(f64));
  GemmDesc half = desc_f32(1, 1000, 512);
  half.dtype = DType::kBF16;
  EXPECT_TRUE(gemv_applies(half));
}

// Planning records the GEMV kernel a batch-1 Linear and a one-pixel 1x1 convolution with a bias
// run (so creation and `kiln cache warm` compile them; the conv's bias goes in the epilogue, no
// prefill launch), counted apart from launches; a second row makes it an ordinary GEMM.
TEST(GemvPlanTest, PlanningRecordsGemvKernels) {
  if (const char* e = std::getenv("KILN_GEMV"); e && std::string(e) == "0") GTEST_SKIP() << "KILN_GEMV=0";
  auto plan_of = [](Dims x_dims, const std::string& op, Dims w_dims, bool bias) {
    ir::Graph g;
    const int x = g.add_value("x", DType::kF32, ir::Shape::of(x_dims));
    g.inputs.push_back(x);
    std::vector<int> ins = {x, g.add_constant("w", Tensor::zeros(DType::kF32, w_dims))};
    if (bias) ins.push_back(g.add_constant("b", Tensor::zeros(DType::kF32, {w_dims[0]})));
    const int y = g.add_value("y");
    add_node(g, "n", op, ins, {y});
    g.outputs.push_back(y);
    const Dims shapes[] = {x_dims};
    return plan_kernels(g, shapes);
  };
  auto gemv_keys = [](const KernelPlan& p) {
    std::vector<std::string> keys;
    for (const KernelVariant& v : p.kernels)
      if (v.key.starts_with(kernels::kGemvKernelKeyPrefix)) keys.push_back(v.key);
    return keys;
  };
  Result<KernelPlan> linear = plan_of({1, 4100}, "MatMul", {4100, 64}, false);
  ASSERT_TRUE(linear.ok()) << linear.status().to_string();
  EXPECT_EQ(gemv_keys(*linear), std::vector<std::string>{"gemv|f32|NN"});
  EXPECT_EQ(linear->gemv_kernels, 1u);
  EXPECT_EQ(linear->launches, 0u);
  Result<KernelPlan> two_rows = plan_of({2, 4100}, "MatMul", {4100, 64}, false);
  ASSERT_TRUE(two_rows.ok());
  EXPECT_TRUE(gemv_keys(*two_rows).empty());
  // Conv: D [Cout, pixels] = W [Cout, C] x X [C, pixels]: one pixel is one column, run as the
  // transposed row (both operands swapped and transposed), the bias in its epilogue.
  Result<KernelPlan> conv = plan_of({1, 4104, 1, 1}, "Conv", {24, 4104, 1, 1}, true);
  ASSERT_TRUE(conv.ok()) << conv.status().to_string();
  EXPECT_EQ(gemv_keys(*conv), std::vector<std::string>{"gemv|f32|TT|bias"});
  EXPECT_EQ(conv->launches, 0u) << "no prefill of the bias";
  Result<KernelPlan> conv_pixels = plan_of({1, 4104, 2, 1}, "Conv", {24, 4104, 1, 1}, true);
  ASSERT_TRUE(conv_pixels.ok());
  EXPECT_TRUE(gemv_keys(*conv_pixels).empty());
  EXPECT_EQ(conv_pixels->launches, 1u) << "two pixels: the bias prefill, then cuBLASLt";
}

// A small node reading a graph input runs on the host when the input arrives as a host array and
// on the GPU when it arrives on the device: planning plans both walks, so that a call with device
// inputs finds its kernel compiled at creation too (no call under lazy or none waits for NVRTC),
// and reports the host-input walk's counts.
TEST(KernelPlanTest, SmallNodesOnGraphInputsArePlannedForDeviceInputsToo) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({1, 64}));
  g.inputs.push_back(x);
  const int scale = g.add_constant("s", Tensor::zeros(DType::kF32, {64}));
  const int y = g.add_value("y"), z = g.add_value("z");
  add_node(g, "mul", "Mul", {x, scale}, {y});
  add_node(g, "relu", "Relu", {y}, {z});
  g.outputs.push_back(z);
  const Dims shapes[] = {{1, 64}};
  Result<KernelPlan> plan = plan_kernels(g, shapes);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->host_nodes, 2u) << "with host inputs both nodes run on the host";
  EXPECT_EQ(plan->gpu_nodes, 0u);
  EXPECT_EQ(plan->launches, 0u);
  ASSERT_EQ(plan->kernels.size(), 2u) << "the device-input walk's Mul and Relu kernels";
  EXPECT_NE(plan->kernels[0].key.find("Mul"), std::string::npos) << plan->kernels[0].key;
  EXPECT_NE(plan->kernels[1].key.find("Relu"), std::string::npos) << plan->kernels[1].key;

  // A graph whose small nodes read no graph input is walked once: same plan as before.
  ir::Graph big;
  const int bx = big.add_value("x", DType::kF32, ir::Shape::of({64, 128}));
  big.inputs.push_back(bx);
  const int w = big.add_constant("w", Tensor::zeros(DType::kF32, {128, 64}));
  const int by = big.add_value("y");
  add_node(big, "mm", "MatMul", {bx, w}, {by});
  big.outputs.push_back(by);
  const Dims big_shapes[] = {{64, 128}};
  Result<KernelPlan> once = plan_kernels(big, big_shapes);
  ASSERT_TRUE(once.ok());
  EXPECT_EQ(once->gpu_nodes, 1u);
  EXPECT_EQ(once->host_nodes, 0u);
}

// Planning stands device values in with host zeros: a node that runs on the host (no CUDA kernel)
// reads a large one like any planned value.
TEST(GemmBridgeTest, PlanningLargeValuesThatAHostNodeReads) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of({1024, 512}));
  g.inputs.push_back(x);
  const int wid = g.add_constant("w", Tensor::zeros(DType::kF32, {512, 512}));
  const int kid = g.add_constant("k", Tensor::from_vector(DType::kI64, {1}, std::vector<int64_t>{3}));
  const int y = g.add_value("y"), vals = g.add_value("values"), idx = g.add_value("indices");
  add_node(g, "mm", "MatMul", {x, wid}, {y});
  add_node(g, "top", "TopK", {y, kid}, {vals, idx});  // no CUDA kernel: the CPU reads the 2 MB MatMul output
  g.outputs = {vals, idx};
  const Dims shapes[] = {{1024, 512}};
  Result<KernelPlan> plan = plan_kernels(g, shapes);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->gpu_nodes, 1u);
  EXPECT_EQ(plan->fallback_nodes, 1u);
}

// The warm start's lookup: a kernel the runtime cache lacks is kNotFound, not compiled; once the
// cache holds it, it comes from there.
TEST(GemmBridgeTest, CacheOnlyLookupNeverCompiles) {
  const fs::path path = fs::temp_directory_path() / ("kiln_bridge_" + std::to_string(::getpid()) + ".kcache");
  fs::remove(path);
  Result<std::shared_ptr<RuntimeCache>> cache = RuntimeCache::open(path.string());
  ASSERT_TRUE(cache.ok()) << cache.status().to_string();
  Result<KernelSource> src = kernels::gemm_kernel_source({DType::kF16, true, false, true, false});
  ASSERT_TRUE(src.ok());
  JitCounters counters;
  Result<KernelImage> miss = kernel_image(*src, 90, cache->get(), &counters, /*compile=*/false);
  ASSERT_FALSE(miss.ok());
  EXPECT_EQ(miss.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(counters.compiles.load(), 0u);
  EXPECT_EQ(counters.cache_misses.load(), 0u) << "a cache-only lookup counts no miss";
  EXPECT_EQ((*cache)->stats().entries, 0u);
  EXPECT_EQ(kernel_image(*src, 90, nullptr, nullptr, false).status().code(), StatusCode::kNotFound);
  Result<KernelImage> compiled = kernel_image(*src, 90, cache->get(), &counters);
  ASSERT_TRUE(compiled.ok()) << compiled.status().to_string();
  EXPECT_FALSE(compiled->from_cache);
  EXPECT_EQ(counters.compiles.load(), 1u);
  Result<KernelImage> hit = kernel_image(*src, 90, cache->get(), &counters, false);
  ASSERT_TRUE(hit.ok()) << hit.status().to_string();
  EXPECT_TRUE(hit->from_cache);
  EXPECT_EQ(*hit->bytes, *compiled->bytes);
  EXPECT_EQ(counters.compiles.load(), 1u);
  cache->reset();
  fs::remove(path);
}

}  // namespace
}  // namespace kiln::cuda

namespace kiln::cuda {
namespace {

// kiln.Attention's kernel form depends on the architecture (the tensor-core form needs sm_80),
// so planning, at context creation and in `kiln cache warm --arch`, plans the target's form.
TEST(AttentionPlanTest, PlanningChoosesTheTargetArchitecturesKernelForm) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF16, ir::Shape::of({2, 64, 40, 64}));  // 128 (batch, head) pairs
  g.inputs.push_back(x);
  const int y = g.add_value("y");
  add_node(g, "att", "kiln.Attention", {x, x, x}, {y});
  ir::Node& n = g.nodes.back();
  for (const char* v : {"q_axes", "k_axes", "v_axes", "out_axes"}) n.attrs.set_ints(v, {0, 1, 2, 3});
  n.attrs.set_float("scale", 0.125);
  g.outputs.push_back(y);
  const Dims shapes[] = {{2, 64, 40, 64}};
  for (auto [sm, prefix] : {std::pair{90, "attn_mma:"}, {80, "attn_mma:"}, {75, "attn:"}}) {
    Result<KernelPlan> plan = plan_kernels(g, shapes, 4096, sm);
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    ASSERT_EQ(plan->kernels.size(), 1u) << "sm " << sm;
    EXPECT_TRUE(plan->kernels[0].key.starts_with(prefix)) << "sm " << sm << ": " << plan->kernels[0].key;
  }
}

}  // namespace
}  // namespace kiln::cuda
