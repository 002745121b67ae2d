// Pad (ONNX 19+): constant, reflect, edge and wrap modes, optional axes, negative pads (crop).
// Negative pads crop first; the other modes then reflect/extend/wrap the cropped data (as
// onnxruntime does). Each output axis gets a table output index -> input index (-1: the
// constant), so every mode is the same row loop.
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu {
namespace {

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// Input index for output index `o` along an axis of size `d` padded by `begin`/`end` (either
// may be negative), or -1 where the constant goes.
int64_t source_index(PadMode mode, int64_t o, int64_t d, int64_t begin, int64_t end) {
  const int64_t lo = std::max<int64_t>(0, -begin);          // first input index kept
  const int64_t len = d - lo - std::max<int64_t>(0, -end);  // kept input length (> 0 here)
  int64_t x = o - std::max<int64_t>(0, begin);              // index into the kept part
  if (x >= 0 && x < len) return lo + x;
  switch (mode) {
    case PadMode::kConstant:
      return -1;
    case PadMode::kEdge:
      x = std::clamp<int64_t>(x, 0, len - 1);
      break;
    case PadMode::kWrap:
      x = ((x % len) + len) % len;
      break;
    case PadMode::kReflect:
      if (len == 1) {
        x = 0;
      } else {
        const int64_t period = 2 * (len - 1);
        x = ((x % period) + period) % period;
        if (x >= len) x = period - x;
      }
      break;
  }
  return lo + x;
}

}  // namespace

Status pad_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(tensor_ops::need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor data, tensor_ops::required_input(node, in, 0, "data"));
  KILN_ASSIGN_OR_RETURN(Tensor pads_t, tensor_ops::required_input(node, in, 1, "pads"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_int_list(node, pads_t, "pads"));
  const std::string mode_name = node.attrs.get_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") {
    mode = PadMode::kConstant;
  } else if (mode_name == "reflect") {
    mode = PadMode::kReflect;
  } else if (mode_name == "edge") {
    mode = PadMode::kEdge;
  } else if (mode_name == "wrap") {
    mode = PadMode::kWrap;
  } else {
    return invalid_argument(node_context(node) + ": invalid mode '" + mode_name +
                            "'; expected constant|reflect|edge|wrap");
  }
  const int64_t rank = data.rank();
  const size_t esize = dtype_size(data.dtype());
  std::vector<int64_t> axes;
  if (const Tensor& t = tensor_ops::optional_input(in, 3); t.defined()) {
    KILN_ASSIGN_OR_RETURN(axes, read_int_list(node, t, "axes"));
  } else {
    for (int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  if (pads.size() != 2 * axes.size())
    return invalid_argument(node_context(node) + ": pads has " + std::to_string(pads.size()) +
                            " values; expected 2 per padded axis (" +
                            std::to_string(2 * axes.size()) + ") for input " +
                            dims_to_string(data.dims()));
  std::vector<int64_t> begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i];
    if (a < -rank || a >= rank)
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is out of range for input " + dims_to_string(data.dims()));
    if (a < 0) a += rank;
    if (seen[static_cast<size_t>(a)])
      return invalid_argument(node_context(node) + ": axis " + std::to_string(a) +
                              " is repeated in axes");
    seen[static_cast<size_t>(a)] = true;
    begin[static_cast<size_t>(a)] = pads[i];
    end[static_cast<size_t>(a)] = pads[i + axes.size()];
  }
  // The pad value, as raw bytes of the data's dtype (zero bytes when absent).
  uint64_t value = 0;
  if (const Tensor& t = tensor_ops::optional_input(in, 2); t.defined() && t.numel() > 0) {
    if (t.dtype() != data.dtype() || t.numel() != 1)
      return invalid_argument(node_context(node) + ": constant_value must be one " +
                              std::string(dtype_name(data.dtype())) + " value, got " +
                              std::string(dtype_name(t.dtype())) + " " + dims_to_string(t.dims()));
    std::memcpy(&value, t.data(), esize);
  }
  Dims dims(static_cast<size_t>(rank));
  std::vector<std::vector<int64_t>> maps(static_cast<size_t>(rank));
  for (size_t a = 0; a < dims.size(); ++a) {
    const int64_t d = data.dims()[a], b = begin[a], e = end[a];
    // Pads come from the model: keep every sum away from overflow.
    constexpr int64_t kLimit = int64_t{1} << 40;
    if (b < -kLimit || b > kLimit || e < -kLimit || e > kLimit || d + b + e < 0)
      return invalid_argument(node_context(node) + ": pads " + std::to_string(b) + ", " +
                              std::to_string(e) + " on axis " + std::to_string(a) + " of input " +
                              dims_to_string(data.dims()) + " give a negative or absurd size");
    dims[a] = d + b + e;
    const int64_t kept = d - std::max<int64_t>(0, -b) - std::max<int64_t>(0, -e);
    if (mode != PadMode::kConstant && kept <= 0 && dims[a] > 0)
      return invalid_argument(node_context(node) + ": cannot pad an empty axis " +
                              std::to_string(a) + " in mode " + mode_name);
  }
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, dims, "output shape"));
  KILN_ASSIGN_OR_RETURN(out[0], tensor_ops::new_output(node, data.dtype(), dims));
  if (out[0].numel() == 0) return Status();
  if (rank == 0) {
    std::memcpy(out[0].data(), data.data(), esize);
    return Status();
  }
  for (size_t a = 0; a < dims.size(); ++a) {
    maps[a].resize(static_cast<size_t>(dims[a]));
    for (int64_t o = 0; o < dims[a]; ++o)
      maps[a][static_cast<size_t>(o)] = source_index(mode, o, data.dims()[a], begin[a], end[a]);
  }
  const std::vector<int64_t> strides = contiguous_strides(data.dims());
  const size_t last = dims.size() - 1;
  const int64_t cols = dims[last];
  const int64_t rows = out[0].numel() / cols;
  // The contiguous run of the last axis that comes straight from the input.
  // (A negative end pad may also eat into the begin padding: keep within the row.)
  const int64_t run_lo = std::min(cols, std::max<int64_t>(0, begin[last]));
  const int64_t run_len = std::max<int64_t>(
      0, data.dims()[last] - std::max<int64_t>(0, -begin[last]) - std::max<int64_t>(0, -end[last]));
  tensor_ops::with_element_type(esize, [&]<typename U>() {
    U pad_value;
    std::memcpy(&pad_value, &value, sizeof(U));
    const U* src = static_cast<const U*>(data.data());
    U* dst = static_cast<U*>(out[0].data());
    const std::vector<int64_t>& col_map = maps[last];
    const int64_t grain = std::max<int64_t>(1, 16384 / cols);
    parallel_for(rows, grain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        U* row = dst + r * cols;
        int64_t off = 0;
        bool constant_row = false;
        for (int64_t rem = r, a = static_cast<int64_t>(last) - 1; a >= 0; --a) {
          const size_t ax = static_cast<size_t>(a);
          const int64_t idx = maps[ax][static_cast<size_t>(rem % dims[ax])];
          rem /= dims[ax];
          if (idx < 0) constant_row = true;
          off += idx * strides[ax];
        }
        if (constant_row) {
          std::fill(row, row + cols, pad_value);
          continue;
        }
        const U* s = src + off;
        for (int64_t c = 0; c < run_lo; ++c) {
          const int64_t i = col_map[static_cast<size_t>(c)];
          row[c] = i < 0 ? pad_value : s[i];
        }
        if (run_len > 0)
          std::memcpy(row + run_lo, s + col_map[static_cast<size_t>(run_lo)],
                      static_cast<size_t>(run_len) * sizeof(U));
        for (int64_t c = run_lo + run_len; c < cols; ++c) {
          const int64_t i = col_map[static_cast<size_t>(c)];
          row[c] = i < 0 ? pad_value : s[i];
        }
      }
    });
  });
  return Status();
}

}  // namespace kiln::cpu
