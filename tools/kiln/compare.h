// Comparing an engine's outputs with reference outputs, for `kiln run`.
//
// Two tensors match when they have the same dtype and shape and every element pair (a, b)
// (a = actual, b = expected) satisfies numpy.allclose's rule |a - b| <= atol + rtol * |b|, with
// NaN equal to NaN and an infinity equal only to the same infinity. Values are compared in double
// (64-bit integers exactly). Thread-safe; pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::cli {

struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-4;
};

struct CompareResult {
  bool ok = true;
  // Over all elements: max |a - b|, and max |a - b| / |b| over elements with b != 0.
  // Non-finite pairs that match (NaN/NaN, inf/inf) count as 0.
  double max_abs_err = 0;
  double max_rel_err = 0;
  int64_t mismatches = 0;  // elements outside tolerance
  int64_t numel = 0;
  // On failure: why, in one line without the output's name, e.g.
  // "3 of 1000 elements differ (rtol=0.001, atol=0.0001); worst at [0, 7]: got 1.5, expected
  // 1.2 (abs err 0.3 > allowed 0.0013)", or "shape [1, 10], expected [1, 11]".
  std::string message;
  Dims worst_index;  // the worst element's coordinates (empty when ok or on a shape mismatch)
};

CompareResult compare_tensors(const Tensor& actual, const Tensor& expected, const Tolerance& tol);

// Row-major coordinates of flat index `flat` in `dims`.
Dims unravel_index(int64_t flat, const Dims& dims);

}  // namespace kiln::cli
