// kiln.Attention on the GPU (label gpu): the fused kernel (kernels/attention.h) against the CPU
// reference, through every kind of operand view fuse_attention makes.
#include <cstring>

#include "backends/cuda/kernels/attention.h"
#include "backends/cuda/op_test_util.h"
#include "ir/attention.h"

namespace kiln::cuda::testing {
namespace {

struct View {
  std::vector<int64_t> axes = {}, index = {};
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

// Half types with enough (batch, head) pairs take the tensor-core form (attention_use_mma): 16-byte
// staging (D = Dv = 64) and element staging (D = 36, Dv = 20: padded to the MMA's 16 and 8), with
// partial query and key tiles.
TEST(CudaAttentionTest, TensorCoreFormMatchesCpu) {
  ASSERT_TRUE(kernels::attention_use_mma(DType::kF16, 90, 4 * 32));
  for (DType dt : {DType::kF16, DType::kBF16}) {
    OpCase wide = attention_case(dt,
                                 {random_tensor(dt, {4, 32, 77, 64}, -2, 2, 31), random_tensor(dt, {4, 32, 45, 64}, -2, 2, 32),
                                  random_tensor(dt, {4, 32, 45, 64}, -2, 2, 33)},
                                 {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {0, 1, 2, 3}, 0.125);
    check_op(wide, "mma d64 " + std::string(dtype_name(dt)));
    OpCase odd = attention_case(dt,
                                {random_tensor(dt, {4, 32, 50, 36}, -2, 2, 34), random_tensor(dt, {4, 32, 33, 36}, -2, 2, 35),
                                 random_tensor(dt, {4, 32, 33, 20}, -2, 2, 36)},
                                {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {0, 1, 2, 3}, 0.2);
    check_op(odd, "mma d36 dv20 " + std::string(dtype_name(dt)));
  }
}

// Operands whose features are contiguous take the 16-byte staging kernel; device pointers that are
// not 16-byte aligned (a caller's view one element into its buffer) must take its scalar path, in
// both kernel forms (128 heads: the tensor-core one).
TEST(CudaAttentionTest, UnalignedDevicePointersMatchCpu) {
  for (auto [dt, heads] : {std::pair{DType::kF32, int64_t{2}}, {DType::kF16, int64_t{2}}, {DType::kF16, int64_t{128}}}) {
    OpCase c = attention_case(dt,
                              {random_tensor(dt, {1, heads, 40, 64}, -2, 2, 21), random_tensor(dt, {1, heads, 50, 64}, -2, 2, 22),
                               random_tensor(dt, {1, heads, 50, 64}, -2, 2, 23)},
                              {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {{0, 1, 2, 3}}, {0, 1, 2, 3}, 0.125);
    std::shared_ptr<const ir::Graph> g = one_node_graph(c);
    auto cpu = cpu::create_cpu_backend();
    Result<std::unique_ptr<BackendProgram>> ref = cpu->prepare(g, {});
    ASSERT_TRUE(ref.ok()) << ref.status().to_string();
    std::vector<Tensor> want;
    ASSERT_TRUE((*ref)->run(c.inputs, &want).ok());
    Result<std::unique_ptr<BackendProgram>> prog = cuda_backend()->prepare(g, {});
    ASSERT_TRUE(prog.ok()) << prog.status().to_string();
    std::vector<Tensor> views;
    for (const Tensor& t : c.inputs) {
      // The tensor's bytes one element into a larger device buffer.
      Tensor host = Tensor::zeros(dt, {t.numel() + 1});
      std::memcpy(static_cast<char*>(host.data()) + dtype_size(dt), t.data(), t.nbytes());
      auto dev = std::make_shared<Tensor>(to_device(host));
      views.push_back(Tensor::wrap(dt, t.dims(), static_cast<char*>(dev->data()) + dtype_size(dt), dev, dev->device()));
    }
    std::vector<Tensor> got;
    Status s = (*prog)->run(views, &got);
    ASSERT_TRUE(s.ok()) << s.to_string();
    ASSERT_EQ(got.size(), 1u);
    expect_close(got[0], want[0], c.rtol, c.atol, std::string("unaligned ") + std::string(dtype_name(dt)));
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
