// Bug: constant folding ran every all-constant node on the CPU and only then looked at the size
// of its result (64 MiB at most is kept). A 200-byte model with ConstantOfShape([20000, 20000])
// made `kiln build` allocate and zero 1.6 GB to throw it away; [1e6, 1e6] made the build fail.
// Folding now caps allocations at its size limit (core/alloc_limit.h) and keeps such nodes.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/alloc_limit.h"
#include "kiln/builder.h"
#include "kiln/engine.h"
#include "onnx/test_util.h"

namespace kiln {
namespace {

namespace ot = onnx::testing;

// ConstantOfShape(initializer shape) -> Shape -> output: the big tensor is only measured.
std::string constant_of_shape_model(const std::vector<int64_t>& shape) {
  ::onnx::ModelProto m = ot::make_model(17);
  ot::add_output(m, "n");
  ot::add_initializer_i64(m, "shape", {static_cast<int64_t>(shape.size())}, shape);
  ot::add_node(m, "ConstantOfShape", {"shape"}, {"big"}, "cos");
  ot::add_node(m, "Shape", {"big"}, {"n"}, "shape_of");
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

// Peak resident memory of this process since the last reset, in KiB; -1 if unavailable.
long peak_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  return static_cast<bool>(f.flush());
}

TEST(FoldHugeConstantAllocationTest, FoldingNeverAllocatesPastItsLimit) {
  std::string model = constant_of_shape_model({20000, 20000});  // 1.6 GB of f32
  if (!reset_peak_rss() || peak_rss_kib() < 0) GTEST_SKIP() << "cannot reset or read VmHWM";
  const long before = peak_rss_kib();
  Result<std::vector<uint8_t>> engine = build_engine_from_bytes(model, "", BuildOptions{});
  const long grown_mib = (peak_rss_kib() - before) / 1024;
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  EXPECT_LT(grown_mib, 256) << "building grew the peak resident memory by " << grown_mib << " MiB";
}

TEST(FoldHugeConstantAllocationTest, TooLargeToEverAllocateStillBuilds) {
  // 4e12 bytes: past any allocation. The node is kept; running it fails with a clear error.
  Result<std::vector<uint8_t>> bytes =
      build_engine_from_bytes(constant_of_shape_model({1'000'000, 1'000'000}), "", BuildOptions{});
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  auto engine = Engine::load_from_memory(std::move(bytes).value());
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  EXPECT_EQ((*engine)->info().op_histogram.count("ConstantOfShape"), 1u);
  auto out = (*engine)->run({});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted) << out.status().to_string();
}

TEST(AllocationLimitTest, ScopesNestAndRecordRefusals) {
  EXPECT_TRUE(Tensor::empty(DType::kF32, {1024}).ok());
  {
    ScopedAllocationLimit outer(1 << 20);
    EXPECT_TRUE(Tensor::empty(DType::kF32, {1024}).ok());
    {
      ScopedAllocationLimit inner(1024);
      Result<Tensor> t = Tensor::empty(DType::kF32, {1024});
      ASSERT_FALSE(t.ok());
      EXPECT_EQ(t.status().code(), StatusCode::kResourceExhausted);
      EXPECT_NE(t.status().message().find("allocation limit of 1024 bytes"), std::string::npos)
          << t.status().to_string();
      EXPECT_TRUE(inner.refused());
    }
    EXPECT_FALSE(outer.refused());
    EXPECT_TRUE(Tensor::empty(DType::kF32, {1024}).ok());
  }
  EXPECT_TRUE(Tensor::empty(DType::kF32, {1 << 20}).ok());
}

}  // namespace
}  // namespace kiln
