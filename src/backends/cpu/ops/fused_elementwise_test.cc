// kiln.FusedElementwise on the CPU: programs run as the op kernels would, and malformed programs
// (engine files are untrusted) give a Status, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/ops/fused_elementwise_program.h"

namespace kiln::cpu {
namespace {

// y = Tanh(x0 * 2 + x1) over f32 inputs [2, 3] and [3].
FusedProgram sample_program() {
  FusedProgram p;
  p.inputs = {DType::kF32, DType::kF32};
  p.steps = {{"Literal", {}, DType::kF32, {2.0, 0}},
             {"Mul", {0, 2}, DType::kF32, {}},
             {"Add", {3, 1}, DType::kF32, {}},
             {"Tanh", {4}, DType::kF32, {}}};
  return p;
}

ir::Node node_of(const FusedProgram& p) {
  ir::Node n{"fused", std::string(kFusedElementwiseOp), {}, {}, {0}};
  for (size_t i = 0; i < p.inputs.size(); ++i) n.inputs.push_back(static_cast<int>(i) + 1);
  fused_program_encode(p, &n.attrs);
  return n;
}

Status run(const ir::Node& n, std::vector<Tensor> in, Tensor* out) {
  std::vector<Tensor> outs(1);
  Status s = run_node(n, in, outs);
  if (s.ok()) *out = outs[0];
  return s;
}

Tensor f32(Dims d, std::vector<float> v) { return Tensor::from_vector<float>(DType::kF32, std::move(d), v); }

TEST(FusedElementwiseCpuTest, RunsTheProgramWithBroadcasting) {
  ir::Node n = node_of(sample_program());
  Tensor out;
  ASSERT_TRUE(run(n, {f32({2, 3}, {0, 1, 2, -1, -2, 0.5f}), f32({3}, {0.1f, 0.2f, 0.3f})}, &out).ok());
  ASSERT_EQ(out.dims(), (Dims{2, 3}));
  const float x0[] = {0, 1, 2, -1, -2, 0.5f}, x1[] = {0.1f, 0.2f, 0.3f};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out.data_as<float>()[i], std::tanh(x0[i] * 2.0f + x1[i % 3])) << i;
}

TEST(FusedElementwiseCpuTest, DecodeRoundTripsAndTextIsCanonical) {
  ir::Node n = node_of(sample_program());
  Result<FusedProgram> p = fused_program_decode(n);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(fused_program_text(*p),
            "in(f32,f32);t0=Literal[2,0]():f32;t1=Mul(x0,t0):f32;t2=Add(t1,x1):f32;t3=Tanh(t2):f32");
}

TEST(FusedElementwiseCpuTest, WrongInputDtypeIsAnError) {
  ir::Node n = node_of(sample_program());
  Tensor out;
  Tensor i32 = Tensor::from_vector<int32_t>(DType::kI32, {3}, {1, 2, 3});
  Status s = run(n, {f32({3}, {1, 2, 3}), i32}, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
}

// Each case breaks one rule of the encoding.
TEST(FusedElementwiseCpuTest, MalformedProgramsAreRejected) {
  const ir::Node good = node_of(sample_program());
  auto with = [&](auto edit) {
    ir::Node n = good;
    edit(n);
    return fused_program_decode(n).status();
  };
  auto set_ints = [](ir::Node& n, const char* name, std::vector<int64_t> v) { n.attrs.set_ints(name, std::move(v)); };
  std::vector<std::pair<std::string, Status>> cases = {
      {"missing ops", with([](ir::Node& n) { n.attrs.erase("ops"); })},
      {"ops of wrong kind", with([](ir::Node& n) { n.attrs.set_int("ops", 3); })},
      {"unknown op", with([](ir::Node& n) {
         ir::Attribute a = *n.attrs.find("ops");
         a.strings[3] = "Softmax";
         n.attrs.set("ops", a);
       })},
      {"forward reference", with([&](ir::Node& n) { set_ints(n, "args", {0, 4, 3, 1, 4}); })},
      {"negative operand", with([&](ir::Node& n) { set_ints(n, "args", {0, -1, 3, 1, 4}); })},
      {"huge operand", with([&](ir::Node& n) { set_ints(n, "args", {0, 1LL << 40, 3, 1, 4}); })},
      {"operand count past the end", with([&](ir::Node& n) { set_ints(n, "num_args", {0, 2, 2, 9}); })},
      {"negative operand count", with([&](ir::Node& n) { set_ints(n, "num_args", {0, 2, -2, 1}); })},
      {"unused operands", with([&](ir::Node& n) { set_ints(n, "args", {0, 2, 3, 1, 4, 4}); })},
      {"wrong arity", with([&](ir::Node& n) { set_ints(n, "num_args", {0, 2, 1, 2}); })},
      {"bad dtype value", with([&](ir::Node& n) { set_ints(n, "dtypes", {1, 1, 1, 200}); })},
      {"result dtype not the op's", with([&](ir::Node& n) { set_ints(n, "dtypes", {1, 1, 1, 7}); })},
      {"input dtypes of other length", with([&](ir::Node& n) { set_ints(n, "input_dtypes", {1}); })},
      {"operands of two dtypes", with([&](ir::Node& n) { set_ints(n, "input_dtypes", {1, 6}); })},
      {"too few params", with([](ir::Node& n) { n.attrs.set_floats("params", {2.0}); })},
      {"literal rank out of range", with([](ir::Node& n) { n.attrs.set_floats("params", {2.0, 99}); })},
      {"literal not exact", with([](ir::Node& n) { n.attrs.set_floats("params", {0.1, 0}); })},
      {"unused input", with([&](ir::Node& n) { set_ints(n, "args", {0, 2, 3, 3, 4}); })},
      {"output dtype attribute", with([&](ir::Node& n) { n.attrs.set_int("dtype", 7); })},
      {"omitted input", with([](ir::Node& n) { n.inputs[1] = ir::kNoValue; })},
      {"two outputs", with([](ir::Node& n) { n.outputs = {0, 5}; })},
  };
  for (const auto& [what, s] : cases) {
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << what << ": " << s.to_string();
  }
}

TEST(FusedElementwiseCpuTest, ClipIntegerBoundsMustBeExact) {
  FusedProgram p;
  p.inputs = {DType::kI8};
  p.steps = {{"Clip", {0}, DType::kI8, {-1000, 5}}};
  EXPECT_FALSE(fused_program_validate(p).ok());
  p.steps[0].params = {-std::numeric_limits<double>::infinity(), 5};
  ASSERT_TRUE(fused_program_validate(p).ok());
  // A second step so the program is a real chain: Clip then Neg.
  p.steps.push_back({"Neg", {1}, DType::kI8, {}});
  Tensor out;
  ASSERT_TRUE(run(node_of(p), {Tensor::from_vector<int8_t>(DType::kI8, {4}, {-128, 0, 5, 100})}, &out).ok());
  const int8_t want[] = {-128, 0, -5, -5};  // Neg(-128) wraps, as the unfused kernels do
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out.data_as<int8_t>()[i], want[i]) << i;
}

// Random corruption of a valid program's numbers never crashes: decode fails, or the program is
// valid and runs (or fails with a Status).
TEST(FusedElementwiseCpuTest, CorruptedProgramsNeverCrash) {
  FusedProgram p;
  p.inputs = {DType::kF32, DType::kI64, DType::kBool};
  p.steps = {{"Cast", {1}, DType::kF32, {}},
             {"Literal", {}, DType::kF32, {0.5, 1}},
             {"Mul", {0, 3}, DType::kF32, {}},
             {"Add", {5, 4}, DType::kF32, {}},
             {"Where", {2, 6, 0}, DType::kF32, {}},
             {"Clip", {7}, DType::kF32, {-1, 1}},
             {"IsInf", {8}, DType::kBool, {1, 0}}};
  ASSERT_TRUE(fused_program_validate(p).ok()) << fused_program_validate(p).to_string();
  const ir::Node good = node_of(p);
  std::vector<Tensor> in = {f32({2, 2}, {1, -2, 3, 40}), Tensor::from_vector<int64_t>(DType::kI64, {2}, {3, -7}),
                            Tensor::from_vector<uint8_t>(DType::kBool, {2, 1}, {1, 0})};
  std::mt19937 rng(42);
  const char* int_attrs[] = {"input_dtypes", "dtypes", "num_args", "args"};
  int valid = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    ir::Node n = good;
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
      const char* name = int_attrs[rng() % 4];
      std::vector<int64_t> v = n.attrs.get_ints(name);
      if (v.empty()) continue;
      const int64_t choices[] = {-1, 0, 1, 2, 3, 6, 7, 9, 10, 16, 255, 1LL << 33};
      if (rng() % 5 == 0 && v.size() > 1) v.pop_back();
      else v[rng() % v.size()] = choices[rng() % std::size(choices)];
      n.attrs.set_ints(name, v);
    }
    if (rng() % 4 == 0) n.attrs.set_floats("params", {std::nan(""), 1e300, -1, 1, 1, 0});
    Result<FusedProgram> d = fused_program_decode(n);
    if (!d.ok()) continue;
    ++valid;
    Tensor out;
    (void)run(n, in, &out);
  }
  EXPECT_GT(valid, 0);
}

}  // namespace
}  // namespace kiln::cpu
