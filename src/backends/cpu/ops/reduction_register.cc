#include "backends/cpu/kernel.h"
#include "backends/cpu/ops/reduction_ops.h"

namespace kiln::cpu {

void register_reduction_ops(KernelRegistry& r) {
  register_reduce_ops(r);
  register_arg_ops(r);
  register_softmax_ops(r);
  register_scan_ops(r);
  register_topk_op(r);
}

}  // namespace kiln::cpu
