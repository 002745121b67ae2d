#include "backends/cpu/ops/nn_epilogue.h"

#include <string>

#include "platform/thread_pool.h"

namespace kiln::cpu::nn {

Result<Activation> epilogue_activation(const ir::Node& node) {
  const ir::Attribute* a = node.attrs.find("kiln_activation");
  if (!a) return Activation::kNone;
  if (a->kind != ir::Attribute::Kind::kString)
    return invalid_argument(node_context(node) + ": attribute kiln_activation must be a string");
  const bool gemm = node.op == "Gemm" || node.op == "MatMul";
  if (!gemm && node.op != "Conv")
    return invalid_argument(node_context(node) + ": kiln_activation='" + a->s + "' is only valid on Gemm, MatMul and Conv");
  if (a->s == "Relu") return Activation::kRelu;
  if (a->s == "Gelu:tanh" && gemm) return Activation::kGeluTanh;
  return invalid_argument(node_context(node) + ": kiln_activation='" + a->s + "' is not valid; expected " +
                          (gemm ? "Relu|Gelu:tanh" : "Relu"));
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kRelu: return "Relu";
    case Activation::kGeluTanh: return "Gelu:tanh";
    case Activation::kNone: break;
  }
  return "";
}

template <typename T>
void apply_activation(Activation a, T* y, int64_t count) {
  if (a == Activation::kNone || count <= 0) return;
  parallel_for(count, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = activate(a, y[i]);
  });
}

template void apply_activation<float>(Activation, float*, int64_t);
template void apply_activation<double>(Activation, double*, int64_t);
template void apply_activation<int8_t>(Activation, int8_t*, int64_t);
template void apply_activation<int16_t>(Activation, int16_t*, int64_t);
template void apply_activation<int32_t>(Activation, int32_t*, int64_t);
template void apply_activation<int64_t>(Activation, int64_t*, int64_t);
template void apply_activation<uint8_t>(Activation, uint8_t*, int64_t);
template void apply_activation<uint16_t>(Activation, uint16_t*, int64_t);
template void apply_activation<uint32_t>(Activation, uint32_t*, int64_t);
template void apply_activation<uint64_t>(Activation, uint64_t*, int64_t);

}  // namespace kiln::cpu::nn
