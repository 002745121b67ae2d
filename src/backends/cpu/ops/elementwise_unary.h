// The generic one-input elementwise kernel. An op is a functor type with
//   static constexpr unsigned kTypes;   // DTypeSet bits it accepts
//   static constexpr bool kBoolOut;     // true: output is bool (IsNaN, IsInf), else input dtype
//   static Result<Op> make(const ir::Node&);  // reads and validates attributes
//   template <typename T> R operator()(T x) const;
#pragma once

#include "backends/cpu/ops/elementwise_common.h"

namespace kiln::cpu {

template <typename Op>
Status unary_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "X"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Op op, Op::make(node));
  const Tensor& x = in[0];
  return dispatch_dtype(node, x.dtype(), Op::kTypes, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & Op::kTypes) == 0) {
      return internal_error("unreachable dtype");  // dispatch_dtype refused it already
    } else {
      using R = std::conditional_t<Op::kBoolOut, bool, T>;
      KILN_ASSIGN_OR_RETURN(Tensor y,
                            Tensor::empty(Op::kBoolOut ? DType::kBool : x.dtype(), x.dims()));
      if constexpr (std::is_same_v<T, bool>) {  // untrusted bytes: nonzero is true
        parallel_map(x.data_as<const uint8_t>(), y.data_as<R>(), x.numel(),
                     [&](uint8_t v) { return static_cast<R>(op(v != 0)); });
      } else {
        parallel_map(x.data_as<const T>(), y.data_as<R>(), x.numel(),
                     [&](T v) { return static_cast<R>(op(v)); });
      }
      out[0] = std::move(y);
      return Status();
    }
  });
}

// Base for ops without attributes.
template <typename Self>
struct NoAttrs {
  static constexpr bool kBoolOut = false;
  static Result<Self> make(const ir::Node&) { return Self{}; }
};

}  // namespace kiln::cpu
