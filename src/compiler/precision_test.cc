#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "compiler/passes.h"
#include "core/half.h"

namespace kiln::compiler {
namespace {

const ir::Node* find_node(const ir::Graph& g, const std::string& op, int output) {
  for (const ir::Node& n : g.nodes)
    if (n.op == op && !n.outputs.empty() && n.outputs[0] == output) return &n;
  return nullptr;
}

// x (f32) -> Add(x, c) -> y (f32 output); idx (i64) -> Cast(to f32) -> z (f32 output).
ir::Graph small_graph() {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({2}));
  int idx = g.add_value("idx", DType::kI64, ir::Shape::of({2}));
  int c = g.add_constant("c", Tensor::from_vector<float>(DType::kF32, {2}, {1.5f, 1e6f}));
  int y = g.add_value("y", DType::kF32, ir::Shape::of({2}));
  int z = g.add_value("z", DType::kF32, ir::Shape::of({2}));
  g.inputs = {x, idx};
  g.add_node(ir::Node{"add", "Add", {}, {x, c}, {y}});
  ir::Node cast{"cast", "Cast", {}, {idx}, {z}};
  cast.attrs.set_int("to", static_cast<int64_t>(DType::kF32));
  g.add_node(std::move(cast));
  g.outputs = {y, z};
  return g;
}

TEST(PrecisionPassTest, InterfaceStaysF32AndInteriorIsHalf) {
  ir::Graph g = small_graph();
  PrecisionStats stats;
  ASSERT_TRUE(lower_precision(g, DType::kF16, &stats).ok());
  ASSERT_TRUE(g.validate().ok());
  EXPECT_EQ(g.values[g.inputs[0]].name, "x");
  EXPECT_EQ(g.values[g.inputs[0]].dtype, DType::kF32);
  EXPECT_EQ(g.values[g.inputs[1]].dtype, DType::kI64);
  for (int o : g.outputs) EXPECT_EQ(g.values[o].dtype, DType::kF32);
  EXPECT_EQ(g.values[g.outputs[0]].name, "y");
  EXPECT_EQ(g.values[g.outputs[1]].name, "z");
  // Each output is now a Cast back to f32 of a half value.
  for (int o : g.outputs) {
    const ir::Node* back = find_node(g, "Cast", o);
    ASSERT_NE(back, nullptr) << g.values[o].name;
    EXPECT_EQ(back->attrs.get_int("to", 0), static_cast<int64_t>(DType::kF32));
    EXPECT_EQ(g.values[back->inputs[0]].dtype, DType::kF16);
  }
  // The Add reads a half copy of x and a half constant.
  const ir::Node& add = *std::find_if(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return n.op == "Add"; });
  EXPECT_EQ(g.values[add.inputs[0]].dtype, DType::kF16);
  const ir::Value& c = g.values[add.inputs[1]];
  ASSERT_GE(c.constant, 0);
  const Tensor& ct = g.constants[c.constant];
  ASSERT_EQ(ct.dtype(), DType::kF16);
  EXPECT_EQ(f16_to_f32(ct.data_as<uint16_t>()[0]), 1.5f);
  EXPECT_EQ(f16_to_f32(ct.data_as<uint16_t>()[1]), 65504.0f) << "finite constants saturate, not inf";
  // The model's own Cast to f32 now casts to f16.
  const ir::Node& cast = *std::find_if(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return n.name == "cast"; });
  EXPECT_EQ(cast.attrs.get_int("to", 0), static_cast<int64_t>(DType::kF16));
  EXPECT_EQ(stats.constants_converted, 1u);
  EXPECT_EQ(stats.casts_inserted, 3u);  // x in, y out, z out
}

TEST(PrecisionPassTest, Bf16SaturatesLargestFloat) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({1}));
  int c = g.add_constant("c", Tensor::from_vector<float>(DType::kF32, {1}, {-FLT_MAX}));
  int y = g.add_value("y", DType::kF32, ir::Shape::of({1}));
  g.inputs = {x};
  g.add_node(ir::Node{"mul", "Mul", {}, {x, c}, {y}});
  g.outputs = {y};
  ASSERT_TRUE(lower_precision(g, DType::kBF16, nullptr).ok());
  const ir::Node& mul = *std::find_if(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return n.op == "Mul"; });
  const Tensor& ct = g.constants[g.values[mul.inputs[1]].constant];
  ASSERT_EQ(ct.dtype(), DType::kBF16);
  float v = bf16_to_f32(ct.data_as<uint16_t>()[0]);
  EXPECT_TRUE(std::isfinite(v));
  EXPECT_LT(v, -3e38f);
}

TEST(PrecisionPassTest, ResizeScalesStayF32) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({1, 1, 2, 2}));
  int roi = g.add_constant("roi", Tensor::from_vector<float>(DType::kF32, {0}, std::vector<float>{}));
  int scales = g.add_constant("scales", Tensor::from_vector<float>(DType::kF32, {4}, {1, 1, 2, 2}));
  int two = g.add_constant("two", Tensor::from_vector<float>(DType::kF32, {4}, {1, 1, 1, 1}));
  int computed = g.add_value("computed", DType::kF32, ir::Shape::of({4}));
  int y = g.add_value("y", DType::kF32, ir::Shape::unknown());
  int y2 = g.add_value("y2", DType::kF32, ir::Shape::unknown());
  g.inputs = {x};
  g.add_node(ir::Node{"resize", "Resize", {}, {x, roi, scales}, {y}});
  g.add_node(ir::Node{"mul", "Mul", {}, {scales, two}, {computed}});
  g.add_node(ir::Node{"resize2", "Resize", {}, {y, roi, computed}, {y2}});
  g.outputs = {y2};
  ASSERT_TRUE(lower_precision(g, DType::kF16, nullptr).ok());
  ASSERT_TRUE(g.validate().ok());
  for (const ir::Node& n : g.nodes) {
    if (n.op != "Resize") continue;
    EXPECT_EQ(g.values[n.inputs[0]].dtype, DType::kF16) << n.name;
    EXPECT_EQ(g.values[n.inputs[1]].dtype, DType::kF32) << n.name;
    EXPECT_EQ(g.values[n.inputs[2]].dtype, DType::kF32) << n.name;
  }
  // The computed scales are half (Mul of converted constants) and cast back to f32 for Resize.
  const ir::Node& r2 = *std::find_if(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return n.name == "resize2"; });
  const ir::Node* to_f32 = find_node(g, "Cast", r2.inputs[2]);
  ASSERT_NE(to_f32, nullptr);
  EXPECT_EQ(g.values[to_f32->inputs[0]].dtype, DType::kF16);
}

TEST(PrecisionPassTest, PassThroughOutputAndConstantOfShapeValue) {
  ir::Graph g;
  int x = g.add_value("x", DType::kF32, ir::Shape::of({2}));
  int shape = g.add_value("shape", DType::kI64, ir::Shape::of({1}));
  int filled = g.add_value("filled", DType::kF32, ir::Shape::unknown());
  int y = g.add_value("y", DType::kF32, ir::Shape::unknown());
  g.inputs = {x, shape};
  ir::Node cos{"cos", "ConstantOfShape", {}, {shape}, {filled}};
  ir::Attribute value;
  value.kind = ir::Attribute::Kind::kTensor;
  value.t = Tensor::from_vector<float>(DType::kF32, {1}, {2.0f});
  cos.attrs.set("value", value);
  g.add_node(std::move(cos));
  g.add_node(ir::Node{"add", "Add", {}, {x, filled}, {y}});
  g.outputs = {y, x};
  ASSERT_TRUE(lower_precision(g, DType::kF16, nullptr).ok());
  ASSERT_TRUE(g.validate().ok());
  EXPECT_EQ(g.outputs[1], x) << "an input that is also an output passes through untouched";
  const ir::Node& c = *std::find_if(g.nodes.begin(), g.nodes.end(), [](const ir::Node& n) { return n.name == "cos"; });
  EXPECT_EQ(c.attrs.find("value")->t.dtype(), DType::kF16);
  EXPECT_EQ(g.values[c.outputs[0]].dtype, DType::kF16);
}

TEST(PrecisionPassTest, RejectsNonHalfTarget) {
  ir::Graph g = small_graph();
  Status s = lower_precision(g, DType::kF64, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("f16 or bf16"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln::compiler
