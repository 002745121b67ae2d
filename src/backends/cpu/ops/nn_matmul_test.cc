#include <gtest/gtest.h>

#include <tuple>

#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

// Naive batched matmul over equal-batch contiguous [b, m, k] x [b, k, n].
std::vector<float> naive_bmm(const std::vector<float>& a, const std::vector<float>& b, int64_t nb,
                             int64_t m, int64_t k, int64_t n) {
  std::vector<float> c(static_cast<size_t>(nb * m * n), 0.0f);
  for (int64_t z = 0; z < nb; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += a[(z * m + i) * k + p] * b[(z * k + p) * n + j];
        c[(z * m + i) * n + j] = static_cast<float>(s);
      }
  return c;
}

TEST(NnMatMulTest, TwoByTwo) {
  Tensor y = run_ok(make_node("MatMul"), {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({3, 2}, {7, 8, 9, 10, 11, 12})});
  expect_close(y, {2, 2}, std::vector<float>{58, 64, 139, 154});
}

TEST(NnMatMulTest, BatchBroadcastMatchesNumpy) {
  std::vector<float> a = iota(24, 0, 0.1f), b = iota(16, -7.0f / 4, 0.25f);
  Tensor y = run_ok(make_node("MatMul"), {f32({3, 1, 2, 4}, a), f32({1, 2, 4, 2}, b)});
  // numpy.matmul
  expect_close(y, {3, 2, 2, 2},
               std::vector<float>{-0.35f, -0.2f, -1.95f, -1.4f, 0.85f, 1, 2.45f, 3, -3.55f, -2.6f,
                                  -5.15f, -3.8f, 4.05f, 5, 5.65f, 7, -6.75f, -5, -8.35f, -6.2f,
                                  7.25f, 9, 8.85f, 11},
               1e-5, 1e-5);
}

TEST(NnMatMulTest, VectorOperandsArePromotedAndSqueezed) {
  std::vector<float> b = iota(24);
  Tensor y = run_ok(make_node("MatMul"), {f32({4}, iota(4)), f32({2, 4, 3}, b)});
  expect_close(y, {2, 3}, std::vector<float>{42, 48, 54, 114, 120, 126});
  // [2, 3, 4] x [4] -> [2, 3]; the same numbers with B transposed.
  std::vector<float> bt(24);
  for (int z = 0; z < 2; ++z)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) bt[(z * 3 + j) * 4 + i] = b[(z * 4 + i) * 3 + j];
  y = run_ok(make_node("MatMul"), {f32({2, 3, 4}, bt), f32({4}, iota(4))});
  expect_close(y, {2, 3}, std::vector<float>{42, 48, 54, 114, 120, 126});
  y = run_ok(make_node("MatMul"), {f32({3}, {1, 2, 3}), f32({3}, {4, 5, 6})});
  expect_close(y, {}, std::vector<float>{32});
}

TEST(NnMatMulTest, ManySmallBatchesMatchNaive) {
  // 64 batches of 5x7x3: the batch-parallel path.
  const int64_t nb = 64, m = 5, k = 7, n = 3;
  std::vector<float> a = random_values(nb * m * k, 1), b = random_values(nb * k * n, 2);
  Tensor y = run_ok(make_node("MatMul"), {f32({4, 16, m, k}, a), f32({4, 16, k, n}, b)});
  expect_close(y, {4, 16, m, n}, naive_bmm(a, b, nb, m, k, n), 1e-5, 1e-4);
}

TEST(NnMatMulTest, SharedRightOperandFoldsBatch) {
  const int64_t m = 33, k = 70, n = 65;
  std::vector<float> a = random_values(2 * 3 * m * k, 3), b = random_values(k * n, 4);
  Tensor y = run_ok(make_node("MatMul"), {f32({2, 3, m, k}, a), f32({k, n}, b)});
  std::vector<float> b6;
  for (int i = 0; i < 6; ++i) b6.insert(b6.end(), b.begin(), b.end());
  expect_close(y, {2, 3, m, n}, naive_bmm(a, b6, 6, m, k, n), 1e-4, 1e-4);
}

TEST(NnMatMulTest, IntegerAndDouble) {
  Tensor y = run_ok(make_node("MatMul"), {Tensor::from_vector(DType::kI32, {2, 2}, std::vector<int32_t>{1, -2, 3, 4}),
                                          Tensor::from_vector(DType::kI32, {2, 1}, std::vector<int32_t>{5, 6})});
  EXPECT_EQ(y.dtype(), DType::kI32);
  EXPECT_EQ(values<int32_t>(y), (std::vector<int32_t>{-7, 39}));
  y = run_ok(make_node("MatMul"), {i64({1, 2}, {1LL << 40, 3}), i64({2, 1}, {2, -1})});
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{(1LL << 41) - 3}));
  y = run_ok(make_node("MatMul"), {f64({1, 2}, {0.1, 0.2}), f64({2, 1}, {0.3, 0.4})});
  expect_close<double>(y, {1, 1}, {0.11}, 1e-15, 0);
}

TEST(NnMatMulTest, EmptyDims) {
  Tensor y = run_ok(make_node("MatMul"), {f32({0, 3}, {}), f32({3, 4}, iota(12))});
  EXPECT_EQ(y.dims(), (Dims{0, 4}));
  // K = 0: a sum over nothing is zero.
  y = run_ok(make_node("MatMul"), {f32({2, 0}, {}), f32({0, 3}, {})});
  expect_close(y, {2, 3}, std::vector<float>(6, 0.0f));
}

TEST(NnMatMulTest, BadShapesAreErrors) {
  ir::Node node = make_node("MatMul");
  EXPECT_NE(run_fails(node, {f32({2, 3}, iota(6)), f32({2, 3}, iota(6))}).find("inner dimensions"),
            std::string::npos);
  run_fails(node, {f32({2, 2, 3}, iota(12)), f32({3, 3, 1}, iota(9))});  // batch 2 vs 3
  run_fails(node, {f32({}, {1}), f32({1}, {1})});                        // scalar
  run_fails(node, {f32({1}, {1}), f64({1}, {1})});                       // dtype mismatch
  run_fails(node, {f32({1}, {1})});                                      // missing B
  run_fails(node, {Tensor::from_vector(DType::kBool, {1}, std::vector<uint8_t>{1}),
                   Tensor::from_vector(DType::kBool, {1}, std::vector<uint8_t>{1})},
            StatusCode::kUnsupported);
}

TEST(NnGemmTest, TransposesAlphaBetaAndColumnBias) {
  ir::Node node = make_node("Gemm");
  node.attrs.set_float("alpha", 0.5);
  node.attrs.set_float("beta", 2.0);
  node.attrs.set_int("transA", 1);
  node.attrs.set_int("transB", 1);
  Tensor a = f32({3, 2}, iota(6, 0, 0.5f)), b = f32({4, 3}, iota(12, -3)), c = f32({2, 1}, {1, 2});
  // onnx.reference Gemm
  expect_close(run_ok(node, {a, b, c}), {2, 4}, std::vector<float>{0, 4.5f, 9, 13.5f, 0.5f, 7.25f, 14, 20.75f});
}

TEST(NnGemmTest, BiasShapesBroadcast) {
  ir::Node node = make_node("Gemm");
  Tensor a = f32({2, 2}, {1, 2, 3, 4}), b = f32({2, 2}, {1, 0, 0, 1});
  expect_close(run_ok(node, {a, b}), {2, 2}, std::vector<float>{1, 2, 3, 4});
  expect_close(run_ok(node, {a, b, f32({}, {10})}), {2, 2}, std::vector<float>{11, 12, 13, 14});
  expect_close(run_ok(node, {a, b, f32({2}, {10, 20})}), {2, 2}, std::vector<float>{11, 22, 13, 24});
  expect_close(run_ok(node, {a, b, f32({2, 2}, {1, 1, 2, 2})}), {2, 2}, std::vector<float>{2, 3, 5, 6});
  node.attrs.set_float("beta", 0.0);  // C ignored
  expect_close(run_ok(node, {a, b, f32({2}, {10, 20})}), {2, 2}, std::vector<float>{1, 2, 3, 4});
}

TEST(NnGemmTest, IntegerGemm) {
  ir::Node node = make_node("Gemm");
  node.attrs.set_float("alpha", 2.0);
  Tensor y = run_ok(node, {i64({1, 2}, {3, 4}), i64({2, 1}, {5, 6}), i64({1}, {-1})});
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{2 * 39 - 1}));
}

TEST(NnGemmTest, LargeTransposedProductsSplitOverThreads) {
  // Big enough to be split into row blocks (m >= n) or column blocks (n > m) over the pool.
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{150, 70, 90}, {40, 170, 110}}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + " transA=" + std::to_string(ta) +
                     " transB=" + std::to_string(tb));
        std::vector<float> a = random_values(m * k, 5), b = random_values(k * n, 6), c = random_values(n, 7);
        std::vector<float> expected(static_cast<size_t>(m * n));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t p = 0; p < k; ++p)
              s += a[ta ? p * m + i : i * k + p] * b[tb ? j * k + p : p * n + j];
            expected[i * n + j] = static_cast<float>(0.5 * s + 2.0 * c[j]);
          }
        ir::Node node = make_node("Gemm");
        node.attrs.set_float("alpha", 0.5);
        node.attrs.set_float("beta", 2.0);
        node.attrs.set_int("transA", ta);
        node.attrs.set_int("transB", tb);
        Tensor ta_t = f32(ta ? Dims{k, m} : Dims{m, k}, a), tb_t = f32(tb ? Dims{n, k} : Dims{k, n}, b);
        expect_close(run_ok(node, {ta_t, tb_t, f32({n}, c)}), {m, n}, expected, 1e-4, 1e-4);
      }
    }
  }
}

TEST(NnGemmTest, BadShapesAreErrors) {
  ir::Node node = make_node("Gemm");
  run_fails(node, {f32({2, 3}, iota(6)), f32({2, 3}, iota(6))});
  run_fails(node, {f32({2, 3}, iota(6)), f32({3, 2}, iota(6)), f32({3}, iota(3))});
  run_fails(node, {f32({2, 3}, iota(6)), f32({3, 2}, iota(6)), f32({1, 1, 1}, {1})});
  run_fails(node, {f32({6}, iota(6)), f32({3, 2}, iota(6))});
  node.attrs.set_int("transB", 1);
  run_fails(node, {f32({2, 3}, iota(6)), f32({3, 2}, iota(6))});
}

}  // namespace
}  // namespace kiln::cpu::nn_test
