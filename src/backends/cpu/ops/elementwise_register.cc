#include "backends/cpu/kernel.h"
#include "backends/cpu/ops/elementwise_ops.h"

namespace kiln::cpu {

void register_elementwise_ops(KernelRegistry& r) {
  register_unary_ops(r);
  register_activation_ops(r);
  register_arith_ops(r);
  register_compare_ops(r);
  register_variadic_ops(r);
  register_cast_op(r);
  register_fused_elementwise_op(r);
}

}  // namespace kiln::cpu
