#include <gtest/gtest.h>

#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

// ((i * (3 + k)) % 7) - 3 over `dims`, as the numpy generator of the expected values used.
Tensor pattern(Dims dims, int k = 0) {
  std::vector<float> v(static_cast<size_t>(dims_numel(dims)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(static_cast<int>(i * (3 + k)) % 7 - 3);
  return f32(std::move(dims), v);
}

Tensor einsum(const std::string& eq, const std::vector<Tensor>& in) {
  ir::Node node = make_node("Einsum");
  node.attrs.set_string("equation", eq);
  return run_ok(node, in);
}

std::string einsum_fails(const std::string& eq, const std::vector<Tensor>& in) {
  ir::Node node = make_node("Einsum");
  node.attrs.set_string("equation", eq);
  return run_fails(node, in);
}

// Expected values from numpy.einsum.
TEST(NnEinsumTest, BatchMatMulAndTranspose) {
  expect_close(einsum("bij, bjk -> bik", {pattern({2, 2, 3}), pattern({2, 3, 2}, 1)}), {2, 2, 2},
               std::vector<float>{6, 6, 1, -3, -3, 3, 3, -9});
  expect_close(einsum("bij->jb", {pattern({2, 2, 3})}), {3, 2}, std::vector<float>{-4, 4, 2, -4, 1, 2});
  expect_close(einsum("ij->ji", {f32({2, 2}, {1, 2, 3, 4})}), {2, 2}, std::vector<float>{1, 3, 2, 4});
}

TEST(NnEinsumTest, OperandsAlreadyTransposedAreReadInPlace) {
  // A [b, q, d] or [b, d, q]; B [b, k, d] or [b, d, k]: every transpose combination of the GEMM.
  const int64_t nb = 3, q = 5, d = 4, k = 6;
  Tensor a_qd = f32({nb, q, d}, random_values(nb * q * d, 21));
  Tensor b_kd = f32({nb, k, d}, random_values(nb * k * d, 22));
  std::vector<float> expected(static_cast<size_t>(nb * q * k));
  const std::vector<float> av = values<float>(a_qd), bv = values<float>(b_kd);
  for (int64_t z = 0; z < nb; ++z)
    for (int64_t i = 0; i < q; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double s = 0;
        for (int64_t p = 0; p < d; ++p) s += av[(z * q + i) * d + p] * bv[(z * k + j) * d + p];
        expected[(z * q + i) * k + j] = static_cast<float>(s);
      }
  Tensor a_dq = einsum("bqd->bdq", {a_qd}), b_dk = einsum("bkd->bdk", {b_kd});
  expect_close(einsum("bqd,bkd->bqk", {a_qd, b_kd}), {nb, q, k}, expected, 1e-5, 1e-5);
  expect_close(einsum("bdq,bkd->bqk", {a_dq, b_kd}), {nb, q, k}, expected, 1e-5, 1e-5);
  expect_close(einsum("bdq,bdk->bqk", {a_dq, b_dk}), {nb, q, k}, expected, 1e-5, 1e-5);
  expect_close(einsum("bqd,bdk->bqk", {a_qd, b_dk}), {nb, q, k}, expected, 1e-5, 1e-5);
}

TEST(NnEinsumTest, DiagonalsAndTraces) {
  expect_close(einsum("...ii->...i", {pattern({2, 3, 3})}), {2, 3}, std::vector<float>{-3, 2, 0, 3, 1, -1});
  expect_close(einsum("ii", {pattern({3, 3})}), {}, std::vector<float>{-1});
  expect_close(einsum("iij->j", {pattern({2, 2, 3})}), {3}, std::vector<float>{0, -1, 5});
}

TEST(NnEinsumTest, EllipsisBroadcastAndImplicitOutput) {
  expect_close(einsum("...ij,...jk->...ik", {pattern({2, 1, 2, 3}), pattern({3, 3, 2}, 1)}), {2, 3, 2, 2},
               std::vector<float>{6, 6, 1, -3, 6, 6, -2, 1, -15, 6, -5, -2, 3, -5, -9, 7, -3, 3, 3, -9, 12, -3, 8, 3});
  // Implicit output sorts labels in ASCII order: upper case first.
  expect_close(einsum("zb,bA", {pattern({2, 3}), pattern({3, 4}, 1)}), {4, 2},
               std::vector<float>{12, -1, -9, 9, 12, -2, -9, -6});
  expect_close(einsum("ab...,b->...a", {pattern({2, 3, 2}), pattern({3}, 1)}), {2, 2},
               std::vector<float>{8, -1, 3, 8});
  expect_close(einsum("ij,ij->ij", {pattern({2, 3}), pattern({1, 3}, 1)}), {2, 3},
               std::vector<float>{9, 0, -6, 3, 2, 4});
}

TEST(NnEinsumTest, ChainsOuterProductsAndSums) {
  expect_close(einsum("ij,jk,kl->il", {pattern({2, 3}), pattern({3, 4}, 1), pattern({4, 2}, 2)}), {2, 2},
               std::vector<float>{9, 81, 3, -4});
  expect_close(einsum("i,j->ij", {pattern({2}), pattern({3}, 1)}), {2, 3}, std::vector<float>{9, -3, 6, 0, 0, 0});
  expect_close(einsum("ij->", {pattern({2, 3})}), {}, std::vector<float>{-1});
  expect_close(einsum("i,i", {f32({3}, {1, 2, 3}), f32({3}, {4, 5, 6})}), {}, std::vector<float>{32});
  expect_close(einsum("->", {f32({}, {2.5f})}), {}, std::vector<float>{2.5f});
}

TEST(NnEinsumTest, IntegersDoublesAndEmpty) {
  ir::Node node = make_node("Einsum");
  node.attrs.set_string("equation", "ij,j->i");
  Tensor y = run_ok(node, {i64({2, 2}, {1, 2, 3, 4}), i64({2}, {10, 100})});
  EXPECT_EQ(values<int64_t>(y), (std::vector<int64_t>{210, 430}));
  y = run_ok(node, {f64({1, 2}, {0.5, 0.25}), f64({2}, {2, 4})});
  expect_close<double>(y, {1}, {2});
  y = run_ok(node, {f32({0, 2}, {}), f32({2}, {1, 1})});
  EXPECT_EQ(y.dims(), (Dims{0}));
  // Contracting over an empty label gives zeros.
  y = run_ok(node, {f32({2, 0}, {}), f32({0}, {})});
  expect_close(y, {2}, std::vector<float>{0, 0});
}

TEST(NnEinsumTest, BadEquationsAreErrors) {
  Tensor m = pattern({2, 3});
  einsum_fails("ij,jk->il", {m, pattern({3, 2})});   // l not in inputs
  einsum_fails("ij->ii", {m});                       // repeated output label
  einsum_fails("i->i", {m});                         // rank mismatch
  einsum_fails("ij,jk", {m});                        // operand count
  einsum_fails("i$->i", {pattern({2, 2})});          // bad character
  einsum_fails("ij,jk->ik", {m, pattern({4, 2})});   // size mismatch on j
  einsum_fails("ii->i", {m});                        // diagonal of unequal dims
  einsum_fails("...ij->ij", {pattern({2, 2, 3})});   // ellipsis dims dropped from output
  einsum_fails("......i->i", {pattern({2})});        // two ellipses
  einsum_fails("ij,jk->ik", {m, f64({3, 2}, std::vector<double>(6))});
}

}  // namespace
}  // namespace kiln::cpu::nn_test
