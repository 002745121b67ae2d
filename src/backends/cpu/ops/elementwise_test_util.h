// Helpers for the elementwise and reduction kernel tests: build a node, run the registered
// kernel, make tensors and read values back.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/kernel.h"

namespace kiln::cpu::ew_test {

inline ir::Node make_node(std::string op, ir::Attributes attrs = {}, int outputs = 1) {
  ir::Node n;
  n.name = "t_" + op;
  n.op = std::move(op);
  n.attrs = std::move(attrs);
  for (int i = 0; i < outputs; ++i) n.outputs.push_back(i);
  return n;
}

inline Status run(const ir::Node& node, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  const KernelInfo* k = kernel_registry().find(node.op);
  if (!k) return not_found("no CPU kernel for " + node.op);
  out.assign(node.outputs.size(), Tensor());
  return k->fn(node, in, out);
}

// Runs a node and returns output `i`; a failure fails the test.
inline Tensor run1(const ir::Node& node, const std::vector<Tensor>& in, size_t i = 0) {
  std::vector<Tensor> out;
  Status s = run(node, in, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return s.ok() ? out[i] : Tensor();
}

inline Status run_status(const ir::Node& node, const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  return run(node, in, out);
}

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

// All values of a tensor whose C++ element type is T (bool tensors: T = uint8_t).
template <typename T>
std::vector<T> values(const Tensor& t) {
  if (!t.defined()) return {};
  const T* p = t.data_as<const T>();
  return std::vector<T>(p, p + t.numel());
}

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
