#include <optional>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
#include "ir/infer_util.h"
#include "ir/shape_inference.h"
#include "core/alloc_limit.h"

namespace kiln::compiler {

namespace {

// Shape and Size read only their input's dims: when shape inference knows every dim (a static
// profile pins the graph's inputs, builder.cc), they are constants. The CPU kernel computes them
// from a data-less stand-in of the input.
std::optional<Tensor> dims_only_input(const ir::Graph& graph, const ir::Node& node) {
  if ((node.op != "Shape" && node.op != "Size") || node.inputs.size() != 1 || node.inputs[0] < 0) return std::nullopt;
  const ir::Value& v = graph.values[static_cast<size_t>(node.inputs[0])];
  std::optional<Dims> dims = v.shape.concrete();
  if (!dims) return std::nullopt;
  int64_t numel = 1;  // declared dims of an untrusted model may overflow Size's product
  for (int64_t d : *dims)
    if (d < 0 || __builtin_mul_overflow(numel, d, &numel)) return std::nullopt;
  return Tensor::wrap(v.dtype == DType::kUndefined ? DType::kF32 : v.dtype, *dims, nullptr);
}

}  // namespace

Status fold_constants(ir::Graph& graph, size_t max_bytes, FoldStats* stats) {
  std::vector<ir::Node> kept;
  kept.reserve(graph.nodes.size());
  for (ir::Node& node : graph.nodes) {
    std::optional<Tensor> stand_in = dims_only_input(graph, node);
    bool all_const = !node.inputs.empty();
    for (int id : node.inputs)
      if (id >= 0 && graph.values[id].constant < 0) all_const = false;
    if ((!all_const && !stand_in) || !cpu::kernel_registry().find(node.op)) {
      kept.push_back(std::move(node));
      continue;
    }
    std::vector<Tensor> in(node.inputs.size());
    for (size_t k = 0; k < node.inputs.size(); ++k)
      if (node.inputs[k] >= 0 && graph.values[node.inputs[k]].constant >= 0)
        in[k] = graph.constants[graph.values[node.inputs[k]].constant];
    if (stand_in && !in[0].defined()) in[0] = *stand_in;
    std::vector<Tensor> out(node.outputs.size());
    // Results over max_bytes are not kept: never let the kernel allocate them in the first
    // place (a tiny model could otherwise make the builder allocate gigabytes to discard).
    Status run;
    bool too_big = false;
    {
      ScopedAllocationLimit limit(max_bytes);
      run = cpu::run_node(node, in, out);
      too_big = limit.refused();
    }
    if (!run.ok() && too_big) {
      kept.push_back(std::move(node));
      continue;
    }
    KILN_RETURN_IF_ERROR(run);
    bool small = true;
    for (const Tensor& t : out) small = small && (!t.defined() || t.nbytes() <= max_bytes);
    if (!small) {
      kept.push_back(std::move(node));
      continue;
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      int id = node.outputs[k];
      if (id < 0 || !out[k].defined()) continue;
      ir::Value& v = graph.values[id];
      v.constant = static_cast<int>(graph.constants.size());
      v.producer = -1;
      if (v.dtype == DType::kUndefined) v.dtype = out[k].dtype();
      v.shape = ir::Shape::of(out[k].dims());
      graph.constants.push_back(std::move(out[k]));
    }
    if (stats) ++stats->folded_nodes;
  }
  graph.nodes = std::move(kept);
  for (auto& v : graph.values) v.producer = -1;
  for (size_t n = 0; n < graph.nodes.size(); ++n)
    for (int o : graph.nodes[n].outputs)
      if (o >= 0) graph.values[o].producer = static_cast<int>(n);
  return Status();
}

Status fold_reshape_targets(ir::Graph& graph, size_t* reshapes) {
  size_t local = 0;
  if (!reshapes) reshapes = &local;
  KILN_RETURN_IF_ERROR(graph.validate());
  KILN_RETURN_IF_ERROR(ir::infer_shapes(graph, nullptr));
  bool changed = false;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    ir::Node& node = graph.nodes[n];
    if (node.op != "Reshape" || node.inputs.size() != 2 || node.outputs.size() != 1 || node.inputs[1] < 0 ||
        node.outputs[0] < 0 || graph.values[static_cast<size_t>(node.inputs[1])].constant >= 0)
      continue;
    const ir::Shape& out = graph.values[static_cast<size_t>(node.outputs[0])].shape;
    if (!out.rank_known || out.dims.empty()) continue;
    std::vector<int64_t> target;
    int open = 0;
    bool zero = false;
    for (const ir::Dim& d : out.dims) {
      if (d.is_known()) {
        zero = zero || d.value == 0;
        target.push_back(d.value);
      } else {
        ++open;
        target.push_back(-1);
      }
    }
    if (open > 1 || zero) continue;
    // The -1 must come out as the dim inference found: the input's and the output's element
    // counts, as products of known sizes and symbols, must be the same (a model whose computed
    // target does not add up fails at run time; a -1 would hide that).
    const ir::Shape& in = graph.values[static_cast<size_t>(node.inputs[0])].shape;
    if (!in.rank_known) continue;
    const ir::infer::Factors a = ir::infer::factors_of(in.dims), b = ir::infer::factors_of(out.dims);
    if (!a.exact || !b.exact || a.coef == 0 || a.coef != b.coef || a.symbols != b.symbols) continue;
    const std::string name = graph.values[static_cast<size_t>(node.outputs[0])].name + "_kiln_target";
    const int c = graph.add_constant(name, Tensor::from_vector(DType::kI64, {static_cast<int64_t>(target.size())}, target));
    graph.nodes[n].inputs[1] = c;  // add_constant may have grown the value table, not the nodes
    ++*reshapes;
    changed = true;
  }
  if (!changed) return Status();
  graph.prune();  // the shape arithmetic that fed only the replaced targets
  return graph.validate();
}

}  // namespace kiln::compiler

