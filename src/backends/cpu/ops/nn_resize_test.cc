#include <gtest/gtest.h>

#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

// Expected values come from onnx.reference (onnx 1.23, Resize-19).
Tensor x2x2() { return f32({1, 1, 2, 2}, {1, 2, 3, 4}); }
Tensor x4x4() { return f32({1, 1, 4, 4}, iota(16, 1)); }
Tensor scales(std::vector<float> s) { return f32({static_cast<int64_t>(s.size())}, s); }
Tensor sizes(std::vector<int64_t> s) { return i64({static_cast<int64_t>(s.size())}, s); }

ir::Node resize_node(const char* mode, const char* coord = nullptr) {
  ir::Node n = make_node("Resize");
  n.attrs.set_string("mode", mode);
  if (coord) n.attrs.set_string("coordinate_transformation_mode", coord);
  return n;
}

TEST(NnResizeTest, NearestUpsampleByScales) {
  Tensor y = run_ok(resize_node("nearest"), {x2x2(), Tensor(), scales({1, 1, 2, 3})});
  expect_close(y, {1, 1, 4, 6},
               std::vector<float>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
}

TEST(NnResizeTest, NearestModes) {
  ir::Node ceil = resize_node("nearest", "asymmetric");
  ceil.attrs.set_string("nearest_mode", "ceil");
  expect_close(run_ok(ceil, {x4x4(), Tensor(), scales({1, 1, 1.7f, 1.3f})}), {1, 1, 6, 5},
               std::vector<float>{1, 2, 3, 4, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12, 12,
                                  9, 10, 11, 12, 12, 13, 14, 15, 16, 16, 13, 14, 15, 16, 16});
  // pytorch_half_pixel maps a length-1 output to -0.5 (the first row).
  ir::Node pt = resize_node("nearest", "pytorch_half_pixel");
  pt.attrs.set_string("nearest_mode", "round_prefer_ceil");
  expect_close(run_ok(pt, {x4x4(), Tensor(), Tensor(), sizes({1, 1, 1, 7})}), {1, 1, 1, 7},
               std::vector<float>{1, 1, 2, 3, 3, 4, 4});
}

TEST(NnResizeTest, TfHalfPixelForNearestFromResize11) {
  // Expected values from onnxruntime (Resize-11); onnx.reference no longer has this mode.
  expect_close(run_ok(resize_node("nearest", "tf_half_pixel_for_nn"), {x4x4(), Tensor(), scales({1, 1, 0.6f, 1.5f})}),
               {1, 1, 2, 6}, std::vector<float>{5, 6, 7, 7, 8, 8, 9, 10, 11, 11, 12, 12});
}

TEST(NnResizeTest, LinearAndCubic) {
  expect_close(run_ok(resize_node("linear"), {x4x4(), Tensor(), scales({1, 1, 0.6f, 0.6f})}),
               {1, 1, 2, 2}, std::vector<float>{2.6666665f, 4.333333f, 9.333333f, 10.999999f});
  expect_close(run_ok(resize_node("cubic", "align_corners"), {x2x2(), Tensor(), scales({1, 1, 1.5f, 2})}),
               {1, 1, 3, 4},
               std::vector<float>{1, 1.3148143f, 1.6851848f, 2, 2, 2.3148141f, 2.6851845f, 3, 3,
                                  3.3148136f, 3.6851842f, 4});
  ir::Node excl = resize_node("cubic", "half_pixel_symmetric");
  excl.attrs.set_float("cubic_coeff_a", -0.5);
  excl.attrs.set_int("exclude_outside", 1);
  expect_close(run_ok(excl, {x4x4(), Tensor(), scales({1, 1, 0.8f, 1.25f})}), {1, 1, 3, 5},
               std::vector<float>{1.6282635f, 2.3196182f, 3.1715329f, 4.0234475f, 4.7148023f,
                                  6.9567304f, 7.6480856f, 8.5f, 9.3519144f, 10.043269f,
                                  12.285198f, 12.976553f, 13.828467f, 14.680382f, 15.371737f},
               1e-4);
}

TEST(NnResizeTest, Antialias) {
  ir::Node cubic = resize_node("cubic");
  cubic.attrs.set_int("antialias", 1);
  expect_close(run_ok(cubic, {x4x4(), Tensor(), Tensor(), sizes({1, 1, 3, 2})}), {1, 1, 3, 2},
               std::vector<float>{2.1102417f, 4.1297731f, 7.4902349f, 9.5097666f, 12.870227f, 14.889758f},
               1e-4);
  ir::Node linear = resize_node("linear");
  linear.attrs.set_int("antialias", 1);
  expect_close(run_ok(linear, {x4x4(), Tensor(), Tensor(), sizes({1, 1, 3, 3})}), {1, 1, 3, 3},
               std::vector<float>{2.3636363f, 3.590909f, 4.818182f, 7.2727275f, 8.5f, 9.727273f,
                                  12.181818f, 13.409091f, 14.636364f},
               1e-4);
}

TEST(NnResizeTest, TfCropAndResizeWithAxesAndExtrapolation) {
  ir::Node node = resize_node("linear", "tf_crop_and_resize");
  node.attrs.set_ints("axes", {2, -1});
  node.attrs.set_float("extrapolation_value", -1.0);
  Tensor roi = f32({4}, {0.4f, 0.6f, 1.3f, 1.2f});
  expect_close(run_ok(node, {x4x4(), roi, Tensor(), sizes({3, 3})}), {1, 1, 3, 3},
               std::vector<float>{7.6000004f, 8.5f, -1, 13, 13.900001f, -1, -1, -1, -1}, 1e-4);
  // No roi for tf_crop_and_resize is an error.
  run_fails(node, {x4x4(), Tensor(), Tensor(), sizes({3, 3})});
}

TEST(NnResizeTest, KeepAspectRatioPolicies) {
  ir::Node node = resize_node("nearest");
  node.attrs.set_ints("axes", {3, 2});
  node.attrs.set_string("keep_aspect_ratio_policy", "not_larger");
  expect_close(run_ok(node, {x4x4(), Tensor(), Tensor(), sizes({3, 6})}), {1, 1, 3, 3},
               std::vector<float>{1, 2, 4, 5, 6, 8, 13, 14, 16});
  node.attrs.set_string("keep_aspect_ratio_policy", "not_smaller");
  expect_close(run_ok(node, {x4x4(), Tensor(), Tensor(), sizes({3, 6})}), {1, 1, 6, 6},
               std::vector<float>{1, 1, 2, 3, 3, 4, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8,
                                  9, 9, 10, 11, 11, 12, 9, 9, 10, 11, 11, 12, 13, 13, 14, 15, 15, 16});
}

TEST(NnResizeTest, IntegersRoundHalfToEvenAndDoubles) {
  Tensor xu = Tensor::from_vector(DType::kU8, {2, 2}, std::vector<uint8_t>{0, 255, 10, 100});
  Tensor y = run_ok(resize_node("linear"), {xu, Tensor(), scales({1, 2.5f})});
  ASSERT_EQ(y.dtype(), DType::kU8);
  EXPECT_EQ(y.dims(), (Dims{2, 5}));
  EXPECT_EQ(values<uint8_t>(y), (std::vector<uint8_t>{0, 25, 128, 229, 255, 10, 19, 55, 91, 100}));
  Tensor x3 = f64({1, 2, 3}, {0, 1, 2, 3, 4, 5});
  expect_close<double>(run_ok(resize_node("linear", "asymmetric"), {x3, Tensor(), scales({2, 1, 0.5f})}),
                       {2, 2, 1}, {0, 3, 0, 3});
}

TEST(NnResizeTest, IdentityAndEmpty) {
  Tensor y = run_ok(resize_node("cubic"), {x4x4(), Tensor(), scales({1, 1, 1, 1})});
  expect_close(y, {1, 1, 4, 4}, iota(16, 1));
  y = run_ok(resize_node("linear"), {x4x4(), Tensor(), scales({1, 1, 0.1f, 1})});
  EXPECT_EQ(y.dims(), (Dims{1, 1, 0, 4}));
}

TEST(NnResizeTest, BadInputsAreErrors) {
  ir::Node node = resize_node("linear");
  run_fails(node, {x4x4()});                                                        // neither
  run_fails(node, {x4x4(), Tensor(), scales({1, 1, 2, 2}), sizes({1, 1, 8, 8})});   // both
  run_fails(node, {x4x4(), Tensor(), scales({1, 2, 2})});                           // count
  run_fails(node, {x4x4(), Tensor(), scales({1, 1, -2, 2})});                       // negative
  run_fails(node, {x4x4(), Tensor(), Tensor(), sizes({1, 1, -8, 8})});
  run_fails(resize_node("bilinear"), {x4x4(), Tensor(), scales({1, 1, 2, 2})});
  run_fails(resize_node("linear", "corners"), {x4x4(), Tensor(), scales({1, 1, 2, 2})});
  ir::Node nm = resize_node("nearest");
  nm.attrs.set_string("nearest_mode", "round");
  run_fails(nm, {x4x4(), Tensor(), scales({1, 1, 2, 2})});
  ir::Node ax = resize_node("nearest");
  ax.attrs.set_ints("axes", {2, 2});
  run_fails(ax, {x4x4(), Tensor(), scales({2, 2})});
  ax.attrs.set_ints("axes", {4});
  run_fails(ax, {x4x4(), Tensor(), scales({2})});
  ir::Node pol = resize_node("nearest");
  pol.attrs.set_string("keep_aspect_ratio_policy", "fit");
  run_fails(pol, {x4x4(), Tensor(), Tensor(), sizes({1, 1, 2, 2})});
}

}  // namespace
}  // namespace kiln::cpu::nn_test
