// kiln bench's pieces: statistics, input shapes and values, the measuring loop.
#include <gtest/gtest.h>

#include <cstring>

#include "bench_inputs.h"
#include "bench_runner.h"
#include "bench_stats.h"
#include "kiln/builder.h"

namespace kiln::cli {
namespace {

TEST(BenchStatsTest, PercentilesAreNearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(percentile_sorted(v, 0), 1);
  EXPECT_EQ(percentile_sorted(v, 50), 50);
  EXPECT_EQ(percentile_sorted(v, 90), 90);
  EXPECT_EQ(percentile_sorted(v, 99), 99);
  EXPECT_EQ(percentile_sorted(v, 100), 100);
  std::vector<double> ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(percentile_sorted(ten, 90), 9);
  EXPECT_EQ(percentile_sorted(ten, 99), 10);
  EXPECT_EQ(percentile_sorted({}, 50), 0);
}

TEST(BenchStatsTest, SummaryOfUnsortedSamples) {
  LatencySummary s = summarize_latencies({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(s.min_ms, 1);
  EXPECT_EQ(s.max_ms, 4);
  EXPECT_DOUBLE_EQ(s.mean_ms, 2.5);
  EXPECT_DOUBLE_EQ(s.median_ms, 2.5);
  EXPECT_EQ(s.p90_ms, 4);
  EXPECT_NEAR(s.stddev_ms, 1.2909944, 1e-6);
  LatencySummary one = summarize_latencies({7});
  EXPECT_EQ(one.median_ms, 7);
  EXPECT_EQ(one.stddev_ms, 0);
  EXPECT_EQ(summarize_latencies({}).count, 0);
}

BindingInfo binding(const std::string& name, DType dt, Dims min, Dims opt, Dims max) {
  BindingInfo b;
  b.name = name;
  b.dtype = dt;
  b.min = std::move(min);
  b.opt = std::move(opt);
  b.max = std::move(max);
  return b;
}

TEST(BenchInputsTest, ShapesFromProfilesBatchAndShapeFlags) {
  std::vector<BindingInfo> in = {binding("x", DType::kF32, {1, 16}, {4, 16}, {64, 16}),
                                 binding("ids", DType::kI64, {2, 8}, {2, 8}, {2, 8})};
  Result<std::vector<Dims>> opt = bench_shapes(in, {}, 0);
  ASSERT_TRUE(opt.ok());
  EXPECT_EQ((*opt)[0], (Dims{4, 16}));
  EXPECT_EQ((*opt)[1], (Dims{2, 8}));
  // --batch only touches inputs whose first dim is dynamic.
  Result<std::vector<Dims>> b = bench_shapes(in, {}, 9);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[0], (Dims{9, 16}));
  EXPECT_EQ((*b)[1], (Dims{2, 8}));
  Result<std::vector<Dims>> s = bench_shapes(in, {"x:7x16"}, 9);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)[0], (Dims{7, 16}));
}

TEST(BenchInputsTest, BadShapeFlagsAreRejectedWithTheReason) {
  std::vector<BindingInfo> in = {binding("x", DType::kF32, {1, 16}, {4, 16}, {64, 16})};
  auto msg = [&](std::vector<std::string> shapes, int64_t batch) {
    Result<std::vector<Dims>> r = bench_shapes(in, shapes, batch);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(msg({"y:1x16"}, 0).find("inputs are 'x'"), std::string::npos);
  EXPECT_NE(msg({"x:1x16:2x16:3x16"}, 0).find("NAME:DIMS"), std::string::npos);
  EXPECT_NE(msg({"x:1x16", "x:2x16"}, 0).find("more than once"), std::string::npos);
  EXPECT_NE(msg({"x"}, 0).find("--shape"), std::string::npos);
  std::vector<BindingInfo> fixed = {binding("x", DType::kF32, {2, 16}, {2, 16}, {2, 16})};
  Result<std::vector<Dims>> r = bench_shapes(fixed, {}, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no input has a dynamic first dim"), std::string::npos);
}

TEST(BenchInputsTest, RandomInputsAreDeterministicAndInRange) {
  std::vector<BindingInfo> in = {
      binding("x", DType::kF32, {}, {}, {}), binding("ids", DType::kI64, {}, {}, {}),
      binding("h", DType::kF16, {}, {}, {}), binding("m", DType::kBool, {}, {}, {})};
  std::vector<Dims> shapes = {{3, 100}, {50}, {8}, {2, 2}};
  Result<std::vector<Tensor>> a = random_inputs(in, shapes, 7);
  Result<std::vector<Tensor>> b = random_inputs(in, shapes, 7);
  Result<std::vector<Tensor>> c = random_inputs(in, shapes, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ((*a)[i].dims(), shapes[i]);
    EXPECT_EQ((*a)[i].dtype(), in[i].dtype);
    EXPECT_EQ(std::memcmp((*a)[i].data(), (*b)[i].data(), (*a)[i].nbytes()), 0);
  }
  EXPECT_NE(std::memcmp((*a)[0].data(), (*c)[0].data(), (*a)[0].nbytes()), 0);
  bool any_nonzero = false;
  for (int64_t k = 0; k < (*a)[0].numel(); ++k) {
    float v = (*a)[0].data_as<float>()[k];
    EXPECT_TRUE(v >= -1.0f && v < 1.0f);
    any_nonzero |= v != 0;
  }
  EXPECT_TRUE(any_nonzero);
  int ones = 0;
  for (int64_t k = 0; k < 50; ++k) {
    int64_t v = (*a)[1].data_as<int64_t>()[k];
    EXPECT_TRUE(v == 0 || v == 1);
    ones += v == 1;
  }
  EXPECT_GT(ones, 0);
  EXPECT_LT(ones, 50);
  EXPECT_FALSE(random_inputs(in, {{1}}, 0).ok());
}

std::shared_ptr<Engine> example_engine() {
  BuildOptions o;
  o.shapes.push_back(ShapeProfile{"x", {1, 16}, {4, 16}, {64, 16}});
  Result<std::vector<uint8_t>> bytes =
      build_engine(KILN_SOURCE_DIR "/examples/tiny_classifier/model.onnx", o);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  if (!bytes.ok()) return nullptr;
  Result<std::shared_ptr<Engine>> e = Engine::load_from_memory(std::move(bytes).value());
  EXPECT_TRUE(e.ok()) << e.status().to_string();
  return e.ok() ? *e : nullptr;
}

TEST(BenchRunnerTest, MeasuresAtLeastTheIterationsOnOneContext) {
  std::shared_ptr<Engine> engine = example_engine();
  ASSERT_TRUE(engine);
  Result<std::vector<Tensor>> in = random_inputs(engine->inputs(), {{4, 16}}, 0);
  ASSERT_TRUE(in.ok());
  BenchPlan plan;
  plan.warmup = 3;
  plan.iterations = 40;
  plan.min_time_s = 0;
  int reports = 0;
  Result<BenchMeasurement> m =
      bench_measure(*engine, *in, RunOptions{}, plan, [&](std::string_view, double) { ++reports; });
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->latencies_ms.size(), 40u);  // one thread stops exactly at the target
  EXPECT_GT(m->wall_s, 0);
  EXPECT_NEAR(m->throughput_per_s, 40 / m->wall_s, 1e-6 * m->throughput_per_s);
  for (double ms : m->latencies_ms) EXPECT_GT(ms, 0);
  EngineStats s = engine->stats();
  EXPECT_EQ(s.calls, 43u);
  EXPECT_EQ(s.contexts_created, 1u);
  EXPECT_EQ(s.contexts_reused, 42u);
}

TEST(BenchRunnerTest, ThreadsShareOneEngineAndMinTimeIsHonoured) {
  std::shared_ptr<Engine> engine = example_engine();
  ASSERT_TRUE(engine);
  Result<std::vector<Tensor>> in = random_inputs(engine->inputs(), {{4, 16}}, 0);
  ASSERT_TRUE(in.ok());
  RuntimeSettings graphs;
  graphs.cuda_graph_strategy = CudaGraphStrategy::kWholeGraphCapture;
  RunOptions options;
  options.settings = &graphs;
  BenchPlan plan;
  plan.warmup = 2;
  plan.iterations = 10;
  plan.min_time_s = 0.2;
  plan.threads = 4;
  Result<BenchMeasurement> m = bench_measure(*engine, *in, options, plan, nullptr);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_GE(m->latencies_ms.size(), 10u);
  EXPECT_GE(m->wall_s, 0.2);
  EngineStats s = engine->stats();
  EXPECT_EQ(s.calls, 8 + m->latencies_ms.size());
  EXPECT_EQ(s.contexts_created, 1u);
  ASSERT_EQ(s.calls_per_context.size(), 1u);
  EXPECT_NE(s.calls_per_context.begin()->first.find("whole_graph_capture"), std::string::npos);
}

TEST(BenchRunnerTest, AFailingCallStopsEveryThreadWithItsStatus) {
  std::shared_ptr<Engine> engine = example_engine();
  ASSERT_TRUE(engine);
  Result<std::vector<Tensor>> in = random_inputs(engine->inputs(), {{4, 15}}, 0);  // wrong dim
  ASSERT_TRUE(in.ok());
  BenchPlan plan;
  plan.threads = 3;
  Result<BenchMeasurement> m = bench_measure(*engine, *in, RunOptions{}, plan, nullptr);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("bench thread"), std::string::npos);
}

}  // namespace
}  // namespace kiln::cli
