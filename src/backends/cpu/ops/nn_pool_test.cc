#include <gtest/gtest.h>

#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

// (i * 7) % 11 over [1, 1, 5, 6]: ties and a non-monotonic layout.
Tensor x2() {
  return f32({1, 1, 5, 6}, {0, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0, 7, 3, 10,
                            6, 2, 9, 5, 1, 8, 4, 0, 7, 3, 10, 6, 2, 9, 5});
}

ir::Node pool(const char* op, std::vector<int64_t> kernel, std::vector<int64_t> strides = {},
              std::vector<int64_t> pads = {}, int outputs = 1) {
  ir::Node n = make_node(op, outputs);
  n.attrs.set_ints("kernel_shape", std::move(kernel));
  if (!strides.empty()) n.attrs.set_ints("strides", std::move(strides));
  if (!pads.empty()) n.attrs.set_ints("pads", std::move(pads));
  return n;
}

// Expected values below come from onnx.reference (onnx 1.23).
TEST(NnMaxPoolTest, PadsAndIndices) {
  std::vector<Tensor> out;
  run_ok(pool("MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 2), {f32({1, 1, 5, 5}, iota(25))}, &out);
  expect_close(out[0], {1, 1, 3, 3}, std::vector<float>{6, 8, 9, 16, 18, 19, 21, 23, 24});
  ASSERT_EQ(out[1].dtype(), DType::kI64);
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{6, 8, 9, 16, 18, 19, 21, 23, 24}));
}

TEST(NnMaxPoolTest, ColumnMajorIndicesAcrossChannels) {
  ir::Node node = pool("MaxPool", {2, 2}, {2, 2}, {}, 2);
  node.attrs.set_int("storage_order", 1);
  std::vector<Tensor> out;
  run_ok(node, {x2()}, &out);
  expect_close(out[0], {1, 1, 2, 3}, std::vector<float>{9, 10, 6, 7, 10, 9});
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{1, 15, 20, 2, 12, 27}));
  // Two channels: the second channel's indices are offset by one plane (30).
  std::vector<float> two = values<float>(x2());
  two.insert(two.end(), two.begin(), two.end());
  run_ok(node, {f32({1, 2, 5, 6}, two)}, &out);
  EXPECT_EQ(values<int64_t>(out[1]),
            (std::vector<int64_t>{1, 15, 20, 2, 12, 27, 31, 45, 50, 32, 42, 57}));
}

TEST(NnMaxPoolTest, CeilModeAndDilations) {
  ir::Node node = pool("MaxPool", {2, 2}, {2, 2});
  node.attrs.set_ints("dilations", {2, 1});
  node.attrs.set_int("ceil_mode", 1);
  expect_close(run_ok(node, {x2()}), {1, 1, 2, 3}, std::vector<float>{7, 10, 9, 10, 10, 9});
  // Output size shrinks by one when the last window would start in the end padding.
  ir::Node shrink = pool("MaxPool", {1, 1}, {2, 2});
  shrink.attrs.set_int("ceil_mode", 1);
  expect_close(run_ok(shrink, {f32({1, 1, 2, 2}, {1, 2, 3, 4})}), {1, 1, 1, 1}, std::vector<float>{1});
}

TEST(NnMaxPoolTest, OneDimensionalDilatedPadded) {
  ir::Node node = pool("MaxPool", {2}, {2}, {1, 1});
  node.attrs.set_ints("dilations", {2});
  Tensor x = f32({2, 2, 5}, {0, 5, 3, 1, 6, 4, 2, 0, 5, 3, 1, 6, 4, 2, 0, 5, 3, 1, 6, 4});
  expect_close(run_ok(node, {x}), {2, 2, 3}, std::vector<float>{5, 5, 1, 2, 5, 5, 6, 6, 2, 3, 6, 6});
}

TEST(NnMaxPoolTest, Uint8AndSameUpper) {
  ir::Node node = pool("MaxPool", {2, 2});
  node.attrs.set_string("auto_pad", "SAME_UPPER");
  Tensor x = Tensor::from_vector(DType::kU8, {1, 1, 2, 3}, std::vector<uint8_t>{1, 200, 3, 4, 5, 255});
  Tensor y = run_ok(node, {x});
  ASSERT_EQ(y.dtype(), DType::kU8);
  EXPECT_EQ(y.dims(), (Dims{1, 1, 2, 3}));
  EXPECT_EQ(values<uint8_t>(y), (std::vector<uint8_t>{200, 255, 255, 5, 255, 255}));
}

TEST(NnAveragePoolTest, CountIncludePad) {
  ir::Node node = pool("AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1});
  expect_close(run_ok(node, {x2()}), {1, 1, 3, 3},
               std::vector<float>{5.25f, 5.6666665f, 5, 5, 5.1111112f, 4.4444447f, 4.75f, 5.1666665f, 4.5f});
  node.attrs.set_int("count_include_pad", 1);
  expect_close(run_ok(node, {x2()}), {1, 1, 3, 3},
               std::vector<float>{2.3333333f, 3.7777777f, 3.3333333f, 3.3333333f, 5.1111112f,
                                  4.4444447f, 2.1111112f, 3.4444444f, 3});
}

TEST(NnAveragePoolTest, CeilModeNeverCountsTheExtraWindowPart) {
  ir::Node node = pool("AveragePool", {3, 3}, {2, 2});
  node.attrs.set_int("ceil_mode", 1);
  expect_close(run_ok(node, {x2()}), {1, 1, 2, 3},
               std::vector<float>{5, 5.5555553f, 3.8333333f, 5.8888888f, 5.2222223f, 5.3333335f});
  ir::Node incl = pool("AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1});
  incl.attrs.set_int("ceil_mode", 1);
  incl.attrs.set_int("count_include_pad", 1);
  expect_close(run_ok(incl, {x2()}), {1, 1, 3, 4},
               std::vector<float>{2.3333333f, 3.7777777f, 3.3333333f, 0.33333334f, 3.3333333f,
                                  5.1111112f, 4.4444447f, 2.6666667f, 2.1111112f, 3.4444444f, 3, 2});
}

TEST(NnAveragePoolTest, SameLowerAndDilated1d) {
  ir::Node node = pool("AveragePool", {2, 3});
  node.attrs.set_string("auto_pad", "SAME_LOWER");
  expect_close(run_ok(node, {x2()}), {1, 1, 5, 6},
               std::vector<float>{3.5f, 3.3333333f, 6.6666665f, 6.3333335f, 6, 4, 5.25f,
                                  4.1666665f, 5.6666665f, 5.3333335f, 5, 3, 6, 5.8333335f,
                                  5.5f, 5.1666665f, 4.8333335f, 3.75f, 4, 5.6666665f,
                                  5.3333335f, 5, 4.6666665f, 4.5f, 4.75f, 5.5f, 5.1666665f,
                                  4.8333335f, 4.5f, 5.25f});
  ir::Node d = pool("AveragePool", {2}, {2}, {1, 1});
  d.attrs.set_ints("dilations", {2});
  d.attrs.set_int("count_include_pad", 1);
  Tensor x = f32({2, 2, 5}, {0, 5, 3, 1, 6, 4, 2, 0, 5, 3, 1, 6, 4, 2, 0, 5, 3, 1, 6, 4});
  expect_close(run_ok(d, {x}), {2, 2, 3},
               std::vector<float>{2.5f, 3, 0.5f, 1, 3.5f, 2.5f, 3, 4, 1, 1.5f, 4.5f, 3});
}

TEST(NnAveragePoolTest, ThreeDimensionalDouble) {
  ir::Node node = pool("AveragePool", {2, 2, 2});
  std::vector<double> x(8);
  for (int i = 0; i < 8; ++i) x[i] = i;
  expect_close<double>(run_ok(node, {f64({1, 1, 2, 2, 2}, x)}), {1, 1, 1, 1, 1}, {3.5});
}

TEST(NnPoolTest, FourSpatialDims) {
  // [1, 1, 2, 3, 2, 2] with a 2x2x2x2 window, stride 1, padding 1 at the end of the second dim.
  ir::Node mx = pool("MaxPool", {2, 2, 2, 2}, {}, {0, 0, 0, 0, 0, 1, 0, 0});
  Tensor x = f32({1, 1, 2, 3, 2, 2}, iota(24));
  // Windows start at second-dim rows 0, 1 and 2 (the last one half in padding).
  expect_close(run_ok(mx, {x}), {1, 1, 1, 3, 1, 1}, std::vector<float>{19, 23, 23});
  ir::Node avg = pool("AveragePool", {2, 2, 2, 2}, {}, {0, 0, 0, 0, 0, 1, 0, 0});
  // Means of {0..7, 12..19}, {4..11, 16..23} and {8..11, 20..23}.
  expect_close(run_ok(avg, {x}), {1, 1, 1, 3, 1, 1}, std::vector<float>{9.5f, 13.5f, 15.5f});
  avg.attrs.set_int("count_include_pad", 1);
  expect_close(run_ok(avg, {x}), {1, 1, 1, 3, 1, 1}, std::vector<float>{9.5f, 13.5f, 15.5f / 2});
}

TEST(NnGlobalPoolTest, AverageAndMax) {
  Tensor x = f32({1, 2, 2, 2}, {1, 2, 3, 4, -1, -5, -2, -3});
  expect_close(run_ok(make_node("GlobalAveragePool"), {x}), {1, 2, 1, 1}, std::vector<float>{2.5f, -2.75f});
  expect_close(run_ok(make_node("GlobalMaxPool"), {x}), {1, 2, 1, 1}, std::vector<float>{4, -1});
  Tensor x3 = f32({2, 1, 3}, {1, 2, 3, 4, 5, 9});
  expect_close(run_ok(make_node("GlobalMaxPool"), {x3}), {2, 1, 1}, std::vector<float>{3, 9});
  run_fails(make_node("GlobalAveragePool"), {f32({2, 3}, iota(6))});
  run_fails(make_node("GlobalMaxPool"), {f32({1, 1, 0}, {})});
}

TEST(NnPoolTest, BadAttributesAreErrors) {
  Tensor x = x2();
  run_fails(make_node("MaxPool"), {x});                          // no kernel_shape
  run_fails(pool("MaxPool", {2}), {x});                          // kernel rank
  run_fails(pool("MaxPool", {2, 2}, {0, 1}), {x});               // stride 0
  run_fails(pool("AveragePool", {2, 2}, {}, {1, 1, 1}), {x});    // pads length
  run_fails(pool("AveragePool", {9, 9}), {x});                   // kernel > input
  run_fails(pool("AveragePool", {2, 2}), {f32({2, 2}, iota(4))});  // rank 2
  ir::Node so = pool("MaxPool", {2, 2});
  so.attrs.set_int("storage_order", 2);
  run_fails(so, {x});
  run_fails(pool("AveragePool", {1, 1}),
            {Tensor::from_vector(DType::kI32, {1, 1, 1, 1}, std::vector<int32_t>{1})},
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::cpu::nn_test
