// Lowerings of elementwise, activation, cast and constant ops to their canonical forms.
#include <cctype>

#include "onnx/op_table.h"
#include "onnx/tensor_proto.h"

namespace kiln::onnx::detail {

using ir::kNoValue;

Status lower_default(Lowering& lx, OpCall& call) {
  lx.emit(call);
  return Status();
}

namespace {

Status need_inputs(const OpCall& call, size_t n) {
  if (call.inputs.size() < n)
    return call.invalid("expects at least " + std::to_string(n) + " inputs, got " +
                        std::to_string(call.inputs.size()));
  for (size_t i = 0; i < n; ++i)
    if (call.inputs[i] == kNoValue) return call.invalid("input " + std::to_string(i) + " is required");
  return Status();
}

// Old (opset < 7) broadcasting: B's shape matches a contiguous run of A's dims starting at `axis`.
// Rewrites input 1 to B unsqueezed with trailing 1s, so numpy broadcasting lines it up the same.
Status align_legacy_broadcast(Lowering& lx, OpCall& call, int64_t axis) {
  KILN_RETURN_IF_ERROR(need_inputs(call, 2));
  const int a = call.inputs[0];
  const int b = call.inputs[1];
  std::optional<int64_t> ra = lx.rank_of(a);
  std::optional<int64_t> rb = lx.rank_of(b);
  if (ra && rb) {
    // axis comes from the file: range-check it before any arithmetic.
    const bool fits = axis >= -*ra && axis <= *ra;
    const int64_t ax = !fits ? 0 : axis < 0 ? axis + *ra : axis;
    const int64_t trailing = *ra - ax - *rb;
    if (!fits || trailing < 0)
      return call.invalid("legacy broadcast axis " + std::to_string(axis) + " does not fit A of rank " +
                          std::to_string(*ra) + " and B of rank " + std::to_string(*rb));
    if (trailing == 0) return Status();
    std::vector<int64_t> axes;
    for (int64_t i = 0; i < trailing; ++i) axes.push_back(*rb + i);
    int axes_id = lx.add_i64(call.name + "/axes", axes);
    call.inputs[1] = lx.emit_helper(call, "unsqueeze_b", "Unsqueeze", {b, axes_id});
    return Status();
  }
  // Ranks unknown at import: unsqueeze B at run time with axes Range(rank(B), rank(A) - axis).
  if (axis < 0)
    return call.unsupported_here("legacy broadcast with a negative axis needs the rank of input A; "
                                 "declare its shape in the model's value_info");
  int shape_a = lx.emit_helper(call, "shape_a", "Shape", {a});
  int rank_a = lx.emit_helper(call, "rank_a", "Size", {shape_a});
  int rank_b;
  if (rb) {
    rank_b = lx.add_i64_scalar(call.name + "/rank_b", *rb);
  } else {
    int shape_b = lx.emit_helper(call, "shape_b", "Shape", {b});
    rank_b = lx.emit_helper(call, "rank_b", "Size", {shape_b});
  }
  int limit = lx.emit_helper(call, "axes_end", "Sub",
                             {rank_a, lx.add_i64_scalar(call.name + "/axis", axis)});
  int axes = lx.emit_helper(call, "axes", "Range",
                            {rank_b, limit, lx.add_i64_scalar(call.name + "/one", 1)});
  call.inputs[1] = lx.emit_helper(call, "unsqueeze_b", "Unsqueeze", {b, axes});
  return Status();
}

}  // namespace

Status lower_binary(Lowering& lx, OpCall& call) {
  if (call.version < 7) {
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> broadcast, take_int(call, "broadcast"));
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> axis, take_int(call, "axis"));
    // Without `axis`, B is a suffix of A (or one element): numpy broadcasting agrees.
    if (broadcast.value_or(0) != 0 && axis) KILN_RETURN_IF_ERROR(align_legacy_broadcast(lx, call, *axis));
  }
  lx.emit(call);
  return Status();
}

Status lower_prelu(Lowering& lx, OpCall& call) {
  // PRelu < 7: a 1-D slope is per channel (axis 1), as onnx's PRelu 6->7 adapter treats it.
  if (call.version < 7) {
    KILN_RETURN_IF_ERROR(need_inputs(call, 2));
    const int x = call.inputs[0];
    const int slope = call.inputs[1];
    std::optional<int64_t> rs = lx.rank_of(slope);
    std::optional<int64_t> rx = lx.rank_of(x);
    const ir::Shape& ss = lx.graph().values[slope].shape;
    bool single = rs && *rs == 1 && ss.dims[0].is_known() && ss.dims[0].value == 1;
    if (rs && *rs == 1 && !single && !(rx && *rx <= 2))
      KILN_RETURN_IF_ERROR(align_legacy_broadcast(lx, call, 1));
  }
  lx.emit(call);
  return Status();
}

Status lower_gemm(Lowering& lx, OpCall& call) {
  call.attrs.erase("broadcast");  // opset < 7: C broadcast flag; canonical Gemm always broadcasts C
  lx.emit(call);
  return Status();
}

Status lower_softmax(Lowering& lx, OpCall& call) {
  if (call.version < 13) {
    // Softmax/LogSoftmax < 13 flatten the input to 2-D at `axis` (default 1).
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> axis, take_int(call, "axis"));
    call.attrs.set_int("axis", axis.value_or(1));
    call.attrs.set_int("coerce_2d", 1);
  }
  lx.emit(call);
  return Status();
}

Status lower_selu(Lowering& lx, OpCall& call) {
  if (call.version < 6) {  // Selu-1 had rounder defaults than Selu-6
    if (!call.attrs.has("alpha")) call.attrs.set_float("alpha", 1.6732000112533569);
    if (!call.attrs.has("gamma")) call.attrs.set_float("gamma", 1.0506999492645264);
  }
  lx.emit(call);
  return Status();
}

Status lower_cast(Lowering& lx, OpCall& call) {
  const ir::Attribute* to = call.attrs.find("to");
  if (!to) return call.invalid("requires attribute 'to'");
  int32_t elem = 0;
  if (to->kind == ir::Attribute::Kind::kString) {  // Cast-1 names the type: "FLOAT", "INT64", ...
    std::string upper = to->s;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    ::onnx::TensorProto::DataType dt;
    if (!::onnx::TensorProto::DataType_Parse(upper, &dt))
      return call.invalid("attribute 'to' names unknown type '" + to->s + "'");
    elem = dt;
  } else if (to->kind == ir::Attribute::Kind::kInt) {
    if (to->i < INT32_MIN || to->i > INT32_MAX) return call.invalid("attribute 'to' is out of range");
    elem = static_cast<int32_t>(to->i);
  } else {
    return call.invalid("attribute 'to' must be an int");
  }
  Result<DType> dt = dtype_from_onnx(elem, call.where() + ": target type");
  if (!dt.ok()) return dt.status();
  call.attrs.set_int("to", static_cast<int64_t>(*dt));
  lx.emit(call);
  return Status();
}

Status lower_castlike(Lowering& lx, OpCall& call) {
  KILN_RETURN_IF_ERROR(need_inputs(call, 2));
  std::optional<DType> dt = lx.dtype_of(call.inputs[1]);
  if (!dt)
    return call.unsupported_here("cannot tell the dtype of input 'target_type' ('" +
                                 lx.graph().values[call.inputs[1]].name +
                                 "') at import; declare it in the model's value_info");
  call.op = "Cast";
  call.inputs.resize(1);
  call.attrs.set_int("to", static_cast<int64_t>(*dt));
  lx.emit(call);
  return Status();
}

Status lower_clip(Lowering& lx, OpCall& call) {
  if (call.version < 11) {
    KILN_RETURN_IF_ERROR(need_inputs(call, 1));
    KILN_ASSIGN_OR_RETURN(std::optional<double> lo, take_float(call, "min"));
    KILN_ASSIGN_OR_RETURN(std::optional<double> hi, take_float(call, "max"));
    call.inputs.resize(1);
    if (lo || hi) {
      std::optional<DType> dt = lx.dtype_of(call.inputs[0]);
      if (!dt)
        return call.unsupported_here("cannot tell the dtype of the input at import, needed for "
                                     "min/max; declare it in the model's value_info");
      call.inputs.push_back(kNoValue);
      call.inputs.push_back(kNoValue);
      if (lo) {
        KILN_ASSIGN_OR_RETURN(call.inputs[1], lx.add_scalar(call.name + "/min", *dt, *lo));
      }
      if (hi) {
        KILN_ASSIGN_OR_RETURN(call.inputs[2], lx.add_scalar(call.name + "/max", *dt, *hi));
      }
      trim_inputs(&call.inputs);
    }
  }
  lx.emit(call);
  return Status();
}

Status lower_concat(Lowering& lx, OpCall& call) {
  if (call.version < 4 && !call.attrs.has("axis")) call.attrs.set_int("axis", 1);
  lx.emit(call);
  return Status();
}

Status lower_constant(Lowering& lx, OpCall& call) {
  if (call.outputs.size() != 1 || call.outputs[0] == kNoValue)
    return call.invalid("must have exactly one output");
  for (const char* name : {"value_string", "value_strings"})
    if (call.attrs.has(name)) return call.unsupported_here("string constants are not supported by kiln");
  using Kind = ir::Attribute::Kind;
  Tensor t;
  int found = 0;
  for (const auto& [name, a] : call.attrs.all()) {
    if (name == "value" && a.kind == Kind::kTensor) {
      t = a.t;
    } else if (name == "value_float" && (a.kind == Kind::kFloat || a.kind == Kind::kInt)) {
      float v = static_cast<float>(a.kind == Kind::kFloat ? a.f : static_cast<double>(a.i));
      t = Tensor::from_vector(DType::kF32, {}, std::vector<float>{v});
    } else if (name == "value_floats" && a.kind == Kind::kFloats) {
      std::vector<float> f(a.floats.begin(), a.floats.end());
      t = Tensor::from_vector(DType::kF32, {static_cast<int64_t>(f.size())}, f);
    } else if (name == "value_int" && a.kind == Kind::kInt) {
      t = Tensor::from_vector(DType::kI64, {}, std::vector<int64_t>{a.i});
    } else if (name == "value_ints" && a.kind == Kind::kInts) {
      t = Tensor::from_vector(DType::kI64, {static_cast<int64_t>(a.ints.size())}, a.ints);
    } else if (name == "value" || name.rfind("value_", 0) == 0) {
      return call.invalid("attribute '" + name + "' has the wrong kind");
    } else {
      continue;
    }
    ++found;
  }
  if (found != 1)
    return call.invalid("needs exactly one of value, value_float(s), value_int(s); it has " +
                        std::to_string(found));
  lx.set_constant(call.outputs[0], std::move(t));
  return Status();
}

Status lower_dropout(Lowering& lx, OpCall& call) {
  KILN_RETURN_IF_ERROR(need_inputs(call, 1));
  if (call.version < 12) {
    call.attrs.erase("is_test");  // inference: Dropout is the identity whatever is_test says
    KILN_ASSIGN_OR_RETURN(std::optional<double> ratio, take_float(call, "ratio"));
    call.inputs.resize(1);
    if (ratio) {
      KILN_ASSIGN_OR_RETURN(int r, lx.add_scalar(call.name + "/ratio", DType::kF32, *ratio));
      call.inputs.push_back(r);
    }
  }
  if (call.inputs.size() > 2) {
    const Tensor* training = lx.constant_of(call.inputs[2]);
    if (training && training->dtype() == DType::kBool && training->numel() == 1 &&
        *training->data_as<uint8_t>() != 0)
      return call.unsupported_here("training_mode is true (random dropout); kiln imports inference "
                                   "graphs only");
  }
  if (call.version < 10 && call.outputs.size() > 1 && call.outputs[1] != kNoValue) {
    // Dropout < 10 gives the mask in the data type; canonical Dropout gives bool.
    std::optional<DType> dt = lx.dtype_of(call.inputs[0]);
    if (!dt)
      return call.unsupported_here("cannot tell the dtype of the input at import, needed for the "
                                   "mask output; declare it in the model's value_info");
    const int mask = call.outputs[1];
    call.outputs[1] = lx.add_value(call.name + "/mask_bool");
    lx.emit(call);
    ir::Node cast;
    cast.name = call.name + "/mask_cast";
    cast.op = "Cast";
    cast.attrs.set_int("to", static_cast<int64_t>(*dt));
    cast.inputs = {call.outputs[1]};
    cast.outputs = {mask};
    lx.emit(std::move(cast));
    return Status();
  }
  lx.emit(call);
  return Status();
}

Status lower_batchnorm(Lowering& lx, OpCall& call) {
  KILN_RETURN_IF_ERROR(need_inputs(call, 5));
  call.attrs.erase("is_test");
  int64_t spatial = 1;
  if (call.version < 9) {
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> s, take_int(call, "spatial"));
    spatial = s.value_or(1);
  }
  if (call.version >= 14) {
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> training, take_int(call, "training_mode"));
    if (training.value_or(0) != 0)
      return call.unsupported_here("training_mode=1 normalises with batch statistics; kiln imports "
                                   "inference graphs only (export the model in eval mode)");
  }
  // Outputs past Y are training outputs. Unused ones are dropped; used ones cannot be honoured.
  for (size_t i = 1; i < call.outputs.size(); ++i) {
    if (call.outputs[i] == kNoValue) continue;
    if (lx.is_used(call.outputs[i]))
      return call.unsupported_here("output " + std::to_string(i) + " ('" +
                                   lx.graph().values[call.outputs[i]].name +
                                   "') is a training-mode statistic; kiln imports inference only");
  }
  call.outputs.resize(1);
  if (spatial != 0) {
    lx.emit(call);
    return Status();
  }
  // spatial=0 (opset < 9): statistics per activation, shaped (C, D1, ..., Dn). Numpy broadcasting
  // of (C, D1.., Dn) against X (N, C, D1.., Dn) is exactly that, so decompose elementwise.
  std::optional<DType> dt = lx.dtype_of(call.inputs[0]);
  if (!dt) dt = lx.dtype_of(call.inputs[4]);
  if (!dt)
    return call.unsupported_here("spatial=0 needs the input dtype at import; declare it in the "
                                 "model's value_info");
  KILN_ASSIGN_OR_RETURN(std::optional<double> eps, take_float(call, "epsilon"));
  KILN_ASSIGN_OR_RETURN(int eps_id, lx.add_scalar(call.name + "/epsilon", *dt, eps.value_or(1e-5)));
  const std::vector<int>& in = call.inputs;
  int centered = lx.emit_helper(call, "centered", "Sub", {in[0], in[3]});
  int var_eps = lx.emit_helper(call, "var_eps", "Add", {in[4], eps_id});
  int stddev = lx.emit_helper(call, "stddev", "Sqrt", {var_eps});
  int normed = lx.emit_helper(call, "normed", "Div", {centered, stddev});
  int scaled = lx.emit_helper(call, "scaled", "Mul", {normed, in[1]});
  ir::Node add;
  add.name = call.name;
  add.op = "Add";
  add.inputs = {scaled, in[2]};
  add.outputs = {call.outputs[0]};
  lx.emit(std::move(add));
  return Status();
}

}  // namespace kiln::onnx::detail
