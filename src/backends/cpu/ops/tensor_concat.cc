// Concat and Split along one axis: both are [outer, axis * inner] block copies.
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu {

using tensor_ops::need_outputs;
using tensor_ops::new_output;
using tensor_ops::optional_input;
using tensor_ops::required_input;

Status concat_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  if (in.empty()) return invalid_argument(node_context(node) + ": Concat needs at least one input");
  if (!node.attrs.has("axis"))
    return invalid_argument(node_context(node) + ": the required attribute 'axis' is missing");
  for (size_t i = 0; i < in.size(); ++i)
    KILN_RETURN_IF_ERROR(required_input(node, in, i, "inputs"));
  const Tensor& first = in[0];
  const int64_t rank = first.rank();
  if (rank == 0)
    return invalid_argument(node_context(node) + ": cannot concatenate scalars (rank 0)");
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node, node.attrs.get_int("axis", 0), rank));
  Dims dims = first.dims();
  dims[static_cast<size_t>(axis)] = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const Tensor& t = in[i];
    bool same = t.dtype() == first.dtype() && t.rank() == rank;
    for (int64_t a = 0; same && a < rank; ++a) same = a == axis || t.dim(a) == first.dim(a);
    if (!same)
      return invalid_argument(
          node_context(node) + ": input " + std::to_string(i) + " (" +
          std::string(dtype_name(t.dtype())) + " " + dims_to_string(t.dims()) +
          ") does not match input 0 (" + std::string(dtype_name(first.dtype())) + " " +
          dims_to_string(first.dims()) + ") outside axis " + std::to_string(axis));
    dims[static_cast<size_t>(axis)] += t.dim(axis);
  }
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, dims, "output shape"));
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, first.dtype(), dims));
  const std::span<const int64_t> d(dims);
  const int64_t outer = dims_numel(d.first(static_cast<size_t>(axis)));
  const int64_t inner_bytes = dims_numel(d.subspan(static_cast<size_t>(axis) + 1)) *
                              static_cast<int64_t>(dtype_size(first.dtype()));
  const int64_t out_row = dims[static_cast<size_t>(axis)] * inner_bytes;
  if (out_row == 0 || outer == 0) return Status();
  char* dst = static_cast<char*>(out[0].data());
  if (outer == 1) {
    for (const Tensor& t : in) {
      tensor_ops::copy_bytes(dst, t.data(), t.nbytes());
      dst += t.nbytes();
    }
    return Status();
  }
  const int64_t grain = std::max<int64_t>(1, (64 * 1024) / out_row);
  parallel_for(outer, grain, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      char* row = dst + o * out_row;
      for (const Tensor& t : in) {
        const int64_t n = t.dim(axis) * inner_bytes;
        if (n > 0)
          std::memcpy(row, static_cast<const char*>(t.data()) + o * n, static_cast<size_t>(n));
        row += n;
      }
    }
  });
  return Status();
}

Status split_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "input"));
  const int64_t rank = data.rank();
  if (rank == 0) return invalid_argument(node_context(node) + ": cannot split a scalar (rank 0)");
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node, node.attrs.get_int("axis", 0), rank));
  const int64_t dim = data.dim(axis);
  const int64_t n = static_cast<int64_t>(out.size());
  std::vector<int64_t> sizes;
  const Tensor& split_t = optional_input(in, 1);
  if (split_t.defined()) {
    KILN_ASSIGN_OR_RETURN(sizes, read_int_list(node, split_t, "split"));
    int64_t total = 0;
    bool valid = static_cast<int64_t>(sizes.size()) == n;
    for (int64_t s : sizes) {
      valid &= s >= 0 && s <= dim;
      total += valid ? s : 0;
    }
    if (!valid || total != dim)
      return invalid_argument(node_context(node) + ": split " + dims_to_string(sizes) +
                              " must be " + std::to_string(n) +
                              " non-negative sizes summing to the axis size " +
                              std::to_string(dim));
  } else {
    const int64_t parts = node.attrs.get_int("num_outputs", n);
    if (parts != n)
      return invalid_argument(node_context(node) + ": num_outputs is " + std::to_string(parts) +
                              " but the node has " + std::to_string(n) + " outputs");
    // Equal chunks of ceil(dim / n); the last one takes what is left.
    const int64_t chunk = (dim + n - 1) / n;
    if (chunk * (n - 1) > dim)
      return invalid_argument(node_context(node) + ": axis size " + std::to_string(dim) +
                              " cannot be split into " + std::to_string(n) + " chunks of " +
                              std::to_string(chunk) +
                              " with a smaller last one; pass explicit split sizes");
    sizes.assign(static_cast<size_t>(n), chunk);
    sizes.back() = dim - chunk * (n - 1);
  }
  const std::span<const int64_t> d(data.dims());
  const int64_t outer = dims_numel(d.first(static_cast<size_t>(axis)));
  const int64_t inner = dims_numel(d.subspan(static_cast<size_t>(axis) + 1));
  const size_t esize = dtype_size(data.dtype());
  int64_t pos = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Dims dims = data.dims();
    dims[static_cast<size_t>(axis)] = sizes[i];
    KILN_ASSIGN_OR_RETURN(out[i], new_output(node, data.dtype(), dims));
    const char* src =
        static_cast<const char*>(data.data()) + static_cast<size_t>(pos * inner) * esize;
    tensor_ops::strided_copy(out[i].data(), src, {outer, sizes[i] * inner}, {dim * inner, 1},
                             esize);
    pos += sizes[i];
  }
  return Status();
}

}  // namespace kiln::cpu
