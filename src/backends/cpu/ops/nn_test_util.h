// Helpers for the nn kernel tests: build a node, run its registered kernel, compare outputs.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/ops/kernel_test_util.h"

namespace kiln::cpu::nn_test {

using kernel_test::run;
using kernel_test::values;

// A node of `op` with `outputs` output slots (value ids 0..outputs-1).
inline ir::Node make_node(std::string op, int outputs = 1) {
  ir::Node n;
  n.name = "n";
  n.op = std::move(op);
  for (int i = 0; i < outputs; ++i) n.outputs.push_back(i);
  return n;
}

// Runs and expects success; returns output 0 (or the whole vector via `all`).
inline Tensor run_ok(const ir::Node& node, const std::vector<Tensor>& in,
                     std::vector<Tensor>* all = nullptr) {
  std::vector<Tensor> out;
  Status s = run(node, in, out);
  EXPECT_TRUE(s.ok()) << s.to_string();
  if (all) *all = out;
  return out.empty() ? Tensor() : out[0];
}

// Runs and expects a failure with `code`; returns the message.
inline std::string run_fails(const ir::Node& node, const std::vector<Tensor>& in,
                             StatusCode code = StatusCode::kInvalidArgument) {
  std::vector<Tensor> out;
  Status s = run(node, in, out);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s.to_string();
  return s.message();
}

inline Tensor f32(Dims dims, const std::vector<float>& v) {
  EXPECT_EQ(static_cast<size_t>(dims_numel(dims)), v.size());
  return Tensor::from_vector(DType::kF32, std::move(dims), v);
}
inline Tensor f64(Dims dims, const std::vector<double>& v) {
  EXPECT_EQ(static_cast<size_t>(dims_numel(dims)), v.size());
  return Tensor::from_vector(DType::kF64, std::move(dims), v);
}
inline Tensor i64(Dims dims, const std::vector<int64_t>& v) {
  EXPECT_EQ(static_cast<size_t>(dims_numel(dims)), v.size());
  return Tensor::from_vector(DType::kI64, std::move(dims), v);
}

// Values 0, 1, 2, ... scaled by `step` and shifted by `start`.
inline std::vector<float> iota(int64_t n, float start = 0, float step = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

// Uniform values in [-1, 1) from a fixed seed.
inline std::vector<float> random_values(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// Expects `t` to be f32 (or f64) with `dims` and values within atol + rtol * |expected|.
template <typename T = float>
void expect_close(const Tensor& t, const Dims& dims, const std::vector<T>& expected,
                  double atol = 1e-5, double rtol = 1e-5) {
  ASSERT_TRUE(t.defined());
  ASSERT_EQ(t.dims(), dims);
  ASSERT_EQ(static_cast<size_t>(t.numel()), expected.size());
  const std::vector<T> got = values<T>(t);
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(static_cast<double>(expected[i]))) {
      EXPECT_TRUE(std::isnan(static_cast<double>(got[i]))) << "at " << i;
      continue;
    }
    EXPECT_NEAR(got[i], expected[i], atol + rtol * std::abs(static_cast<double>(expected[i])))
        << "at flat index " << i;
  }
}

}  // namespace kiln::cpu::nn_test
