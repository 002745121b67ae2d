#include "onnx/lowering.h"

#include <cmath>
#include <limits>

#include "core/half.h"

namespace kiln::onnx::detail {

std::string OpCall::where() const {
  return "node '" + name + "' (" + op + "-" + std::to_string(version) + ", opset " +
         std::to_string(opset) + ")";
}
Status OpCall::invalid(const std::string& msg) const { return invalid_data(where() + ": " + msg); }
Status OpCall::unsupported_here(const std::string& msg) const {
  return unsupported(where() + ": " + msg);
}

std::string Lowering::unique_name(const std::string& base) {
  std::string name = base;
  while (used_names_.count(name)) name = base + "_" + std::to_string(++counter_);
  used_names_.insert(name);
  return name;
}

std::optional<int> Lowering::lookup(const std::string& name) const {
  auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

int Lowering::add_constant(const std::string& base, Tensor t) {
  return g_->add_constant(unique_name(base), std::move(t));
}

int Lowering::add_i64(const std::string& base, const std::vector<int64_t>& v) {
  return add_constant(base, Tensor::from_vector(DType::kI64, {static_cast<int64_t>(v.size())}, v));
}

int Lowering::add_i64_scalar(const std::string& base, int64_t v) {
  return add_constant(base, Tensor::from_vector(DType::kI64, {}, std::vector<int64_t>{v}));
}

namespace {

template <typename T>
T saturate(double v) {
  if (std::isnan(v)) return T(0);
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

}  // namespace

Result<int> Lowering::add_scalar(const std::string& base, DType dtype, double v, bool one_d) {
  Dims dims = one_d ? Dims{1} : Dims{};
  Tensor t = Tensor::zeros(dtype == DType::kUndefined ? DType::kF32 : dtype, dims);
  void* p = t.data();
  switch (dtype) {
    case DType::kF32: *static_cast<float*>(p) = static_cast<float>(v); break;
    case DType::kF64: *static_cast<double*>(p) = v; break;
    case DType::kF16: *static_cast<uint16_t*>(p) = f32_to_f16(static_cast<float>(v)); break;
    case DType::kBF16: *static_cast<uint16_t*>(p) = f32_to_bf16(static_cast<float>(v)); break;
    case DType::kI8: *static_cast<int8_t*>(p) = saturate<int8_t>(v); break;
    case DType::kI16: *static_cast<int16_t*>(p) = saturate<int16_t>(v); break;
    case DType::kI32: *static_cast<int32_t*>(p) = saturate<int32_t>(v); break;
    case DType::kI64: *static_cast<int64_t*>(p) = saturate<int64_t>(v); break;
    case DType::kU8: *static_cast<uint8_t*>(p) = saturate<uint8_t>(v); break;
    case DType::kU16: *static_cast<uint16_t*>(p) = saturate<uint16_t>(v); break;
    case DType::kU32: *static_cast<uint32_t*>(p) = saturate<uint32_t>(v); break;
    case DType::kU64: *static_cast<uint64_t*>(p) = saturate<uint64_t>(v); break;
    case DType::kBool: *static_cast<uint8_t*>(p) = v != 0; break;
    case DType::kUndefined: return internal_error("add_scalar: undefined dtype");
  }
  return add_constant(base, std::move(t));
}

void Lowering::set_constant(int id, Tensor t) {
  ir::Value& v = g_->values[id];
  v.dtype = t.dtype();
  v.shape = ir::Shape::of(t.dims());
  v.constant = static_cast<int>(g_->constants.size());
  g_->constants.push_back(std::move(t));
}

void Lowering::emit(ir::Node node) {
  infer_dtypes(node);
  g_->add_node(std::move(node));
}

void Lowering::emit(const OpCall& call) {
  ir::Node n;
  n.name = call.name;
  n.op = call.op;
  n.attrs = call.attrs;
  n.inputs = call.inputs;
  n.outputs = call.outputs;
  emit(std::move(n));
}

int Lowering::emit_helper(const OpCall& owner, const std::string& suffix, const std::string& op,
                          std::vector<int> inputs, ir::Attributes attrs) {
  ir::Node n;
  n.name = owner.name + "/" + suffix;
  n.op = op;
  n.attrs = std::move(attrs);
  n.inputs = std::move(inputs);
  int out = add_value(owner.name + "/" + suffix);
  n.outputs = {out};
  emit(std::move(n));
  return out;
}

std::optional<DType> Lowering::dtype_of(int id) const {
  if (id < 0 || id >= static_cast<int>(g_->values.size())) return std::nullopt;
  const ir::Value& v = g_->values[id];
  if (v.dtype != DType::kUndefined) return v.dtype;
  auto it = inferred_.find(id);
  if (it != inferred_.end()) return it->second;
  return std::nullopt;
}

std::optional<int64_t> Lowering::rank_of(int id) const {
  if (id < 0 || id >= static_cast<int>(g_->values.size())) return std::nullopt;
  const ir::Value& v = g_->values[id];
  if (!v.shape.rank_known) return std::nullopt;
  return static_cast<int64_t>(v.shape.dims.size());
}

const Tensor* Lowering::constant_of(int id) const {
  if (id < 0 || id >= static_cast<int>(g_->values.size())) return nullptr;
  int c = g_->values[id].constant;
  if (c < 0 || c >= static_cast<int>(g_->constants.size())) return nullptr;
  return &g_->constants[c];
}

bool Lowering::is_used(int id) const {
  if (id < 0 || id >= static_cast<int>(g_->values.size())) return false;
  return used_.count(g_->values[id].name) != 0;
}

// Output dtypes of canonical ops, only as far as lowerings need them (Clip/Pad/BatchNorm
// constants, CastLike, the legacy Dropout mask). Declared dtypes always win.
void Lowering::infer_dtypes(const ir::Node& node) {
  auto in = [&](size_t i) -> std::optional<DType> {
    return i < node.inputs.size() ? dtype_of(node.inputs[i]) : std::nullopt;
  };
  auto set = [&](size_t i, std::optional<DType> d) {
    if (i < node.outputs.size() && node.outputs[i] >= 0 && d && *d != DType::kUndefined)
      inferred_[node.outputs[i]] = *d;
  };
  const std::string& op = node.op;
  if (op == "Cast") {
    int64_t to = node.attrs.get_int("to", 0);
    if (to > 0 && to < 256 && dtype_valid(static_cast<uint8_t>(to))) set(0, static_cast<DType>(to));
  } else if (op == "Shape" || op == "Size" || op == "ArgMax" || op == "ArgMin") {
    set(0, DType::kI64);
  } else if (op == "Equal" || op == "Greater" || op == "Less" || op == "GreaterOrEqual" ||
             op == "LessOrEqual" || op == "And" || op == "Or" || op == "Xor" || op == "Not" ||
             op == "IsInf" || op == "IsNaN") {
    set(0, DType::kBool);
  } else if (op == "ConstantOfShape") {
    const ir::Attribute* a = node.attrs.find("value");
    set(0, a && a->kind == ir::Attribute::Kind::kTensor ? a->t.dtype() : DType::kF32);
  } else if (op == "Where") {
    set(0, in(1));
  } else if (op == "Dropout") {
    set(0, in(0));
    set(1, DType::kBool);
  } else if (op == "TopK" || op == "MaxPool") {
    set(0, in(0));
    set(1, DType::kI64);
  } else if (op == "LayerNormalization") {
    set(0, in(0));
    set(1, DType::kF32);
    set(2, DType::kF32);
  } else {
    for (size_t i = 0; i < node.outputs.size(); ++i) set(i, in(0));
  }
}

namespace {

using Kind = ir::Attribute::Kind;

Result<const ir::Attribute*> take_kind(OpCall& call, const std::string& name, Kind kind,
                                       const char* kind_name, ir::Attribute* out) {
  const ir::Attribute* a = call.attrs.find(name);
  if (!a) return static_cast<const ir::Attribute*>(nullptr);
  if (a->kind != kind)
    return call.invalid("attribute '" + name + "' must be " + kind_name);
  *out = *a;
  call.attrs.erase(name);
  return static_cast<const ir::Attribute*>(out);
}

}  // namespace

Result<std::optional<std::vector<int64_t>>> take_ints(OpCall& call, const std::string& name) {
  ir::Attribute a;
  KILN_ASSIGN_OR_RETURN(const ir::Attribute* p, take_kind(call, name, Kind::kInts, "ints", &a));
  if (!p) return std::optional<std::vector<int64_t>>();
  return std::optional<std::vector<int64_t>>(std::move(a.ints));
}

Result<std::optional<double>> take_float(OpCall& call, const std::string& name) {
  const ir::Attribute* a = call.attrs.find(name);
  if (a && a->kind == Kind::kInt) {  // tolerate an int where a float is expected
    double v = static_cast<double>(a->i);
    call.attrs.erase(name);
    return std::optional<double>(v);
  }
  ir::Attribute tmp;
  KILN_ASSIGN_OR_RETURN(const ir::Attribute* p, take_kind(call, name, Kind::kFloat, "a float", &tmp));
  if (!p) return std::optional<double>();
  return std::optional<double>(tmp.f);
}

Result<std::optional<int64_t>> take_int(OpCall& call, const std::string& name) {
  ir::Attribute a;
  KILN_ASSIGN_OR_RETURN(const ir::Attribute* p, take_kind(call, name, Kind::kInt, "an int", &a));
  if (!p) return std::optional<int64_t>();
  return std::optional<int64_t>(a.i);
}

Result<std::optional<std::string>> take_string(OpCall& call, const std::string& name) {
  ir::Attribute a;
  KILN_ASSIGN_OR_RETURN(const ir::Attribute* p, take_kind(call, name, Kind::kString, "a string", &a));
  if (!p) return std::optional<std::string>();
  return std::optional<std::string>(std::move(a.s));
}

Result<std::optional<std::vector<double>>> take_floats(OpCall& call, const std::string& name) {
  ir::Attribute a;
  KILN_ASSIGN_OR_RETURN(const ir::Attribute* p, take_kind(call, name, Kind::kFloats, "floats", &a));
  if (!p) return std::optional<std::vector<double>>();
  return std::optional<std::vector<double>>(std::move(a.floats));
}

void trim_inputs(std::vector<int>* ids) {
  while (!ids->empty() && ids->back() == ir::kNoValue) ids->pop_back();
}

}  // namespace kiln::onnx::detail
