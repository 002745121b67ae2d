#include <optional>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "compiler/passes.h"
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

}  // namespace kiln::compiler
