// Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout.
#include <gtest/gtest.h>

#include "backends/cpu/ops/tensor_test_util.h"

namespace kiln::cpu {
namespace {

using namespace tensor_test;  // NOLINT

TEST(TensorShapeTest, ShapeHonoursStartAndEndWithClamping) {
  Tensor x = Tensor::zeros(DType::kF16, {2, 3, 4, 5});
  EXPECT_EQ(values<int64_t>(run1(make_node("Shape"), {x})), (std::vector<int64_t>{2, 3, 4, 5}));
  ir::Attributes a;
  a.set_int("start", 1);
  a.set_int("end", -1);
  Tensor s = run1(make_node("Shape", a), {x});
  EXPECT_EQ(s.dtype(), DType::kI64);
  EXPECT_EQ(values<int64_t>(s), (std::vector<int64_t>{3, 4}));
  a.set_int("start", -10);  // clipped to 0
  a.set_int("end", 10);     // clipped to rank
  EXPECT_EQ(values<int64_t>(run1(make_node("Shape", a), {x})), (std::vector<int64_t>{2, 3, 4, 5}));
  a.set_int("start", 3);
  a.set_int("end", 1);  // start > end: empty
  Tensor e = run1(make_node("Shape", a), {x});
  EXPECT_EQ(e.dims(), (Dims{0}));
}

TEST(TensorShapeTest, SizeIsAnI64Scalar) {
  Tensor s = run1(make_node("Size"), {Tensor::zeros(DType::kBool, {3, 0, 2})});
  EXPECT_EQ(s.dims(), Dims{});
  EXPECT_EQ(values<int64_t>(s), std::vector<int64_t>{0});
  EXPECT_EQ(values<int64_t>(run1(make_node("Size"), {Tensor::zeros(DType::kI8, {2, 3})})),
            std::vector<int64_t>{6});
}

TEST(TensorShapeTest, ReshapeCopiesZeroDimsAndInfersMinusOne) {
  Tensor x = iota<float>(DType::kF32, {2, 3, 4});
  Tensor y = run1(make_node("Reshape"), {x, i64({3}, {0, -1, 2})});
  EXPECT_EQ(y.dims(), (Dims{2, 6, 2}));
  EXPECT_EQ(values<float>(y), values<float>(x));
  // Owned input: the output shares its storage (no copy).
  EXPECT_EQ(y.data(), x.data());
  EXPECT_EQ(run1(make_node("Reshape"), {x, i64({2}, {-1, 4})}).dims(), (Dims{6, 4}));
  EXPECT_EQ(run1(make_node("Reshape"), {x, i32({1}, {24})}).dims(), (Dims{24}));
}

TEST(TensorShapeTest, ReshapeAllowZeroKeepsZeroDims) {
  Tensor x = Tensor::zeros(DType::kF32, {0, 3, 4});
  Tensor y = run1(make_node("Reshape", attrs_int("allowzero", 1)), {x, i64({3}, {3, 4, 0})});
  EXPECT_EQ(y.dims(), (Dims{3, 4, 0}));
  // allowzero=0: the 0 copies dim 2 of the input (4).
  Tensor z = Tensor::zeros(DType::kF32, {2, 3, 4});
  EXPECT_EQ(run1(make_node("Reshape"), {z, i64({3}, {6, 1, 0})}).dims(), (Dims{6, 1, 4}));
}

TEST(TensorShapeTest, ReshapeRejectsBadShapes) {
  Tensor x = iota<float>(DType::kF32, {2, 3, 4});
  Status s = run_status(make_node("Reshape"), {x, i64({2}, {-1, -1})});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("t_Reshape"), std::string::npos) << s.message();
  EXPECT_FALSE(run_status(make_node("Reshape"), {x, i64({2}, {5, 5})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape"), {x, i64({2}, {5, -1})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape"), {x, i64({4}, {1, 1, 1, 0})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape"), {x, i64({2}, {-2, 12})}).ok());
  EXPECT_FALSE(run_status(make_node("Reshape", attrs_int("allowzero", 1)),
                          {Tensor::zeros(DType::kF32, {0, 2}), i64({2}, {0, -1})})
                   .ok());
  EXPECT_FALSE(run_status(make_node("Reshape"), {x}).ok());  // shape missing
  EXPECT_FALSE(run_status(make_node("Reshape"), {x, f32({1}, {24})}).ok());
}

TEST(TensorShapeTest, ReshapeCopiesBorrowedMemory) {
  std::vector<float> buf = {1, 2, 3, 4, 5, 6};
  Tensor x = Tensor::wrap(DType::kF32, {2, 3}, buf.data());
  Tensor y = run1(make_node("Reshape"), {x, i64({1}, {6})});
  EXPECT_NE(y.data(), static_cast<void*>(buf.data()));
  buf[0] = 100;
  EXPECT_EQ(values<float>(y), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(TensorShapeTest, FlattenSplitsAtAxis) {
  Tensor x = Tensor::zeros(DType::kBF16, {2, 3, 4, 5});
  EXPECT_EQ(run1(make_node("Flatten"), {x}).dims(), (Dims{2, 60}));
  EXPECT_EQ(run1(make_node("Flatten", attrs_int("axis", 0)), {x}).dims(), (Dims{1, 120}));
  EXPECT_EQ(run1(make_node("Flatten", attrs_int("axis", 4)), {x}).dims(), (Dims{120, 1}));
  EXPECT_EQ(run1(make_node("Flatten", attrs_int("axis", -1)), {x}).dims(), (Dims{24, 5}));
  EXPECT_EQ(run1(make_node("Flatten", attrs_int("axis", -4)), {x}).dims(), (Dims{1, 120}));
  EXPECT_FALSE(run_status(make_node("Flatten", attrs_int("axis", 5)), {x}).ok());
  EXPECT_FALSE(run_status(make_node("Flatten", attrs_int("axis", -5)), {x}).ok());
}

TEST(TensorShapeTest, SqueezeWithAndWithoutAxes) {
  Tensor x = iota<int32_t>(DType::kI32, {1, 3, 1, 5});
  EXPECT_EQ(run1(make_node("Squeeze"), {x}).dims(), (Dims{3, 5}));
  EXPECT_EQ(run1(make_node("Squeeze"), {x, i64({1}, {-2})}).dims(), (Dims{1, 3, 5}));
  Tensor y = run1(make_node("Squeeze"), {x, i64({2}, {2, 0})});
  EXPECT_EQ(y.dims(), (Dims{3, 5}));
  EXPECT_EQ(values<int32_t>(y), values<int32_t>(x));
  EXPECT_FALSE(run_status(make_node("Squeeze"), {x, i64({1}, {1})}).ok());      // size 3
  EXPECT_FALSE(run_status(make_node("Squeeze"), {x, i64({1}, {4})}).ok());      // out of range
  EXPECT_FALSE(run_status(make_node("Squeeze"), {x, i64({2}, {0, -4})}).ok());  // repeated
}

TEST(TensorShapeTest, UnsqueezeInsertsAtOutputPositions) {
  Tensor x = Tensor::zeros(DType::kU8, {3, 4, 5});
  EXPECT_EQ(run1(make_node("Unsqueeze"), {x, i64({1}, {0})}).dims(), (Dims{1, 3, 4, 5}));
  EXPECT_EQ(run1(make_node("Unsqueeze"), {x, i64({1}, {-1})}).dims(), (Dims{3, 4, 5, 1}));
  EXPECT_EQ(run1(make_node("Unsqueeze"), {x, i64({2}, {1, 4})}).dims(), (Dims{3, 1, 4, 5, 1}));
  EXPECT_EQ(run1(make_node("Unsqueeze"), {x, i64({3}, {5, 4, 2})}).dims(),
            (Dims{3, 4, 1, 5, 1, 1}));
  EXPECT_EQ(run1(make_node("Unsqueeze"), {x, i64({3}, {2, 0, 5})}).dims(),
            (Dims{1, 3, 1, 4, 5, 1}));
  EXPECT_EQ(run1(make_node("Unsqueeze"), {Tensor::zeros(DType::kF32, {}), i64({1}, {0})}).dims(),
            (Dims{1}));
  EXPECT_FALSE(run_status(make_node("Unsqueeze"), {x, i64({1}, {5})}).ok());
  EXPECT_FALSE(run_status(make_node("Unsqueeze"), {x, i64({2}, {1, 1})}).ok());
  EXPECT_FALSE(run_status(make_node("Unsqueeze"), {x}).ok());
}

TEST(TensorShapeTest, IdentityKeepsValuesOfAnyDtype) {
  Tensor x = Tensor::from_vector(DType::kF16, {2}, std::vector<uint16_t>{0x3c00, 0xc000});
  Tensor y = run1(make_node("Identity"), {x});
  EXPECT_EQ(y.dtype(), DType::kF16);
  EXPECT_EQ(values<uint16_t>(y), (std::vector<uint16_t>{0x3c00, 0xc000}));
}

TEST(TensorShapeTest, DropoutInInferenceIsIdentityWithTrueMask) {
  Tensor x = f32({2, 2}, {1, -2, 3, -4});
  std::vector<Tensor> out;
  ASSERT_TRUE(run(make_node("Dropout", {}, 2), {x, f32({}, {0.3f})}, out).ok());
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, -2, 3, -4}));
  EXPECT_EQ(out[1].dtype(), DType::kBool);
  EXPECT_EQ(values<uint8_t>(out[1]), (std::vector<uint8_t>{1, 1, 1, 1}));
  Tensor off = Tensor::from_vector(DType::kBool, {}, std::vector<uint8_t>{0});
  Tensor on = Tensor::from_vector(DType::kBool, {}, std::vector<uint8_t>{1});
  ASSERT_TRUE(run(make_node("Dropout"), {x, Tensor(), off}, out).ok());
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, -2, 3, -4}));
  // Training with ratio 0 drops nothing; any other ratio would need randomness.
  ASSERT_TRUE(run(make_node("Dropout", {}, 2), {x, f32({}, {0.f}), on}, out).ok());
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, -2, 3, -4}));
  Status s = run_status(make_node("Dropout"), {x, f32({}, {0.5f}), on});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_EQ(run_status(make_node("Dropout"), {x, Tensor(), on}).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::cpu
