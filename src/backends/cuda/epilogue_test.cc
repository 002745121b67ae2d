// Fused epilogues on the CUDA backend without a GPU (label nogpu): the Relu variant of the direct
// conv kernel compiles with NVRTC, and host-only kernel planning (kernel_plan.h) shows the
// launches a fused graph saves: MatMul's bias and the activation run in cuBLASLt's epilogue or
// inside the conv kernel, never as kernels of their own.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cuda/conv_cudnn.h"
#include "backends/cuda/kernel_plan.h"
#include "backends/cuda/kernels/nn.h"
#include "backends/cuda/nvrtc.h"
#include "ir/graph.h"

namespace kiln::cuda {
namespace {

TEST(CudaEpilogueTest, ReluConvKernelCompilesAndDiffersFromPlain) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    const kernels::WindowSpec plain{kernels::WindowOp::kConv, t, false}, relu{kernels::WindowOp::kConv, t, true};
    EXPECT_NE(kernels::window_key(plain), kernels::window_key(relu));
    Result<KernelSource> src = kernels::window_source(relu);
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    EXPECT_NE(src->source.find("Relu epilogue"), std::string::npos);
    EXPECT_EQ(kernels::window_source(plain)->source.find("Relu epilogue"), std::string::npos);
    Result<CompiledKernel> k = nvrtc_compile(*src, 90);
    ASSERT_TRUE(k.ok()) << k.status().to_string() << "\n" << src->source;
    EXPECT_FALSE(k->image.empty());
  }
  // The relu flag means nothing to the other window kernels: their key stays.
  EXPECT_EQ(kernels::window_key({kernels::WindowOp::kIm2col, DType::kF32, true}),
            kernels::window_key({kernels::WindowOp::kIm2col, DType::kF32, false}));
}

TEST(CudaEpilogueTest, Im2colWithBiasPrefillCompiles) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    kernels::WindowSpec plain{kernels::WindowOp::kIm2col, t}, biased{kernels::WindowOp::kIm2col, t};
    biased.bias = true;
    EXPECT_NE(kernels::window_key(plain), kernels::window_key(biased));
    Result<KernelSource> src = kernels::window_source(biased);
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    EXPECT_NE(src->source.find("const T* __restrict__ bias"), std::string::npos);
    EXPECT_EQ(kernels::window_source(plain)->source.find("bias"), std::string::npos);
    Result<CompiledKernel> k = nvrtc_compile(*src, 90);
    ASSERT_TRUE(k.ok()) << k.status().to_string() << "\n" << src->source;
  }
}

struct Built {
  ir::Graph g;
  Dims x;
};

// x -> Conv(W, B?) [-> Relu] ; fused: the Relu as kiln_activation.
Built conv(int64_t group, bool bias, bool relu, bool fused) {
  Built b;
  b.x = {2, 4, 9, 7};
  ir::Graph& g = b.g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of(b.x));
  g.inputs = {x};
  ir::Node n{"conv", "Conv", {}, {x, g.add_constant("w", Tensor::zeros(DType::kF32, {6, 4 / group, 3, 3}))}, {}};
  n.attrs.set_int("group", group);
  n.attrs.set_ints("pads", {1, 1, 1, 1});
  if (bias) n.inputs.push_back(g.add_constant("b", Tensor::zeros(DType::kF32, {6})));
  if (relu && fused) n.attrs.set_string("kiln_activation", "Relu");
  int y = g.add_value("y");
  n.outputs = {y};
  g.add_node(std::move(n));
  if (relu && !fused) {
    const int r = g.add_value("r");
    g.add_node(ir::Node{"relu", "Relu", {}, {y}, {r}});
    y = r;
  }
  g.outputs = {y};
  return b;
}

// x [2, 5, 8] -> MatMul(W [8, 7]) [-> Add(b [7])] [-> act]; fused: bias input and kiln_activation.
Built linear(bool bias, const std::string& act, bool fused) {
  Built b;
  b.x = {2, 5, 8};
  ir::Graph& g = b.g;
  const int x = g.add_value("x", DType::kF32, ir::Shape::of(b.x));
  g.inputs = {x};
  const int w = g.add_constant("w", Tensor::zeros(DType::kF32, {8, 7}));
  const int bv = g.add_constant("b", Tensor::zeros(DType::kF32, {7}));
  ir::Node mm{"mm", "MatMul", {}, {x, w}, {}};
  if (fused && bias) mm.inputs.push_back(bv);
  if (fused && !act.empty()) mm.attrs.set_string("kiln_activation", act);
  int y = g.add_value("y");
  mm.outputs = {y};
  g.add_node(std::move(mm));
  if (!fused && bias) {
    const int z = g.add_value("z");
    g.add_node(ir::Node{"add", "Add", {}, {y, bv}, {z}});
    y = z;
  }
  if (!fused && !act.empty()) {
    const int z = g.add_value("a");
    ir::Node a{"act", act == "Relu" ? "Relu" : "Gelu", {}, {y}, {z}};
    if (act == "Gelu:tanh") a.attrs.set_string("approximate", "tanh");
    g.add_node(std::move(a));
    y = z;
  }
  g.outputs = {y};
  return b;
}

KernelPlan plan(const Built& b) {
  const Dims shapes[] = {b.x};
  Result<KernelPlan> p = plan_kernels(b.g, shapes, -1);
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  if (!p.ok()) return {};
  EXPECT_EQ(p->fallback_nodes, 0u);
  return *p;
}

TEST(CudaEpilogueTest, FusedConvPlansFewerLaunchesOnTheJitPath) {
  const ConvPath before = conv_path();
  set_conv_path(ConvPath::kJit);
  // group 1: unfused = im2col + Relu; fused = im2col only (the im2col launch prefills the bias,
  // the Relu runs in cuBLASLt's epilogue). Grouped: unfused = conv kernel + Relu; fused = the
  // conv kernel.
  for (bool bias : {false, true}) {
    const uint64_t unfused = plan(conv(1, bias, true, false)).launches;
    const uint64_t fused = plan(conv(1, bias, true, true)).launches;
    EXPECT_EQ(unfused, 2u) << "bias " << bias;
    EXPECT_EQ(plan(conv(1, bias, false, false)).launches, 1u) << "no bias broadcast kernel";
    EXPECT_EQ(fused, 1u) << "bias " << bias;
    EXPECT_EQ(plan(conv(2, bias, true, false)).launches, 2u);
    EXPECT_EQ(plan(conv(2, bias, true, true)).launches, 1u);
  }
  set_conv_path(before);
}

TEST(CudaEpilogueTest, FusedMatMulPlansNoKernels) {
  for (const std::string act : {"", "Relu", "Gelu:tanh"}) {
    for (bool bias : {false, true}) {
      if (!bias && act.empty()) continue;
      const uint64_t unfused = plan(linear(bias, act, false)).launches;
      EXPECT_EQ(unfused, (bias ? 1u : 0u) + (act.empty() ? 0u : 1u)) << act << " bias " << bias;
      EXPECT_EQ(plan(linear(bias, act, true)).launches, 0u) << act << " bias " << bias;
    }
  }
}

TEST(CudaEpilogueTest, BadEpilogueIsAnErrorNotIgnored) {
  Built b = linear(true, "Relu", true);
  b.g.nodes[0].attrs.set_string("kiln_activation", "Tanh");
  const Dims shapes[] = {b.x};
  Result<KernelPlan> p = plan_kernels(b.g, shapes, -1);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("Tanh"), std::string::npos) << p.status().to_string();
  Built c = conv(1, true, true, true);
  c.g.nodes[0].attrs.set_string("kiln_activation", "Gelu:tanh");  // no Gelu epilogue on Conv
  const ConvPath before = conv_path();
  set_conv_path(ConvPath::kJit);
  const Dims cshapes[] = {c.x};
  p = plan_kernels(c.g, cshapes, -1);
  set_conv_path(before);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::cuda
