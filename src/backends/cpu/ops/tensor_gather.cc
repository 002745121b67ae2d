// Gather, GatherElements and GatherND. Indices (i32 or i64, negative counting from the end) are
// checked and normalised in one sequential pass before any copy, so a bad index is an error
// naming the node and never an out-of-bounds read.
#include <cstring>
#include <string>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu {
namespace {

using tensor_ops::need_outputs;
using tensor_ops::new_output;
using tensor_ops::required_input;

Result<int64_t> index_at(const ir::Node& node, const Tensor& t, int64_t i) {
  if (t.dtype() == DType::kI64) return t.data_as<const int64_t>()[i];
  if (t.dtype() == DType::kI32) return t.data_as<const int32_t>()[i];
  return invalid_argument(node_context(node) + ": indices must be i64 or i32, got " +
                          std::string(dtype_name(t.dtype())));
}

Status index_error(const ir::Node& node, int64_t value, int64_t dim, int64_t axis) {
  return invalid_argument(node_context(node) + ": index " + std::to_string(value) +
                          " is out of range for axis " + std::to_string(axis) + " of size " +
                          std::to_string(dim) + " (valid: [" + std::to_string(-dim) + ", " +
                          std::to_string(dim - 1) + "])");
}

// Every index of `t`, checked against `dim` and made non-negative.
Result<std::vector<int64_t>> read_indices(const ir::Node& node, const Tensor& t, int64_t dim,
                                          int64_t axis) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t v, index_at(node, t, static_cast<int64_t>(i)));
    if (v < -dim || v >= dim) return index_error(node, v, dim, axis);
    out[i] = v < 0 ? v + dim : v;
  }
  return out;
}

}  // namespace

Status gather_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor indices, required_input(node, in, 1, "indices"));
  if (data.rank() == 0) return invalid_argument(node_context(node) + ": data must not be a scalar");
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalize_axis(node, node.attrs.get_int("axis", 0), data.rank()));
  const int64_t axis_dim = data.dim(axis);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_indices(node, indices, axis_dim, axis));
  const std::span<const int64_t> d(data.dims());
  Dims dims(d.begin(), d.begin() + axis);
  dims.insert(dims.end(), indices.dims().begin(), indices.dims().end());
  dims.insert(dims.end(), d.begin() + axis + 1, d.end());
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, data.dtype(), dims));
  const int64_t outer = dims_numel(d.first(static_cast<size_t>(axis)));
  const int64_t inner = dims_numel(d.subspan(static_cast<size_t>(axis) + 1));
  const int64_t n = static_cast<int64_t>(idx.size());
  if (outer * n * inner == 0) return Status();
  tensor_ops::with_element_type(dtype_size(data.dtype()), [&]<typename U>() {
    const U* src = data.data_as<const U>();
    U* dst = out[0].data_as<U>();
    const int64_t grain = std::max<int64_t>(1, 16384 / inner);
    parallel_for(outer * n, grain, [&](int64_t b, int64_t e) {
      for (int64_t item = b; item < e; ++item) {
        const int64_t o = item / n, j = item % n;
        const U* s = src + (o * axis_dim + idx[static_cast<size_t>(j)]) * inner;
        U* t = dst + item * inner;
        if (inner == 1) {
          *t = *s;
        } else {
          std::memcpy(t, s, static_cast<size_t>(inner) * sizeof(U));
        }
      }
    });
  });
  return Status();
}

Status gather_elements_kernel(const ir::Node& node, std::span<const Tensor> in,
                              std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor indices, required_input(node, in, 1, "indices"));
  const int64_t rank = data.rank();
  if (rank == 0) return invalid_argument(node_context(node) + ": data must not be a scalar");
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node, node.attrs.get_int("axis", 0), rank));
  bool fits = indices.rank() == rank;
  for (int64_t k = 0; fits && k < rank; ++k) fits = k == axis || indices.dim(k) <= data.dim(k);
  if (!fits)
    return invalid_argument(node_context(node) + ": indices " + dims_to_string(indices.dims()) +
                            " must have the rank of data " + dims_to_string(data.dims()) +
                            " and no larger dims outside axis " + std::to_string(axis));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx,
                        read_indices(node, indices, data.dim(axis), axis));
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, data.dtype(), indices.dims()));
  if (idx.empty()) return Status();
  const std::vector<int64_t> data_strides = contiguous_strides(data.dims());
  std::vector<int64_t> base_strides = data_strides;
  base_strides[static_cast<size_t>(axis)] = 0;
  const int64_t axis_stride = data_strides[static_cast<size_t>(axis)];
  const Dims& od = indices.dims();
  tensor_ops::with_element_type(dtype_size(data.dtype()), [&]<typename U>() {
    const U* src = data.data_as<const U>();
    U* dst = out[0].data_as<U>();
    parallel_for(static_cast<int64_t>(idx.size()), 16384, [&](int64_t b, int64_t e) {
      std::vector<int64_t> pos(od.size());
      int64_t base = 0;
      for (int64_t r = b, k = rank - 1; k >= 0; --k) {
        pos[static_cast<size_t>(k)] = r % od[static_cast<size_t>(k)];
        r /= od[static_cast<size_t>(k)];
        base += pos[static_cast<size_t>(k)] * base_strides[static_cast<size_t>(k)];
      }
      for (int64_t i = b; i < e; ++i) {
        dst[i] = src[base + idx[static_cast<size_t>(i)] * axis_stride];
        for (int64_t k = rank - 1; k >= 0; --k) {
          const size_t kk = static_cast<size_t>(k);
          base += base_strides[kk];
          if (++pos[kk] < od[kk]) break;
          base -= base_strides[kk] * od[kk];
          pos[kk] = 0;
        }
      }
    });
  });
  return Status();
}

Status gather_nd_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor indices, required_input(node, in, 1, "indices"));
  const int64_t r = data.rank(), q = indices.rank();
  const int64_t b = node.attrs.get_int("batch_dims", 0);
  if (r < 1 || q < 1 || b < 0 || b >= std::min(r, q))
    return invalid_argument(node_context(node) + ": batch_dims " + std::to_string(b) +
                            " must be in [0, min(rank(data), rank(indices))) for data " +
                            dims_to_string(data.dims()) + " and indices " +
                            dims_to_string(indices.dims()));
  const int64_t k = indices.dim(q - 1);
  bool valid = k >= 1 && k <= r - b;
  for (int64_t i = 0; valid && i < b; ++i) valid = data.dim(i) == indices.dim(i);
  if (!valid)
    return invalid_argument(node_context(node) + ": indices " + dims_to_string(indices.dims()) +
                            " do not fit data " + dims_to_string(data.dims()) +
                            " with batch_dims " + std::to_string(b) +
                            " (the last indices dim must be in [1, " + std::to_string(r - b) +
                            "] and the batch dims equal)");
  const std::span<const int64_t> dd(data.dims()), id(indices.dims());
  Dims dims(id.begin(), id.end() - 1);
  dims.insert(dims.end(), dd.begin() + b + k, dd.end());
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, data.dtype(), dims));
  const int64_t batches = dims_numel(dd.first(static_cast<size_t>(b)));
  const int64_t per_batch = dims_numel(id.subspan(static_cast<size_t>(b), q - 1 - b));
  const int64_t slice = dims_numel(dd.subspan(static_cast<size_t>(b + k)));
  const int64_t batch_stride = dims_numel(dd.subspan(static_cast<size_t>(b)));
  const std::vector<int64_t> strides = contiguous_strides(data.dims());
  // Source offset (in elements) of every gathered slice.
  std::vector<int64_t> offsets(static_cast<size_t>(batches * per_batch));
  for (int64_t s = 0; s < static_cast<int64_t>(offsets.size()); ++s) {
    int64_t off = (s / std::max<int64_t>(per_batch, 1)) * batch_stride;
    for (int64_t t = 0; t < k; ++t) {
      KILN_ASSIGN_OR_RETURN(int64_t v, index_at(node, indices, s * k + t));
      const int64_t dim = data.dim(b + t);
      if (v < -dim || v >= dim) return index_error(node, v, dim, b + t);
      off += (v < 0 ? v + dim : v) * strides[static_cast<size_t>(b + t)];
    }
    offsets[static_cast<size_t>(s)] = off;
  }
  if (slice == 0 || offsets.empty()) return Status();
  const size_t esize = dtype_size(data.dtype());
  const char* src = static_cast<const char*>(data.data());
  char* dst = static_cast<char*>(out[0].data());
  const size_t slice_bytes = static_cast<size_t>(slice) * esize;
  const int64_t grain = std::max<int64_t>(1, 65536 / static_cast<int64_t>(slice_bytes));
  parallel_for(static_cast<int64_t>(offsets.size()), grain, [&](int64_t lo, int64_t hi) {
    for (int64_t s = lo; s < hi; ++s)
      std::memcpy(dst + static_cast<size_t>(s) * slice_bytes,
                  src + static_cast<size_t>(offsets[static_cast<size_t>(s)]) * esize, slice_bytes);
  });
  return Status();
}

}  // namespace kiln::cpu
