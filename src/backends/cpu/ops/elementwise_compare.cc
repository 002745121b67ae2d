// Broadcasting comparisons (Equal Greater GreaterOrEqual Less LessOrEqual -> bool) and logic
// (And Or Xor on bool). Comparisons with NaN are false, except that NaN is not Equal to itself.
#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/elementwise_ops.h"

namespace kiln::cpu {
namespace {

struct EqualOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a == b;
  }
};
struct GreaterOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a > b;
  }
};
struct GreaterOrEqualOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a >= b;
  }
};
struct LessOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a < b;
  }
};
struct LessOrEqualOp {
  template <typename T>
  bool operator()(T a, T b) const {
    return a <= b;
  }
};
struct AndOp {
  bool operator()(bool a, bool b) const { return a && b; }
};
struct OrOp {
  bool operator()(bool a, bool b) const { return a || b; }
};
struct XorOp {
  bool operator()(bool a, bool b) const { return a != b; }
};

// Inputs of one dtype from kTypes; output bool of the broadcast shape.
template <typename Op, unsigned kTypes>
Status to_bool_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "A"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "B"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  KILN_RETURN_IF_ERROR(require_same_dtype(node, in, 0, 1));
  const Dims shapes[2] = {in[0].dims(), in[1].dims()};
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_shapes(node, shapes));
  return dispatch_dtype(node, in[0].dtype(), kTypes, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kTypes) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(DType::kBool, dims));
      if constexpr (std::is_same_v<T, bool>) {
        // Bool bytes come from untrusted data: read them as bytes, nonzero is true.
        broadcast_binary<uint8_t, uint8_t, bool>(
            in[0], in[1], y, [](uint8_t a, uint8_t b) { return Op{}(a != 0, b != 0); });
      } else {
        broadcast_binary<T, T, bool>(in[0], in[1], y, Op{});
      }
      out[0] = std::move(y);
      return Status();
    }
  });
}

}  // namespace

void register_compare_ops(KernelRegistry& r) {
  r.add("Equal", &to_bool_kernel<EqualOp, kAll>);
  r.add("Greater", &to_bool_kernel<GreaterOp, kNumeric>);
  r.add("GreaterOrEqual", &to_bool_kernel<GreaterOrEqualOp, kNumeric>);
  r.add("Less", &to_bool_kernel<LessOp, kNumeric>);
  r.add("LessOrEqual", &to_bool_kernel<LessOrEqualOp, kNumeric>);
  r.add("And", &to_bool_kernel<AndOp, kBools>);
  r.add("Or", &to_bool_kernel<OrOp, kBools>);
  r.add("Xor", &to_bool_kernel<XorOp, kBools>);
}

}  // namespace kiln::cpu
