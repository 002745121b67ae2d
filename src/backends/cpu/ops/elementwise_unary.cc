// Unary math ops: Abs Neg Reciprocal Sqrt Exp Log Sin Cos Tanh Erf Ceil Floor Round Sign IsNaN
// IsInf Not. Integer ops wrap like numpy (Abs and Neg of the most negative value give itself).
#include "backends/cpu/ops/elementwise_unary.h"

#include <cmath>

#include "backends/cpu/ops/elementwise_ops.h"

namespace kiln::cpu {
namespace {

struct AbsOp : NoAttrs<AbsOp> {
  static constexpr unsigned kTypes = kNumeric;
  template <typename T>
  T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::fabs(x);
    else if constexpr (std::is_signed_v<T>)
      return x < 0 ? wrap_neg(x) : x;
    else
      return x;
  }
};

struct NegOp : NoAttrs<NegOp> {
  static constexpr unsigned kTypes = kFloats | kSignedInts;
  template <typename T>
  T operator()(T x) const {
    return wrap_neg(x);
  }
};

struct SignOp : NoAttrs<SignOp> {
  static constexpr unsigned kTypes = kNumeric;
  template <typename T>
  T operator()(T x) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (x != x) return x;
    }
    return static_cast<T>((T(0) < x) - (x < T(0)));
  }
};

// Float-only ops whose body is one libm call.
#define KILN_FLOAT_UNARY(Name, expr)            \
  struct Name : NoAttrs<Name> {                 \
    static constexpr unsigned kTypes = kFloats; \
    template <typename T>                       \
    T operator()(T x) const {                   \
      return expr;                              \
    }                                           \
  };
KILN_FLOAT_UNARY(ReciprocalOp, T(1) / x)
KILN_FLOAT_UNARY(SqrtOp, std::sqrt(x))
KILN_FLOAT_UNARY(ExpOp, std::exp(x))
KILN_FLOAT_UNARY(LogOp, std::log(x))
KILN_FLOAT_UNARY(SinOp, std::sin(x))
KILN_FLOAT_UNARY(CosOp, std::cos(x))
KILN_FLOAT_UNARY(TanhOp, std::tanh(x))
KILN_FLOAT_UNARY(ErfOp, std::erf(x))
KILN_FLOAT_UNARY(CeilOp, std::ceil(x))
KILN_FLOAT_UNARY(FloorOp, std::floor(x))
KILN_FLOAT_UNARY(RoundOp, std::nearbyint(x))  // default rounding mode: half to even
#undef KILN_FLOAT_UNARY

struct IsNaNOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = true;
  static Result<IsNaNOp> make(const ir::Node&) { return IsNaNOp{}; }
  template <typename T>
  bool operator()(T x) const {
    return x != x;
  }
};

struct IsInfOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = true;
  bool positive = true, negative = true;
  static Result<IsInfOp> make(const ir::Node& node) {
    return IsInfOp{node.attrs.get_int("detect_positive", 1) != 0,
                   node.attrs.get_int("detect_negative", 1) != 0};
  }
  template <typename T>
  bool operator()(T x) const {
    return std::isinf(x) && (x > 0 ? positive : negative);
  }
};

struct NotOp : NoAttrs<NotOp> {
  static constexpr unsigned kTypes = kBools;
  template <typename T>
  T operator()(T x) const {
    return !x;
  }
};

}  // namespace

void register_unary_ops(KernelRegistry& r) {
  r.add("Abs", &unary_kernel<AbsOp>);
  r.add("Neg", &unary_kernel<NegOp>);
  r.add("Sign", &unary_kernel<SignOp>);
  r.add("Reciprocal", &unary_kernel<ReciprocalOp>);
  r.add("Sqrt", &unary_kernel<SqrtOp>);
  r.add("Exp", &unary_kernel<ExpOp>);
  r.add("Log", &unary_kernel<LogOp>);
  r.add("Sin", &unary_kernel<SinOp>);
  r.add("Cos", &unary_kernel<CosOp>);
  r.add("Tanh", &unary_kernel<TanhOp>);
  r.add("Erf", &unary_kernel<ErfOp>);
  r.add("Ceil", &unary_kernel<CeilOp>);
  r.add("Floor", &unary_kernel<FloorOp>);
  r.add("Round", &unary_kernel<RoundOp>);
  r.add("IsNaN", &unary_kernel<IsNaNOp>);
  r.add("IsInf", &unary_kernel<IsInfOp>);
  r.add("Not", &unary_kernel<NotOp>);
}

}  // namespace kiln::cpu
