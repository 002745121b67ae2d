// Activation functions: Relu LeakyRelu Elu Selu Sigmoid HardSigmoid HardSwish Softplus Softsign
// Mish Silu Gelu. Attribute defaults are ONNX's. Formulas are written to stay finite where the
// naive form overflows (Sigmoid, Softplus for large |x|).
#include <cmath>

#include "backends/cpu/ops/elementwise_ops.h"
#include "backends/cpu/ops/elementwise_unary.h"

namespace kiln::cpu {
namespace {

template <typename T>
T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

template <typename T>
T softplus(T x) {  // log(1 + exp(x))
  return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

struct ReluOp : NoAttrs<ReluOp> {
  static constexpr unsigned kTypes = kFloats | kSignedInts;
  template <typename T>
  T operator()(T x) const {
    return x < T(0) ? T(0) : x;
  }  // NaN stays NaN
};

struct SigmoidOp : NoAttrs<SigmoidOp> {
  static constexpr unsigned kTypes = kFloats;
  template <typename T>
  T operator()(T x) const {
    return sigmoid(x);
  }
};

struct SoftplusOp : NoAttrs<SoftplusOp> {
  static constexpr unsigned kTypes = kFloats;
  template <typename T>
  T operator()(T x) const {
    return softplus(x);
  }
};

struct SoftsignOp : NoAttrs<SoftsignOp> {
  static constexpr unsigned kTypes = kFloats;
  template <typename T>
  T operator()(T x) const {
    return x / (T(1) + std::fabs(x));
  }
};

struct MishOp : NoAttrs<MishOp> {
  static constexpr unsigned kTypes = kFloats;
  template <typename T>
  T operator()(T x) const {
    return x * std::tanh(softplus(x));
  }
};

struct SiluOp : NoAttrs<SiluOp> {
  static constexpr unsigned kTypes = kFloats;
  template <typename T>
  T operator()(T x) const {
    return x * sigmoid(x);
  }
};

struct HardSwishOp : NoAttrs<HardSwishOp> {
  static constexpr unsigned kTypes = kFloats;
  template <typename T>
  T operator()(T x) const {
    T h = x / T(6) + T(0.5);
    return x * (h < T(0) ? T(0) : h > T(1) ? T(1) : h);
  }
};

// Ops with float attributes: values are kept as double and narrowed per call, so f64 inputs
// get the attribute at full precision.
struct LeakyReluOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = false;
  double alpha;
  static Result<LeakyReluOp> make(const ir::Node& n) {
    return LeakyReluOp{n.attrs.get_float("alpha", 0.01)};
  }
  template <typename T>
  T operator()(T x) const {
    return x < T(0) ? T(alpha) * x : x;
  }
};

struct EluOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = false;
  double alpha;
  static Result<EluOp> make(const ir::Node& n) { return EluOp{n.attrs.get_float("alpha", 1.0)}; }
  template <typename T>
  T operator()(T x) const {
    return x < T(0) ? T(alpha) * std::expm1(x) : x;
  }
};

struct SeluOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = false;
  double alpha, gamma;
  static Result<SeluOp> make(const ir::Node& n) {
    return SeluOp{n.attrs.get_float("alpha", 1.67326319217681884765625),
                  n.attrs.get_float("gamma", 1.05070102214813232421875)};
  }
  template <typename T>
  T operator()(T x) const {
    return x > T(0) ? T(gamma) * x : T(gamma) * (T(alpha) * std::exp(x) - T(alpha));
  }
};

struct HardSigmoidOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = false;
  double alpha, beta;
  static Result<HardSigmoidOp> make(const ir::Node& n) {
    return HardSigmoidOp{n.attrs.get_float("alpha", 0.2), n.attrs.get_float("beta", 0.5)};
  }
  template <typename T>
  T operator()(T x) const {
    T v = T(alpha) * x + T(beta);
    return v < T(0) ? T(0) : v > T(1) ? T(1) : v;
  }
};

struct GeluOp {
  static constexpr unsigned kTypes = kFloats;
  static constexpr bool kBoolOut = false;
  bool tanh_approx;
  static Result<GeluOp> make(const ir::Node& n) {
    std::string mode = n.attrs.get_string("approximate", "none");
    if (mode != "none" && mode != "tanh")
      return invalid_argument(node_context(n) + ": approximate='" + mode +
                              "' is not valid; expected none|tanh");
    return GeluOp{mode == "tanh"};
  }
  template <typename T>
  T operator()(T x) const {
    if (tanh_approx) {
      const T k = T(0.7978845608028654);  // sqrt(2 / pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
    }
    return T(0.5) * x * (T(1) + std::erf(x * T(0.7071067811865476)));
  }
};

}  // namespace

void register_activation_ops(KernelRegistry& r) {
  r.add("Relu", &unary_kernel<ReluOp>);
  r.add("Sigmoid", &unary_kernel<SigmoidOp>);
  r.add("Softplus", &unary_kernel<SoftplusOp>);
  r.add("Softsign", &unary_kernel<SoftsignOp>);
  r.add("Mish", &unary_kernel<MishOp>);
  r.add("Silu", &unary_kernel<SiluOp>);
  r.add("HardSwish", &unary_kernel<HardSwishOp>);
  r.add("LeakyRelu", &unary_kernel<LeakyReluOp>);
  r.add("Elu", &unary_kernel<EluOp>);
  r.add("Selu", &unary_kernel<SeluOp>);
  r.add("HardSigmoid", &unary_kernel<HardSigmoidOp>);
  r.add("Gelu", &unary_kernel<GeluOp>);
}

}  // namespace kiln::cpu
