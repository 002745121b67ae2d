#include "backends/cuda/shape_memo.h"

#include <optional>
#include <set>
#include <string_view>

namespace kiln::cuda {
namespace {

// Ops whose outputs differ between calls with equal inputs.
bool nondeterministic(const std::string& op) {
  return op.rfind("Random", 0) == 0 || op == "Multinomial" || op == "Bernoulli" || op == "Dropout";
}

// Every dim a number, or a product ("a*b") of symbols the graph inputs' dims carry.
bool size_follows_from_inputs(const ir::Shape& s, const std::set<std::string, std::less<>>& input_symbols) {
  if (!s.rank_known) return false;
  for (const ir::Dim& d : s.dims) {
    if (d.is_known()) continue;
    if (d.symbol.empty()) return false;
    std::string_view rest = d.symbol;
    while (!rest.empty()) {
      const size_t star = rest.find('*');
      if (!input_symbols.count(rest.substr(0, star))) return false;
      rest = star == std::string_view::npos ? std::string_view() : rest.substr(star + 1);
    }
  }
  return true;
}

}  // namespace

std::vector<bool> ShapeMemo::shape_only_nodes(const ir::Graph& g) {
  std::set<std::string, std::less<>> input_symbols;
  for (int id : g.inputs)
    for (const ir::Dim& d : g.values[static_cast<size_t>(id)].shape.dims)
      if (!d.is_known() && !d.symbol.empty()) input_symbols.insert(d.symbol);
  std::vector<bool> value_known(g.values.size(), false);  // contents follow from the signature
  for (size_t i = 0; i < g.values.size(); ++i) value_known[i] = g.values[i].constant >= 0;
  std::vector<bool> out(g.nodes.size(), false);
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    const ir::Node& node = g.nodes[n];
    if (node.inputs.empty() || nondeterministic(node.op)) continue;
    bool qualifies = false;
    if ((node.op == "Shape" || node.op == "Size") && node.inputs.size() == 1 && node.inputs[0] >= 0) {
      qualifies = size_follows_from_inputs(g.values[static_cast<size_t>(node.inputs[0])].shape, input_symbols);
    } else {
      qualifies = true;
      for (int id : node.inputs)
        if (id >= 0 && !value_known[static_cast<size_t>(id)]) qualifies = false;
    }
    // Shape arithmetic is small vectors; a large value that merely derives from constants (a
    // positional table sliced to the sequence length) is device data, not for the memo.
    for (int id : node.outputs) {
      if (id < 0) continue;
      const ir::Shape& shape = g.values[static_cast<size_t>(id)].shape;
      std::optional<Dims> dims = shape.concrete();
      if (!dims || dims->size() > 1 || dims_numel(*dims) > kMaxElements) qualifies = false;
    }
    if (!qualifies) continue;
    out[n] = true;
    for (int id : node.outputs)
      if (id >= 0) value_known[static_cast<size_t>(id)] = true;
  }
  return out;
}

std::shared_ptr<const ShapeMemo::Entry> ShapeMemo::find(const std::string& signature) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [sig, entry] : entries_)
    if (sig == signature) return entry;
  return nullptr;
}

void ShapeMemo::put(const std::string& signature, std::shared_ptr<const Entry> entry) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [sig, e] : entries_)
    if (sig == signature) return;
  if (entries_.size() >= kMaxSignatures) entries_.pop_front();
  entries_.emplace_back(signature, std::move(entry));
}

size_t ShapeMemo::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace kiln::cuda
