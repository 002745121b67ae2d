// Transpose: literal numpy results, and every permutation of rank 3 and 4 tensors (sizes chosen
// to hit the run-copy, tiled and element paths) checked against direct index arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "backends/cpu/ops/tensor_test_util.h"

namespace kiln::cpu {
namespace {

using namespace tensor_test;  // NOLINT

// out[i_0..i_n] = x[j] with j_perm[k] = i_k, computed the slow obvious way.
template <typename T>
std::vector<T> reference_transpose(const std::vector<T>& x, const Dims& dims,
                                   const std::vector<int64_t>& perm) {
  const size_t n = dims.size();
  Dims od(n);
  for (size_t k = 0; k < n; ++k) od[k] = dims[static_cast<size_t>(perm[k])];
  std::vector<int64_t> in_strides(n, 1);
  for (size_t k = n - 1; k-- > 0;) in_strides[k] = in_strides[k + 1] * dims[k + 1];
  std::vector<T> out(x.size());
  std::vector<int64_t> idx(n, 0);
  for (size_t o = 0; o < out.size(); ++o) {
    int64_t rem = static_cast<int64_t>(o), src = 0;
    for (size_t k = n; k-- > 0;) {
      src += (rem % od[k]) * in_strides[static_cast<size_t>(perm[k])];
      rem /= od[k];
    }
    out[o] = x[static_cast<size_t>(src)];
  }
  return out;
}

TEST(TensorTransposeTest, MatchesNumpyOnSmallInput) {
  Tensor x = iota<int64_t>(DType::kI64, {2, 3, 4});
  Tensor y = run1(make_node("Transpose", attrs_ints("perm", {1, 2, 0})), {x});
  EXPECT_EQ(y.dims(), (Dims{3, 4, 2}));
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{0, 12, 1, 13, 2, 14, 3, 15, 4,  16, 5,  17,
                                                      6, 18, 7, 19, 8, 20, 9, 21, 10, 22, 11, 23}));
  Tensor d = run1(make_node("Transpose"), {x});  // default: reverse the axes
  EXPECT_EQ(d.dims(), (Dims{4, 3, 2}));
  EXPECT_EQ(values<int64_t>(d), (std::vector<int64_t>{0, 12, 4, 16, 8,  20, 1, 13, 5, 17, 9,  21,
                                                      2, 14, 6, 18, 10, 22, 3, 15, 7, 19, 11, 23}));
}

template <typename T>
void check_all_permutations(DType dtype, const Dims& dims) {
  Tensor x = iota<T>(dtype, dims);
  const std::vector<T> xv = values<T>(x);
  std::vector<int64_t> perm(dims.size());
  std::iota(perm.begin(), perm.end(), 0);
  do {
    Tensor y = run1(make_node("Transpose", attrs_ints("perm", perm)), {x});
    ASSERT_EQ(y.dtype(), dtype);
    EXPECT_EQ(values<T>(y), reference_transpose(xv, dims, perm))
        << "dims " << dims_to_string(dims) << " perm " << dims_to_string(perm);
  } while (std::next_permutation(perm.begin(), perm.end()));
}

TEST(TensorTransposeTest, EveryPermutationMatchesReference) {
  check_all_permutations<float>(DType::kF32, {3, 37, 41});
  check_all_permutations<uint16_t>(DType::kF16, {2, 1, 33, 70});
  check_all_permutations<uint8_t>(DType::kU8, {5, 3, 2, 7});
  check_all_permutations<int64_t>(DType::kI64, {4, 65, 1, 9});
  check_all_permutations<double>(DType::kF64, {2, 3, 4, 5});
}

TEST(TensorTransposeTest, LargeTiledAndRunCopiesMatchReference) {
  // [..., m, n] -> [..., n, m]: tiled; [b, s, h, d] -> [b, h, s, d]: contiguous runs of d.
  const Dims dims{2, 129, 8, 64};
  Tensor x = iota<float>(DType::kF32, dims);
  const std::vector<float> xv = values<float>(x);
  for (std::vector<int64_t> perm : {std::vector<int64_t>{0, 2, 1, 3}, {0, 2, 3, 1}, {0, 1, 3, 2}}) {
    Tensor y = run1(make_node("Transpose", attrs_ints("perm", perm)), {x});
    EXPECT_EQ(values<float>(y), reference_transpose(xv, dims, perm)) << dims_to_string(perm);
  }
}

TEST(TensorTransposeTest, EmptyAndScalarInputs) {
  Tensor e = run1(make_node("Transpose", attrs_ints("perm", {1, 0})),
                  {Tensor::zeros(DType::kF32, {0, 3})});
  EXPECT_EQ(e.dims(), (Dims{3, 0}));
  Tensor s = run1(make_node("Transpose"), {f32({}, {7})});
  EXPECT_EQ(s.dims(), Dims{});
  EXPECT_EQ(values<float>(s), std::vector<float>{7});
}

TEST(TensorTransposeTest, RejectsInvalidPermutations) {
  Tensor x = Tensor::zeros(DType::kF32, {2, 3, 4});
  for (std::vector<int64_t> perm :
       {std::vector<int64_t>{0, 1}, {0, 1, 1}, {0, 1, 3}, {0, 1, 2, 3}}) {
    Status s = run_status(make_node("Transpose", attrs_ints("perm", perm)), {x});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << dims_to_string(perm);
    EXPECT_NE(s.message().find("t_Transpose"), std::string::npos);
  }
}

}  // namespace
}  // namespace kiln::cpu
