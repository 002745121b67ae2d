#include <gtest/gtest.h>

#include "backends/cpu/ops/nn_test_util.h"

namespace kiln::cpu::nn_test {
namespace {

// [2, 3, 2]; expected values below come from onnx.reference (onnx 1.23).
Tensor x() { return f32({2, 3, 2}, {0, 2.5f, 1.5f, 0.5f, 3, 2, 1, 0, 2.5f, 1.5f, 0.5f, 3}); }
Tensor per_channel(std::vector<float> v) { return f32({3}, std::move(v)); }

TEST(NnLayerNormTest, AxisOneWithStatistics) {
  ir::Node node = make_node("LayerNormalization", 3);
  node.attrs.set_int("axis", 1);
  node.attrs.set_float("epsilon", 1e-3);
  Tensor s = f32({3, 2}, {1, 2, 0.5f, -1, 1.5f, 1}), b = f32({3, 2}, {0, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f});
  std::vector<Tensor> out;
  run_ok(node, {x(), s, b}, &out);
  expect_close(out[0], {2, 3, 2},
               std::vector<float>{-1.4967405f, 1.8330679f, 0.16061208f, 1.3240857f, 2.4087834f,
                                  0.89387906f, -0.39387903f, -2.5783777f, 0.71204281f,
                                  0.22122416f, -0.8998009f, 1.9967405f});
  expect_close(out[1], {2, 1, 1}, std::vector<float>{1.5833334f, 1.4166666f});
  expect_close(out[2], {2, 1, 1}, std::vector<float>{0.94530976f, 0.94530976f});
}

TEST(NnLayerNormTest, LastAxisWithoutBiasNegativeAxis) {
  ir::Node node = make_node("LayerNormalization", 3);
  node.attrs.set_int("axis", -1);
  std::vector<Tensor> out;
  run_ok(node, {x(), f32({2}, {1, 2})}, &out);
  expect_close(out[0], {2, 3, 2},
               std::vector<float>{-0.99999672f, 1.9999934f, 0.99997997f, -1.9999599f, 0.99997997f,
                                  -1.9999599f, 0.99997997f, -1.9999599f, 0.99997997f,
                                  -1.9999599f, -0.99999672f, 1.9999934f});
  expect_close(out[1], {2, 3, 1}, std::vector<float>{1.25f, 1, 2.5f, 0.5f, 2, 1.75f});
  expect_close(out[2], {2, 3, 1},
               std::vector<float>{0.79999739f, 1.9999599f, 1.9999599f, 1.9999599f, 1.9999599f, 0.79999739f});
}

TEST(NnLayerNormTest, ScaleBroadcastsAndOutputsAreOptional) {
  // Scale of shape [1] broadcasts over the normalised dims; only Y is wanted.
  ir::Node node = make_node("LayerNormalization", 1);
  Tensor y = run_ok(node, {f32({1, 2}, {1, 3}), f32({1}, {2}), f32({1}, {0.5f})});
  expect_close(y, {1, 2}, std::vector<float>{-1.5f, 2.5f}, 1e-4);
  // Omitted Mean (kNoValue) is left alone while InvStdDev is written.
  ir::Node skip = make_node("LayerNormalization", 3);
  skip.outputs[1] = ir::kNoValue;
  std::vector<Tensor> out;
  run_ok(skip, {f32({1, 2}, {1, 3}), f32({2}, {1, 1})}, &out);
  EXPECT_FALSE(out[1].defined());
  expect_close(out[2], {1, 1}, std::vector<float>{1.0f / std::sqrt(1.0f + 1e-5f)});
}

TEST(NnLayerNormTest, DoubleWithDoubleStash) {
  ir::Node node = make_node("LayerNormalization", 2);
  node.attrs.set_int("stash_type", 11);
  node.attrs.set_float("epsilon", 0.0);
  std::vector<Tensor> out;
  run_ok(node, {f64({2}, {1, 3}), f64({2}, {1, 1})}, &out);
  expect_close<double>(out[0], {2}, {-1, 1}, 1e-12, 0);
  ASSERT_EQ(out[1].dtype(), DType::kF64);
  expect_close<double>(out[1], {1}, {2}, 1e-12, 0);
}

TEST(NnLayerNormTest, BadInputsAreErrors) {
  ir::Node node = make_node("LayerNormalization");
  run_fails(node, {x()});                                 // no scale
  run_fails(node, {x(), f32({3}, {1, 1, 1})});            // scale does not broadcast
  run_fails(node, {x(), f64({2}, {1, 1})});               // dtype
  node.attrs.set_int("axis", 3);
  run_fails(node, {x(), f32({2}, {1, 1})});
  ir::Node st = make_node("LayerNormalization");
  st.attrs.set_int("stash_type", 10);
  run_fails(st, {x(), f32({2}, {1, 1})}, StatusCode::kUnsupported);
}

TEST(NnBatchNormTest, Inference) {
  ir::Node node = make_node("BatchNormalization");
  node.attrs.set_float("epsilon", 1e-2);
  Tensor y = run_ok(node, {x(), per_channel({1, 2, 0.5f}), per_channel({0, 0.1f, 0.2f}),
                           per_channel({0.5f, 1, 1.5f}), per_channel({1, 0.5f, 2})});
  expect_close(y, {2, 3, 2},
               std::vector<float>{-0.49751857f, 1.9900743f, 1.50028f, -1.30028f, 0.72900921f,
                                  0.3763364f, 0.49751857f, -0.49751857f, 4.3008399f, 1.50028f,
                                  -0.15267281f, 0.72900921f});
}

TEST(NnBatchNormTest, TrainingModeUsesBatchStatistics) {
  ir::Node node = make_node("BatchNormalization", 3);
  node.attrs.set_float("epsilon", 1e-2);
  node.attrs.set_float("momentum", 0.8);
  node.attrs.set_int("training_mode", 1);
  std::vector<Tensor> out;
  run_ok(node, {x(), per_channel({1, 2, 0.5f}), per_channel({0, 0.1f, 0.2f}),
                per_channel({0.5f, 1, 1.5f}), per_channel({1, 0.5f, 2})},
         &out);
  expect_close(out[0], {2, 3, 2},
               std::vector<float>{-0.85113072f, 1.5806713f, 0.1f, -2.7005601f, 0.62556535f,
                                  0.13920495f, 0.1215901f, -0.85113072f, 2.9005599f, 0.1f,
                                  -0.59033567f, 0.62556535f});
  expect_close(out[1], {3}, std::vector<float>{0.575f, 1.1f, 1.625f});
  expect_close(out[2], {3}, std::vector<float>{1.009375f, 0.5f, 1.809375f});
}

TEST(NnBatchNormTest, BadParametersAreErrors) {
  ir::Node node = make_node("BatchNormalization");
  Tensor c3 = per_channel({1, 1, 1});
  run_fails(node, {x(), c3, c3, c3});                                // missing var
  run_fails(node, {x(), f32({2}, {1, 1}), c3, c3, c3});              // wrong size
  run_fails(node, {f32({3}, {1, 2, 3}), c3, c3, c3, c3});            // rank 1
  run_fails(node, {x(), i64({3}, {1, 1, 1}), c3, c3, c3}, StatusCode::kUnsupported);
}

TEST(NnInstanceNormTest, PerChannelPerSample) {
  ir::Node node = make_node("InstanceNormalization");
  node.attrs.set_float("epsilon", 1e-2);
  Tensor y = run_ok(node, {x(), per_channel({1, 2, 0.5f}), per_channel({0, 0.1f, 0.2f})});
  expect_close(y, {2, 3, 2},
               std::vector<float>{-0.99681526f, 0.99681526f, 2.0611613f, -1.8611614f, 0.69029033f,
                                  -0.29029036f, 0.98058069f, -0.98058069f, 2.0611613f,
                                  -1.8611614f, -0.29840761f, 0.69840765f});
  run_fails(node, {x(), per_channel({1, 1, 1})});
  run_fails(node, {x(), f32({2}, {1, 1}), per_channel({1, 1, 1})});
}

}  // namespace
}  // namespace kiln::cpu::nn_test
