// A static profile (min == max) on a model exported with dynamic dims: the builder pins the input's
// shape, so the model's shape arithmetic folds away, and the engine computes what the dynamic one
// does.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/test_util.h"

namespace kiln {
namespace {

using namespace onnx::testing;

// y = Relu(Reshape(x, [n, 2, 2])) with n read from x at run time: Shape -> Gather -> Unsqueeze ->
// Concat, the pattern exporters write for view(x.size(0), 2, 2). x is [n, 4], n symbolic.
std::string reshape_model() {
  ::onnx::ModelProto m = make_model(18);
  add_input(m, "x", ::onnx::TensorProto::FLOAT, {-1, 4}, {"n", ""});
  add_initializer<int64_t>(m, "zero", {}, {0});
  add_initializer<int64_t>(m, "axes", {1}, {0});
  add_initializer<int64_t>(m, "tail", {2}, {2, 2});
  add_node(m, "Shape", {"x"}, {"shape"});
  set_int(add_node(m, "Gather", {"shape", "zero"}, {"n"}), "axis", 0);
  add_node(m, "Unsqueeze", {"n", "axes"}, {"n1"});
  set_int(add_node(m, "Concat", {"n1", "tail"}, {"target"}), "axis", 0);
  add_node(m, "Reshape", {"x", "target"}, {"r"});
  add_node(m, "Relu", {"r"}, {"y"});
  add_output(m, "y");
  return m.SerializeAsString();
}

std::shared_ptr<Engine> build(const std::string& onnx, Dims min, Dims max, EngineInfo* info) {
  BuildOptions o;
  o.shapes.push_back(ShapeProfile{"x", min, min, max});
  Result<std::vector<uint8_t>> bytes = build_engine_from_bytes(onnx, "", o);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  if (!bytes.ok()) return nullptr;
  Result<std::shared_ptr<Engine>> e = Engine::load_from_memory(std::move(bytes).value());
  EXPECT_TRUE(e.ok()) << e.status().to_string();
  if (!e.ok()) return nullptr;
  *info = (*e)->info();
  return *e;
}

TEST(StaticProfileTest, ShapeArithmeticFoldsAwayAndResultsMatchTheDynamicEngine) {
  const std::string onnx = reshape_model();
  EngineInfo dyn_info, static_info;
  std::shared_ptr<Engine> dyn = build(onnx, {1, 4}, {8, 4}, &dyn_info);
  std::shared_ptr<Engine> fixed = build(onnx, {3, 4}, {3, 4}, &static_info);
  ASSERT_TRUE(dyn && fixed);
  // The dynamic profile loses it too: its Reshape target became the constant [-1, 2, 2]
  // (fold_reshape_targets), the static one's [3, 2, 2].
  for (const char* op : {"Shape", "Gather", "Unsqueeze", "Concat"}) {
    EXPECT_EQ(static_info.op_histogram.count(op), 0u) << op << " should have folded away";
    EXPECT_EQ(dyn_info.op_histogram.count(op), 0u) << op << " should be gone from the dynamic engine";
  }
  EXPECT_EQ(dyn_info.op_histogram["Reshape"], 1);
  EXPECT_EQ(static_info.op_histogram["Reshape"], 1);
  EXPECT_EQ(fixed->inputs()[0].dims, (std::vector<std::string>{"3", "4"}));

  std::vector<float> v(12);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) - 5.5f;
  Tensor x = Tensor::from_vector<float>(DType::kF32, {3, 4}, v);
  const std::vector<Tensor> in = {x};
  Result<std::vector<Tensor>> a = dyn->run(in);
  Result<std::vector<Tensor>> b = fixed->run(in);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ((*b)[0].dims(), (Dims{3, 2, 2}));
  ASSERT_EQ((*a)[0].dims(), (*b)[0].dims());
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ((*a)[0].data_as<const float>()[i], (*b)[0].data_as<const float>()[i]);
    EXPECT_EQ((*b)[0].data_as<const float>()[i], std::max(v[static_cast<size_t>(i)], 0.0f));
  }
  // The dynamic engine reshapes every batch of its profile.
  for (int64_t n : {1, 5, 8}) {
    Tensor xn = Tensor::from_vector<float>(DType::kF32, {n, 4}, std::vector<float>(static_cast<size_t>(n) * 4, -1.0f));
    const std::vector<Tensor> inn = {xn};
    Result<std::vector<Tensor>> r = dyn->run(inn);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ((*r)[0].dims(), (Dims{n, 2, 2}));
  }
  // The static engine still refuses other shapes, naming its profile.
  const std::vector<Tensor> other = {Tensor::zeros(DType::kF32, {2, 4})};
  Result<std::vector<Tensor>> wrong = fixed->run(other);
  EXPECT_FALSE(wrong.ok());
}

// An untrusted model may declare dims whose product overflows int64: Size over them is not folded
// (the build neither overflows nor aborts; the node stays for run time, where such an input can
// never be allocated).
TEST(StaticProfileTest, SizeOfAnOverflowingShapeIsNotFolded) {
  ::onnx::ModelProto m = make_model(18);
  const int64_t huge = int64_t{1} << 40;
  add_input(m, "x", ::onnx::TensorProto::FLOAT, {huge, huge, huge});
  add_node(m, "Size", {"x"}, {"n"});
  add_node(m, "Shape", {"x"}, {"s"});
  add_output(m, "n");
  add_output(m, "s");
  Result<std::vector<uint8_t>> bytes = build_engine_from_bytes(m.SerializeAsString(), "", BuildOptions{});
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  Result<std::shared_ptr<Engine>> e = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ((*e)->info().op_histogram.count("Size"), 1u);
  EXPECT_EQ((*e)->info().op_histogram.count("Shape"), 1u) << "the same guard keeps Shape of such an input";
}

}  // namespace
}  // namespace kiln
