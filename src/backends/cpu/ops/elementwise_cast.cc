// Cast(to): every pair of kiln's dtypes, half types included (registered native_half).
//
// Rules: float -> int truncates toward zero (NaN -> 0; see float_to_int for out-of-range values);
// int -> int wraps to the target width; anything -> bool is `!= 0` (NaN is true); bool -> x is
// 0 or 1; to f16/bf16 rounds to nearest even (f64 and i64 sources pass through f32 first, so a
// value can round twice).
#include <cstring>

#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/elementwise_ops.h"
#include "core/half.h"

namespace kiln::cpu {
namespace {

// Storage types for the 16-bit floats, distinct from uint16_t.
struct F16 {
  uint16_t bits;
};
struct BF16 {
  uint16_t bits;
};
// Bools are read as bytes: tensors may come from untrusted data.
struct Bool8 {
  uint8_t byte;
};

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, F16> || std::is_same_v<T, BF16>;

// Any element as the widest plain C++ value that represents it exactly.
template <typename S>
auto plain(S v) {
  if constexpr (std::is_same_v<S, F16>)
    return f16_to_f32(v.bits);
  else if constexpr (std::is_same_v<S, BF16>)
    return bf16_to_f32(v.bits);
  else if constexpr (std::is_same_v<S, Bool8>)
    return static_cast<uint8_t>(v.byte != 0);
  else
    return v;
}

template <typename D, typename S>
D convert(S v) {
  auto p = plain(v);
  using P = decltype(p);
  if constexpr (std::is_same_v<D, Bool8>) {
    return Bool8{static_cast<uint8_t>(p != P(0))};
  } else if constexpr (std::is_same_v<D, F16>) {
    return F16{f32_to_f16(static_cast<float>(p))};
  } else if constexpr (std::is_same_v<D, BF16>) {
    return BF16{f32_to_bf16(static_cast<float>(p))};
  } else if constexpr (std::is_floating_point_v<P> && std::is_integral_v<D>) {
    return float_to_int<D>(static_cast<double>(p));
  } else {
    return static_cast<D>(p);
  }
}

// Calls fn.template operator()<T>() with T the storage type of any kiln dtype.
template <typename Fn>
Status dispatch_storage(const ir::Node& node, DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32:
      return fn.template operator()<float>();
    case DType::kF64:
      return fn.template operator()<double>();
    case DType::kF16:
      return fn.template operator()<F16>();
    case DType::kBF16:
      return fn.template operator()<BF16>();
    case DType::kI8:
      return fn.template operator()<int8_t>();
    case DType::kI16:
      return fn.template operator()<int16_t>();
    case DType::kI32:
      return fn.template operator()<int32_t>();
    case DType::kI64:
      return fn.template operator()<int64_t>();
    case DType::kU8:
      return fn.template operator()<uint8_t>();
    case DType::kU16:
      return fn.template operator()<uint16_t>();
    case DType::kU32:
      return fn.template operator()<uint32_t>();
    case DType::kU64:
      return fn.template operator()<uint64_t>();
    case DType::kBool:
      return fn.template operator()<Bool8>();
    default:
      return unsupported(node_context(node) + ": cannot cast dtype " +
                         std::string(dtype_name(dtype)) + " (value " +
                         std::to_string(static_cast<int>(dtype)) + ")");
  }
}

Status cast_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "input"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  if (!node.attrs.has("to"))
    return invalid_argument(node_context(node) + ": attribute 'to' is required");
  const int64_t to_raw = node.attrs.get_int("to", 0);
  if (to_raw < 0 || to_raw > 255 || !dtype_valid(static_cast<uint8_t>(to_raw)) || to_raw == 0)
    return unsupported(node_context(node) + ": cannot cast to ONNX dtype " +
                       std::to_string(to_raw) +
                       "; kiln supports f32 f64 f16 bf16 i8..i64 "
                       "u8..u64 bool");
  const DType to = static_cast<DType>(to_raw);
  const Tensor& x = in[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(to, x.dims()));
  if (to == x.dtype()) {
    if (y.nbytes()) std::memcpy(y.data(), x.data(), y.nbytes());
    out[0] = std::move(y);
    return Status();
  }
  KILN_RETURN_IF_ERROR(dispatch_storage(node, x.dtype(), [&]<typename S>() -> Status {
    return dispatch_storage(node, to, [&]<typename D>() -> Status {
      if constexpr (!std::is_same_v<S, D>) {
        parallel_map(x.data_as<const S>(), y.data_as<D>(), x.numel(),
                     [](S v) { return convert<D>(v); });
      }
      return Status();
    });
  }));
  out[0] = std::move(y);
  return Status();
}

}  // namespace

void register_cast_op(KernelRegistry& r) { r.add("Cast", &cast_kernel, /*native_half=*/true); }

}  // namespace kiln::cpu
