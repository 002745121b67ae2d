// Broadcasting arithmetic: Add Sub Mul Div Mod Pow PRelu.
//
// Integers wrap on overflow (numpy). Integer Div truncates toward zero; dividing by zero gives 0
// rather than a crash (ONNX leaves it undefined). Mod with fmod=0 follows Python (the result
// takes the divisor's sign, for floats too), with fmod=1 C's fmod; a zero divisor gives 0 for
// integers and NaN for floats. Pow's output has the base's dtype; the exponent may be any
// numeric dtype.
#include <cmath>

#include "backends/cpu/ops/elementwise_common.h"
#include "backends/cpu/ops/elementwise_ops.h"

namespace kiln::cpu {
namespace {

struct AddOp {
  template <typename T>
  T operator()(T a, T b) const {
    return wrap_add(a, b);
  }
};
struct SubOp {
  template <typename T>
  T operator()(T a, T b) const {
    return wrap_sub(a, b);
  }
};
struct MulOp {
  template <typename T>
  T operator()(T a, T b) const {
    return wrap_mul(a, b);
  }
};
struct DivOp {
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == T(0)) return T(0);
      if constexpr (std::is_signed_v<T>) {
        if (b == T(-1)) return wrap_neg(a);
      }
    }
    return static_cast<T>(a / b);
  }
};

// Python's float modulo: the remainder has the sign of the divisor.
template <typename T>
T python_fmod(T a, T b) {
  T r = std::fmod(a, b);
  if (r != T(0)) {
    if ((r < T(0)) != (b < T(0))) r += b;
  } else {
    r = std::copysign(T(0), b);
  }
  return r;
}

struct ModOp {
  bool fmod = false;
  template <typename T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      return fmod ? std::fmod(a, b) : python_fmod(a, b);
    } else {
      if (b == T(0)) return T(0);
      if constexpr (std::is_signed_v<T>) {
        if (b == T(-1)) return T(0);
        T r = static_cast<T>(a % b);
        if (!fmod && r != T(0) && ((r < T(0)) != (b < T(0)))) r = static_cast<T>(r + b);
        return r;
      } else {
        return static_cast<T>(a % b);
      }
    }
  }
};

struct PReluOp {
  template <typename T>
  T operator()(T x, T slope) const {
    return x < T(0) ? wrap_mul(slope, x) : x;
  }
};

// Elementwise binary op whose inputs and output share one dtype from `kTypes`.
template <typename Op, unsigned kTypes>
Status binary_same_type(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out,
                        Op op) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "A"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "B"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  KILN_RETURN_IF_ERROR(require_same_dtype(node, in, 0, 1));
  const Dims shapes[2] = {in[0].dims(), in[1].dims()};
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_shapes(node, shapes));
  return dispatch_dtype(node, in[0].dtype(), kTypes, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kTypes) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::empty(in[0].dtype(), dims));
      broadcast_binary<T, T, T>(in[0], in[1], y, op);
      out[0] = std::move(y);
      return Status();
    }
  });
}

template <typename Op>
Status arith_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  return binary_same_type<Op, kNumeric>(node, in, out, Op{});
}

Status mod_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  int64_t fmod = node.attrs.get_int("fmod", 0);
  if (fmod != 0 && fmod != 1)
    return invalid_argument(node_context(node) + ": fmod must be 0 or 1, got " +
                            std::to_string(fmod));
  return binary_same_type<ModOp, kNumeric>(node, in, out, ModOp{fmod == 1});
}

// Models from opset <= 6 (e.g. PyTorch exports) give a per-channel slope of shape [C] that
// numpy rules cannot broadcast to X [N, C, ...]. Like the ONNX reference, such a 1-D slope is
// laid along the axis of X with that length: axis 1 when it matches, else the only match.
Result<Tensor> prelu_slope(const ir::Node& node, const Tensor& x, const Tensor& slope) {
  const Dims shapes[2] = {x.dims(), slope.dims()};
  Result<Dims> dims = broadcast_shapes(node, shapes);
  if (dims.ok() && *dims == x.dims()) return slope;
  if (slope.rank() == 1) {
    const int64_t c = slope.dim(0);
    int64_t axis = -1, matches = 0;
    for (int64_t d = 0; d < x.rank(); ++d) matches += x.dim(d) == c;
    if (x.rank() >= 2 && x.dim(1) == c) {
      axis = 1;
    } else if (matches == 1) {
      for (int64_t d = 0; d < x.rank(); ++d)
        if (x.dim(d) == c) axis = d;
    }
    if (axis >= 0) {
      Dims sd(static_cast<size_t>(x.rank() - axis), 1);
      sd[0] = c;
      return slope.reshaped(sd);
    }
  }
  return invalid_argument(node_context(node) + ": slope of shape " + dims_to_string(slope.dims()) +
                          " cannot be broadcast to X's shape " + dims_to_string(x.dims()));
}

Status prelu_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "X"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "slope"));
  KILN_ASSIGN_OR_RETURN(Tensor slope, prelu_slope(node, in[0], in[1]));
  const Tensor args[2] = {in[0], slope};
  return binary_same_type<PReluOp, kFloats | kSignedInts>(node, args, out, PReluOp{});
}

// base^e for integers with wrapping; a negative exponent gives the truncated 1/base^|e|.
template <typename T>
T int_pow(T base, int64_t e) {
  if (e < 0) {
    if (base == T(1)) return T(1);
    if constexpr (std::is_signed_v<T>) {
      if (base == T(-1)) return (e & 1) ? T(-1) : T(1);
    }
    return T(0);
  }
  T result = T(1);
  while (e) {
    if (e & 1) result = wrap_mul(result, base);
    base = wrap_mul(base, base);
    e >>= 1;
  }
  return result;
}

template <typename T, typename E>
T pow_value(T a, E b) {
  if constexpr (std::is_floating_point_v<T>) {
    if constexpr (std::is_same_v<T, E>)
      return std::pow(a, b);
    else
      return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  } else if constexpr (std::is_integral_v<E>) {
    return int_pow(a, static_cast<int64_t>(b));
  } else {  // integer base, float exponent: exact when the exponent is integral
    double e = static_cast<double>(b);
    if (e == std::floor(e) && std::fabs(e) < 9.0e18) return int_pow(a, static_cast<int64_t>(e));
    return float_to_int<T>(std::pow(static_cast<double>(a), e));
  }
}

Status pow_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_RETURN_IF_ERROR(require_input(node, in, 0, "X"));
  KILN_RETURN_IF_ERROR(require_input(node, in, 1, "Y"));
  KILN_RETURN_IF_ERROR(require_outputs(node, out, 1));
  const Tensor& x = in[0];
  const Tensor& y = in[1];
  const Dims shapes[2] = {x.dims(), y.dims()};
  KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_shapes(node, shapes));
  constexpr unsigned kBase = kFloats | kSignedInts | kUnsignedInts;
  return dispatch_dtype(node, x.dtype(), kBase, [&]<typename T>() -> Status {
    if constexpr ((dtype_class<T>() & kBase) == 0) {
      return internal_error("unreachable dtype");
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor r, Tensor::empty(x.dtype(), dims));
      if (y.dtype() == x.dtype()) {
        // Common float fast paths for a scalar exponent.
        if constexpr (std::is_floating_point_v<T>) {
          if (y.numel() == 1 && dims == x.dims()) {
            T e = *y.data_as<const T>();
            if (e == T(2)) {
              parallel_map(x.data_as<const T>(), r.data_as<T>(), x.numel(),
                           [](T v) { return v * v; });
              out[0] = std::move(r);
              return Status();
            }
            if (e == T(0.5)) {
              parallel_map(x.data_as<const T>(), r.data_as<T>(), x.numel(),
                           [](T v) { return std::sqrt(v); });
              out[0] = std::move(r);
              return Status();
            }
          }
        }
        broadcast_binary<T, T, T>(x, y, r, [](T a, T b) { return pow_value(a, b); });
      } else {
        // Mixed dtypes: any exponent dtype is dispatched and read as its own type.
        KILN_RETURN_IF_ERROR(dispatch_dtype(node, y.dtype(), kBase, [&]<typename E>() -> Status {
          if constexpr ((dtype_class<E>() & kBase) == 0) {
            return internal_error("unreachable dtype");
          } else {
            broadcast_binary<T, E, T>(x, y, r, [](T a, E b) { return pow_value(a, b); });
            return Status();
          }
        }));
      }
      out[0] = std::move(r);
      return Status();
    }
  });
}

}  // namespace

void register_arith_ops(KernelRegistry& r) {
  r.add("Add", &arith_kernel<AddOp>);
  r.add("Sub", &arith_kernel<SubOp>);
  r.add("Mul", &arith_kernel<MulOp>);
  r.add("Div", &arith_kernel<DivOp>);
  r.add("Mod", &mod_kernel);
  r.add("Pow", &pow_kernel);
  r.add("PRelu", &prelu_kernel);
}

}  // namespace kiln::cpu
