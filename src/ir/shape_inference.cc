#include "ir/shape_inference.h"

#include <algorithm>

#include "ir/op_registry.h"

namespace kiln::ir {
namespace {

std::string node_where(const Node& n) { return "node '" + n.name + "' (" + n.op + ")"; }

Status check_arity(const Node& n, const OpSchema& s) {
  const int ni = static_cast<int>(std::min<size_t>(n.inputs.size(), kVariadic));
  const int no = static_cast<int>(std::min<size_t>(n.outputs.size(), kVariadic));
  auto range = [](int lo, int hi) {
    return hi == kVariadic ? "at least " + std::to_string(lo)
                           : lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
  };
  if (ni < s.min_inputs || ni > s.max_inputs)
    return invalid_data(node_where(n) + " has " + std::to_string(ni) + " inputs; " + std::string(s.op) +
                        " takes " + range(s.min_inputs, s.max_inputs));
  if (no < s.min_outputs || no > s.max_outputs)
    return invalid_data(node_where(n) + " has " + std::to_string(no) + " outputs; " + std::string(s.op) +
                        " gives " + range(s.min_outputs, s.max_outputs));
  for (int i = 0; i < s.min_inputs; ++i)
    if (n.inputs[static_cast<size_t>(i)] == kNoValue)
      return invalid_data(node_where(n) + ": input " + std::to_string(i) + " is required");
  return Status();
}

// Declared facts merged with inferred ones; a contradiction is an error naming both.
Status merge(const Node& n, const Value& v, const ValueFacts& inferred, ValueFacts* out) {
  auto contradiction = [&](const std::string& what, const std::string& declared, const std::string& got) {
    return invalid_data(node_where(n) + ": output '" + v.name + "' is declared " + what + " " + declared +
                        " but inferred " + got + " from the node's inputs");
  };
  out->content = inferred.content;
  out->dtype = v.dtype != DType::kUndefined ? v.dtype : inferred.dtype;
  if (v.dtype != DType::kUndefined && inferred.dtype != DType::kUndefined && v.dtype != inferred.dtype)
    return contradiction("as", std::string(dtype_name(v.dtype)), std::string(dtype_name(inferred.dtype)));
  const Shape& d = v.shape;
  const Shape& i = inferred.shape;
  if (!i.rank_known || !d.rank_known) {
    out->shape = i.rank_known ? i : d;
    return Status();
  }
  if (d.dims.size() != i.dims.size()) return contradiction("with shape", d.to_string(), i.to_string());
  out->shape = d;
  for (size_t k = 0; k < d.dims.size(); ++k) {
    const Dim& a = d.dims[k];
    const Dim& b = i.dims[k];
    if (a.is_known() && b.is_known() && a.value != b.value)
      return contradiction("with shape", d.to_string(), i.to_string());
    if (b.is_known() || (!a.is_known() && a.symbol.empty())) out->shape.dims[k] = b;
  }
  return Status();
}

}  // namespace

Status infer_shapes(Graph& g, InferStats* stats) {
  KILN_RETURN_IF_ERROR(g.validate());
  InferStats local;
  InferStats& st = stats ? *stats : local;
  st = InferStats{};
  std::vector<ValueFacts> facts(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i) {
    const Value& v = g.values[i];
    facts[i].dtype = v.dtype;
    facts[i].shape = v.shape;
    if (v.constant >= 0) {
      const Tensor& t = g.constants[static_cast<size_t>(v.constant)];
      facts[i].constant = &t;
      facts[i].dtype = t.dtype();
      facts[i].shape = Shape::of(t.dims());
    }
  }
  for (const Node& n : g.nodes) {
    ++st.nodes;
    const OpSchema* schema = find_op_schema(n.op);
    if (!schema) {
      auto it = std::lower_bound(st.unknown_ops.begin(), st.unknown_ops.end(), n.op);
      if (it == st.unknown_ops.end() || *it != n.op) st.unknown_ops.insert(it, n.op);
    } else {
      KILN_RETURN_IF_ERROR(check_arity(n, *schema));
      std::vector<const ValueFacts*> in;
      for (int id : n.inputs) in.push_back(id == kNoValue ? nullptr : &facts[static_cast<size_t>(id)]);
      std::vector<ValueFacts> out(n.outputs.size());
      InferContext ctx(n, std::move(in), &out);
      KILN_RETURN_IF_ERROR(schema->infer(ctx));
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        const int id = n.outputs[k];
        if (id == kNoValue) continue;
        Value& v = g.values[static_cast<size_t>(id)];
        ValueFacts merged;
        KILN_RETURN_IF_ERROR(merge(n, v, out[k], &merged));
        v.dtype = merged.dtype;
        v.shape = merged.shape;
        facts[static_cast<size_t>(id)] = std::move(merged);
      }
    }
    for (int id : n.outputs) {
      if (id == kNoValue) continue;
      const Value& v = g.values[static_cast<size_t>(id)];
      ++st.values;
      if (v.dtype != DType::kUndefined) ++st.dtype_known;
      if (!v.shape.rank_known) continue;
      ++st.rank_known;
      bool all_known = true, all_named = true;
      for (const Dim& d : v.shape.dims) {
        all_known = all_known && d.is_known();
        all_named = all_named && (d.is_known() || !d.symbol.empty());
      }
      if (all_known) ++st.fully_known;
      else if (all_named) ++st.symbolic;
    }
  }
  return Status();
}

}  // namespace kiln::ir
