#include "onnx/op_table.h"

#include <algorithm>

#include "onnx/importer.h"

namespace kiln::onnx::detail {

namespace {

// since_version lists come from onnx 1.23's schemas (onnx.defs.get_all_schemas_with_history()).
// Silu has no ONNX schema in 1.23; kiln accepts it in the default domain as x * sigmoid(x).
// Upsample is deprecated from opset 10 (use Resize).
const std::vector<OpEntry>& table() {
  static const std::vector<OpEntry> kTable = {
      {"Abs", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Add", {1, 6, 7, 13, 14}, kMaxOpset, &lower_binary},
      {"And", {1, 7}, kMaxOpset, &lower_binary},
      {"ArgMax", {1, 11, 12, 13}, kMaxOpset, &lower_default},
      {"AveragePool", {1, 7, 10, 11, 19, 22}, kMaxOpset, &lower_default},
      {"BatchNormalization", {1, 6, 7, 9, 14, 15}, kMaxOpset, &lower_batchnorm},
      {"Cast", {1, 6, 9, 13, 19, 21, 23, 24, 25, 28}, kMaxOpset, &lower_cast},
      {"CastLike", {15, 19, 21, 23, 24, 25}, kMaxOpset, &lower_castlike},
      {"Ceil", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Clip", {1, 6, 11, 12, 13}, kMaxOpset, &lower_clip},
      {"Concat", {1, 4, 11, 13}, kMaxOpset, &lower_concat},
      {"Constant", {1, 9, 11, 12, 13, 19, 21, 23, 24, 25}, kMaxOpset, &lower_constant},
      {"ConstantOfShape", {9, 20, 21, 23, 24, 25}, kMaxOpset, &lower_default},
      {"Conv", {1, 11, 22}, kMaxOpset, &lower_default},
      {"Cos", {7, 22}, kMaxOpset, &lower_default},
      {"CumSum", {11, 14}, kMaxOpset, &lower_default},
      {"Div", {1, 6, 7, 13, 14}, kMaxOpset, &lower_binary},
      {"Dropout", {1, 6, 7, 10, 12, 13, 22}, kMaxOpset, &lower_dropout},
      {"Einsum", {12, 28}, kMaxOpset, &lower_default},
      {"Elu", {1, 6, 22}, kMaxOpset, &lower_default},
      {"Equal", {1, 7, 11, 13, 19}, kMaxOpset, &lower_binary},
      {"Erf", {9, 13}, kMaxOpset, &lower_default},
      {"Exp", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Expand", {8, 13}, kMaxOpset, &lower_default},
      {"Flatten", {1, 9, 11, 13, 21, 23, 24, 25}, kMaxOpset, &lower_default},
      {"Floor", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Gather", {1, 11, 13}, kMaxOpset, &lower_default},
      {"GatherElements", {11, 13}, kMaxOpset, &lower_default},
      {"GatherND", {11, 12, 13}, kMaxOpset, &lower_default},
      {"Gelu", {20}, kMaxOpset, &lower_default},
      {"Gemm", {1, 6, 7, 9, 11, 13}, kMaxOpset, &lower_gemm},
      {"GlobalAveragePool", {1, 22}, kMaxOpset, &lower_default},
      {"GlobalMaxPool", {1, 22}, kMaxOpset, &lower_default},
      {"Greater", {1, 7, 9, 13}, kMaxOpset, &lower_binary},
      {"GreaterOrEqual", {12, 16}, kMaxOpset, &lower_default},
      {"HardSigmoid", {1, 6, 22}, kMaxOpset, &lower_default},
      {"HardSwish", {14, 22}, kMaxOpset, &lower_default},
      {"Identity", {1, 13, 14, 16, 19, 21, 23, 24, 25}, kMaxOpset, &lower_default},
      {"InstanceNormalization", {1, 6, 22}, kMaxOpset, &lower_default},
      {"IsInf", {10, 20}, kMaxOpset, &lower_default},
      {"IsNaN", {9, 13, 20}, kMaxOpset, &lower_default},
      {"LayerNormalization", {17}, kMaxOpset, &lower_default},
      {"LeakyRelu", {1, 6, 16}, kMaxOpset, &lower_default},
      {"Less", {1, 7, 9, 13}, kMaxOpset, &lower_binary},
      {"LessOrEqual", {12, 16}, kMaxOpset, &lower_default},
      {"Log", {1, 6, 13}, kMaxOpset, &lower_default},
      {"LogSoftmax", {1, 11, 13}, kMaxOpset, &lower_softmax},
      {"MatMul", {1, 9, 13}, kMaxOpset, &lower_default},
      {"Max", {1, 6, 8, 12, 13}, kMaxOpset, &lower_default},
      {"MaxPool", {1, 8, 10, 11, 12, 22}, kMaxOpset, &lower_default},
      {"Mean", {1, 6, 8, 13}, kMaxOpset, &lower_default},
      {"Min", {1, 6, 8, 12, 13}, kMaxOpset, &lower_default},
      {"Mish", {18, 22}, kMaxOpset, &lower_default},
      {"Mod", {10, 13, 28}, kMaxOpset, &lower_default},
      {"Mul", {1, 6, 7, 13, 14}, kMaxOpset, &lower_binary},
      {"Neg", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Not", {1}, kMaxOpset, &lower_default},
      {"Or", {1, 7}, kMaxOpset, &lower_binary},
      {"PRelu", {1, 6, 7, 9, 16}, kMaxOpset, &lower_prelu},
      {"Pad", {1, 2, 11, 13, 18, 19, 21, 23, 24, 25}, kMaxOpset, &lower_pad},
      {"Pow", {1, 7, 12, 13, 15}, kMaxOpset, &lower_binary},
      {"Range", {11, 27}, kMaxOpset, &lower_default},
      {"Reciprocal", {1, 6, 13}, kMaxOpset, &lower_default},
      {"ReduceL2", {1, 11, 13, 18}, kMaxOpset, &lower_reduce},
      {"ReduceMax", {1, 11, 12, 13, 18, 20}, kMaxOpset, &lower_reduce},
      {"ReduceMean", {1, 11, 13, 18}, kMaxOpset, &lower_reduce},
      {"ReduceMin", {1, 11, 12, 13, 18, 20}, kMaxOpset, &lower_reduce},
      {"ReduceProd", {1, 11, 13, 18}, kMaxOpset, &lower_reduce},
      {"ReduceSum", {1, 11, 13}, kMaxOpset, &lower_reduce},
      {"ReduceSumSquare", {1, 11, 13, 18}, kMaxOpset, &lower_reduce},
      {"Relu", {1, 6, 13, 14}, kMaxOpset, &lower_default},
      {"Reshape", {1, 5, 13, 14, 19, 21, 23, 24, 25}, kMaxOpset, &lower_reshape},
      {"Resize", {10, 11, 13, 18, 19}, kMaxOpset, &lower_resize},
      {"Round", {11, 22}, kMaxOpset, &lower_default},
      {"Selu", {1, 6, 22}, kMaxOpset, &lower_selu},
      {"Shape", {1, 13, 15, 19, 21, 23, 24, 25}, kMaxOpset, &lower_default},
      {"Sigmoid", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Sign", {9, 13}, kMaxOpset, &lower_default},
      {"Silu", {1}, kMaxOpset, &lower_default},
      {"Sin", {7, 22}, kMaxOpset, &lower_default},
      {"Size", {1, 13, 19, 21, 23, 24, 25}, kMaxOpset, &lower_default},
      {"Slice", {1, 10, 11, 13}, kMaxOpset, &lower_slice},
      {"Softmax", {1, 11, 13}, kMaxOpset, &lower_softmax},
      {"Softplus", {1, 22}, kMaxOpset, &lower_default},
      {"Softsign", {1, 22}, kMaxOpset, &lower_default},
      {"Split", {1, 2, 11, 13, 18}, kMaxOpset, &lower_split},
      {"Sqrt", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Squeeze", {1, 11, 13, 21, 23, 24, 25}, kMaxOpset, &lower_squeeze},
      {"Sub", {1, 6, 7, 13, 14}, kMaxOpset, &lower_binary},
      {"Sum", {1, 6, 8, 13}, kMaxOpset, &lower_default},
      {"Tanh", {1, 6, 13}, kMaxOpset, &lower_default},
      {"Tile", {1, 6, 13}, kMaxOpset, &lower_tile},
      {"TopK", {1, 10, 11, 24}, kMaxOpset, &lower_topk},
      {"Transpose", {1, 13, 21, 23, 24, 25}, kMaxOpset, &lower_default},
      {"Trilu", {14}, kMaxOpset, &lower_default},
      {"Unsqueeze", {1, 11, 13, 21, 23, 24, 25}, kMaxOpset, &lower_squeeze},
      {"Upsample", {1, 7, 9, 10}, 9, &lower_upsample},
      {"Where", {9, 16}, kMaxOpset, &lower_default},
      {"Xor", {1, 7}, kMaxOpset, &lower_binary},
  };
  return kTable;
}

}  // namespace

const OpEntry* find_op(std::string_view op) {
  const auto& t = table();
  auto it = std::lower_bound(t.begin(), t.end(), op,
                             [](const OpEntry& e, std::string_view o) { return e.op < o; });
  return it != t.end() && it->op == op ? &*it : nullptr;
}

int effective_version(const OpEntry& e, int opset) {
  int v = 0;
  for (int s : e.since)
    if (s <= opset) v = s;
  return v;
}

std::string supported_op_names() {
  std::string s;
  for (const OpEntry& e : table()) {
    if (!s.empty()) s += ", ";
    s += e.op;
  }
  return s;
}

Result<const OpEntry*> resolve_op(OpCall& call) {
  const OpEntry* e = find_op(call.op);
  if (!e)
    return unsupported("node '" + call.name + "' (" + call.op + ", opset " +
                       std::to_string(call.opset) + "): op " + call.op +
                       " is not supported by kiln (supported: " + supported_op_names() + ")");
  call.version = effective_version(*e, call.opset);
  if (call.version == 0)
    return unsupported("node '" + call.name + "' (" + call.op + ", opset " +
                       std::to_string(call.opset) + "): op " + call.op +
                       " does not exist before opset " + std::to_string(e->since.front()) +
                       "; the model's opset_import is too old for it");
  if (call.opset > e->max_opset)
    return unsupported(call.where() + ": kiln imports " + call.op + " only up to opset " +
                       std::to_string(e->max_opset) +
                       (call.op == "Upsample" ? " (it is deprecated since opset 10: use Resize)"
                                              : std::string()));
  return e;
}

Status lower_node(Lowering& lx, const OpEntry& entry, OpCall& call) {
  call.attrs.erase("consumed_inputs");  // legacy in-place hint (opset 1), no effect on results
  return entry.lower(lx, call);
}

}  // namespace kiln::onnx::detail

namespace kiln::onnx {

const std::vector<OpSupport>& supported_ops() {
  static const std::vector<OpSupport> kOps = [] {
    std::vector<OpSupport> v;
    for (const detail::OpEntry& e : detail::table())
      v.push_back(OpSupport{std::string(e.op), e.since.front(), e.max_opset});
    return v;
  }();
  return kOps;
}

}  // namespace kiln::onnx
