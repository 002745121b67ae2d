// Graph-to-graph compiler passes. Each keeps the graph valid (ir::Graph::validate) and
// deterministic: the same input graph always gives the same output graph.
#pragma once

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::compiler {

struct FoldStats {
  size_t folded_nodes = 0;
};

// Evaluates on the CPU every node whose inputs are all constants and replaces its outputs with
// constants, as long as each result stays under `max_bytes`. Kernel errors are returned (a
// constant subgraph that cannot be evaluated would fail at every run as well).
Status fold_constants(ir::Graph& graph, size_t max_bytes, FoldStats* stats);

}  // namespace kiln::compiler
