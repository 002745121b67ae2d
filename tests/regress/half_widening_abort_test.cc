// Bug: the CPU backend widened f16/bf16 inputs of f32-only kernels (and narrowed their outputs)
// with Tensor::zeros, which aborts the process when the allocation fails. The tensor being
// widened comes from the caller or from an earlier kernel, so its size is the user's: a failed
// allocation must be a Status naming the node. Fixed in src/backends/cpu/cpu_backend.cc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"

namespace kiln {
namespace {

TEST(HalfWideningAbortTest, WideningAHugeHalfTensorIsAStatusNotAnAbort) {
  // 2^40 f16 elements (2 TiB) would widen to 4 TiB of f32, past what Tensor::empty allows. The
  // data is never read: the allocation is refused first.
  std::vector<uint16_t> storage(16, 0);
  for (DType half : {DType::kF16, DType::kBF16}) {
    Tensor x = Tensor::wrap(half, {int64_t{1} << 40}, storage.data());
    ir::Node node;
    node.name = "relu0";
    node.op = "Relu";
    std::vector<Tensor> in{x}, out(1);
    Status s = cpu::run_node(node, in, out);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.to_string();
    EXPECT_NE(s.message().find("relu0"), std::string::npos) << s.to_string();
  }
}

}  // namespace
}  // namespace kiln
