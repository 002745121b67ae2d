// The precision pass: f32 graph -> f16/bf16 graph with an f32 interface (contract in passes.h).
#include <cmath>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include "compiler/passes.h"
#include "core/half.h"

namespace kiln::compiler {
namespace {

// Inputs that ONNX types as float whatever the data type, and kernels read as f32.
bool keeps_f32(const ir::Node& node, size_t slot) {
  return node.op == "Resize" && (slot == 1 || slot == 2);
}

uint16_t to_low_bits(float x, DType low) {
  if (low == DType::kF16) {
    constexpr float kMax = 65504.0f;
    if (std::isfinite(x)) x = std::fmax(-kMax, std::fmin(kMax, x));
    return f32_to_f16(x);
  }
  uint16_t b = f32_to_bf16(x);
  if (std::isfinite(x) && (b & 0x7fffu) == 0x7f80u) b = static_cast<uint16_t>((b & 0x8000u) | 0x7f7fu);
  return b;
}

Tensor to_low(const Tensor& t, DType low) {
  Tensor out = Tensor::zeros(low, t.dims());
  const float* src = t.data_as<const float>();
  uint16_t* dst = out.data_as<uint16_t>();
  for (int64_t i = 0; i < t.numel(); ++i) dst[i] = to_low_bits(src[i], low);
  return out;
}

// Names for the values the pass adds, unique in the graph.
class Namer {
 public:
  explicit Namer(const ir::Graph& g) {
    for (const ir::Value& v : g.values) used_.insert(v.name);
  }
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int k = 1; !used_.insert(name).second; ++k) name = base + "_" + std::to_string(k);
    return name;
  }

 private:
  std::unordered_set<std::string> used_;
};

ir::Node make_cast(std::string name, int from, int to, DType dtype) {
  ir::Node n;
  n.name = std::move(name);
  n.op = "Cast";
  n.attrs.set_int("to", static_cast<int64_t>(dtype));
  n.inputs = {from};
  n.outputs = {to};
  return n;
}

// Retargets attributes that name f32 as the node's result type.
void retarget_attrs(ir::Node& node, DType low) {
  constexpr int64_t kF32 = static_cast<int64_t>(DType::kF32);
  if (node.op == "Cast" && node.attrs.get_int("to", 0) == kF32) node.attrs.set_int("to", static_cast<int64_t>(low));
  if (node.attrs.get_int("dtype", 0) == kF32) node.attrs.set_int("dtype", static_cast<int64_t>(low));
  const ir::Attribute* value = node.attrs.find("value");
  if (value && value->kind == ir::Attribute::Kind::kTensor && value->t.dtype() == DType::kF32) {
    ir::Attribute a = *value;
    a.t = to_low(value->t, low);
    node.attrs.set("value", std::move(a));
  }
}

}  // namespace

Status lower_precision(ir::Graph& g, DType low, PrecisionStats* stats) {
  if (low != DType::kF16 && low != DType::kBF16)
    return invalid_argument("lower_precision: target dtype must be f16 or bf16, got " +
                            std::string(dtype_name(low)));
  PrecisionStats local;
  if (!stats) stats = &local;
  Namer namer(g);
  const size_t nv = g.values.size();
  std::vector<char> was_f32(nv, 0), is_input(nv, 0), is_output(nv, 0);
  for (size_t i = 0; i < nv; ++i) was_f32[i] = g.values[i].dtype == DType::kF32;
  for (int id : g.inputs) is_input[id] = 1;
  for (int id : g.outputs) is_output[id] = 1;

  // remap[v]: the value nodes read in place of v (low-typed for every f32 v).
  std::vector<int> remap(nv);
  for (size_t i = 0; i < nv; ++i) remap[i] = static_cast<int>(i);
  std::vector<ir::Node> nodes;
  nodes.reserve(g.nodes.size() + g.inputs.size() + g.outputs.size());

  // Engine inputs stay f32; the graph reads a low copy.
  for (int id : g.inputs) {
    if (!was_f32[id]) continue;
    const ir::Value in = g.values[id];
    int low_id = g.add_value(namer.fresh(in.name + "/" + std::string(dtype_name(low))), low, in.shape);
    nodes.push_back(make_cast(namer.fresh(in.name + "/cast_in"), id, low_id, low));
    remap[id] = low_id;
    ++stats->casts_inserted;
  }
  // f32 constants: a low copy for every reader but the f32-only slots (the original stays for
  // those, and for a constant that is itself a graph output; prune() drops it if unread).
  auto low_constant = [&](int id) {
    if (remap[id] == id) {
      const ir::Value c = g.values[id];
      remap[id] = g.add_constant(namer.fresh(c.name + "/" + std::string(dtype_name(low))),
                                 to_low(g.constants[c.constant], low));
      ++stats->constants_converted;
    }
    return remap[id];
  };
  // Node outputs: retyped in place, except graph outputs, which get an internal low value and
  // are produced by a Cast back to f32 after the last node.
  std::vector<ir::Node> output_casts;
  for (ir::Node& node : g.nodes) {
    bool f32_result = false;
    for (int o : node.outputs) f32_result = f32_result || (o >= 0 && was_f32[o]);
    if (f32_result) retarget_attrs(node, low);
    for (int& o : node.outputs) {
      if (o < 0 || !was_f32[o]) continue;
      ++stats->values_retyped;
      if (!is_output[o]) {
        g.values[o].dtype = low;
        continue;
      }
      const ir::Value out = g.values[o];
      int internal = g.add_value(namer.fresh(out.name + "/" + std::string(dtype_name(low))), low, out.shape);
      output_casts.push_back(make_cast(namer.fresh(out.name + "/cast_out"), internal, o, DType::kF32));
      remap[o] = internal;
      o = internal;
      ++stats->casts_inserted;
    }
  }
  for (ir::Node& node : g.nodes) {
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      int& in = node.inputs[k];
      if (in < 0 || !was_f32[in]) continue;
      const bool constant = g.values[in].constant >= 0;
      if (!keeps_f32(node, k)) {
        in = constant ? low_constant(in) : remap[in];
        continue;
      }
      if (constant || is_input[in]) continue;  // still the original f32 value
      const std::string base = g.values[in].name;
      int f32_id = g.add_value(namer.fresh(base + "/f32"), DType::kF32, g.values[in].shape);
      nodes.push_back(make_cast(namer.fresh(base + "/cast_f32"), remap[in], f32_id, DType::kF32));
      in = f32_id;
      ++stats->casts_inserted;
    }
    nodes.push_back(std::move(node));
  }
  for (ir::Node& c : output_casts) nodes.push_back(std::move(c));
  g.nodes = std::move(nodes);
  for (ir::Value& v : g.values) v.producer = -1;
  for (size_t n = 0; n < g.nodes.size(); ++n)
    for (int o : g.nodes[n].outputs)
      if (o >= 0) g.values[o].producer = static_cast<int>(n);
  return g.validate();
}

}  // namespace kiln::compiler
