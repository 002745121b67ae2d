// Bug (found by the onnx_build fuzz target): shape inference computes the contents of small
// integer vectors (shape arithmetic such as Shape -> Slice -> Mul -> Concat -> Reshape). For a
// binary op with one empty operand and one single-element operand it took the longer length (1)
// and read element 0 of the empty vector: a null dereference in the builder. The broadcast of
// [0] and [1] is [0]. Fixed in src/ir/infer_elementwise.cc (binary_content).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/test_util.h"

namespace kiln {
namespace {

namespace ot = onnx::testing;

// x [1, 8] -> Shape -> Slice [2:3] (empty: x has rank 2) -> `op` with a one-element constant ->
// Concat after Shape(x) -> Reshape(x): y = x.
std::string model(const std::string& op, bool empty_first) {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_input(m, "x", 1, {1, 8});
  ot::add_output(m, "y", 1, {1, 8});
  ot::add_initializer_i64(m, "two", {1}, {2});
  ot::add_initializer_i64(m, "three", {1}, {3});
  ot::add_initializer_i64(m, "k", {1}, {2});
  ot::add_node(m, "Shape", {"x"}, {"s"}, "shape");
  ot::add_node(m, "Slice", {"s", "two", "three"}, {"e"}, "slice");  // [] : x has no dim 2
  if (empty_first) ot::add_node(m, op, {"e", "k"}, {"p"}, "arith");
  else ot::add_node(m, op, {"k", "e"}, {"p"}, "arith");
  ot::set_int(ot::add_node(m, "Concat", {"s", "p"}, {"t"}, "concat"), "axis", 0);
  ot::add_node(m, "Reshape", {"x", "t"}, {"y"}, "reshape");
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  return bytes;
}

TEST(ShapeContentBroadcastEmptyTest, EmptyTimesOneElementIsEmpty) {
  std::vector<float> xv = {1, 2, 3, 4, 5, 6, 7, 8};
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min"}) {
    for (bool empty_first : {true, false}) {
      SCOPED_TRACE(std::string(op) + (empty_first ? " (empty, [2])" : " ([2], empty)"));
      Result<std::vector<uint8_t>> bytes = build_engine_from_bytes(model(op, empty_first), "", BuildOptions{});
      ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
      auto engine = Engine::load_from_memory(std::move(bytes).value());
      ASSERT_TRUE(engine.ok()) << engine.status().to_string();
      std::vector<Tensor> in{Tensor::from_vector(DType::kF32, {1, 8}, xv)};
      auto out = (*engine)->run(in);
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      ASSERT_EQ((*out)[0].dims(), (Dims{1, 8}));
      for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ((*out)[0].data_as<const float>()[i], xv[i]);
    }
  }
}

}  // namespace
}  // namespace kiln
