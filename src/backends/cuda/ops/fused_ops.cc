// kiln.FusedElementwise on the GPU: one generated kernel computes the node's whole program per
// element (kernels/elementwise_fused.cc), over the numpy broadcast of its inputs. The program is
// decoded and validated (cpu/ops/fused_elementwise_program.h) on the node's first run (planning at
// context creation included, so a malformed program in an engine file is an error, never a
// crash) and kept in the node's memo (node_memo.h).
#include "backends/cpu/kernel.h"
#include "backends/cpu/ops/fused_elementwise_program.h"
#include "backends/cuda/kernels/elementwise.h"
#include "backends/cuda/ops/launch.h"

namespace kiln::cuda {
namespace {

// The node's program, decoded, and the kernel steps it becomes (kept in the node's memo).
struct DecodedProgram {
  cpu::FusedProgram program;
  std::vector<kernels::FusedKernelStep> steps;
};

constexpr uint32_t kDecodedKind = 0x46450000;

Result<std::shared_ptr<const DecodedProgram>> decode(RunContext& ctx) {
  if (NodeMemo* memo = ctx.memo())
    if (std::shared_ptr<const void> v = memo->find(kDecodedKind, {}))
      return std::static_pointer_cast<const DecodedProgram>(v);
  auto d = std::make_shared<DecodedProgram>();
  KILN_ASSIGN_OR_RETURN(d->program, cpu::fused_program_decode(ctx.node()));
  for (const cpu::FusedStep& s : d->program.steps) {
    kernels::FusedKernelStep k{s.op, s.args, s.dtype, s.params};
    if (s.op == "Literal") k.attrs = {s.params[0]};  // its rank only shapes the output
    d->steps.push_back(std::move(k));
  }
  if (NodeMemo* memo = ctx.memo()) memo->put(kDecodedKind, {}, d);
  return std::shared_ptr<const DecodedProgram>(std::move(d));
}

class FusedElementwiseHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const DecodedProgram> d, decode(ctx));
    const cpu::FusedProgram& p = d->program;
    if (in.size() != p.inputs.size() || out.size() != 1)
      return invalid_argument(ctx.where() + ": takes " + std::to_string(p.inputs.size()) + " inputs and 1 output");
    for (size_t i = 0; i < in.size(); ++i)
      if (!in[i].defined() || in[i].dtype() != p.inputs[i])
        return invalid_argument(ctx.where() + ": input " + std::to_string(i) + " must be " +
                                std::string(dtype_name(p.inputs[i])));
    KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_dims(ctx, in));
    if (dims.size() < static_cast<size_t>(p.min_rank())) dims.insert(dims.begin(), p.min_rank() - dims.size(), 1);
    std::vector<EwOperand> ops;
    for (const Tensor& t : in) ops.push_back({t.data(), t.dtype(), broadcast_strides(t.dims(), dims)});
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(p.output(), dims));
    KILN_RETURN_IF_ERROR(launch_fused_elementwise(ctx, d->steps, y.data(), p.output(), dims,
                                                  contiguous_strides(dims), std::move(ops)));
    out[0] = y;
    return Status();
  }
};

}  // namespace

void register_fused_handlers(HandlerTable& t) {
  t.add(std::string(cpu::kFusedElementwiseOp), std::make_unique<FusedElementwiseHandler>());
}

}  // namespace kiln::cuda
