#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"
#include "tools/conformance/conformance.h"

namespace kiln::conformance {

Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::kF32: return {1e-3, 1e-5};
    case DType::kF64: return {1e-3, 1e-7};
    case DType::kF16: return {1e-2, 1e-3};
    case DType::kBF16: return {2e-2, 1e-2};
    default: return {0, 0};  // integers and bool compare exactly
  }
}

namespace {

double element(const Tensor& t, int64_t i) {
  const void* p = t.data();
  switch (t.dtype()) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF64: return static_cast<const double*>(p)[i];
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kI8: return static_cast<const int8_t*>(p)[i];
    case DType::kI16: return static_cast<const int16_t*>(p)[i];
    case DType::kI32: return static_cast<const int32_t*>(p)[i];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case DType::kU8: return static_cast<const uint8_t*>(p)[i];
    case DType::kU16: return static_cast<const uint16_t*>(p)[i];
    case DType::kU32: return static_cast<const uint32_t*>(p)[i];
    case DType::kU64: return static_cast<double>(static_cast<const uint64_t*>(p)[i]);
    case DType::kBool: return static_cast<const uint8_t*>(p)[i] ? 1 : 0;
    default: return 0;
  }
}

}  // namespace

Status compare_tensors(const Tensor& got, const Tensor& want, const std::string& what, Tolerance tol,
                       double* max_abs_err, double* max_rel_err) {
  if (got.dtype() != want.dtype())
    return mismatch(what + ": dtype " + std::string(dtype_name(got.dtype())) + ", expected " +
                    std::string(dtype_name(want.dtype())));
  if (got.dims() != want.dims())
    return mismatch(what + ": shape " + dims_to_string(got.dims()) + ", expected " + dims_to_string(want.dims()));
  if (got.device().type != DeviceType::kCpu) return internal_error(what + ": compare needs host tensors");
  const bool exact_ints = want.dtype() == DType::kI64 || want.dtype() == DType::kU64;
  double worst_abs = 0, worst_rel = 0, worst_excess = 0;
  int64_t worst_at = -1;
  for (int64_t i = 0; i < want.numel(); ++i) {
    if (exact_ints) {  // doubles cannot hold every 64-bit integer: compare the bits
      if (std::memcmp(static_cast<const char*>(got.data()) + 8 * i,
                      static_cast<const char*>(want.data()) + 8 * i, 8) != 0) {
        worst_at = i;
        worst_excess = 1;
        worst_abs = std::max(worst_abs, std::fabs(element(got, i) - element(want, i)));
        break;
      }
      continue;
    }
    double a = element(got, i), b = element(want, i);
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) && std::isnan(b)) continue;
      worst_at = i;
      worst_excess = std::numeric_limits<double>::infinity();
      break;
    }
    if (std::isinf(a) || std::isinf(b)) {
      if (a == b) continue;
      worst_at = i;
      worst_excess = std::numeric_limits<double>::infinity();
      break;
    }
    double err = std::fabs(a - b);
    worst_abs = std::max(worst_abs, err);
    if (b != 0) worst_rel = std::max(worst_rel, err / std::fabs(b));
    double excess = err - (tol.atol + tol.rtol * std::fabs(b));
    if (excess > worst_excess) {
      worst_excess = excess;
      worst_at = i;
    }
  }
  if (max_abs_err) *max_abs_err = worst_abs;
  if (max_rel_err) *max_rel_err = worst_rel;
  if (worst_at >= 0 && worst_excess > 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, ": element %lld is %.9g, expected %.9g (rtol %g, atol %g)",
                  static_cast<long long>(worst_at), element(got, worst_at), element(want, worst_at), tol.rtol,
                  tol.atol);
    return mismatch(what + buf);
  }
  return Status();
}

}  // namespace kiln::conformance
