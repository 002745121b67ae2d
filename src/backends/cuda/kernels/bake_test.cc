// Specialised variants (kernels/bake.h): every family bakes and compiles with NVRTC (nogpu).
#include "backends/cuda/kernels/bake.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "backends/cuda/kernels/elementwise.h"
#include "backends/cuda/kernels/nn.h"
#include "backends/cuda/kernels/reduce.h"

namespace kiln::cuda::kernels {
namespace {

void expect_compiles(const Result<KernelSource>& src) {
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_NE(src->source.find("constexpr"), std::string::npos);
  Result<CompiledKernel> k = nvrtc_compile(*src, 90);
  EXPECT_TRUE(k.ok()) << k.status().to_string() << "\n" << src->source;
}

TEST(BakeTest, StridedElementwiseBakesDimsStridesAndBlock) {
  ElementwiseSpec spec{"Add", {DType::kF32, DType::kF32}, DType::kF32, {}, Layout::kStrided, {}, false};
  Result<KernelSource> generic = elementwise_source(spec);
  ASSERT_TRUE(generic.ok());
  StridedArgs st{};
  st.rank = 2;
  st.dims[0] = 77;
  st.dims[1] = 256;
  st.strides[0][0] = 256;
  st.strides[0][1] = 1;
  st.strides[1][1] = 1;  // broadcast along dim 0
  st.strides[2][0] = 256;
  st.strides[2][1] = 1;
  st.strides[5][3] = 99;  // beyond the operands: must not reach the key
  Bake bake{{bake_strided("st", st, 3), bake_i64("n", 77 * 256)}, 256};
  Result<KernelSource> spec_src = bake_source(*generic, bake);
  expect_compiles(spec_src);
  EXPECT_EQ(spec_src->source.find("blockDim.x"), std::string::npos);
  EXPECT_EQ(bake_key(bake).find("99"), std::string::npos);
  Bake other = bake;
  other.params[1] = bake_i64("n", 77 * 255);
  EXPECT_NE(bake_key(bake), bake_key(other));
}

TEST(BakeTest, ReductionsSoftmaxAndLayerNormBake) {
  for (const char* op : {"ReduceMean", "Softmax", "LogSoftmax"}) {
    for (ReduceLayout layout : {ReduceLayout::kRows, ReduceLayout::kColumns}) {
      ReduceSpec spec{op, DType::kF32, DType::kF32};
      spec.layout = layout;
      Result<KernelSource> generic = reduce_source(spec);
      ASSERT_TRUE(generic.ok());
      expect_compiles(bake_source(*generic, Bake{{bake_i64("outer", 154), bake_i64("R", 77), bake_i64("inner", 1)}, 128}));
    }
  }
  ReduceSpec ln{"LayerNormalization", DType::kF16, DType::kF16, DType::kF16};
  Result<KernelSource> generic = reduce_source(ln);
  ASSERT_TRUE(generic.ok());
  expect_compiles(bake_source(*generic, Bake{{bake_i64("rows", 154), bake_i64("R", 256)}, 256}));
}

TEST(BakeTest, WindowKernelsBake) {
  WindowArgs w{};
  for (int j = 0; j < 3; ++j) w.in[j] = w.out[j] = w.k[j] = w.s[j] = w.d[j] = 1;
  w.in[1] = w.in[2] = 32;
  w.out[1] = w.out[2] = 16;
  w.k[1] = w.k[2] = 3;
  w.s[1] = w.s[2] = 2;
  w.pb[1] = w.pb[2] = w.pe[1] = w.pe[2] = 1;
  w.n = 2;
  w.c = w.m = w.groups = 16;
  w.rank = 2;
  for (WindowOp op : {WindowOp::kMaxPool, WindowOp::kAvgPool, WindowOp::kConv, WindowOp::kIm2col}) {
    Result<KernelSource> generic = window_source({op, DType::kF32});
    ASSERT_TRUE(generic.ok());
    expect_compiles(bake_source(*generic, Bake{{bake_window("w", w)}, 256}));
  }
}

TEST(BakeTest, MissingParameterIsAnInternalErrorNotACrash) {
  KernelSource k{"kiln_k", "extern \"C\" __global__ void kiln_k(float* x, long long n) {\n  x[0] = n;\n}\n"};
  EXPECT_EQ(bake_source(k, Bake{{bake_i64("R", 3)}, 0}).status().code(), StatusCode::kInternal);
  EXPECT_EQ(bake_source(KernelSource{"other", k.source}, Bake{}).status().code(), StatusCode::kInternal);
  Result<KernelSource> ok = bake_source(k, Bake{{bake_i64("n", 3)}, 0});
  ASSERT_TRUE(ok.ok());
  EXPECT_NE(ok->source.find("long long n_arg"), std::string::npos);
  EXPECT_NE(ok->source.find("constexpr long long n = 3LL;"), std::string::npos);
}

// The key text of baked parameters, exactly: it names specialised kernels in the kernel table
// and, through their sources, in runtime caches written by earlier versions, so a change to how
// values are written (session 9 moved it to std::to_chars) must not change a byte. Operand rows
// past `operands` are zeros; negative values and the int64 extremes are written as they are.
TEST(BakeTest, KeyTextIsStable) {
  StridedArgs a{};
  a.rank = 2;
  a.dims[0] = 3;
  a.dims[1] = -4;
  a.strides[0][0] = 4;
  a.strides[0][1] = 1;
  a.strides[1][1] = INT64_MIN;
  a.strides[2][0] = 77;  // beyond `operands`
  WindowArgs w{};
  w.in[0] = 5;
  w.out[1] = 6;
  w.k[2] = 7;
  w.s[0] = 1;
  w.pe[2] = -2;
  w.n = 2;
  w.c = 3;
  w.m = 4;
  w.groups = 1;
  w.rank = 2;
  const Bake b{{bake_i64("n", 12), bake_strided("st", a, 2), bake_window("w", w)}, 128};
  EXPECT_EQ(bake_key(b),
      "#n=12LL;st={{3LL, -4LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0LL}, {{4LL, 1LL, 0LL, 0LL, 0LL, 0LL, 0LL"
      ", 0LL}, {0LL, -9223372036854775808LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0LL}, {0LL, 0LL, 0LL, 0LL, "
      "0LL, 0LL, 0LL, 0LL}, {0LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0LL}, {0LL, 0LL, 0LL, 0LL, 0LL, 0"
      "LL, 0LL, 0LL}, {0LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0LL}, {0LL, 0LL, 0LL, 0LL, 0LL, 0LL, 0L"
      "L, 0LL}}, 2};w={{5LL, 0LL, 0LL}, {0LL, 6LL, 0LL}, {0LL, 0LL, 7LL}, {1LL, 0LL, 0LL}, {0LL, "
      "0LL, 0LL}, {0LL, 0LL, 0LL}, {0LL, 0LL, -2LL}, 2LL, 3LL, 4LL, 1LL, 2};block=128");
}

}  // namespace
}  // namespace kiln::cuda::kernels
