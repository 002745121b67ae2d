#include <gtest/gtest.h>

#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

struct ConvCase {
  Dims x, w;
  int64_t group = 1;
  std::vector<int64_t> strides, dilations, pads;  // empty: defaults
  bool bias = true;
};

// Direct N-D convolution straight from the definition (explicit pads only).
std::vector<float> naive_conv(const ConvCase& c, const std::vector<float>& x,
                              const std::vector<float>& w, const std::vector<float>& b, Dims& od) {
  const size_t r = c.x.size() - 2;
  auto at = [](const std::vector<int64_t>& v, size_t i, int64_t def) { return v.empty() ? def : v[i]; };
  std::vector<int64_t> out(r);
  for (size_t d = 0; d < r; ++d) {
    const int64_t ek = at(c.dilations, d, 1) * (c.w[d + 2] - 1) + 1;
    out[d] = (c.x[d + 2] + at(c.pads, d, 0) + at(c.pads, d + r, 0) - ek) / at(c.strides, d, 1) + 1;
  }
  const int64_t n = c.x[0], ch = c.x[1], m = c.w[0], cg = ch / c.group, mg = m / c.group;
  od = {n, m};
  od.insert(od.end(), out.begin(), out.end());
  std::vector<float> y(static_cast<size_t>(dims_numel(od)));
  const int64_t osz = dims_numel(out), ksz = dims_numel(Dims(c.w.begin() + 2, c.w.end()));
  for (int64_t bi = 0; bi < n; ++bi)
    for (int64_t mo = 0; mo < m; ++mo)
      for (int64_t o = 0; o < osz; ++o) {
        std::vector<int64_t> oi(r);
        for (int64_t rem = o, d = r; d-- > 0;) oi[d] = rem % out[d], rem /= out[d];
        double s = b.empty() ? 0.0 : b[mo];
        for (int64_t ci = 0; ci < cg; ++ci)
          for (int64_t k = 0; k < ksz; ++k) {
            int64_t off = 0;
            bool inside = true;
            for (int64_t rem = k, d = r; d-- > 0;) {
              const int64_t kd = rem % c.w[d + 2];
              rem /= c.w[d + 2];
              const int64_t pos = oi[d] * at(c.strides, d, 1) - at(c.pads, d, 0) + kd * at(c.dilations, d, 1);
              inside = inside && pos >= 0 && pos < c.x[d + 2];
              int64_t stride = 1;
              for (size_t e = d + 1; e < r; ++e) stride *= c.x[e + 2];
              off += pos * stride;
            }
            if (!inside) continue;
            const int64_t xc = (mo / mg) * cg + ci;
            s += x[(bi * ch + xc) * dims_numel(Dims(c.x.begin() + 2, c.x.end())) + off] *
                 w[(mo * cg + ci) * ksz + k];
          }
        y[(bi * m + mo) * osz + o] = static_cast<float>(s);
      }
  return y;
}

void check_against_naive(const ConvCase& c, unsigned seed) {
  SCOPED_TRACE("x " + dims_to_string(c.x) + " w " + dims_to_string(c.w));
  std::vector<float> x = random_values(dims_numel(c.x), seed), w = random_values(dims_numel(c.w), seed + 1);
  std::vector<float> b = c.bias ? random_values(c.w[0], seed + 2) : std::vector<float>{};
  ir::Node node = make_node("Conv");
  node.attrs.set_int("group", c.group);
  if (!c.strides.empty()) node.attrs.set_ints("strides", c.strides);
  if (!c.dilations.empty()) node.attrs.set_ints("dilations", c.dilations);
  if (!c.pads.empty()) node.attrs.set_ints("pads", c.pads);
  std::vector<Tensor> in = {f32(c.x, x), f32(c.w, w)};
  if (c.bias) in.push_back(f32({c.w[0]}, b));
  Dims od;
  std::vector<float> expected = naive_conv(c, x, w, b, od);
  expect_close(run_ok(node, in), od, expected, 1e-4, 1e-4);
}

TEST(NnConvTest, MatchesDirectDefinitionAcrossPaths) {
  unsigned seed = 10;
  // 1-D grouped, strided, dilated, asymmetric pads (im2col).
  check_against_naive({{2, 4, 10}, {6, 2, 3}, 2, {2}, {2}, {1, 2}}, seed += 3);
  // 2-D with every attribute (im2col, batched over items).
  check_against_naive({{2, 3, 9, 8}, {4, 3, 3, 2}, 1, {2, 1}, {1, 2}, {1, 0, 2, 1}}, seed += 3);
  // Depthwise with channel multiplier 2 (direct path).
  check_against_naive({{1, 4, 7, 7}, {8, 1, 3, 3}, 4, {2, 2}, {}, {1, 1, 1, 1}}, seed += 3);
  check_against_naive({{2, 3, 8, 9}, {3, 1, 3, 2}, 3, {1, 3}, {2, 1}, {2, 0, 1, 3}, false}, seed += 3);
  // 1-D depthwise (direct path through the 2-D view).
  check_against_naive({{2, 3, 11}, {3, 1, 4}, 3, {}, {2}, {3, 1}}, seed += 3);
  // A single input channel feeding many outputs also takes the direct path.
  check_against_naive({{2, 1, 6, 6}, {5, 1, 2, 2}, 1, {}, {}, {}}, seed += 3);
  // 3-D grouped.
  check_against_naive({{1, 4, 5, 6, 4}, {6, 2, 2, 3, 2}, 2, {1, 2, 1}, {}, {1, 1, 1, 1, 1, 1}}, seed += 3);
  // 1x1 pointwise (no im2col), no bias.
  check_against_naive({{2, 8, 5, 5}, {16, 8, 1, 1}, 1, {}, {}, {}, false}, seed += 3);
  // Big enough for the sequential path with parallel im2col and threaded GEMM.
  check_against_naive({{1, 16, 20, 20}, {32, 16, 3, 3}, 1, {}, {}, {1, 1, 1, 1}}, seed += 3);
  // An im2col matrix above the block bound: built and multiplied in two column blocks.
  check_against_naive({{1, 128, 48, 48}, {4, 128, 3, 3}, 1, {}, {}, {1, 1, 1, 1}}, seed += 3);
  // Groups over several batches with a strided 1x1 kernel (im2col still needed).
  check_against_naive({{3, 6, 7, 7}, {9, 2, 1, 1}, 3, {2, 2}, {}, {}}, seed += 3);
}

TEST(NnConvTest, OnnxExamples) {
  // onnx test_conv_with_strides_and_asymmetric_padding and test_conv_with_autopad_same.
  ir::Node node = make_node("Conv");
  node.attrs.set_ints("kernel_shape", {3, 3});
  node.attrs.set_ints("pads", {1, 0, 1, 0});
  node.attrs.set_ints("strides", {2, 2});
  Tensor w = f32({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  expect_close(run_ok(node, {f32({1, 1, 7, 5}, iota(35)), w}), {1, 1, 4, 2},
               std::vector<float>{21, 33, 99, 117, 189, 207, 171, 183});
  ir::Node same = make_node("Conv");
  same.attrs.set_string("auto_pad", "SAME_LOWER");
  same.attrs.set_ints("strides", {2, 2});
  expect_close(run_ok(same, {f32({1, 1, 5, 5}, iota(25)), w}), {1, 1, 3, 3},
               std::vector<float>{12, 27, 24, 63, 108, 81, 72, 117, 84});
}

TEST(NnConvTest, AutoPadPutsTheOddPadWhereAsked) {
  // 6 wide, kernel 3, stride 2: output 3, one pad in total.
  Tensor x = f32({1, 1, 1, 6}, iota(6, 1)), w = f32({1, 1, 1, 3}, {1, 10, 100});
  ir::Node node = make_node("Conv");
  node.attrs.set_ints("strides", {1, 2});
  node.attrs.set_string("auto_pad", "SAME_UPPER");  // pad at the end
  expect_close(run_ok(node, {x, w}), {1, 1, 1, 3}, std::vector<float>{321, 543, 765 - 700});
  node.attrs.set_string("auto_pad", "SAME_LOWER");  // pad at the beginning
  expect_close(run_ok(node, {x, w}), {1, 1, 1, 3}, std::vector<float>{210, 432, 654});
  node.attrs.set_string("auto_pad", "VALID");
  expect_close(run_ok(node, {x, w}), {1, 1, 1, 2}, std::vector<float>{321, 543});
}

TEST(NnConvTest, DoubleAndEmptyBatch) {
  Tensor y = run_ok(make_node("Conv"), {f64({1, 1, 2, 2}, {1, 2, 3, 4}), f64({1, 1, 1, 1}, {0.5})});
  expect_close<double>(y, {1, 1, 2, 2}, {0.5, 1, 1.5, 2});
  y = run_ok(make_node("Conv"), {f32({0, 2, 3, 3}, {}), f32({4, 2, 2, 2}, iota(32))});
  EXPECT_EQ(y.dims(), (Dims{0, 4, 2, 2}));
}

TEST(NnConvTest, BadInputsAreErrors) {
  ir::Node node = make_node("Conv");
  Tensor x = f32({1, 4, 5, 5}, iota(100)), w = f32({2, 4, 3, 3}, iota(72));
  run_fails(node, {x});                                                 // no W
  run_fails(node, {f32({4, 5}, iota(20)), f32({2, 4}, iota(8))});      // rank 2
  run_fails(node, {x, f32({2, 4, 3}, iota(24))});                      // rank mismatch
  run_fails(node, {x, f32({2, 3, 3, 3}, iota(54))});                   // channels
  run_fails(node, {x, w, f32({3}, iota(3))});                          // bias size
  run_fails(node, {x, f32({2, 4, 7, 7}, iota(392))});                  // kernel > input
  run_fails(node, {x, f64({2, 4, 3, 3}, std::vector<double>(72))});    // dtype
  ir::Node g = node;
  g.attrs.set_int("group", 3);
  run_fails(g, {x, w});
  g.attrs.set_int("group", 0);
  run_fails(g, {x, w});
  ir::Node k = node;
  k.attrs.set_ints("kernel_shape", {2, 2});
  run_fails(k, {x, w});
  ir::Node s = node;
  s.attrs.set_ints("strides", {1, 0});
  run_fails(s, {x, w});
  ir::Node p = node;
  p.attrs.set_ints("pads", {1, 1});
  run_fails(p, {x, w});
  p.attrs.set_ints("pads", {-1, 0, 0, 0});
  run_fails(p, {x, w});
  ir::Node a = node;
  a.attrs.set_string("auto_pad", "SAME");
  EXPECT_NE(run_fails(a, {x, w}).find("SAME_UPPER"), std::string::npos);
  run_fails(node, {Tensor::from_vector(DType::kI32, {1, 1, 2, 2}, std::vector<int32_t>{1, 2, 3, 4}),
                   Tensor::from_vector(DType::kI32, {1, 1, 1, 1}, std::vector<int32_t>{1})},
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::cpu::nn_test
