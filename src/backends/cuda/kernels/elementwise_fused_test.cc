// Fused elementwise kernels (nogpu): the program op table agrees with the CUDA statement
// templates, every op compiles inside a fused kernel for every dtype it takes (generic flat and
// strided variants, and the specialised one), and malformed programs are refused.
#include <gtest/gtest.h>

#include <limits>

#include "backends/cpu/ops/fused_elementwise_program.h"
#include "backends/cuda/kernels/bake.h"
#include "backends/cuda/kernels/elementwise.h"
#include "backends/cuda/nvrtc_test_util.h"

namespace kiln::cuda::kernels {
namespace {

constexpr int kSm = 90;
const DType kAllTypes[] = {DType::kF32, DType::kF64, DType::kF16, DType::kBF16, DType::kI8,
                           DType::kI16, DType::kI32, DType::kI64, DType::kU8,  DType::kU16,
                           DType::kU32, DType::kU64, DType::kBool};

std::vector<FusedKernelStep> kernel_steps(const cpu::FusedProgram& p) {
  std::vector<FusedKernelStep> out;
  for (const cpu::FusedStep& s : p.steps)
    out.push_back({s.op, s.args, s.dtype, s.op == "Literal" ? std::vector<double>{s.params[0]} : s.params});
  return out;
}

TEST(FusedKernelTest, ProgramOpsAgreeWithTheCudaTable) {
  for (const cpu::FusedOpInfo& op : cpu::fused_ops()) {
    if (op.name == "Literal") continue;
    const ElementwiseOpInfo* info = elementwise_op(std::string(op.name));
    ASSERT_NE(info, nullptr) << op.name;
    EXPECT_EQ(info->arity, op.arity) << op.name;
    EXPECT_EQ(info->attrs, op.params) << op.name;
    EXPECT_EQ(info->bool_result, op.bool_result) << op.name;
    if (op.types & cpu::kFuseFloat) {
      EXPECT_TRUE(info->floats) << op.name;
    }
    if (op.types & cpu::kFuseInt) {
      EXPECT_TRUE(info->ints) << op.name;
    }
    if (op.types & cpu::kFuseUint) {
      EXPECT_TRUE(info->uints) << op.name;
    }
    if (op.types & cpu::kFuseBool) {
      EXPECT_TRUE(info->bools) << op.name;
    }
  }
}

// One program chaining every op that takes dtype `t`: inputs x0, x1 of `t` and a bool x2. Ops
// with a bool result feed a Where that brings the chain back to `t`.
cpu::FusedProgram every_op_program(DType t) {
  cpu::FusedProgram p;
  p.inputs = {t, t, DType::kBool};
  const unsigned cls = cpu::fused_type_class(t);
  int cur = 0;
  auto push = [&](cpu::FusedStep s) {
    p.steps.push_back(std::move(s));
    return static_cast<int>(p.inputs.size() + p.steps.size() - 1);
  };
  const int one = push({"Literal", {}, t, {1, 0}});
  for (const cpu::FusedOpInfo& op : cpu::fused_ops()) {
    if (!(op.types & cls) || op.name == "Literal" || op.name == "Where" || op.name == "Cast") continue;
    cpu::FusedStep s{std::string(op.name), {}, op.bool_result ? DType::kBool : t, {}};
    for (int k = 0; k < op.params; ++k) s.params.push_back(cls == cpu::kFuseFloat ? 0.5 : 1);
    if (op.name == "Clip") s.params = {-std::numeric_limits<double>::infinity(), 5};
    if (op.name == "IsInf") s.params = {1, 0};
    if (op.arity == 1) s.args = {cur};
    else if (op.arity == 2) s.args = {cur, 1};
    else s.args = {cur, 1, one, 0};
    const int r = push(std::move(s));
    cur = op.bool_result ? push({"Where", {r, cur, 1}, t, {}}) : r;
  }
  // Cast out to every other dtype and back, then mix in the bool input.
  for (DType other : kAllTypes) {
    if (other == t) continue;
    const int c = push({"Cast", {cur}, other, {}});
    cur = push({"Cast", {c}, t, {}});
  }
  push({"Where", {2, cur, one}, t, {}});
  return p;
}

TEST(FusedKernelTest, EveryOpCompilesInAFusedKernelForEveryDtype) {
  std::vector<Result<KernelSource>> sources;
  for (DType t : kAllTypes) {
    cpu::FusedProgram p = every_op_program(t);
    Status valid = cpu::fused_program_validate(p);
    ASSERT_TRUE(valid.ok()) << dtype_name(t) << ": " << valid.to_string() << "\n" << cpu::fused_program_text(p);
    ElementwiseSpec spec;
    spec.op = "kiln.FusedElementwise";
    spec.inputs = p.inputs;
    spec.output = p.output();
    spec.program = kernel_steps(p);
    spec.layout = Layout::kFlat;
    spec.scalar_inputs = {false, true, false};
    sources.push_back(elementwise_source(spec));
    spec.layout = Layout::kStrided;
    spec.scalar_inputs.clear();
    spec.wide_index = true;
    Result<KernelSource> strided = elementwise_source(spec);
    sources.push_back(strided);
    if (strided.ok()) {
      StridedArgs st{};
      st.rank = 2;
      st.dims[0] = 3;
      st.dims[1] = 5;
      st.strides[0][0] = 5;
      st.strides[0][1] = 1;
      st.strides[1][1] = 1;
      st.strides[2][0] = 1;
      st.strides[3][0] = 5;
      st.strides[3][1] = 1;
      sources.push_back(bake_source(*strided, Bake{{bake_strided("st", st, 4), bake_i64("n", 15)}, 256}));
    }
  }
  testing::expect_all_compile(sources, kSm);
}

TEST(FusedKernelTest, KeysHoldTheProgram) {
  ElementwiseSpec a;
  a.op = "kiln.FusedElementwise";
  a.inputs = {DType::kF32};
  a.output = DType::kF32;
  a.program = {{"Exp", {0}, DType::kF32, {}}, {"Log", {1}, DType::kF32, {}}};
  ElementwiseSpec b = a;
  b.program[1].op = "Sqrt";
  EXPECT_NE(elementwise_key(a), elementwise_key(b));
  Result<KernelSource> sa = elementwise_source(a), sb = elementwise_source(b);
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_NE(sa->name, sb->name);
  EXPECT_EQ(elementwise_key(a), elementwise_key(ElementwiseSpec(a)));
}

TEST(FusedKernelTest, HalfStepsAreRoundedBetweenSteps) {
  std::vector<FusedKernelStep> p = {{"Exp", {0}, DType::kF16, {}}, {"Sqrt", {1}, DType::kF16, {}}};
  Result<std::string> s = fused_statement({DType::kF16}, p);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_NE(s->find("t0 = kiln_f16_to_f32(kiln_f32_to_f16(r));"), std::string::npos) << *s;
  p[0].dtype = p[1].dtype = DType::kBF16;
  s = fused_statement({DType::kBF16}, p);
  ASSERT_TRUE(s.ok());
  EXPECT_NE(s->find("t0 = kiln_bf16_to_f32(kiln_f32_to_bf16(r));"), std::string::npos) << *s;
}

TEST(FusedKernelTest, MalformedProgramsAreRefused) {
  const std::vector<DType> in = {DType::kF32};
  using P = std::vector<FusedKernelStep>;
  EXPECT_FALSE(fused_statement(in, P{}).ok());
  EXPECT_FALSE(fused_statement({}, P{{"Exp", {0}, DType::kF32, {}}}).ok());
  EXPECT_FALSE(fused_statement(in, P{{"Exp", {1}, DType::kF32, {}}}).ok());          // not defined yet
  EXPECT_FALSE(fused_statement(in, P{{"Exp", {-1}, DType::kF32, {}}}).ok());
  EXPECT_FALSE(fused_statement(in, P{{"Exp", {0}, DType::kI32, {}}}).ok());          // wrong result dtype
  EXPECT_FALSE(fused_statement(in, P{{"Less", {0, 0}, DType::kF32, {}}}).ok());      // must be bool
  EXPECT_FALSE(fused_statement(in, P{{"NoSuchOp", {0}, DType::kF32, {}}}).ok());
  EXPECT_FALSE(fused_statement(in, P{{"Literal", {0}, DType::kF32, {1}}}).ok());
  EXPECT_FALSE(fused_statement(in, P{{"LeakyRelu", {0}, DType::kF32, {}}}).ok());   // missing alpha
  EXPECT_FALSE(fused_statement(in, P{{"Exp", {0}, DType::kUndefined, {}}}).ok());
  EXPECT_TRUE(fused_statement(in, P{{"Exp", {0}, DType::kF32, {}}}).ok());
}

}  // namespace
}  // namespace kiln::cuda::kernels
