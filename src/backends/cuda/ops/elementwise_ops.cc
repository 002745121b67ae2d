// Elementwise ops on the GPU: unary math and activations, broadcasting binary arithmetic,
// comparisons and logic, variadic Sum/Mean/Max/Min, Clip, Where, Cast, and inference-mode
// BatchNormalization. Each node is one generated kernel (kernels/elementwise.h); fused chains
// (kiln.FusedElementwise) are one kernel per node too (fused_ops.cc).
#include <cmath>
#include <limits>

#include "backends/cpu/kernel.h"
#include "backends/cuda/kernels/elementwise.h"
#include "backends/cuda/ops/launch.h"

namespace kiln::cuda {
namespace {

// Kernel op name and baked attributes of a node whose op is in the elementwise table.
struct EwCall {
  std::string op;
  std::vector<double> attrs;
};

Result<EwCall> ew_call(const ir::Node& node) {
  const ir::Attributes& a = node.attrs;
  const std::string& op = node.op;
  if (op == "LeakyRelu") return EwCall{op, {a.get_float("alpha", 0.01)}};
  if (op == "Elu") return EwCall{op, {a.get_float("alpha", 1.0)}};
  if (op == "ThresholdedRelu") return EwCall{op, {a.get_float("alpha", 1.0)}};
  if (op == "Selu")
    return EwCall{op, {a.get_float("alpha", 1.67326319217681884765625), a.get_float("gamma", 1.05070102214813232421875)}};
  if (op == "HardSigmoid") return EwCall{op, {a.get_float("alpha", 0.2), a.get_float("beta", 0.5)}};
  if (op == "IsInf")
    return EwCall{op, {static_cast<double>(a.get_int("detect_positive", 1) != 0),
                       static_cast<double>(a.get_int("detect_negative", 1) != 0)}};
  if (op == "Gelu") {
    std::string mode = a.get_string("approximate", "none");
    if (mode == "none") return EwCall{"Gelu", {}};
    if (mode == "tanh") return EwCall{"Gelu:tanh", {}};
    return invalid_argument(cpu::node_context(node) + ": approximate='" + mode + "' is not valid; expected none|tanh");
  }
  if (op == "Mod") return EwCall{a.get_int("fmod", 0) ? "Mod:fmod" : "Mod", {}};
  return EwCall{op, {}};
}

class EwHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    std::vector<Tensor> inputs;
    for (const Tensor& t : in) {
      if (!t.defined()) return invalid_argument(ctx.where() + ": an input is missing");
      inputs.push_back(t);
    }
    if (inputs.empty()) return invalid_argument(ctx.where() + ": needs at least one input");
    KILN_ASSIGN_OR_RETURN(EwCall call, ew_call(node));
    const kernels::ElementwiseOpInfo* info = kernels::elementwise_op(call.op);
    if (!info) return unsupported(ctx.where() + ": no CUDA elementwise kernel");
    DType out_dtype = info->bool_result ? DType::kBool : inputs[0].dtype();
    KILN_ASSIGN_OR_RETURN(out[0], elementwise(ctx, call.op, inputs, out_dtype, call.attrs));
    return Status();
  }
};

// Clip(input, min?, max?): the bounds are read on the host and baked into the kernel.
class ClipHandler final : public OpHandler {
 public:
  bool host_input(const ir::Node&, size_t i) const override { return i >= 1; }
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty() || !in[0].defined()) return invalid_argument(ctx.where() + ": input is missing");
    const DType dt = in[0].dtype();
    double bounds[2] = {-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
    if (!dtype_is_float(dt)) {  // an omitted bound is the dtype's limit (64-bit: the nearest double below it)
      const int bits = static_cast<int>(dtype_size(dt)) * 8;
      const double top = bits == 64 ? 9.2233720368547748e18 : std::ldexp(1.0, dtype_is_signed_int(dt) ? bits - 1 : bits) - 1;
      bounds[0] = dtype_is_signed_int(dt) ? -top - (bits == 64 ? 0 : 1) : 0;
      bounds[1] = top;
    }
    for (size_t i = 1; i <= 2; ++i) {
      if (i >= in.size() || !in[i].defined()) continue;
      const Tensor& b = in[i];
      if (b.numel() != 1 || b.dtype() != dt)
        return invalid_argument(ctx.where() + ": " + (i == 1 ? "min" : "max") + " must be one element of the input's dtype");
      switch (dt) {
        case DType::kF32: bounds[i - 1] = *b.data_as<const float>(); break;
        case DType::kF64: bounds[i - 1] = *b.data_as<const double>(); break;
        case DType::kI32: bounds[i - 1] = *b.data_as<const int32_t>(); break;
        case DType::kI64: bounds[i - 1] = static_cast<double>(*b.data_as<const int64_t>()); break;
        case DType::kI8: bounds[i - 1] = *b.data_as<const int8_t>(); break;
        case DType::kU8: bounds[i - 1] = *b.data_as<const uint8_t>(); break;
        default:
          return unsupported(ctx.where() + ": Clip bounds of dtype " + std::string(dtype_name(dt)));
      }
    }
    KILN_ASSIGN_OR_RETURN(out[0], elementwise(ctx, "Clip", in.first(1), dt, {bounds[0], bounds[1]}));
    return Status();
  }
};

class WhereHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.size() != 3 || !in[0].defined() || !in[1].defined() || !in[2].defined())
      return invalid_argument(ctx.where() + ": takes condition, X and Y");
    if (in[0].dtype() != DType::kBool) return invalid_argument(ctx.where() + ": condition must be bool");
    if (in[1].dtype() != in[2].dtype()) return invalid_argument(ctx.where() + ": X and Y must share one dtype");
    const DType dt = in[1].dtype(), bits = bits_dtype(dt);
    KILN_ASSIGN_OR_RETURN(Dims dims, broadcast_dims(ctx, in));
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(dt, dims));
    std::vector<EwOperand> ops = {{in[0].data(), DType::kBool, broadcast_strides(in[0].dims(), dims)},
                                  {in[1].data(), bits, broadcast_strides(in[1].dims(), dims)},
                                  {in[2].data(), bits, broadcast_strides(in[2].dims(), dims)}};
    KILN_RETURN_IF_ERROR(launch_elementwise(ctx, "Where", {}, y.data(), bits, dims, contiguous_strides(dims), ops));
    out[0] = y;
    return Status();
  }
};

class CastHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    if (in.empty() || !in[0].defined()) return invalid_argument(ctx.where() + ": input is missing");
    const int64_t to = ctx.node().attrs.get_int("to", 0);
    if (to < 0 || to > 255 || !dtype_valid(static_cast<uint8_t>(to)))
      return invalid_argument(ctx.where() + ": 'to' = " + std::to_string(to) + " is not a dtype kiln knows");
    const DType dt = static_cast<DType>(to);
    if (dt == in[0].dtype()) {
      out[0] = in[0];
      return Status();
    }
    KILN_ASSIGN_OR_RETURN(out[0], elementwise(ctx, "Cast", in.first(1), dt));
    return Status();
  }
};

// Inference BatchNormalization: X [N, C, ...], per-channel scale, B, mean, var.
class BatchNormHandler final : public OpHandler {
 public:
  Status run(RunContext& ctx, std::span<const Tensor> in, std::span<Tensor> out) const override {
    const ir::Node& node = ctx.node();
    if (node.attrs.get_int("training_mode", 0) != 0 || node.outputs.size() > 1)
      return unsupported(ctx.where() + ": training_mode BatchNormalization");
    if (in.size() < 5) return invalid_argument(ctx.where() + ": takes X, scale, B, input_mean, input_var");
    for (size_t i = 0; i < 5; ++i)
      if (!in[i].defined()) return invalid_argument(ctx.where() + ": input " + std::to_string(i) + " is missing");
    const Tensor& x = in[0];
    if (x.rank() < 2) return invalid_argument(ctx.where() + ": X must have rank >= 2");
    const int64_t c = x.dim(1);
    std::vector<EwOperand> ops = {{x.data(), x.dtype(), contiguous_strides(x.dims())}};
    std::vector<int64_t> channel(x.dims().size(), 0);
    channel[1] = 1;
    for (size_t i = 1; i < 5; ++i) {
      if (in[i].numel() != c)
        return invalid_argument(ctx.where() + ": input " + std::to_string(i) + " has " + std::to_string(in[i].numel()) +
                                " elements; X has " + std::to_string(c) + " channels");
      if (in[i].dtype() != x.dtype()) return unsupported(ctx.where() + ": parameters of another dtype than X");
      ops.push_back({in[i].data(), in[i].dtype(), channel});
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, ctx.alloc(x.dtype(), x.dims()));
    KILN_RETURN_IF_ERROR(launch_elementwise(ctx, "BatchNormalization", {node.attrs.get_float("epsilon", 1e-5)},
                                            y.data(), x.dtype(), x.dims(), contiguous_strides(x.dims()), ops));
    out[0] = y;
    return Status();
  }
};

}  // namespace

void register_fused_handlers(HandlerTable& t);  // fused_ops.cc: kiln.FusedElementwise

void register_elementwise_handlers(HandlerTable& t) {
  register_fused_handlers(t);
  for (const auto& op : kernels::elementwise_ops()) {
    const std::string& name = op.name;
    if (name.find(':') != std::string::npos || name == "Identity" || name == "Cast" || name == "Where" ||
        name == "Clip" || name == "BatchNormalization")
      continue;
    t.add(name, std::make_unique<EwHandler>());
  }
  t.add("Clip", std::make_unique<ClipHandler>());
  t.add("Where", std::make_unique<WhereHandler>());
  t.add("Cast", std::make_unique<CastHandler>());
  t.add("BatchNormalization", std::make_unique<BatchNormHandler>());
}

}  // namespace kiln::cuda
