// Every kernel source the CUDA backend generates compiles with NVRTC for sm_90. Needs the CUDA
// toolkit's NVRTC, not a GPU (label nogpu).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/kernels/attention.h"
#include "backends/cuda/kernels/common.h"
#include "backends/cuda/kernels/elementwise.h"
#include "backends/cuda/kernels/gemm.h"
#include "backends/cuda/kernels/nn.h"
#include "backends/cuda/kernels/reduce.h"
#include "backends/cuda/nvrtc.h"
#include "backends/cuda/nvrtc_test_util.h"

namespace kiln::cuda::kernels {
namespace {

constexpr int kSm = 90;

using testing::expect_all_compile;

const DType kAllTypes[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16, DType::kI8,
                           DType::kI16, DType::kI32, DType::kI64, DType::kU8,  DType::kU16,
                           DType::kU32, DType::kU64, DType::kBool};

TEST(CudaKernelsTest, NvrtcCompilesForSm90) {
  Result<CompiledKernel> k = nvrtc_compile(
      {"kiln_probe", "extern \"C\" __global__ void kiln_probe(float* x) { x[threadIdx.x] = 1.0f; }"}, kSm);
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_FALSE(k->is_ptx);
  EXPECT_GT(k->image.size(), 100u);
  EXPECT_EQ(k->options[0], "--gpu-architecture=sm_90");
}

TEST(CudaKernelsTest, BrokenSourceGivesNvrtcLogNotCrash) {
  Result<CompiledKernel> k = nvrtc_compile({"kiln_bad", "extern \"C\" __global__ void kiln_bad() { undeclared(); }"}, kSm);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kDeviceError);
  EXPECT_NE(k.status().message().find("kiln_bad"), std::string::npos);
  EXPECT_NE(k.status().message().find("undeclared"), std::string::npos) << k.status().message();
}

TEST(CudaKernelsTest, CacheKeyDependsOnSourceOptionsAndArch) {
  auto opts = nvrtc_options(kSm);
  std::string a = kernel_cache_key("src", opts, kSm);
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a, kernel_cache_key("src", opts, kSm));
  EXPECT_NE(a, kernel_cache_key("src2", opts, kSm));
  EXPECT_NE(a, kernel_cache_key("src", opts, 80));
  auto other = opts;
  other.push_back("-lineinfo");
  EXPECT_NE(a, kernel_cache_key("src", other, kSm));
}

TEST(CudaKernelsTest, EveryElementwiseOpCompiles) {
  std::vector<Result<KernelSource>> sources;
  for (const ElementwiseOpInfo& op : elementwise_ops()) {
    if (op.name == "Cast" || op.name == "Where" || op.name == "Pow") continue;
    std::vector<DType> types;
    if (op.floats) types.insert(types.end(), {DType::kF32, DType::kF16, DType::kBF16, DType::kF64});
    if (op.ints) types.insert(types.end(), {DType::kI32, DType::kI64, DType::kI8});
    if (op.uints) types.insert(types.end(), {DType::kU8, DType::kU64});
    if (op.bools) types.push_back(DType::kBool);
    ASSERT_FALSE(types.empty()) << op.name;
    const int arity = op.arity < 0 ? 3 : op.arity;
    for (DType t : types) {
      ElementwiseSpec s;
      s.op = op.name;
      s.inputs.assign(static_cast<size_t>(arity), t);
      s.output = op.bool_result ? DType::kBool : t;
      s.attrs.assign(static_cast<size_t>(op.attrs), 0.25);
      s.layout = Layout::kFlat;
      if (arity > 1) {
        s.scalar_inputs.assign(static_cast<size_t>(arity), false);
        s.scalar_inputs[1] = true;
      }
      sources.push_back(elementwise_source(s));
      if (t == DType::kF32 || t == DType::kI64 || t == DType::kBool) {
        s.layout = Layout::kStrided;
        s.scalar_inputs.clear();
        s.wide_index = t != DType::kF32;
        sources.push_back(elementwise_source(s));
      }
    }
  }
  EXPECT_GT(sources.size(), 200u);
  expect_all_compile(sources);
}

TEST(CudaKernelsTest, CastBetweenEveryDtypePairCompiles) {
  std::vector<Result<KernelSource>> sources;
  for (DType from : kAllTypes)
    for (DType to : kAllTypes) {
      ElementwiseSpec s{"Cast", {from}, to, {}, Layout::kFlat, {}, false};
      sources.push_back(elementwise_source(s));
    }
  expect_all_compile(sources);
}

TEST(CudaKernelsTest, WhereAndPowCompile) {
  std::vector<Result<KernelSource>> sources;
  for (DType t : kAllTypes) {
    ElementwiseSpec s{"Where", {DType::kBool, t, t}, t, {}, Layout::kStrided, {}, false};
    sources.push_back(elementwise_source(s));
  }
  for (DType base : {DType::kF32, DType::kF16, DType::kF64, DType::kI32, DType::kI64})
    for (DType e : {DType::kF32, DType::kI64, DType::kI32}) {
      ElementwiseSpec s{"Pow", {base, e}, base, {}, Layout::kFlat, {false, true}, false};
      sources.push_back(elementwise_source(s));
    }
  expect_all_compile(sources);
}

TEST(CudaKernelsTest, UnknownOpOrDtypeIsUnsupported) {
  ElementwiseSpec s{"NoSuchOp", {DType::kF32}, DType::kF32, {}, Layout::kFlat, {}, false};
  EXPECT_EQ(elementwise_source(s).status().code(), StatusCode::kUnsupported);
  s.op = "Erf";
  s.inputs = {DType::kI32};
  s.output = DType::kI32;
  EXPECT_EQ(elementwise_source(s).status().code(), StatusCode::kUnsupported);
  ReduceSpec r{"ReduceL2", DType::kI32, DType::kI32};
  EXPECT_EQ(reduce_source(r).status().code(), StatusCode::kUnsupported);
}

TEST(CudaKernelsTest, EveryReductionCompiles) {
  std::vector<Result<KernelSource>> sources;
  for (const std::string& op : reduce_ops()) {
    const bool float_only = op == "Softmax" || op == "LogSoftmax" || op == "LayerNormalization" ||
                            op == "ReduceL2" || op == "ReduceLogSum" || op == "ReduceLogSumExp";
    std::vector<DType> types = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64};
    if (!float_only) types.insert(types.end(), {DType::kI64, DType::kI32, DType::kU8});
    for (DType t : types)
      for (ReduceLayout layout : {ReduceLayout::kRows, ReduceLayout::kColumns}) {
        if (op == "LayerNormalization" && layout == ReduceLayout::kColumns) continue;
        ReduceSpec s{op, t, t, t, false, true, layout};
        sources.push_back(reduce_source(s));
      }
  }
  expect_all_compile(sources);
}

TEST(CudaKernelsTest, WindowAndGatherKernelsCompile) {
  std::vector<Result<KernelSource>> sources;
  for (WindowOp op : {WindowOp::kMaxPool, WindowOp::kAvgPool, WindowOp::kAvgPoolIncludePad, WindowOp::kConv,
                      WindowOp::kIm2col})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
      sources.push_back(window_source({op, t}));
  sources.push_back(window_source({WindowOp::kMaxPool, DType::kI32}));
  for (size_t size : {1, 2, 4, 8})
    for (DType index : {DType::kI32, DType::kI64}) sources.push_back(gather_source({size, index}));
  expect_all_compile(sources);
}

// The GEMM bridge's kernel (kernels/gemm.h): every dtype, transpose and epilogue compiles, keys
// and names tell the variants apart, and dtypes it has no kernel for are kUnsupported.
TEST(CudaKernelsTest, EveryGemmKernelCompiles) {
  std::vector<Result<KernelSource>> sources;
  std::vector<std::string> keys, names;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int t = 0; t < 4; ++t)
      for (bool bias : {false, true})
        for (bool beta : {false, true})
          for (GemmEpilogue act : {GemmEpilogue::kNone, GemmEpilogue::kRelu, GemmEpilogue::kGeluTanh}) {
            GemmKernelSpec spec{dt, (t & 1) != 0, (t & 2) != 0, bias, beta, act};
            sources.push_back(gemm_kernel_source(spec));
            keys.push_back(gemm_kernel_key(spec));
            if (sources.back().ok()) names.push_back(sources.back()->name);
          }
  expect_all_compile(sources);
  std::sort(keys.begin(), keys.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::unique(keys.begin(), keys.end()), keys.end()) << "two variants share a key";
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end()) << "two variants share a name";
  EXPECT_EQ(gemm_kernel_key({DType::kF16, false, true, true, false, GemmEpilogue::kRelu}), "gemm_bridge|f16|NT|bias|relu");
  for (DType dt : {DType::kF64, DType::kI32, DType::kI8}) {
    Result<KernelSource> k = gemm_kernel_source(GemmKernelSpec{dt});
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), StatusCode::kUnsupported);
  }
}

// The GEMV kernel (kernels/gemm.h): the same variants as the bridge's, under keys and names of
// their own, and the launch geometry each layout uses.
TEST(CudaKernelsTest, EveryGemvKernelCompiles) {
  std::vector<Result<KernelSource>> sources;
  std::vector<std::string> keys, names;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int t = 0; t < 4; ++t)
      for (bool bias : {false, true})
        for (bool beta : {false, true})
          for (GemmEpilogue act : {GemmEpilogue::kNone, GemmEpilogue::kRelu, GemmEpilogue::kGeluTanh}) {
            GemmKernelSpec spec{dt, (t & 1) != 0, (t & 2) != 0, bias, beta, act};
            sources.push_back(gemv_kernel_source(spec));
            keys.push_back(gemv_kernel_key(spec));
            if (sources.back().ok()) names.push_back(sources.back()->name);
          }
  expect_all_compile(sources);
  std::sort(keys.begin(), keys.end());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::unique(keys.begin(), keys.end()), keys.end()) << "two variants share a key";
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end()) << "two variants share a name";
  EXPECT_EQ(gemv_kernel_key({DType::kBF16, true, false, false, true, GemmEpilogue::kGeluTanh}), "gemv|bf16|TN|gelu|beta");
  EXPECT_NE(gemv_kernel_key({DType::kF32}), gemm_kernel_key({DType::kF32}));
  const GemvGeometry rows = gemv_geometry({DType::kF32, false, false}, 1000);  // B [k, n]: 8 f32 columns a block
  EXPECT_EQ(rows.grid, 125u);
  EXPECT_EQ(rows.block, 1024u);
  EXPECT_EQ(gemv_geometry({DType::kF16, false, false}, 1000).grid, 63u);  // 16 f16 columns
  const GemvGeometry cols = gemv_geometry({DType::kF32, false, true}, 1000);  // B [n, k]: a warp a column
  EXPECT_EQ(cols.grid, 125u);
  EXPECT_EQ(cols.block, 256u);
  Result<KernelSource> k = gemv_kernel_source(GemmKernelSpec{DType::kF64});
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnsupported);
}

// kiln.Attention's kernel (kernels/attention.h): every dtype and rows-per-warp at head dims that
// take each padding path (odd and even float4 pitches, a partial float4, the 128 maximum, Dv != D);
// the largest fits the 48 KiB of static shared memory (the compile would fail otherwise).
TEST(CudaKernelsTest, EveryAttentionKernelCompiles) {
  std::vector<Result<KernelSource>> sources;
  std::vector<std::string> keys;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int rw : {1, 2, 4})
      for (auto [d, dv] : {std::pair{64, 64}, {32, 32}, {1, 1}, {30, 50}, {128, 128}, {80, 16}}) {
        AttentionSpec spec{dt, d, dv, rw};
        sources.push_back(attention_source(spec));
        keys.push_back(attention_key(spec));
        const int vw = attention_vector_width(dt);
        if (d % vw == 0 && dv % vw == 0) {  // and the 16-byte staging variant
          spec.vector = true;
          sources.push_back(attention_source(spec));
          keys.push_back(attention_key(spec));
        }
        if (dt != DType::kF32 && rw == 1) {  // the tensor-core form (rows per warp do not apply)
          spec.mma = true;
          sources.push_back(attention_source(spec));
          keys.push_back(attention_key(spec));
          if (spec.vector) {
            spec.vector = false;
            sources.push_back(attention_source(spec));
            keys.push_back(attention_key(spec));
          }
        }
      }
  expect_all_compile(sources);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::unique(keys.begin(), keys.end()), keys.end()) << "two variants share a key";
  EXPECT_EQ(attention_key({DType::kF16, 64, 32, 2}), "attn:f16:d64:dv32:rw2");
  EXPECT_EQ(attention_key({DType::kF16, 64, 32, 2, true}), "attn:f16:d64:dv32:rw2:v");
  for (AttentionSpec bad : {AttentionSpec{DType::kF64}, AttentionSpec{DType::kF32, 129, 64, 4},
                            AttentionSpec{DType::kF32, 64, 0, 4}, AttentionSpec{DType::kF32, 64, 64, 3},
                            AttentionSpec{DType::kF16, 60, 64, 4, true}, AttentionSpec{DType::kF32, 64, 64, 1, false, true}}) {
    Result<KernelSource> k = attention_source(bad);
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.status().code(), StatusCode::kUnsupported);
  }
  // The tensor-core form: half types on sm_80+ with at least half a block per SM (of 132) at a
  // sequence of 128, whatever the call's sequence and the device's SM count.
  EXPECT_TRUE(attention_use_mma(DType::kF16, 90, 96));   // 192 blocks
  EXPECT_TRUE(attention_use_mma(DType::kBF16, 80, 33));  // 66 blocks
  EXPECT_FALSE(attention_use_mma(DType::kF16, 90, 32));  // 64 blocks
  EXPECT_FALSE(attention_use_mma(DType::kF16, 90, 4));   // 8 blocks
  EXPECT_FALSE(attention_use_mma(DType::kF32, 90, 96));
  EXPECT_FALSE(attention_use_mma(DType::kF16, 75, 96));
  // Rows per warp: 4 while that still gives a block per SM (of 132, at a sequence of 128), then 2,
  // then 1.
  EXPECT_EQ(attention_rows_per_warp(96), 4);  // 96 x 8 blocks
  EXPECT_EQ(attention_rows_per_warp(17), 4);  // 17 x 8 blocks
  EXPECT_EQ(attention_rows_per_warp(16), 2);  // 16 x 16 blocks
  EXPECT_EQ(attention_rows_per_warp(4), 1);   // 4 x 32 blocks < 132
}

}  // namespace
}  // namespace kiln::cuda::kernels
