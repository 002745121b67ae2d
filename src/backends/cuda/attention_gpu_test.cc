// kiln.Attention on the GPU (label gpu): the fused kernel (kernels/attention.h) against the CPU
// reference, through every kind of operand view fuse_attention makes.
#include "backends/cuda/op_test_util.h"
#include "ir/attention.h"

namespace kiln::cuda::testing {
namespace {

struct View {
  std::vector<int64_t> axes, index;
};

OpCase attention_case(DType dt, std::vector<Tensor> qkv, View q, View k, View v, std::vector<int64_t> out_axes,
                      double scale) {
  OpCase c{std::string(ir::kAttentionOp), {}, std::move(qkv)};
  c.attrs.set_float("scale", scale);
  const View* views[3] = {&q, &k, &v};
  const char* names[3] = {"q", "k", "v"};
  for (int o = 0; o < 3; ++o) {
    c.attrs.set_ints(std::string(names[o]) + "_axes", views[o]->axes);
    if (!views[o]->index.empty()) c.attrs.set_ints(std::string(names[o]) + "_index", views[o]->index);
  }
  c.attrs.set_ints("out_axes", out_axes);
  if (dt == DType::kF32) c.rtol = 1e-4, c.atol = 2e-5;
  else if (dt == DType::kF16) c.rtol = c.atol = 4e-3;
  else c.rtol = c.atol = 2e-2;
  return c;
}

// Separate [B, H, S, D] tensors, sequence lengths off the 32-key tile and the row tiles.
TEST(CudaAttentionTest, SeparateOperandsMatchCpu) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    OpCase c = attention_case(dt,
                              {random_tensor(dt, {2, 3, 37, 64}, -2, 2, 1), random_tensor(dt, {2, 3, 45, 64}, -2, 2, 2),
                               random_tensor(dt, {2, 3, 45, 64}, -2, 2, 3)},
                              {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {0, 1, 2, 3}, 0.125);
    check_op(c, std::string("separate ") + std::string(dtype_name(dt)));
  }
}

// The encoder's form: one packed [B, S, 3, H, D] projection read as Q, K and V (slot 0, 1, 2),
// the result written as [B, S, H, D]; at the benchmark's shapes and at a dynamic sweep's.
TEST(CudaAttentionTest, PackedQkvWithTransposedOutputMatchesCpu) {
  for (DType dt : {DType::kF32, DType::kF16})
    for (auto [batch, seq, heads, dim] : {std::array<int64_t, 4>{1, 128, 4, 64}, {1, 16, 4, 64}, {1, 304, 4, 64},
                                          {8, 128, 12, 64}, {2, 77, 2, 32}}) {
      Tensor x = random_tensor(dt, {batch, seq, 3, heads, dim}, -1.5, 1.5, 11);
      OpCase c = attention_case(dt, {x, x, x}, {{0, 3, 1, 4}, {0, 0, 0, 0, 0}}, {{0, 3, 1, 4}, {0, 0, 1, 0, 0}},
                                {{0, 3, 1, 4}, {0, 0, 2, 0, 0}}, {0, 2, 1, 3}, 1.0 / 8);
      check_op(c, "packed " + std::string(dtype_name(dt)) + " b" + std::to_string(batch) + " s" + std::to_string(seq) +
                      " h" + std::to_string(heads));
    }
}

// Rank 3 (no batch axis), K stored [H, D, Sk] (the untransposed MatMul form), Dv != D, head dims
// that are not multiples of 4 or 32.
TEST(CudaAttentionTest, RankThreeUntransposedKeyAndOddHeadDimsMatchCpu) {
  const DType dt = DType::kF32;
  OpCase c = attention_case(dt,
                            {random_tensor(dt, {5, 33, 30}, -2, 2, 4), random_tensor(dt, {5, 30, 70}, -2, 2, 5),
                             random_tensor(dt, {5, 70, 50}, -2, 2, 6)},
                            {{-1, 0, 1, 2}}, {{-1, 0, 2, 1}}, {{-1, 0, 1, 2}}, {-1, 0, 1, 2}, 0.3);
  check_op(c, "rank 3");
  OpCase wide = attention_case(dt,
                               {random_tensor(dt, {1, 2, 40, 128}, -1, 1, 7), random_tensor(dt, {1, 2, 40, 128}, -1, 1, 8),
                                random_tensor(dt, {1, 2, 40, 128}, -1, 1, 9)},
                               {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {0, 1, 2, 3}, 0.09);
  check_op(wide, "head dim 128");
}

// No keys: the output is zeros (the empty sum), on both backends.
TEST(CudaAttentionTest, NoKeysGivesZeros) {
  const DType dt = DType::kF32;
  OpCase c = attention_case(dt,
                            {random_tensor(dt, {1, 2, 5, 8}), Tensor::zeros(dt, {1, 2, 0, 8}), Tensor::zeros(dt, {1, 2, 0, 8})},
                            {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {0, 1, 2, 3}, 1.0);
  check_op(c, "no keys");
}

}  // namespace
}  // namespace kiln::cuda::testing
