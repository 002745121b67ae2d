// Helpers for the tensor-family kernel tests (tensor_*_test.cc): build a node, run the
// registered kernel, read values back.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/kernel.h"

namespace kiln::cpu::tensor_test {

inline ir::Node make_node(std::string op, ir::Attributes attrs = {}, int outputs = 1) {
  ir::Node n;
  n.name = "t_" + op;
  n.op = std::move(op);
  n.attrs = std::move(attrs);
  for (int i = 0; i < outputs; ++i) n.outputs.push_back(i);
  return n;
}

// Runs the registered kernel for node.op; `out` is sized to node.outputs.
inline Status run(const ir::Node& node, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  const KernelInfo* k = kernel_registry().find(node.op);
  if (!k) return not_found("no CPU kernel for " + node.op);
  out.assign(node.outputs.size(), Tensor());
  return k->fn(node, in, out);
}

// Runs a one-output node and returns the output; a failure fails the test.
inline Tensor run1(const ir::Node& node, const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  Status s = run(node, in, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return s.ok() ? out[0] : Tensor();
}

// The status of running the node (for error-path tests).
inline Status run_status(const ir::Node& node, const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  return run(node, in, out);
}

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

template <typename T>
std::vector<T> values(const Tensor& t) {
  if (!t.defined()) return {};
  const T* p = t.data_as<const T>();
  return std::vector<T>(p, p + t.numel());
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
