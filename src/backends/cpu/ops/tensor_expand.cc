// Expand (bidirectional broadcast), Tile and Trilu.
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu {

using tensor_ops::need_outputs;
using tensor_ops::new_output;
using tensor_ops::required_input;

Status expand_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "input"));
  KILN_ASSIGN_OR_RETURN(Tensor shape_t, required_input(node, in, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, read_int_list(node, shape_t, "shape"));
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, shape, "shape"));
  const Dims both[2] = {data.dims(), shape};
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_shapes(node, both));
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, dims, "output shape"));
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, data.dtype(), dims));
  tensor_ops::strided_copy(out[0].data(), data.data(), dims, broadcast_strides(data.dims(), dims),
                           dtype_size(data.dtype()));
  return Status();
}

Status tile_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "input"));
  KILN_ASSIGN_OR_RETURN(Tensor repeats_t, required_input(node, in, 1, "repeats"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> repeats, read_int_list(node, repeats_t, "repeats"));
  if (static_cast<int64_t>(repeats.size()) != data.rank())
    return invalid_argument(node_context(node) + ": repeats " + dims_to_string(repeats) +
                            " must have one value per axis of input " +
                            dims_to_string(data.dims()));
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, repeats, "repeats"));
  // The output as [r0, d0, r1, d1, ...] with stride 0 along each repeat.
  const std::vector<int64_t> in_strides = contiguous_strides(data.dims());
  Dims dims, view_dims;
  std::vector<int64_t> view_strides;
  for (size_t i = 0; i < repeats.size(); ++i) {
    const int64_t d = data.dims()[i];
    view_dims.insert(view_dims.end(), {repeats[i], d});
    view_strides.insert(view_strides.end(), {0, in_strides[i]});
  }
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, view_dims, "output shape"));
  for (size_t i = 0; i < repeats.size(); ++i) dims.push_back(repeats[i] * data.dims()[i]);
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, data.dtype(), dims));
  tensor_ops::strided_copy(out[0].data(), data.data(), view_dims, std::move(view_strides),
                           dtype_size(data.dtype()));
  return Status();
}

Status trilu_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "input"));
  if (data.rank() < 2)
    return invalid_argument(node_context(node) + ": input " + dims_to_string(data.dims()) +
                            " must have rank >= 2");
  int64_t k = 0;
  if (const Tensor& t = tensor_ops::optional_input(in, 1); t.defined()) {
    KILN_ASSIGN_OR_RETURN(k, tensor_ops::read_int_scalar(node, t, "k"));
  }
  const bool upper = node.attrs.get_int("upper", 1) != 0;
  const int64_t rows = data.dim(data.rank() - 2), cols = data.dim(data.rank() - 1);
  k = std::clamp<int64_t>(k, -rows - 1, cols + 1);  // beyond that nothing changes
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, data.dtype(), data.dims()));
  const int64_t total_rows = data.numel() / std::max<int64_t>(cols, 1);
  if (cols == 0 || total_rows == 0) return Status();
  const size_t esize = dtype_size(data.dtype());
  const char* src = static_cast<const char*>(data.data());
  char* dst = static_cast<char*>(out[0].data());
  // The output starts zero-filled (Tensor::empty): copy only the kept run of each row.
  parallel_for(total_rows, std::max<int64_t>(1, 16384 / cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = r % rows;
      const int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
      const int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
      if (hi > lo)
        std::memcpy(dst + static_cast<size_t>(r * cols + lo) * esize,
                    src + static_cast<size_t>(r * cols + lo) * esize,
                    static_cast<size_t>(hi - lo) * esize);
    }
  });
  return Status();
}

}  // namespace kiln::cpu
