// Slice (ONNX 13+): per-axis start/end/step with the spec's clamping, as a strided copy.
#include <algorithm>
#include <limits>
#include <string>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"

namespace kiln::cpu {

using tensor_ops::optional_input;
using tensor_ops::required_input;

Status slice_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(tensor_ops::need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor starts_t, required_input(node, in, 1, "starts"));
  KILN_ASSIGN_OR_RETURN(Tensor ends_t, required_input(node, in, 2, "ends"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> starts, read_int_list(node, starts_t, "starts"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> ends, read_int_list(node, ends_t, "ends"));
  const size_t k = starts.size();
  std::vector<int64_t> axes, steps(k, 1);
  if (const Tensor& t = optional_input(in, 3); t.defined()) {
    KILN_ASSIGN_OR_RETURN(axes, read_int_list(node, t, "axes"));
  } else {
    for (size_t i = 0; i < k; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (const Tensor& t = optional_input(in, 4); t.defined()) {
    KILN_ASSIGN_OR_RETURN(steps, read_int_list(node, t, "steps"));
  }
  if (ends.size() != k || axes.size() != k || steps.size() != k)
    return invalid_argument(node_context(node) +
                            ": starts, ends, axes and steps must have the "
                            "same length, got " +
                            std::to_string(k) + ", " + std::to_string(ends.size()) + ", " +
                            std::to_string(axes.size()) + ", " + std::to_string(steps.size()));
  const int64_t rank = data.rank();
  const std::vector<int64_t> in_strides = contiguous_strides(data.dims());
  Dims dims = data.dims();
  std::vector<int64_t> strides = in_strides;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  int64_t offset = 0;
  for (size_t i = 0; i < k; ++i) {
    int64_t a = axes[i];
    if (a < -rank || a >= rank)
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is out of range for input " + dims_to_string(data.dims()));
    if (a < 0) a += rank;
    const size_t ax = static_cast<size_t>(a);
    if (seen[ax])
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is repeated in axes");
    seen[ax] = true;
    const int64_t step = steps[i], d = data.dim(a);
    if (step == 0)
      return invalid_argument(node_context(node) + ": steps must not be 0 (axis " +
                              std::to_string(a) + ")");
    // Negative values count from the end; INT64_MIN + d cannot overflow since d >= 0.
    int64_t s = starts[i] < 0 ? starts[i] + d : starts[i];
    int64_t e = ends[i] < 0 ? ends[i] + d : ends[i];
    int64_t len = 0;
    if (d > 0 && step > 0) {
      s = std::clamp<int64_t>(s, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
      len = e > s ? (e - s - 1) / step + 1 : 0;
    } else if (d > 0) {
      s = std::clamp<int64_t>(s, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
      const int64_t mag =
          step == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -step;
      len = s > e ? (s - e - 1) / mag + 1 : 0;
    }
    dims[ax] = len;
    if (len > 0) offset += s * in_strides[ax];
    // A step only matters when more than one element is taken (then |step| < d: no overflow).
    strides[ax] = len > 1 ? step * in_strides[ax] : 0;
  }
  KILN_ASSIGN_OR_RETURN(out[0], tensor_ops::new_output(node, data.dtype(), dims));
  if (out[0].numel() == 0) return Status();
  const size_t esize = dtype_size(data.dtype());
  const char* src = static_cast<const char*>(data.data()) + static_cast<size_t>(offset) * esize;
  tensor_ops::strided_copy(out[0].data(), src, dims, std::move(strides), esize);
  return Status();
}

}  // namespace kiln::cpu
