#include "backends/cpu/ops/elementwise_common.h"

namespace kiln::cpu {

Status require_input(const ir::Node& node, std::span<const Tensor> in, size_t i, const char* what) {
  if (i >= in.size() || !in[i].defined())
    return invalid_argument(node_context(node) + ": input " + std::to_string(i) + " (" + what +
                            ") is required but missing");
  return Status();
}

Status require_same_dtype(const ir::Node& node, std::span<const Tensor> in, size_t i, size_t j) {
  if (in[i].dtype() != in[j].dtype())
    return invalid_argument(node_context(node) + ": inputs " + std::to_string(i) + " and " +
                            std::to_string(j) + " must have the same dtype, got " +
                            std::string(dtype_name(in[i].dtype())) + " and " +
                            std::string(dtype_name(in[j].dtype())));
  return Status();
}

Status require_outputs(const ir::Node& node, std::span<Tensor> out, size_t n) {
  if (out.size() < n)
    return invalid_argument(node_context(node) + ": expects " + std::to_string(n) +
                            " output(s), the node has " + std::to_string(out.size()));
  return Status();
}

BroadcastPlan broadcast_plan(std::span<const Dims> inputs, const Dims& out) {
  const size_t n = inputs.size();
  std::vector<std::vector<int64_t>> full(n);
  for (size_t k = 0; k < n; ++k) full[k] = broadcast_strides(inputs[k], out);

  BroadcastPlan plan;
  plan.numel = dims_numel(out);
  plan.strides.assign(n, {});
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;  // contributes nothing to any offset
    bool merge = !plan.dims.empty();
    for (size_t k = 0; k < n && merge; ++k) merge = plan.strides[k].back() == full[k][d] * out[d];
    if (merge) {
      plan.dims.back() *= out[d];
      for (size_t k = 0; k < n; ++k) plan.strides[k].back() = full[k][d];
    } else {
      plan.dims.push_back(out[d]);
      for (size_t k = 0; k < n; ++k) plan.strides[k].push_back(full[k][d]);
    }
  }
  if (plan.dims.empty()) {  // a scalar, or all dims 1
    plan.dims.push_back(1);
    for (size_t k = 0; k < n; ++k) plan.strides[k].push_back(0);
  }
  return plan;
}

}  // namespace kiln::cpu
