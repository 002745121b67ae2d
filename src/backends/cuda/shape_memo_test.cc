// ShapeMemo: which nodes follow from the input shapes alone, and the per-signature store.
#include "backends/cuda/shape_memo.h"

#include <gtest/gtest.h>

#include <thread>

namespace kiln::cuda {
namespace {

ir::Shape shape(std::initializer_list<ir::Dim> dims) {
  ir::Shape s;
  s.rank_known = true;
  s.dims = dims;
  return s;
}

int node(ir::Graph& g, const std::string& op, std::vector<int> in, int out) {
  ir::Node n;
  n.op = op;
  n.inputs = std::move(in);
  n.outputs = {out};
  return g.add_node(std::move(n));
}

// x [1, seq, 4]: Shape(x) -> Gather -> Unsqueeze -> Concat -> Reshape(x, ...), the exporters'
// pattern; beside it Shape(NonZero(x)), whose size depends on x's values.
TEST(ShapeMemoTest, ShapeArithmeticQualifiesDataDependentShapesDoNot) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, shape({ir::Dim::known(1), ir::Dim::named("seq"), ir::Dim::known(4)}));
  g.inputs = {x};
  const int idx = g.add_constant("idx", Tensor::from_vector<int64_t>(DType::kI64, {}, {1}));
  const int tail = g.add_constant("tail", Tensor::from_vector<int64_t>(DType::kI64, {1}, {4}));
  const int s = g.add_value("s", DType::kI64, shape({ir::Dim::known(3)}));
  const int n = g.add_value("n", DType::kI64, shape({}));
  const int n1 = g.add_value("n1", DType::kI64, shape({ir::Dim::known(1)}));
  const int target = g.add_value("target", DType::kI64, shape({ir::Dim::known(2)}));
  const int r = g.add_value("r", DType::kF32, shape({ir::Dim::named("seq"), ir::Dim::known(4)}));
  const int relu = g.add_value("relu", DType::kF32, shape({ir::Dim::named("seq"), ir::Dim::known(4)}));
  const int nz = g.add_value("nz", DType::kI64, shape({ir::Dim::known(3), ir::Dim::named("unk__0")}));
  const int nz_shape = g.add_value("nz_shape", DType::kI64, shape({ir::Dim::known(2)}));
  const int prod = g.add_value("prod", DType::kF32, shape({ir::Dim::named("seq*seq")}));
  const int prod_shape = g.add_value("prod_shape", DType::kI64, shape({ir::Dim::known(1)}));
  node(g, "Shape", {x}, s);                  // 0
  node(g, "Gather", {s, idx}, n);            // 1
  node(g, "Unsqueeze", {n}, n1);             // 2
  node(g, "Concat", {n1, tail}, target);     // 3
  node(g, "Reshape", {x, target}, r);        // 4: reads x's data
  node(g, "Relu", {r}, relu);                // 5
  node(g, "NonZero", {x}, nz);               // 6
  node(g, "Shape", {nz}, nz_shape);          // 7: depends on x's values
  node(g, "Flatten", {x}, prod);             // 8
  node(g, "Shape", {prod}, prod_shape);      // 9: "seq*seq" follows from the inputs
  const int table = g.add_constant("table", Tensor::zeros(DType::kF32, {320, 4}));
  const int rows = g.add_value("rows", DType::kF32, shape({ir::Dim::named("seq"), ir::Dim::known(4)}));
  node(g, "Slice", {table, idx, n1}, rows);  // 10: from constants and shapes, but device data
  g.outputs = {relu, nz_shape, prod_shape, rows};
  const std::vector<bool> only = ShapeMemo::shape_only_nodes(g);
  EXPECT_EQ(only, (std::vector<bool>{true, true, true, true, false, false, false, false, false, true, false}));
}

TEST(ShapeMemoTest, RandomOpsNeverQualify) {
  ir::Graph g;
  const int x = g.add_value("x", DType::kF32, shape({ir::Dim::known(2)}));
  g.inputs = {x};
  const int s = g.add_value("s", DType::kI64, shape({ir::Dim::known(1)}));
  const int r = g.add_value("r", DType::kF32, shape({ir::Dim::known(2)}));
  node(g, "Shape", {x}, s);
  node(g, "RandomUniformLike", {s}, r);
  g.outputs = {r};
  EXPECT_EQ(ShapeMemo::shape_only_nodes(g), (std::vector<bool>{true, false}));
}

TEST(ShapeMemoTest, StoreKeepsTheFirstEntryAndBoundsSignatures) {
  ShapeMemo memo;
  auto a = std::make_shared<ShapeMemo::Entry>();
  a->usable = true;
  a->values.push_back(Tensor::from_vector<int64_t>(DType::kI64, {1}, {7}));
  memo.put("f32[1,8]", a);
  memo.put("f32[1,8]", std::make_shared<ShapeMemo::Entry>());  // a later recording: ignored
  ASSERT_NE(memo.find("f32[1,8]"), nullptr);
  EXPECT_TRUE(memo.find("f32[1,8]")->usable);
  EXPECT_EQ(memo.find("f32[1,9]"), nullptr);
  for (size_t i = 0; i < ShapeMemo::kMaxSignatures + 5; ++i)
    memo.put("sig" + std::to_string(i), std::make_shared<ShapeMemo::Entry>());
  EXPECT_EQ(memo.size(), ShapeMemo::kMaxSignatures);
  EXPECT_EQ(memo.find("f32[1,8]"), nullptr) << "the oldest signature goes first";
}

TEST(ShapeMemoTest, ConcurrentRunsShareOneStore) {
  ShapeMemo memo;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&memo, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string sig = "s" + std::to_string((i + t) % 80);
        if (!memo.find(sig)) memo.put(sig, std::make_shared<ShapeMemo::Entry>());
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_LE(memo.size(), ShapeMemo::kMaxSignatures);
}

}  // namespace
}  // namespace kiln::cuda
