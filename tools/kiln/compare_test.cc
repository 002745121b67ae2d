#include "compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/half.h"

namespace kiln::cli {
namespace {

Tensor f32(Dims dims, std::vector<float> v) { return Tensor::from_vector(DType::kF32, dims, v); }

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(CompareTest, EqualTensorsPassWithZeroError) {
  auto r = compare_tensors(f32({2}, {1, 2}), f32({2}, {1, 2}), {});
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.max_abs_err, 0);
  EXPECT_EQ(r.max_rel_err, 0);
}

TEST(CompareTest, ToleranceIsAtolPlusRtolTimesExpected) {
  Tolerance tol{1e-3, 1e-4};
  // allowed at b = 10: 1e-4 + 1e-2 = 0.0101
  EXPECT_TRUE(compare_tensors(f32({1}, {10.01f}), f32({1}, {10}), tol).ok);
  auto r = compare_tensors(f32({1}, {10.02f}), f32({1}, {10}), tol);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.mismatches, 1);
  // Asymmetric like numpy.allclose: rtol scales |expected|, not |actual|.
  EXPECT_FALSE(compare_tensors(f32({1}, {0}), f32({1}, {0.001f}), {0.5, 0}).ok);
  EXPECT_TRUE(compare_tensors(f32({1}, {0.001f}), f32({1}, {0.0015f}), {0.5, 0}).ok);
}

TEST(CompareTest, ReportsMaxAbsAndRelErrors) {
  auto r = compare_tensors(f32({3}, {1.0f, 2.5f, 0.001f}), f32({3}, {1.0f, 2.0f, 0}), {1, 1});
  EXPECT_TRUE(r.ok);
  EXPECT_DOUBLE_EQ(r.max_abs_err, 0.5);
  EXPECT_DOUBLE_EQ(r.max_rel_err, 0.25);  // the b == 0 element has no relative error
}

TEST(CompareTest, NanEqualsNanAndInfinitiesMustMatch) {
  EXPECT_TRUE(compare_tensors(f32({2}, {kNan, kInf}), f32({2}, {kNan, kInf}), {}).ok);
  EXPECT_FALSE(compare_tensors(f32({1}, {kNan}), f32({1}, {1}), {}).ok);
  EXPECT_FALSE(compare_tensors(f32({1}, {1}), f32({1}, {kNan}), {}).ok);
  EXPECT_FALSE(compare_tensors(f32({1}, {kInf}), f32({1}, {-kInf}), {}).ok);
  EXPECT_FALSE(compare_tensors(f32({1}, {kInf}), f32({1}, {1e30f}), {1, 1}).ok);
}

TEST(CompareTest, WorstElementIsNamedWithItsCoordinates) {
  auto r = compare_tensors(f32({2, 3}, {0, 0, 0, 0, 5, 0.5f}), f32({2, 3}, {0, 0, 0, 0, 0, 0}), {});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.mismatches, 2);
  EXPECT_EQ(r.worst_index, (Dims{1, 1}));
  EXPECT_NE(r.message.find("2 of 6 elements"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("[1, 1]"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("got 5"), std::string::npos) << r.message;
}

TEST(CompareTest, ShapeAndDtypeMismatchesFail) {
  auto r = compare_tensors(f32({2}, {1, 2}), f32({1, 2}, {1, 2}), {});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("shape [2], expected [1, 2]"), std::string::npos) << r.message;
  auto d = compare_tensors(f32({1}, {1}), Tensor::from_vector<double>(DType::kF64, {1}, {1}), {});
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.message.find("dtype f32, expected f64"), std::string::npos) << d.message;
}

TEST(CompareTest, Int64ComparesExactly) {
  int64_t big = (int64_t{1} << 62) + 1;
  auto a = Tensor::from_vector<int64_t>(DType::kI64, {1}, {big});
  auto b = Tensor::from_vector<int64_t>(DType::kI64, {1}, {big - 1});
  EXPECT_FALSE(compare_tensors(a, b, {0, 0}).ok) << "a double would round both to 2^62";
  EXPECT_TRUE(compare_tensors(a, a, {0, 0}).ok);
}

TEST(CompareTest, HalfPrecisionIsDecoded) {
  auto a = Tensor::from_vector<uint16_t>(DType::kF16, {2}, {f32_to_f16(1.0f), f32_to_f16(2.0f)});
  auto b = Tensor::from_vector<uint16_t>(DType::kF16, {2}, {f32_to_f16(1.0f), f32_to_f16(2.5f)});
  auto r = compare_tensors(a, b, {0, 0.1});
  EXPECT_FALSE(r.ok);
  EXPECT_DOUBLE_EQ(r.max_abs_err, 0.5);
  auto c = Tensor::from_vector<uint16_t>(DType::kBF16, {1}, {f32_to_bf16(3.0f)});
  EXPECT_TRUE(compare_tensors(c, c, {}).ok);
}

TEST(CompareTest, EmptyTensorsMatch) {
  EXPECT_TRUE(compare_tensors(f32({0, 4}, {}), f32({0, 4}, {}), {}).ok);
}

TEST(CompareTest, UnravelIndexIsRowMajor) {
  EXPECT_EQ(unravel_index(5, {2, 3}), (Dims{1, 2}));
  EXPECT_EQ(unravel_index(0, {}), (Dims{}));
  EXPECT_EQ(unravel_index(7, {2, 2, 2}), (Dims{1, 1, 1}));
}

}  // namespace
}  // namespace kiln::cli
