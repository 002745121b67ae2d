// Resize and Upsample -> canonical Resize (opset 19 semantics): inputs (X, roi, scales, sizes),
// attributes mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside,
// extrapolation_value, antialias, axes, keep_aspect_ratio_policy (absent = the opset-19 default).
#include "onnx/op_table.h"

namespace kiln::onnx::detail {

using ir::kNoValue;

namespace {

// Upsample (all versions, scales >= 1) and Resize-10 compute output pixel i from input i / scale:
// coordinate_transformation_mode "asymmetric", and for nearest, nearest_mode "floor".
// "bilinear" (Upsample-1) is "linear". Other modes are kept for the kernel to reject.
void set_legacy_mode(OpCall& call, const std::string& mode) {
  call.attrs.set_string("coordinate_transformation_mode", "asymmetric");
  if (mode == "nearest") {
    call.attrs.set_string("mode", "nearest");
    call.attrs.set_string("nearest_mode", "floor");
  } else if (mode == "linear" || mode == "bilinear") {
    call.attrs.set_string("mode", "linear");
  } else {
    call.attrs.set_string("mode", mode);
  }
}

// onnxruntime, the de-facto reference for Resize-10, rounds a downsampled nearest coordinate up
// (its "simple" mode: ceil when scale < 1, floor otherwise). With constant scales that are all
// <= 1 (at scale 1 coordinates are integers, so the rounding does not matter) that is
// nearest_mode "ceil"; otherwise "floor" stays.
void match_ort_downsampling(const Lowering& lx, OpCall& call, int scales) {
  if (call.attrs.get_string("mode", "") != "nearest") return;
  const Tensor* t = lx.constant_of(scales);
  if (!t || t->dtype() != DType::kF32 || t->numel() == 0) return;
  const float* s = t->data_as<float>();
  for (int64_t i = 0; i < t->numel(); ++i)
    if (!(s[i] > 0.f && s[i] <= 1.f)) return;
  call.attrs.set_string("nearest_mode", "ceil");
}

bool is_empty_constant(const Lowering& lx, int id) {
  const Tensor* t = lx.constant_of(id);
  return t && t->numel() == 0;
}

}  // namespace

Status lower_resize(Lowering& lx, OpCall& call) {
  if (call.inputs.empty() || call.inputs[0] == kNoValue) return call.invalid("input X is required");
  if (call.version < 11) {
    if (call.inputs.size() < 2 || call.inputs[1] == kNoValue)
      return call.invalid("requires input 'scales'");
    KILN_ASSIGN_OR_RETURN(std::optional<std::string> mode, take_string(call, "mode"));
    call.inputs = {call.inputs[0], kNoValue, call.inputs[1]};
    set_legacy_mode(call, mode.value_or("nearest"));
    match_ort_downsampling(lx, call, call.inputs[2]);
  } else {
    // Resize-11 required roi and scales, passing empty tensors for "not given"; canonical Resize
    // omits them instead.
    for (size_t i = 1; i < call.inputs.size() && i < 3; ++i)
      if (is_empty_constant(lx, call.inputs[i])) call.inputs[i] = kNoValue;
    trim_inputs(&call.inputs);
  }
  lx.emit(call);
  return Status();
}

Status lower_upsample(Lowering& lx, OpCall& call) {
  if (call.inputs.empty() || call.inputs[0] == kNoValue) return call.invalid("input X is required");
  KILN_ASSIGN_OR_RETURN(std::optional<std::string> mode, take_string(call, "mode"));
  int scales = kNoValue;
  if (call.version < 7) {
    // Upsample-1: NCHW only, with height_scale and width_scale.
    KILN_ASSIGN_OR_RETURN(std::optional<double> h, take_float(call, "height_scale"));
    KILN_ASSIGN_OR_RETURN(std::optional<double> w, take_float(call, "width_scale"));
    if (!h || !w) return call.invalid("requires attributes 'height_scale' and 'width_scale'");
    std::optional<int64_t> rank = lx.rank_of(call.inputs[0]);
    if (rank && *rank != 4) return call.invalid("input must be 4-D (NCHW), got rank " + std::to_string(*rank));
    std::vector<float> v = {1.f, 1.f, static_cast<float>(*h), static_cast<float>(*w)};
    scales = lx.add_constant(call.name + "/scales", Tensor::from_vector(DType::kF32, {4}, v));
  } else if (call.version < 9) {
    KILN_ASSIGN_OR_RETURN(std::optional<std::vector<double>> s, take_floats(call, "scales"));
    if (!s) return call.invalid("requires attribute 'scales'");
    std::vector<float> v(s->begin(), s->end());
    scales = lx.add_constant(call.name + "/scales",
                             Tensor::from_vector(DType::kF32, {static_cast<int64_t>(v.size())}, v));
  } else {
    if (call.inputs.size() < 2 || call.inputs[1] == kNoValue)
      return call.invalid("requires input 'scales'");
    scales = call.inputs[1];
  }
  call.op = "Resize";
  call.inputs = {call.inputs[0], kNoValue, scales};
  set_legacy_mode(call, mode.value_or("nearest"));
  lx.emit(call);
  return Status();
}

}  // namespace kiln::onnx::detail
