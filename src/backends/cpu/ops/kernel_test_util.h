// The core of the CPU kernel tests: build a node, run its registered kernel, read values back.
// The per-family helpers (elementwise_test_util.h, tensor_test_util.h, nn_test_util.h) bring
// these into their namespaces and add their own tensor makers and comparisons. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/cpu/kernel.h"

namespace kiln::cpu::kernel_test {

// A node "t_<op>" of `op` with `attrs` and `outputs` output slots (value ids 0..outputs-1).
inline ir::Node make_node(std::string op, ir::Attributes attrs = {}, int outputs = 1) {
  ir::Node n;
  n.name = "t_" + op;
  n.op = std::move(op);
  n.attrs = std::move(attrs);
  for (int i = 0; i < outputs; ++i) n.outputs.push_back(i);
  return n;
}

// Runs the registered kernel for node.op; `out` is sized to node.outputs. No kernel: not_found.
inline Status run(const ir::Node& node, const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  const KernelInfo* k = kernel_registry().find(node.op);
  if (!k) return not_found("no CPU kernel for " + node.op);
  out.assign(node.outputs.size(), Tensor());
  return k->fn(node, in, out);
}

// Runs a node and returns output `i`; a failure fails the test and gives an undefined tensor.
inline Tensor run1(const ir::Node& node, const std::vector<Tensor>& in, size_t i = 0) {
  std::vector<Tensor> out;
  Status s = run(node, in, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return s.ok() ? out[i] : Tensor();
}

// The status of running the node (for error-path tests).
inline Status run_status(const ir::Node& node, const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  return run(node, in, out);
}

// All values of a tensor whose C++ element type is T (bool tensors: T = uint8_t); none for an
// undefined tensor.
template <typename T>
std::vector<T> values(const Tensor& t) {
  if (!t.defined()) return {};
  const T* p = t.data_as<const T>();
  return std::vector<T>(p, p + t.numel());
}

}  // namespace kiln::cpu::kernel_test
