// What a node's memo keeps across shapes (label nogpu): a handler run at a new shape reuses the
// parts of its launch plan that do not depend on the shape (an elementwise launch's generic
// kernel variant; kiln.Attention's parsed attributes and kernel variant) and builds the rest,
// and the reused parts are keyed by everything they depend on (a broadcast and a contiguous
// launch of one node take different kernels). Handlers run in a planning context: no GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cuda/ops/handler.h"
#include "backends/cuda/ops/node_memo.h"
#include "ir/attention.h"
#include "ir/graph.h"

namespace kiln::cuda {
namespace {

// Records the variants a handler launches; launches nothing.
class Recorded final : public KernelProvider {
 public:
  Result<cudaKernel_t> kernel_for(const KernelVariant& v) override {
    variants.push_back(v);
    return static_cast<cudaKernel_t>(nullptr);
  }
  std::vector<KernelVariant> variants;
};

struct Planning {
  DeviceInfo device;
  RunContext ctx;
  Recorded provider;
  Planning() : device(info()), ctx(device, nullptr, nullptr, nullptr, nullptr, false) {
    ctx.set_planning(true);
    ctx.set_kernel_provider(&provider);
  }
  static DeviceInfo info() {
    DeviceInfo d;
    d.sm = 90;
    d.multiprocessors = 132;
    return d;
  }
  // Runs `node` on zero inputs of `dims` with `memo`.
  Status run(const ir::Node& node, const std::vector<Dims>& dims, NodeMemo& memo) {
    std::vector<Tensor> in;
    for (const Dims& d : dims) {
      Result<Tensor> t = Tensor::empty(DType::kF32, d);
      if (!t.ok()) return t.status();
      in.push_back(*t);
    }
    std::vector<Tensor> out(node.outputs.size());
    ctx.set_node(&node, 0, &memo);
    return handler_for(node.op)->run(ctx, in, out);
  }
};

ir::Node make_node(std::string op, size_t inputs) {
  ir::Node n;
  n.name = "n";
  n.op = std::move(op);
  for (size_t i = 0; i < inputs; ++i) n.inputs.push_back(static_cast<int>(i));
  n.outputs = {static_cast<int>(inputs)};
  return n;
}

TEST(LaunchMemoTest, ElementwiseReusesItsGenericKernelAcrossShapes) {
  Planning p;
  NodeMemo memo;
  const ir::Node add = make_node("Add", 2);
  ASSERT_TRUE(p.run(add, {{4, 8}, {4, 8}}, memo).ok());
  ASSERT_TRUE(p.run(add, {{6, 8}, {6, 8}}, memo).ok());
  ASSERT_EQ(p.provider.variants.size(), 2u);
  EXPECT_EQ(p.provider.variants[0].key, p.provider.variants[1].key) << "one generic kernel for both shapes";
  EXPECT_TRUE(p.provider.variants[1].spec_key.empty()) << "contiguous: not specialised";
  EXPECT_EQ(memo.size(), 3u) << "two shapes' launch plans and one generic variant";

  // A broadcast at a third shape: a strided launch, another generic kernel (keyed by layout) and
  // a specialised variant naming this shape's dims.
  ASSERT_TRUE(p.run(add, {{5, 8}, {1, 8}}, memo).ok());
  ASSERT_TRUE(p.run(add, {{7, 8}, {1, 8}}, memo).ok());
  ASSERT_EQ(p.provider.variants.size(), 4u);
  const KernelVariant& b5 = p.provider.variants[2];
  const KernelVariant& b7 = p.provider.variants[3];
  EXPECT_NE(b5.key, p.provider.variants[0].key) << "the strided kernel is not the contiguous one";
  EXPECT_EQ(b5.key, b7.key);
  ASSERT_FALSE(b5.spec_key.empty());
  EXPECT_NE(b5.spec_key, b7.spec_key) << "specialised per shape";
  EXPECT_EQ(b5.spec_key.rfind(b5.key, 0), 0u) << "a specialised key extends its generic key";
  ASSERT_TRUE(b7.spec_build);
  Result<KernelSource> src = b7.spec_build();
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_NE(src->source.find("7LL"), std::string::npos) << "the baked count names 7 rows";
  EXPECT_EQ(memo.size(), 6u) << "four launch plans, two generic variants";

  // Back at the first shape: its plan is found, nothing new is stored.
  ASSERT_TRUE(p.run(add, {{4, 8}, {4, 8}}, memo).ok());
  EXPECT_EQ(p.provider.variants.back().key, p.provider.variants[0].key);
  EXPECT_EQ(memo.size(), 6u);
}

TEST(LaunchMemoTest, AttentionKeepsItsAttributesAndKernelAcrossSequenceLengths) {
  Planning p;
  NodeMemo memo;
  ir::Node att = make_node(std::string(ir::kAttentionOp), 3);
  ir::AttentionAttrs a;
  a.scale = 0.125;
  for (ir::AttentionView& v : a.view) v.axes = {0, 1, 2, 3};  // [batch, heads, seq, dim] each
  ir::set_attention_attrs(att, a);
  ASSERT_TRUE(p.run(att, {{1, 4, 16, 64}, {1, 4, 16, 64}, {1, 4, 16, 64}}, memo).ok());
  ASSERT_TRUE(p.run(att, {{1, 4, 48, 64}, {1, 4, 48, 64}, {1, 4, 48, 64}}, memo).ok());
  ASSERT_EQ(p.provider.variants.size(), 2u);
  EXPECT_EQ(p.provider.variants[0].key, p.provider.variants[1].key);
  EXPECT_EQ(memo.size(), 4u) << "attributes, kernel variant, two launch plans";
  // Another head dim is another kernel.
  ASSERT_TRUE(p.run(att, {{1, 4, 16, 32}, {1, 4, 16, 32}, {1, 4, 16, 32}}, memo).ok());
  EXPECT_NE(p.provider.variants.back().key, p.provider.variants[0].key);
  EXPECT_EQ(memo.size(), 6u);
  // Inputs of another rank do not take the attributes parsed for rank 4: they are checked again.
  EXPECT_FALSE(p.run(att, {{4, 16, 64}, {4, 16, 64}, {4, 16, 64}}, memo).ok());
}

}  // namespace
}  // namespace kiln::cuda
