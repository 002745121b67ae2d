// The ops kiln imports, their ONNX schema versions, and the lowering of each to its canonical
// form. Internal to src/onnx.
#pragma once

#include <string_view>
#include <vector>

#include "onnx/lowering.h"

namespace kiln::onnx::detail {

// Rewrites `call` (an ONNX node of schema version call.version) into canonical IR nodes.
using LowerFn = Status (*)(Lowering& lx, OpCall& call);

struct OpEntry {
  std::string_view op;
  std::vector<int> since;  // since_version of each schema of the op in onnx 1.23, ascending
  int max_opset;           // last opset at which kiln imports the op
  LowerFn lower;
};

// nullptr if kiln does not import `op`.
const OpEntry* find_op(std::string_view op);
// The since_version in effect at `opset`, or 0 when the op does not exist yet at that opset.
int effective_version(const OpEntry& e, int opset);
// Finds call.op and fills call.version from call.opset; kUnsupported for an op or op version
// kiln does not import.
Result<const OpEntry*> resolve_op(OpCall& call);
// Lowers a resolved call (resolve_op first) with its op's lowering.
Status lower_node(Lowering& lx, const OpEntry& entry, OpCall& call);
// "Abs, Add, ..." for messages.
std::string supported_op_names();

// The lowerings (lower_*.cc).
Status lower_default(Lowering& lx, OpCall& call);
Status lower_binary(Lowering& lx, OpCall& call);
Status lower_prelu(Lowering& lx, OpCall& call);
Status lower_gemm(Lowering& lx, OpCall& call);
Status lower_softmax(Lowering& lx, OpCall& call);
Status lower_cast(Lowering& lx, OpCall& call);
Status lower_castlike(Lowering& lx, OpCall& call);
Status lower_clip(Lowering& lx, OpCall& call);
Status lower_concat(Lowering& lx, OpCall& call);
Status lower_constant(Lowering& lx, OpCall& call);
Status lower_selu(Lowering& lx, OpCall& call);
Status lower_dropout(Lowering& lx, OpCall& call);
Status lower_batchnorm(Lowering& lx, OpCall& call);
Status lower_pad(Lowering& lx, OpCall& call);
Status lower_reduce(Lowering& lx, OpCall& call);
Status lower_reshape(Lowering& lx, OpCall& call);
Status lower_slice(Lowering& lx, OpCall& call);
Status lower_split(Lowering& lx, OpCall& call);
Status lower_squeeze(Lowering& lx, OpCall& call);
Status lower_tile(Lowering& lx, OpCall& call);
Status lower_topk(Lowering& lx, OpCall& call);
Status lower_resize(Lowering& lx, OpCall& call);
Status lower_upsample(Lowering& lx, OpCall& call);

}  // namespace kiln::onnx::detail
