// kiln.FusedElementwise on the CPU: the reference semantics of a fused program. Each step runs
// as the ordinary CPU kernel of its op (through run_node, so half-precision intermediates are
// rounded to their dtype between steps exactly as the unfused graph rounds them), on temporaries
// released after their last use.
#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel.h"
#include "backends/cpu/ops/elementwise_ops.h"
#include "backends/cpu/ops/fused_elementwise_program.h"

namespace kiln::cpu {
namespace {

// The one-node graph form of a step (its canonical op and attributes); Clip's bounds become
// constant inputs in `extra`.
Result<ir::Node> step_node(const ir::Node& fused, size_t s, const FusedStep& st, DType operand,
                           std::vector<Tensor>* extra) {
  ir::Node n;
  n.name = fused.name + "#" + std::to_string(s);
  n.op = st.op;
  n.outputs = {0};
  if (st.op == "Gelu:tanh") {
    n.op = "Gelu";
    n.attrs.set_string("approximate", "tanh");
  } else if (st.op == "Mod" || st.op == "Mod:fmod") {
    n.op = "Mod";
    n.attrs.set_int("fmod", st.op == "Mod:fmod" ? 1 : 0);
  } else if (st.op == "LeakyRelu" || st.op == "Elu") {
    n.attrs.set_float("alpha", st.params[0]);
  } else if (st.op == "Selu") {
    n.attrs.set_float("alpha", st.params[0]);
    n.attrs.set_float("gamma", st.params[1]);
  } else if (st.op == "HardSigmoid") {
    n.attrs.set_float("alpha", st.params[0]);
    n.attrs.set_float("beta", st.params[1]);
  } else if (st.op == "IsInf") {
    n.attrs.set_int("detect_positive", st.params[0] != 0);
    n.attrs.set_int("detect_negative", st.params[1] != 0);
  } else if (st.op == "Cast") {
    n.attrs.set_int("to", static_cast<int64_t>(st.dtype));
  } else if (st.op == "Clip") {
    for (double b : st.params) {
      if (std::isinf(b) && fused_type_class(operand) != kFuseFloat) {
        extra->push_back(Tensor());  // omitted: the integer type's limit
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Tensor t, fused_scalar_tensor(operand, b, 0));
      extra->push_back(std::move(t));
    }
  }
  return n;
}

Status fused_elementwise_kernel(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  KILN_ASSIGN_OR_RETURN(FusedProgram p, fused_program_decode(node));
  if (in.size() != p.inputs.size() || out.size() != 1)
    return invalid_argument(node_context(node) + ": takes " + std::to_string(p.inputs.size()) + " inputs and 1 output");
  for (size_t i = 0; i < in.size(); ++i)
    if (!in[i].defined() || in[i].dtype() != p.inputs[i])
      return invalid_argument(node_context(node) + ": input " + std::to_string(i) + " must be " +
                              std::string(dtype_name(p.inputs[i])) +
                              (in[i].defined() ? ", got " + std::string(dtype_name(in[i].dtype())) : ""));
  const size_t ni = in.size();
  std::vector<size_t> last_use(ni + p.steps.size(), 0);
  for (size_t s = 0; s < p.steps.size(); ++s)
    for (int a : p.steps[s].args) last_use[static_cast<size_t>(a)] = s;
  std::vector<Tensor> vals(in.begin(), in.end());
  vals.resize(ni + p.steps.size());
  std::vector<Tensor> step_in, step_out(1), extra;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const FusedStep& st = p.steps[s];
    const std::string where = node_context(node) + " step " + std::to_string(s) + " (" + st.op + ")";
    if (st.op == "Literal") {
      Result<Tensor> t = fused_scalar_tensor(st.dtype, st.params[0], static_cast<int>(st.params[1]));
      if (!t.ok()) return t.status().with_context(where);
      vals[ni + s] = std::move(t).value();
      continue;
    }
    step_in.clear();
    extra.clear();
    for (int a : st.args) step_in.push_back(vals[static_cast<size_t>(a)]);
    KILN_ASSIGN_OR_RETURN(ir::Node sub, step_node(node, s, st, step_in[0].dtype(), &extra));
    step_in.insert(step_in.end(), extra.begin(), extra.end());
    sub.inputs.assign(step_in.size(), 0);
    step_out[0] = Tensor();
    Status run = run_node(sub, step_in, step_out);
    if (!run.ok()) return run.with_context(where);
    if (!step_out[0].defined() || step_out[0].dtype() != st.dtype)
      return internal_error(where + ": the step's kernel gave " +
                            (step_out[0].defined() ? std::string(dtype_name(step_out[0].dtype())) : "nothing") +
                            ", the program says " + std::string(dtype_name(st.dtype)));
    vals[ni + s] = std::move(step_out[0]);
    for (int a : st.args)
      if (static_cast<size_t>(a) >= ni && last_use[static_cast<size_t>(a)] == s) vals[static_cast<size_t>(a)] = Tensor();
  }
  // Every input and step reaches the last step, so its shape is the broadcast of them all.
  out[0] = std::move(vals.back());
  return Status();
}

}  // namespace

void register_fused_elementwise_op(KernelRegistry& r) {
  r.add(std::string(kFusedElementwiseOp), &fused_elementwise_kernel, /*native_half=*/true);
}

}  // namespace kiln::cpu
