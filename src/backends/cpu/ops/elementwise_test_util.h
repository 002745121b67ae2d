// Helpers for the elementwise and reduction kernel tests: the kernel_test core (make_node, run,
// run1, run_status, values), tensor makers and a closeness check.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/ops/kernel_test_util.h"

namespace kiln::cpu::ew_test {

using kernel_test::make_node;
using kernel_test::run;
using kernel_test::run1;
using kernel_test::run_status;
using kernel_test::values;

template <typename T>
Tensor make(DType dtype, Dims dims, const std::vector<T>& v) {
  EXPECT_EQ(static_cast<int64_t>(v.size()), dims_numel(dims)) << "test data size";
  return Tensor::from_vector(dtype, std::move(dims), v);
}
inline Tensor f32(Dims d, const std::vector<float>& v) { return make(DType::kF32, d, v); }
inline Tensor f64(Dims d, const std::vector<double>& v) { return make(DType::kF64, d, v); }
inline Tensor i8(Dims d, const std::vector<int8_t>& v) { return make(DType::kI8, d, v); }
inline Tensor u8(Dims d, const std::vector<uint8_t>& v) { return make(DType::kU8, d, v); }
inline Tensor i32(Dims d, const std::vector<int32_t>& v) { return make(DType::kI32, d, v); }
inline Tensor i64(Dims d, const std::vector<int64_t>& v) { return make(DType::kI64, d, v); }
inline Tensor u64(Dims d, const std::vector<uint64_t>& v) { return make(DType::kU64, d, v); }
inline Tensor boolean(Dims d, const std::vector<uint8_t>& v) { return make(DType::kBool, d, v); }

// Element-wise closeness with a relative + absolute tolerance; NaN matches NaN.
template <typename T>
void expect_near_all(const Tensor& t, const std::vector<T>& want, double tol = 1e-5) {
  std::vector<T> got = values<T>(t);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i] != want[i]) {
      EXPECT_NE(got[i], got[i]) << "index " << i;
    } else if (got[i] == want[i]) {
      continue;  // also covers infinities
    } else {
      double diff = static_cast<double>(got[i]) - static_cast<double>(want[i]);
      EXPECT_LE(std::abs(diff), tol * (1 + std::abs(static_cast<double>(want[i]))))
          << "index " << i << ": got " << got[i] << " want " << want[i];
    }
  }
}

inline ir::Attributes attrs_int(std::initializer_list<std::pair<const char*, int64_t>> kv) {
  ir::Attributes a;
  for (auto& [k, v] : kv) a.set_int(k, v);
  return a;
}

}  // namespace kiln::cpu::ew_test
