// Helpers for the tensor-family kernel tests (tensor_*_test.cc): the kernel_test core
// (make_node, run, run1, run_status, values), tensor makers and attributes.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/ops/kernel_test_util.h"

namespace kiln::cpu::tensor_test {

using kernel_test::make_node;
using kernel_test::run;
using kernel_test::run1;
using kernel_test::run_status;
using kernel_test::values;

inline Tensor i64(Dims dims, const std::vector<int64_t>& v) {
  return Tensor::from_vector(DType::kI64, std::move(dims), v);
}
inline Tensor i32(Dims dims, const std::vector<int32_t>& v) {
  return Tensor::from_vector(DType::kI32, std::move(dims), v);
}
inline Tensor f32(Dims dims, const std::vector<float>& v) {
  return Tensor::from_vector(DType::kF32, std::move(dims), v);
}
// 0, 1, 2, ... n-1 in the given dtype (T is its C++ storage type).
template <typename T>
Tensor iota(DType dtype, Dims dims) {
  std::vector<T> v(static_cast<size_t>(dims_numel(dims)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i);
  return Tensor::from_vector(dtype, std::move(dims), v);
}

inline ir::Attributes attrs_int(const std::string& name, int64_t v) {
  ir::Attributes a;
  a.set_int(name, v);
  return a;
}
inline ir::Attributes attrs_ints(const std::string& name, std::vector<int64_t> v) {
  ir::Attributes a;
  a.set_ints(name, std::move(v));
  return a;
}

}  // namespace kiln::cpu::tensor_test
