#include "ir/graph.h"

#include <algorithm>
#include <queue>

namespace kiln::ir {

std::string Dim::to_string() const {
  if (is_known()) return std::to_string(value);
  return symbol.empty() ? "?" : symbol;
}

Shape Shape::of(const Dims& d) {
  Shape s;
  s.rank_known = true;
  for (int64_t v : d) s.dims.push_back(Dim::known(v));
  return s;
}

bool Shape::fully_known() const {
  if (!rank_known) return false;
  return std::all_of(dims.begin(), dims.end(), [](const Dim& d) { return d.is_known(); });
}

std::optional<Dims> Shape::concrete() const {
  if (!fully_known()) return std::nullopt;
  Dims out;
  for (const Dim& d : dims) out.push_back(d.value);
  return out;
}

std::string Shape::to_string() const {
  if (!rank_known) return "[*]";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += dims[i].to_string();
  }
  return s + "]";
}

const Attribute* Attributes::find(const std::string& name) const {
  auto it = map_.find(name);
  return it == map_.end() ? nullptr : &it->second;
}

void Attributes::set_int(const std::string& n, int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  map_[n] = std::move(a);
}
void Attributes::set_float(const std::string& n, double v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  map_[n] = std::move(a);
}
void Attributes::set_string(const std::string& n, std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  map_[n] = std::move(a);
}
void Attributes::set_ints(const std::string& n, std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  map_[n] = std::move(a);
}
void Attributes::set_floats(const std::string& n, std::vector<double> v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloats;
  a.floats = std::move(v);
  map_[n] = std::move(a);
}

int64_t Attributes::get_int(const std::string& n, int64_t def) const {
  const Attribute* a = find(n);
  return a && a->kind == Attribute::Kind::kInt ? a->i : def;
}
double Attributes::get_float(const std::string& n, double def) const {
  const Attribute* a = find(n);
  if (!a) return def;
  if (a->kind == Attribute::Kind::kFloat) return a->f;
  if (a->kind == Attribute::Kind::kInt) return static_cast<double>(a->i);
  return def;
}
std::string Attributes::get_string(const std::string& n, const std::string& def) const {
  const Attribute* a = find(n);
  return a && a->kind == Attribute::Kind::kString ? a->s : def;
}
std::vector<int64_t> Attributes::get_ints(const std::string& n, std::vector<int64_t> def) const {
  const Attribute* a = find(n);
  return a && a->kind == Attribute::Kind::kInts ? a->ints : def;
}
std::vector<double> Attributes::get_floats(const std::string& n, std::vector<double> def) const {
  const Attribute* a = find(n);
  return a && a->kind == Attribute::Kind::kFloats ? a->floats : def;
}

int Graph::add_value(std::string name, DType dtype, Shape shape) {
  Value v;
  v.name = std::move(name);
  v.dtype = dtype;
  v.shape = std::move(shape);
  values.push_back(std::move(v));
  return static_cast<int>(values.size()) - 1;
}

int Graph::add_constant(std::string name, Tensor t) {
  int id = add_value(std::move(name), t.dtype(), Shape::of(t.dims()));
  values[id].constant = static_cast<int>(constants.size());
  constants.push_back(std::move(t));
  return id;
}

int Graph::add_node(Node node) {
  int idx = static_cast<int>(nodes.size());
  for (int o : node.outputs)
    if (o >= 0 && o < static_cast<int>(values.size())) values[o].producer = idx;
  nodes.push_back(std::move(node));
  return idx;
}

std::optional<int> Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return static_cast<int>(i);
  return std::nullopt;
}

Status Graph::validate() const {
  const int nv = static_cast<int>(values.size());
  std::vector<char> ready(values.size(), 0);
  for (int id : inputs) {
    if (id < 0 || id >= nv) return invalid_data("graph input refers to value " + std::to_string(id) + " out of range");
    ready[id] = 1;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const Value& v = values[i];
    if (v.constant >= 0) {
      if (v.constant >= static_cast<int>(constants.size()))
        return invalid_data("value '" + v.name + "' refers to a missing constant");
      ready[i] = 1;
    }
  }
  std::vector<char> produced(values.size(), 0);
  for (size_t n = 0; n < nodes.size(); ++n) {
    const Node& node = nodes[n];
    for (int in : node.inputs) {
      if (in == kNoValue) continue;
      if (in < 0 || in >= nv)
        return invalid_data("node '" + node.name + "' (" + node.op + ") has an input id out of range");
      if (!ready[in])
        return invalid_data("node '" + node.name + "' (" + node.op + ") reads '" + values[in].name +
                            "' before it is produced (graph not in topological order, or cyclic)");
    }
    for (int out : node.outputs) {
      if (out == kNoValue) continue;
      if (out < 0 || out >= nv)
        return invalid_data("node '" + node.name + "' (" + node.op + ") has an output id out of range");
      if (produced[out] || values[out].constant >= 0 ||
          std::find(inputs.begin(), inputs.end(), out) != inputs.end())
        return invalid_data("value '" + values[out].name + "' is produced more than once");
      produced[out] = 1;
      ready[out] = 1;
    }
  }
  for (int id : outputs) {
    if (id < 0 || id >= nv) return invalid_data("graph output refers to value " + std::to_string(id) + " out of range");
    if (!ready[id]) return invalid_data("graph output '" + values[id].name + "' is never produced");
  }
  return Status();
}

Status Graph::topo_sort() {
  const size_t nv = values.size();
  std::vector<int> producer(nv, -1);
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int o : nodes[n].outputs)
      if (o >= 0 && static_cast<size_t>(o) < nv) producer[o] = static_cast<int>(n);
  std::vector<int> pending(nodes.size(), 0);
  std::vector<std::vector<int>> users(nodes.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (int in : nodes[n].inputs) {
      if (in < 0 || static_cast<size_t>(in) >= nv || producer[in] < 0) continue;
      ++pending[n];
      users[producer[in]].push_back(static_cast<int>(n));
    }
  }
  std::queue<int> q;
  for (size_t n = 0; n < nodes.size(); ++n)
    if (pending[n] == 0) q.push(static_cast<int>(n));
  std::vector<int> order;
  while (!q.empty()) {
    int n = q.front();
    q.pop();
    order.push_back(n);
    for (int u : users[n])
      if (--pending[u] == 0) q.push(u);
  }
  if (order.size() != nodes.size()) {
    for (size_t n = 0; n < nodes.size(); ++n)
      if (pending[n] > 0)
        return invalid_data("graph has a cycle through node '" + nodes[n].name + "' (" + nodes[n].op + ")");
  }
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  for (int n : order) sorted.push_back(std::move(nodes[n]));
  nodes = std::move(sorted);
  for (auto& v : values) v.producer = -1;
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int o : nodes[n].outputs)
      if (o >= 0) values[o].producer = static_cast<int>(n);
  return Status();
}

void Graph::prune() {
  std::vector<char> live(values.size(), 0);
  for (int o : outputs) live[o] = 1;
  std::vector<char> keep(nodes.size(), 0);
  for (size_t i = nodes.size(); i-- > 0;) {
    bool needed = false;
    for (int o : nodes[i].outputs)
      if (o >= 0 && live[o]) needed = true;
    if (!needed) continue;
    keep[i] = 1;
    for (int in : nodes[i].inputs)
      if (in >= 0) live[in] = 1;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
  // Values keep their ids (bindings refer to them); constants nobody reads are dropped.
  std::vector<Tensor> kept_constants;
  for (size_t i = 0; i < values.size(); ++i) {
    Value& v = values[i];
    v.producer = -1;
    if (v.constant < 0) continue;
    if (!live[i]) {
      v.constant = -1;
      continue;
    }
    kept_constants.push_back(std::move(constants[v.constant]));
    v.constant = static_cast<int>(kept_constants.size()) - 1;
  }
  constants = std::move(kept_constants);
  for (size_t n = 0; n < nodes.size(); ++n)
    for (int o : nodes[n].outputs)
      if (o >= 0) values[o].producer = static_cast<int>(n);
}

}  // namespace kiln::ir
