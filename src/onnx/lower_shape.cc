// Lowerings of ops whose parameters moved from attributes to inputs over the opsets: the
// canonical form takes them as (constant) i64 inputs.
#include <cstring>

#include "onnx/op_table.h"

namespace kiln::onnx::detail {

using ir::kNoValue;

namespace {

Status need_data(const OpCall& call) {
  if (call.inputs.empty() || call.inputs[0] == kNoValue) return call.invalid("input 0 is required");
  return Status();
}

// Keeps input 0 only, then appends `extra`.
void set_param_inputs(OpCall& call, std::vector<int> extra) {
  call.inputs.resize(1);
  for (int id : extra) call.inputs.push_back(id);
  trim_inputs(&call.inputs);
}

// Reads a one-element integer constant, if `id` is one.
std::optional<int64_t> const_int(const Lowering& lx, int id) {
  const Tensor* t = lx.constant_of(id);
  if (!t || t->numel() != 1) return std::nullopt;
  if (t->dtype() == DType::kI64) return *t->data_as<int64_t>();
  if (t->dtype() == DType::kI32) return *t->data_as<int32_t>();
  return std::nullopt;
}

}  // namespace

Status lower_slice(Lowering& lx, OpCall& call) {
  if (call.version < 10) {
    KILN_RETURN_IF_ERROR(need_data(call));
    KILN_ASSIGN_OR_RETURN(auto starts, take_ints(call, "starts"));
    KILN_ASSIGN_OR_RETURN(auto ends, take_ints(call, "ends"));
    KILN_ASSIGN_OR_RETURN(auto axes, take_ints(call, "axes"));
    if (!starts || !ends) return call.invalid("requires attributes 'starts' and 'ends'");
    std::vector<int> extra = {lx.add_i64(call.name + "/starts", *starts),
                              lx.add_i64(call.name + "/ends", *ends)};
    if (axes) extra.push_back(lx.add_i64(call.name + "/axes", *axes));
    set_param_inputs(call, extra);
  }
  lx.emit(call);
  return Status();
}

Status lower_reshape(Lowering& lx, OpCall& call) {
  if (call.version < 5) {
    KILN_RETURN_IF_ERROR(need_data(call));
    KILN_ASSIGN_OR_RETURN(auto shape, take_ints(call, "shape"));
    if (!shape) return call.invalid("requires attribute 'shape'");
    set_param_inputs(call, {lx.add_i64(call.name + "/shape", *shape)});
  }
  lx.emit(call);
  return Status();
}

// Squeeze and Unsqueeze: `axes` became an input in opset 13.
Status lower_squeeze(Lowering& lx, OpCall& call) {
  if (call.version < 13) {
    KILN_RETURN_IF_ERROR(need_data(call));
    KILN_ASSIGN_OR_RETURN(auto axes, take_ints(call, "axes"));
    if (!axes && call.op == "Unsqueeze") return call.invalid("requires attribute 'axes'");
    set_param_inputs(call, {});
    if (axes) call.inputs.push_back(lx.add_i64(call.name + "/axes", *axes));
  }
  lx.emit(call);
  return Status();
}

// ReduceSum moved `axes` to an input in opset 13, the other reductions in opset 18.
Status lower_reduce(Lowering& lx, OpCall& call) {
  const int moved = call.op == "ReduceSum" ? 13 : 18;
  if (call.version < moved) {
    KILN_RETURN_IF_ERROR(need_data(call));
    KILN_ASSIGN_OR_RETURN(auto axes, take_ints(call, "axes"));
    set_param_inputs(call, {});
    // Absent or empty axes reduce over everything, as an omitted input does (noop_with_empty_axes=0).
    if (axes && !axes->empty()) call.inputs.push_back(lx.add_i64(call.name + "/axes", *axes));
  }
  lx.emit(call);
  return Status();
}

Status lower_split(Lowering& lx, OpCall& call) {
  KILN_RETURN_IF_ERROR(need_data(call));
  if (call.version < 13) {
    KILN_ASSIGN_OR_RETURN(auto split, take_ints(call, "split"));
    // Split-1 could also take `split` as input 1; Split-2/11 only as an attribute.
    bool has_input = call.version == 1 && call.inputs.size() > 1 && call.inputs[1] != kNoValue;
    if (!has_input) set_param_inputs(call, {});
    if (split && !has_input) call.inputs.push_back(lx.add_i64(call.name + "/split", *split));
    call.inputs.resize(std::min<size_t>(call.inputs.size(), 2));
  }
  // Canonical Split (18) needs `split` or `num_outputs`; older versions split evenly by default.
  bool has_split = call.inputs.size() > 1 && call.inputs[1] != kNoValue;
  if (!has_split && !call.attrs.has("num_outputs"))
    call.attrs.set_int("num_outputs", static_cast<int64_t>(call.outputs.size()));
  lx.emit(call);
  return Status();
}

Status lower_pad(Lowering& lx, OpCall& call) {
  if (call.version < 11) {
    KILN_RETURN_IF_ERROR(need_data(call));
    // Pad-1 called it `paddings`; the layout [x1_begin, x2_begin, ..., x1_end, x2_end, ...] is the same.
    KILN_ASSIGN_OR_RETURN(auto pads, take_ints(call, call.version == 1 ? "paddings" : "pads"));
    if (!pads) return call.invalid(std::string("requires attribute '") +
                                   (call.version == 1 ? "paddings" : "pads") + "'");
    KILN_ASSIGN_OR_RETURN(std::optional<double> value, take_float(call, "value"));
    set_param_inputs(call, {lx.add_i64(call.name + "/pads", *pads)});
    if (value && *value != 0) {
      std::optional<DType> dt = lx.dtype_of(call.inputs[0]);
      if (!dt)
        return call.unsupported_here("cannot tell the dtype of the input at import, needed for "
                                     "the pad value; declare it in the model's value_info");
      KILN_ASSIGN_OR_RETURN(int v, lx.add_scalar(call.name + "/value", *dt, *value));
      call.inputs.push_back(v);
    }
  }
  lx.emit(call);
  return Status();
}

Status lower_topk(Lowering& lx, OpCall& call) {
  if (call.version < 10) {
    KILN_RETURN_IF_ERROR(need_data(call));
    KILN_ASSIGN_OR_RETURN(std::optional<int64_t> k, take_int(call, "k"));
    if (!k) return call.invalid("requires attribute 'k'");
    set_param_inputs(call, {lx.add_i64(call.name + "/k", {*k})});
  }
  lx.emit(call);
  return Status();
}

// Tile-1 repeats the input `tiles` times along `axis` (both scalar inputs); canonical Tile takes
// a repeats vector of length rank(input).
Status lower_tile(Lowering& lx, OpCall& call) {
  if (call.version >= 6) {
    lx.emit(call);
    return Status();
  }
  if (call.inputs.size() < 3 || call.inputs[0] == kNoValue || call.inputs[1] == kNoValue ||
      call.inputs[2] == kNoValue)
    return call.invalid("requires inputs input, tiles and axis");
  const int x = call.inputs[0];
  const int tiles = call.inputs[1];
  const int axis = call.inputs[2];
  std::optional<int64_t> rank = lx.rank_of(x);
  std::optional<int64_t> t = const_int(lx, tiles);
  std::optional<int64_t> a = const_int(lx, axis);
  if (rank && t && a) {
    if (*a < -*rank || *a >= *rank)
      return call.invalid("axis " + std::to_string(*a) + " is out of range for rank " +
                          std::to_string(*rank));
    const int64_t ax = *a < 0 ? *a + *rank : *a;
    std::vector<int64_t> repeats(static_cast<size_t>(*rank), 1);
    repeats[static_cast<size_t>(ax)] = *t;
    set_param_inputs(call, {lx.add_i64(call.name + "/repeats", repeats)});
    lx.emit(call);
    return Status();
  }
  // Otherwise at run time: repeats = Where(Range(0, rank(x)) == axis, tiles, 1).
  int shape = lx.emit_helper(call, "shape", "Shape", {x});
  int r = lx.emit_helper(call, "rank", "Size", {shape});
  int idx = lx.emit_helper(call, "dims", "Range",
                           {lx.add_i64_scalar(call.name + "/zero", 0), r,
                            lx.add_i64_scalar(call.name + "/one", 1)});
  int is_axis = lx.emit_helper(call, "is_axis", "Equal", {idx, axis});
  int repeats = lx.emit_helper(call, "repeats", "Where",
                               {is_axis, tiles, lx.add_i64_scalar(call.name + "/ones", 1)});
  set_param_inputs(call, {repeats});
  lx.emit(call);
  return Status();
}

}  // namespace kiln::onnx::detail
