// Ops that make a tensor from a shape or a few scalars: ConstantOfShape and Range.
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "backends/cpu/dispatch.h"
#include "backends/cpu/ops/tensor_common.h"
#include "backends/cpu/ops/tensor_ops.h"
#include "platform/thread_pool.h"

namespace kiln::cpu {

Status constant_of_shape_kernel(const ir::Node& node, std::span<const Tensor> in,
                                std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(tensor_ops::need_outputs(node, out, 1));
  KILN_ASSIGN_OR_RETURN(Tensor shape_t, tensor_ops::required_input(node, in, 0, "input"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, read_int_list(node, shape_t, "input"));
  KILN_RETURN_IF_ERROR(tensor_ops::check_dims(node, dims, "shape"));
  DType dtype = DType::kF32;
  uint64_t value = 0;  // raw bytes of the fill value
  if (const ir::Attribute* a = node.attrs.find("value")) {
    if (a->kind != ir::Attribute::Kind::kTensor || !a->t.defined() || a->t.numel() != 1 ||
        !a->t.data())
      return invalid_argument(node_context(node) +
                              ": attribute 'value' must be a tensor holding one element");
    dtype = a->t.dtype();
    std::memcpy(&value, a->t.data(), dtype_size(dtype));
  }
  KILN_ASSIGN_OR_RETURN(out[0], tensor_ops::new_output(node, dtype, dims));
  if (value != 0)
    tensor_ops::fill_elements(out[0].data(), &value, dtype_size(dtype), out[0].numel());
  return Status();
}

Status range_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(tensor_ops::need_outputs(node, out, 1));
  Tensor args[3];
  const char* names[3] = {"start", "limit", "delta"};
  for (size_t i = 0; i < 3; ++i) {
    KILN_ASSIGN_OR_RETURN(args[i], tensor_ops::required_input(node, in, i, names[i]));
    if (args[i].numel() != 1 || args[i].dtype() != args[0].dtype())
      return invalid_argument(node_context(node) + ": " + names[i] + " must be one " +
                              std::string(dtype_name(args[0].dtype())) + " value, got " +
                              std::string(dtype_name(args[i].dtype())) + " " +
                              dims_to_string(args[i].dims()));
  }
  return dispatch_dtype(node, args[0].dtype(), kFloats | kSignedInts, [&]<typename T>() -> Status {
    const T start = *args[0].data_as<const T>(), limit = *args[1].data_as<const T>();
    const T delta = *args[2].data_as<const T>();
    if (delta == T(0)) return invalid_argument(node_context(node) + ": delta must not be 0");
    int64_t n = 0;
    if constexpr (std::is_floating_point_v<T>) {
      const double count = std::ceil((double(limit) - double(start)) / double(delta));
      if (!std::isfinite(count) || count > 9.0e15)
        return invalid_argument(node_context(node) + ": Range(" + std::to_string(start) + ", " +
                                std::to_string(limit) + ", " + std::to_string(delta) +
                                ") does not give a finite number of elements");
      n = count > 0 ? static_cast<int64_t>(count) : 0;
    } else {
      const __int128 span = static_cast<__int128>(limit) - start;
      if ((span > 0) == (delta > 0) && span != 0) {
        const __int128 mag = span > 0 ? span : -span;
        const __int128 step =
            delta > 0 ? static_cast<__int128>(delta) : -static_cast<__int128>(delta);
        const __int128 count = (mag - 1) / step + 1;
        if (count > (__int128{1} << 50))
          return invalid_argument(node_context(node) + ": Range(" + std::to_string(start) + ", " +
                                  std::to_string(limit) + ", " + std::to_string(delta) +
                                  ") has too many elements");
        n = static_cast<int64_t>(count);
      }
    }
    KILN_ASSIGN_OR_RETURN(out[0], tensor_ops::new_output(node, args[0].dtype(), {n}));
    T* dst = out[0].data_as<T>();
    parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        if constexpr (std::is_floating_point_v<T>) {
          dst[i] = static_cast<T>(double(start) + double(i) * double(delta));
        } else {
          // Wrapping unsigned arithmetic: i * delta may leave int64 though the sum never does.
          const uint64_t v = static_cast<uint64_t>(static_cast<int64_t>(start)) +
                             static_cast<uint64_t>(i) * static_cast<uint64_t>(delta);
          dst[i] = static_cast<T>(static_cast<int64_t>(v));
        }
      }
    });
    return Status();
  });
}

}  // namespace kiln::cpu
