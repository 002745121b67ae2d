#include "compare.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>

#include "core/half.h"

namespace kiln::cli {
namespace {

std::string num(long double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.7Lg", v);
  return buf;
}

std::string short_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// Reads element i of a tensor stored as T into Acc (double, or long double for 64-bit ints so
// they compare exactly).
template <typename T>
struct Loader {
  using Acc = std::conditional_t<std::is_integral_v<T> && sizeof(T) == 8, long double, double>;
  const T* p;
  Acc operator()(int64_t i) const { return static_cast<Acc>(p[i]); }
};

struct F16Loader {
  using Acc = double;
  const uint16_t* p;
  Acc operator()(int64_t i) const { return f16_to_f32(p[i]); }
};

struct BF16Loader {
  using Acc = double;
  const uint16_t* p;
  Acc operator()(int64_t i) const { return bf16_to_f32(p[i]); }
};

template <typename L>
void compare_with(const L& a_at, const L& b_at, int64_t n, const Tolerance& tol, CompareResult* r,
                  int64_t* worst, long double* worst_a, long double* worst_b,
                  double* worst_allowed) {
  using Acc = typename L::Acc;
  double worst_excess = -1;
  for (int64_t i = 0; i < n; ++i) {
    Acc a = a_at(i), b = b_at(i);
    bool a_nan = std::isnan(a), b_nan = std::isnan(b);
    if (a_nan && b_nan) continue;
    if (!a_nan && !b_nan && a == b) continue;  // also inf == inf
    // Past here a != b. A NaN or an infinity on either side is then a mismatch whatever the
    // tolerance (numpy.allclose's rule); `allowed` would be NaN or inf for those.
    bool non_finite = a_nan || b_nan || std::isinf(a) || std::isinf(b);
    double allowed = non_finite ? 0 : tol.atol + tol.rtol * static_cast<double>(std::fabs(b));
    double diff = non_finite ? std::numeric_limits<double>::infinity()
                             : static_cast<double>(std::fabs(a - b));
    if (!non_finite) {
      if (diff > r->max_abs_err) r->max_abs_err = diff;
      if (b != 0) {
        double rel = diff / static_cast<double>(std::fabs(b));
        if (rel > r->max_rel_err) r->max_rel_err = rel;
      }
    }
    if (diff > allowed) {
      ++r->mismatches;
      double excess = diff - allowed;
      if (excess > worst_excess) {
        worst_excess = excess;
        *worst = i;
        *worst_a = a;
        *worst_b = b;
        *worst_allowed = allowed;
      }
    }
  }
}

}  // namespace

Dims unravel_index(int64_t flat, const Dims& dims) {
  Dims idx(dims.size(), 0);
  for (size_t d = dims.size(); d-- > 0;) {
    if (dims[d] <= 0) continue;
    idx[d] = flat % dims[d];
    flat /= dims[d];
  }
  return idx;
}

CompareResult compare_tensors(const Tensor& actual, const Tensor& expected, const Tolerance& tol) {
  CompareResult r;
  if (actual.dtype() != expected.dtype()) {
    r.ok = false;
    r.message = "dtype " + std::string(dtype_name(actual.dtype())) + ", expected " +
                std::string(dtype_name(expected.dtype()));
    return r;
  }
  if (actual.dims() != expected.dims()) {
    r.ok = false;
    r.message =
        "shape " + dims_to_string(actual.dims()) + ", expected " + dims_to_string(expected.dims());
    return r;
  }
  int64_t n = actual.numel();
  r.numel = n;
  int64_t worst = -1;
  long double wa = 0, wb = 0;
  double allowed = 0;
  auto run = [&](const auto& la, const auto& lb) {
    compare_with(la, lb, n, tol, &r, &worst, &wa, &wb, &allowed);
  };
  const void* pa = actual.data();
  const void* pb = expected.data();
  switch (actual.dtype()) {
#define KILN_CMP_CASE(dt, T)                                                         \
  case dt:                                                                           \
    run(Loader<T>{static_cast<const T*>(pa)}, Loader<T>{static_cast<const T*>(pb)}); \
    break;
    KILN_CMP_CASE(DType::kF32, float)
    KILN_CMP_CASE(DType::kF64, double)
    KILN_CMP_CASE(DType::kI8, int8_t)
    KILN_CMP_CASE(DType::kI16, int16_t)
    KILN_CMP_CASE(DType::kI32, int32_t)
    KILN_CMP_CASE(DType::kI64, int64_t)
    KILN_CMP_CASE(DType::kU8, uint8_t)
    KILN_CMP_CASE(DType::kU16, uint16_t)
    KILN_CMP_CASE(DType::kU32, uint32_t)
    KILN_CMP_CASE(DType::kU64, uint64_t)
    KILN_CMP_CASE(DType::kBool, uint8_t)
#undef KILN_CMP_CASE
    case DType::kF16:
      run(F16Loader{static_cast<const uint16_t*>(pa)}, F16Loader{static_cast<const uint16_t*>(pb)});
      break;
    case DType::kBF16:
      run(BF16Loader{static_cast<const uint16_t*>(pa)},
          BF16Loader{static_cast<const uint16_t*>(pb)});
      break;
    default:
      r.ok = false;
      r.message = "cannot compare tensors of dtype " + std::string(dtype_name(actual.dtype()));
      return r;
  }
  if (r.mismatches == 0) return r;
  r.ok = false;
  r.worst_index = unravel_index(worst, actual.dims());
  std::string why;
  if (std::isnan(wa) || std::isnan(wb))
    why = "NaN where the other is not";
  else if (std::isinf(wa) || std::isinf(wb))
    why = "infinities must match exactly";
  else
    why = "abs err " + num(std::fabs(wa - wb)) + " > allowed " + short_num(allowed);
  r.message = std::to_string(r.mismatches) + " of " + std::to_string(n) +
              " elements differ (rtol=" + short_num(tol.rtol) + ", atol=" + short_num(tol.atol) +
              "); worst at " + dims_to_string(r.worst_index) + ": got " + num(wa) + ", expected " +
              num(wb) + " (" + why + ")";
  return r;
}

}  // namespace kiln::cli
