// Turns a ModelProto's graph into the flat, topologically ordered list of default-domain nodes
// the lowerings see: calls to model-local functions (ModelProto.functions) are inlined, any other
// non-default domain is kUnsupported. Internal to src/onnx.
#pragma once

#include <deque>
#include <string>
#include <unordered_set>
#include <vector>

#include "kiln/status.h"
#include "kiln_onnx/onnx.pb.h"

namespace kiln::onnx::detail {

struct FlatNode {
  const ::onnx::NodeProto* proto;  // into the model, or into the arena for inlined nodes
  int opset;                       // the default-domain opset in effect (-1: none imported)
  std::string name;                // the node's name, or "<op>_<index>" when it has none
};

bool is_default_domain(const std::string& domain);

// `used_names` holds every value name of the graph (inputs, initializers, node inputs/outputs,
// outputs); names made for inlined values are added to it. Rewritten nodes live in `arena`.
Result<std::vector<FlatNode>> flatten_graph(const ::onnx::ModelProto& model, int opset,
                                            std::unordered_set<std::string>* used_names,
                                            std::deque<::onnx::NodeProto>* arena);

// Orders nodes so every value is produced before it is read, keeping file order where it
// already is. kInvalidData for a value produced twice or a cycle.
Result<std::vector<FlatNode>> topo_order(std::vector<FlatNode> nodes);

}  // namespace kiln::onnx::detail
