// Transpose: a strided view of the input copied into place. strided_copy merges dims that stay
// contiguous, memcpys unit-stride runs and tiles the (input-innermost x output-innermost) plane,
// which covers the transposes transformers spend their time in ([b, s, h, d] -> [b, h, s, d]
// is a run copy, [.., m, n] -> [.., n, m] is tiled).
#include <string>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"

namespace kiln::cpu {

Status transpose_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(tensor_ops::need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, tensor_ops::required_input(node, in, 0, "data"));
  const int64_t rank = data.rank();
  std::vector<int64_t> perm;
  if (node.attrs.has("perm")) {
    perm = node.attrs.get_ints("perm");
  } else {
    for (int64_t i = rank; i-- > 0;) perm.push_back(i);
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  bool valid = static_cast<int64_t>(perm.size()) == rank;
  for (size_t i = 0; valid && i < perm.size(); ++i) {
    int64_t p = perm[i] < 0 ? perm[i] + rank : perm[i];
    valid = p >= 0 && p < rank && !seen[static_cast<size_t>(p)];
    if (valid) seen[static_cast<size_t>(p)] = true;
    perm[i] = p;
  }
  if (!valid)
    return invalid_argument(
        node_context(node) + ": perm " + dims_to_string(node.attrs.get_ints("perm")) +
        " is not a permutation of the axes of input " + dims_to_string(data.dims()));
  const std::vector<int64_t> in_strides = contiguous_strides(data.dims());
  Dims dims(static_cast<size_t>(rank));
  std::vector<int64_t> strides(static_cast<size_t>(rank));
  for (size_t i = 0; i < perm.size(); ++i) {
    dims[i] = data.dims()[static_cast<size_t>(perm[i])];
    strides[i] = in_strides[static_cast<size_t>(perm[i])];
  }
  KILN_ASSIGN_OR_RETURN(out[0], tensor_ops::new_output(node, data.dtype(), dims));
  tensor_ops::strided_copy(out[0].data(), data.data(), dims, std::move(strides),
                           dtype_size(data.dtype()));
  return Status();
}

}  // namespace kiln::cpu
