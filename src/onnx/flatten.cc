#include "onnx/flatten.h"

#include <functional>
#include <queue>
#include <unordered_map>

#include "onnx/importer.h"
#include "onnx/op_table.h"

namespace kiln::onnx::detail {

using ::onnx::AttributeProto;
using ::onnx::FunctionProto;
using ::onnx::NodeProto;

namespace {

// Bounds on inlining, so a hostile model cannot make the importer loop or explode.
constexpr int kMaxInlineDepth = 32;
constexpr size_t kMaxFlatNodes = size_t{1} << 20;

std::string node_label(const NodeProto& n, size_t index) {
  return n.name().empty() ? n.op_type() + "_" + std::to_string(index) : n.name();
}

class Flattener {
 public:
  Flattener(const ::onnx::ModelProto& m, std::unordered_set<std::string>* used,
            std::deque<NodeProto>* arena)
      : model_(m), used_(used), arena_(arena) {}

  Status add(const NodeProto* n, int opset, const std::string& name, int depth) {
    if (out_.size() >= kMaxFlatNodes)
      return resource_exhausted("the model expands to more than " + std::to_string(kMaxFlatNodes) +
                                " nodes after inlining its functions");
    const FunctionProto* fn = find_function(*n);
    if (!fn) {
      if (!is_default_domain(n->domain()))
        return unsupported("node '" + name + "' (" + n->domain() + "." + n->op_type() +
                           "): domain '" + n->domain() +
                           "' is not supported by kiln (it imports the default ONNX domain and "
                           "the model's own functions)");
      out_.push_back(FlatNode{n, opset, name});
      return Status();
    }
    if (depth >= kMaxInlineDepth)
      return unsupported("node '" + name + "': functions nest more than " +
                         std::to_string(kMaxInlineDepth) + " deep (recursive function?)");
    return inline_call(*n, *fn, opset, name, depth);
  }

  std::vector<FlatNode> take() { return std::move(out_); }

 private:
  const FunctionProto* find_function(const NodeProto& n) const {
    // A default-domain op kiln knows is never shadowed by a model function.
    if (is_default_domain(n.domain()) && find_op(n.op_type())) return nullptr;
    for (const FunctionProto& f : model_.functions())
      if (f.name() == n.op_type() && f.domain() == n.domain() && f.overload() == n.overload())
        return &f;
    return nullptr;
  }

  std::string fresh(const std::string& base) {
    std::string s = base;
    int k = 0;
    while (used_->count(s)) s = base + "_" + std::to_string(++k);
    used_->insert(s);
    return s;
  }

  Status inline_call(const NodeProto& call, const FunctionProto& fn, int opset,
                     const std::string& name, int depth) {
    int body_opset = opset;
    for (const auto& imp : fn.opset_import()) {
      if (!is_default_domain(imp.domain())) continue;
      if (imp.version() < 1 || imp.version() > kMaxOpset)
        return unsupported("function " + fn.name() + " (called by node '" + name +
                           "') imports default-domain opset " + std::to_string(imp.version()) +
                           "; kiln knows opsets 1 to " + std::to_string(kMaxOpset));
      body_opset = static_cast<int>(imp.version());
    }
    if (call.input_size() > fn.input_size() || call.output_size() > fn.output_size())
      return invalid_data("node '" + name + "' calls function " + fn.name() + " with " +
                          std::to_string(call.input_size()) + " inputs and " +
                          std::to_string(call.output_size()) + " outputs; it declares " +
                          std::to_string(fn.input_size()) + " and " +
                          std::to_string(fn.output_size()));
    std::unordered_map<std::string, std::string> rename;
    for (int i = 0; i < fn.input_size(); ++i)
      rename[fn.input(i)] = i < call.input_size() ? call.input(i) : std::string();
    for (int i = 0; i < fn.output_size(); ++i) {
      bool given = i < call.output_size() && !call.output(i).empty();
      rename[fn.output(i)] = given ? call.output(i) : fresh(name + "/" + fn.output(i));
    }
    auto map_name = [&](const std::string& s) -> std::string {
      if (s.empty()) return s;
      auto it = rename.find(s);
      if (it != rename.end()) return it->second;
      std::string fresh_name = fresh(name + "/" + s);
      rename[s] = fresh_name;
      return fresh_name;
    };
    std::unordered_map<std::string, const AttributeProto*> given, defaults;
    for (const AttributeProto& a : call.attribute()) given[a.name()] = &a;
    for (const AttributeProto& a : fn.attribute_proto()) defaults[a.name()] = &a;

    for (int i = 0; i < fn.node_size(); ++i) {
      const NodeProto& src = fn.node(i);
      arena_->push_back(NodeProto());
      NodeProto& dst = arena_->back();
      dst.set_op_type(src.op_type());
      dst.set_domain(src.domain());
      dst.set_overload(src.overload());
      std::string inner = name + "/" + node_label(src, static_cast<size_t>(i));
      dst.set_name(inner);
      for (const std::string& in : src.input()) dst.add_input(map_name(in));
      for (const std::string& out : src.output()) dst.add_output(map_name(out));
      for (const AttributeProto& a : src.attribute()) {
        if (a.ref_attr_name().empty()) {
          *dst.add_attribute() = a;
          continue;
        }
        const AttributeProto* v = nullptr;
        if (auto it = given.find(a.ref_attr_name()); it != given.end()) v = it->second;
        else if (auto d = defaults.find(a.ref_attr_name()); d != defaults.end()) v = d->second;
        if (!v) continue;  // neither given nor defaulted: the attribute is absent
        AttributeProto* copy = dst.add_attribute();
        *copy = *v;
        copy->set_name(a.name());
      }
      KILN_RETURN_IF_ERROR(add(&dst, body_opset, inner, depth + 1));
    }
    return Status();
  }

  const ::onnx::ModelProto& model_;
  std::unordered_set<std::string>* used_;
  std::deque<NodeProto>* arena_;
  std::vector<FlatNode> out_;
};

}  // namespace

bool is_default_domain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

Result<std::vector<FlatNode>> flatten_graph(const ::onnx::ModelProto& model, int opset,
                                            std::unordered_set<std::string>* used_names,
                                            std::deque<NodeProto>* arena) {
  Flattener f(model, used_names, arena);
  const auto& nodes = model.graph().node();
  for (int i = 0; i < nodes.size(); ++i)
    KILN_RETURN_IF_ERROR(f.add(&nodes.Get(i), opset, node_label(nodes.Get(i), static_cast<size_t>(i)), 0));
  return f.take();
}

Result<std::vector<FlatNode>> topo_order(std::vector<FlatNode> nodes) {
  const size_t n = nodes.size();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < n; ++i) {
    for (const std::string& out : nodes[i].proto->output()) {
      if (out.empty()) continue;
      auto [it, fresh] = producer.emplace(out, i);
      if (!fresh)
        return invalid_data("value '" + out + "' is produced by two nodes ('" +
                            nodes[it->second].name + "' and '" + nodes[i].name + "')");
    }
  }
  std::vector<int> pending(n, 0);
  std::vector<std::vector<size_t>> users(n);
  for (size_t i = 0; i < n; ++i) {
    for (const std::string& in : nodes[i].proto->input()) {
      auto it = in.empty() ? producer.end() : producer.find(in);
      if (it == producer.end()) continue;
      ++pending[i];
      users[it->second].push_back(i);
    }
  }
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < n; ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<FlatNode> order;
  order.reserve(n);
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(nodes[i]);
    for (size_t u : users[i])
      if (--pending[u] == 0) ready.push(u);
  }
  if (order.size() != n) {
    for (size_t i = 0; i < n; ++i)
      if (pending[i] > 0)
        return invalid_data("the graph has a cycle through node '" + nodes[i].name + "' (" +
                            nodes[i].proto->op_type() + ")");
  }
  return order;
}

}  // namespace kiln::onnx::detail
