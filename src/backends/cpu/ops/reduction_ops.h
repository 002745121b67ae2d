// Registration entry points and small shared helpers of the CPU reduction kernel files.
#pragma once

#include <cstdint>

#include "backends/cpu/kernel.h"

namespace kiln::cpu {

void register_reduce_ops(KernelRegistry& r);   // reduction_reduce.cc: Reduce*
void register_arg_ops(KernelRegistry& r);      // reduction_arg.cc: ArgMax ArgMin
void register_softmax_ops(KernelRegistry& r);  // reduction_softmax.cc: Softmax LogSoftmax
void register_scan_ops(KernelRegistry& r);     // reduction_scan.cc: CumSum
void register_topk_op(KernelRegistry& r);      // reduction_topk.cc: TopK

// A tensor viewed as [outer, axis, inner] around one axis (row-major): element (o, r, i) is at
// (o * axis + r) * inner + i.
struct AxisSplit {
  int64_t outer = 1, axis = 1, inner = 1;
};

// `axis` must be in [0, dims.size()).
inline AxisSplit split_at_axis(const Dims& dims, int64_t axis) {
  AxisSplit s;
  for (int64_t d = 0; d < static_cast<int64_t>(dims.size()); ++d) {
    if (d < axis)
      s.outer *= dims[d];
    else if (d == axis)
      s.axis = dims[d];
    else
      s.inner *= dims[d];
  }
  return s;
}

}  // namespace kiln::cpu
