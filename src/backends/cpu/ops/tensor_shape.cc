// Shape, Size and the ops that only relabel dims: Reshape, Flatten, Squeeze, Unsqueeze,
// Identity, Dropout (inference).
#include <algorithm>
#include <string>

#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"
#include "core/half.h"

namespace kiln::cpu {

using tensor_ops::need_outputs;
using tensor_ops::new_output;
using tensor_ops::optional_input;
using tensor_ops::required_input;
using tensor_ops::view_or_copy;

namespace {

// Normalises `axes` against `rank` ([-rank, rank-1]) and rejects duplicates.
Result<std::vector<int64_t>> normalize_axes(const ir::Node& node, std::vector<int64_t> axes,
                                            int64_t rank) {
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank)
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is out of range for rank " + std::to_string(rank));
    if (a < 0) a += rank;
    if (seen[static_cast<size_t>(a)])
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is repeated in axes");
    seen[static_cast<size_t>(a)] = true;
  }
  return axes;
}

// Dropout's ratio (default 0.5) as a double; any float dtype.
Result<double> read_ratio(const ir::Node& node, const Tensor& t) {
  if (!t.defined()) return 0.5;
  if (t.numel() != 1)
    return invalid_argument(node_context(node) + ": ratio must be one value, got shape " +
                            dims_to_string(t.dims()));
  switch (t.dtype()) {
    case DType::kF32:
      return double{*t.data_as<const float>()};
    case DType::kF64:
      return *t.data_as<const double>();
    case DType::kF16:
      return double{f16_to_f32(*t.data_as<const uint16_t>())};
    case DType::kBF16:
      return double{bf16_to_f32(*t.data_as<const uint16_t>())};
    default:
      return invalid_argument(node_context(node) + ": ratio must be a float, got " +
                              std::string(dtype_name(t.dtype())));
  }
}

}  // namespace

Status shape_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  const int64_t rank = data.rank();
  auto clamp = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  const int64_t start = clamp(node.attrs.get_int("start", 0));
  const int64_t end = clamp(node.attrs.get_int("end", rank));
  const int64_t n = std::max<int64_t>(0, end - start);
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, DType::kI64, {n}));
  std::copy_n(data.dims().begin() + start, n, out[0].data_as<int64_t>());
  return Status();
}

Status size_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(out[0], new_output(node, DType::kI64, {}));
  *out[0].data_as<int64_t>() = data.numel();
  return Status();
}

Status reshape_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor shape_t, required_input(node, in, 1, "shape"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, read_int_list(node, shape_t, "shape"));
  const bool allow_zero = node.attrs.get_int("allowzero", 0) != 0;
  const std::string target = dims_to_string(shape);
  Dims dims(shape.size());
  int64_t infer = -1;
  bool has_zero = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t v = shape[i];
    if (v == -1) {
      if (infer >= 0)
        return invalid_argument(node_context(node) + ": shape " + target + " has more than one -1");
      infer = static_cast<int64_t>(i);
      dims[i] = 1;
    } else if (v == 0 && !allow_zero) {
      if (static_cast<int64_t>(i) >= data.rank())
        return invalid_argument(node_context(node) + ": shape " + target + " has 0 at index " +
                                std::to_string(i) + " (copy the input dim) but the input " +
                                dims_to_string(data.dims()) + " has rank " +
                                std::to_string(data.rank()));
      dims[i] = data.dim(static_cast<int64_t>(i));
    } else if (v < 0) {
      return invalid_argument(node_context(node) + ": shape " + target +
                              " has a negative dimension other than -1");
    } else {
      has_zero |= v == 0;
      dims[i] = v;
    }
  }
  if (allow_zero && has_zero && infer >= 0)
    return invalid_argument(node_context(node) + ": shape " + target +
                            " has both 0 and -1, which allowzero=1 forbids");
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, dims, "shape"));
  const int64_t known = dims_numel(dims);
  if (infer >= 0) {
    if (known == 0 || data.numel() % known != 0)
      return invalid_argument(node_context(node) + ": cannot reshape input " +
                              dims_to_string(data.dims()) + " to " + target +
                              ": the -1 dimension cannot be inferred");
    dims[static_cast<size_t>(infer)] = data.numel() / known;
  } else if (known != data.numel()) {
    return invalid_argument(node_context(node) + ": cannot reshape input " +
                            dims_to_string(data.dims()) + " (" + std::to_string(data.numel()) +
                            " elements) to " + target + " (" + std::to_string(known) +
                            " elements)");
  }
  KILN_ASSIGN_OR_RETURN(out[0], view_or_copy(node, data, std::move(dims)));
  return Status();
}

Status flatten_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "input"));
  const int64_t rank = data.rank();
  int64_t axis = node.attrs.get_int("axis", 1);
  if (axis < -rank || axis > rank)
    return invalid_argument(node_context(node) + ": axis " + std::to_string(axis) +
                            " is out of range [-" + std::to_string(rank) + ", " +
                            std::to_string(rank) + "] for input " + dims_to_string(data.dims()));
  if (axis < 0) axis += rank;
  const std::span<const int64_t> d(data.dims());
  Dims dims{dims_numel(d.first(static_cast<size_t>(axis))),
            dims_numel(d.subspan(static_cast<size_t>(axis)))};
  KILN_ASSIGN_OR_RETURN(out[0], view_or_copy(node, data, std::move(dims)));
  return Status();
}

Status squeeze_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  const int64_t rank = data.rank();
  std::vector<bool> drop(static_cast<size_t>(rank), false);
  const Tensor& axes_t = optional_input(in, 1);
  if (axes_t.defined()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, read_int_list(node, axes_t, "axes"));
    KILN_ASSIGN_OR_RETURN(axes, normalize_axes(node, std::move(axes), rank));
    for (int64_t a : axes) {
      if (data.dim(a) != 1)
        return invalid_argument(node_context(node) + ": cannot squeeze axis " + std::to_string(a) +
                                " of input " + dims_to_string(data.dims()) + ": its size is not 1");
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (int64_t a = 0; a < rank; ++a) drop[static_cast<size_t>(a)] = data.dim(a) == 1;
  }
  Dims dims;
  for (int64_t a = 0; a < rank; ++a)
    if (!drop[static_cast<size_t>(a)]) dims.push_back(data.dim(a));
  KILN_ASSIGN_OR_RETURN(out[0], view_or_copy(node, data, std::move(dims)));
  return Status();
}

Status unsqueeze_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor axes_t, required_input(node, in, 1, "axes"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, read_int_list(node, axes_t, "axes"));
  const int64_t rank = data.rank() + static_cast<int64_t>(axes.size());
  KILN_ASSIGN_OR_RETURN(axes, normalize_axes(node, std::move(axes), rank));
  std::vector<bool> inserted(static_cast<size_t>(rank), false);
  for (int64_t a : axes) inserted[static_cast<size_t>(a)] = true;
  Dims dims;
  for (int64_t a = 0, src = 0; a < rank; ++a)
    dims.push_back(inserted[static_cast<size_t>(a)] ? 1 : data.dim(src++));
  KILN_ASSIGN_OR_RETURN(out[0], view_or_copy(node, data, std::move(dims)));
  return Status();
}

Status identity_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "input"));
  KILN_ASSIGN_OR_RETURN(out[0], view_or_copy(node, data, data.dims()));
  return Status();
}

Status dropout_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, required_input(node, in, 0, "data"));
  const Tensor& training = optional_input(in, 2);
  if (training.defined()) {
    if (training.dtype() != DType::kBool || training.numel() != 1)
      return invalid_argument(node_context(node) + ": training_mode must be one bool, got " +
                              std::string(dtype_name(training.dtype())) + " " +
                              dims_to_string(training.dims()));
    if (*training.data_as<const uint8_t>() != 0) {
      // Training with ratio 0 drops nothing: still deterministic.
      KILN_ASSIGN_OR_RETURN(double ratio, read_ratio(node, optional_input(in, 1)));
      if (ratio != 0)
        return unsupported(node_context(node) +
                           ": training_mode=true (random dropout) is not supported; kiln runs "
                           "inference only, export the model in eval mode");
    }
  }
  KILN_ASSIGN_OR_RETURN(out[0], view_or_copy(node, data, data.dims()));
  const bool want_mask =
      out.size() > 1 && node.outputs.size() > 1 && node.outputs[1] != ir::kNoValue;
  if (want_mask) {
    KILN_ASSIGN_OR_RETURN(out[1], new_output(node, DType::kBool, data.dims()));
    std::fill_n(out[1].data_as<uint8_t>(), out[1].numel(), uint8_t{1});
  }
  return Status();
}

}  // namespace kiln::cpu
