// fuse_elementwise: connected elementwise nodes become one kiln.FusedElementwise node.
//
// Groups grow backwards from a root (visited in reverse topological order): a producer joins
// when it is fusable, its output is no graph output, every consumer of its output is already in
// the group, and the group keeps at most kFusedMaxInputs external inputs. Every member but the
// root is then an ancestor of the root whose output never leaves the group, so the only edge out
// of a group is the root's output: replacing the group by one node at the root's place keeps
// the graph acyclic and topologically ordered. Scalar constants become literals of the program.
#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "backends/cpu/ops/fused_elementwise_program.h"
#include "compiler/passes.h"
#include "ir/shape_inference.h"

namespace kiln::compiler {
namespace {

using cpu::FusedProgram;
using cpu::FusedStep;

// A fusable node as a program step: its program op, parameters and operand value ids.
struct Candidate {
  std::string op;
  std::vector<double> params;
  std::vector<int> operands;
};

// The value of a one-element constant, when it is exact as a double.
std::optional<double> scalar_constant(const ir::Graph& g, int id) {
  if (id < 0) return std::nullopt;
  const ir::Value& v = g.values[static_cast<size_t>(id)];
  if (v.constant < 0) return std::nullopt;
  const Tensor& t = g.constants[static_cast<size_t>(v.constant)];
  if (t.numel() != 1 || t.rank() > cpu::kFusedMaxRank || cpu::fused_type_class(t.dtype()) == 0) return std::nullopt;
  Result<double> x = cpu::fused_scalar_value(t);
  if (!x.ok() || !cpu::fused_exact_in(t.dtype(), *x)) return std::nullopt;
  return *x;
}

std::optional<Candidate> as_step(const ir::Graph& g, const ir::Node& n) {
  if (n.outputs.size() != 1 || n.outputs[0] < 0 || n.inputs.empty()) return std::nullopt;
  const ir::Attributes& a = n.attrs;
  Candidate c{n.op, {}, n.inputs};
  if (n.op == "Gelu") {
    const std::string mode = a.get_string("approximate", "none");
    if (mode != "none" && mode != "tanh") return std::nullopt;
    if (mode == "tanh") c.op = "Gelu:tanh";
  } else if (n.op == "Mod") {
    const int64_t fmod = a.get_int("fmod", 0);
    if (fmod != 0 && fmod != 1) return std::nullopt;
    if (fmod == 1) c.op = "Mod:fmod";
  } else if (n.op == "LeakyRelu") {
    c.params = {a.get_float("alpha", 0.01)};
  } else if (n.op == "Elu") {
    c.params = {a.get_float("alpha", 1.0)};
  } else if (n.op == "Selu") {
    c.params = {a.get_float("alpha", 1.67326319217681884765625), a.get_float("gamma", 1.05070102214813232421875)};
  } else if (n.op == "HardSigmoid") {
    c.params = {a.get_float("alpha", 0.2), a.get_float("beta", 0.5)};
  } else if (n.op == "IsInf") {
    c.params = {static_cast<double>(a.get_int("detect_positive", 1) != 0),
                static_cast<double>(a.get_int("detect_negative", 1) != 0)};
  } else if (n.op == "Cast") {
    if (a.get_int("to", -1) != static_cast<int64_t>(g.values[static_cast<size_t>(n.outputs[0])].dtype))
      return std::nullopt;
  } else if (n.op == "Clip") {
    if (n.inputs.size() > 3) return std::nullopt;
    c.operands = {n.inputs[0]};
    const double inf = std::numeric_limits<double>::infinity();
    c.params = {-inf, inf};
    for (size_t i = 1; i < n.inputs.size(); ++i) {
      if (n.inputs[i] == ir::kNoValue) continue;
      std::optional<double> b = scalar_constant(g, n.inputs[i]);
      if (!b || g.values[static_cast<size_t>(n.inputs[i])].dtype != g.values[static_cast<size_t>(n.inputs[0])].dtype)
        return std::nullopt;
      c.params[i - 1] = *b;
    }
  }
  const cpu::FusedOpInfo* info = cpu::fused_op(c.op);
  // Program-only names ("Literal", "Gelu:tanh") are not graph ops.
  if (!info || n.op == "Literal" || n.op.find(':') != std::string::npos) return std::nullopt;
  if (c.operands.empty() || c.operands.size() > static_cast<size_t>(cpu::kFusedMaxArgs)) return std::nullopt;
  // The node as a one-step program must be valid: arity, parameters and dtypes.
  FusedProgram p;
  FusedStep st{c.op, {}, g.values[static_cast<size_t>(n.outputs[0])].dtype, c.params};
  for (int id : c.operands) {
    if (id < 0) return std::nullopt;
    st.args.push_back(static_cast<int>(p.inputs.size()));
    p.inputs.push_back(g.values[static_cast<size_t>(id)].dtype);
  }
  p.steps.push_back(std::move(st));
  if (!cpu::fused_program_validate(p).ok()) return std::nullopt;
  return c;
}

class Fuser {
 public:
  explicit Fuser(ir::Graph& g)
      : g_(g), cand_(g.nodes.size()), group_(g.nodes.size(), -1), consumers_(g.values.size()),
        producer_(g.values.size(), -1), is_output_(g.values.size(), false), literal_(g.values.size(), false) {
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      for (int id : g.nodes[n].inputs)
        if (id >= 0) consumers_[static_cast<size_t>(id)].insert(static_cast<int>(n));
      for (int id : g.nodes[n].outputs)
        if (id >= 0) producer_[static_cast<size_t>(id)] = static_cast<int>(n);
      cand_[n] = as_step(g, g.nodes[n]);
    }
    for (int id : g.outputs) is_output_[static_cast<size_t>(id)] = true;
    for (size_t id = 0; id < g.values.size(); ++id) literal_[id] = scalar_constant(g, static_cast<int>(id)).has_value();
  }

  Status run(FuseStats* stats) {
    std::vector<std::vector<int>> groups;
    for (int root = static_cast<int>(g_.nodes.size()) - 1; root >= 0; --root) {
      if (!cand_[static_cast<size_t>(root)] || group_[static_cast<size_t>(root)] >= 0) continue;
      std::vector<int> members = grow(root, static_cast<int>(groups.size()));
      if (members.size() < 2 || externals(members).empty()) {
        for (int m : members) group_[static_cast<size_t>(m)] = -2;
        continue;
      }
      groups.push_back(std::move(members));
    }
    std::vector<bool> drop(g_.nodes.size(), false);
    for (const std::vector<int>& members : groups) {
      const int root = members.back();
      ir::Node fused;
      KILN_RETURN_IF_ERROR(build(members, &fused));
      for (int m : members) drop[static_cast<size_t>(m)] = true;
      drop[static_cast<size_t>(root)] = false;
      if (stats) {
        ++stats->groups;
        stats->nodes_fused += members.size();
      }
      g_.nodes[static_cast<size_t>(root)] = std::move(fused);
    }
    std::vector<ir::Node> kept;
    for (size_t n = 0; n < g_.nodes.size(); ++n)
      if (!drop[n]) kept.push_back(std::move(g_.nodes[n]));
    g_.nodes = std::move(kept);
    for (ir::Value& v : g_.values) v.producer = -1;
    for (size_t n = 0; n < g_.nodes.size(); ++n)
      for (int o : g_.nodes[n].outputs)
        if (o >= 0) g_.values[static_cast<size_t>(o)].producer = static_cast<int>(n);
    return g_.validate();
  }

 private:
  // Members of the group rooted at `root`, sorted by node index (the root last). Grows from a
  // worklist in linear time: a producer joins when all readers of its output are members, the
  // group keeps at most kFusedMaxInputs external inputs and its program at most kFusedMaxSteps
  // steps. Both limits are checked conservatively here (every literal of rank > 0 counted as a
  // possible input, every literal use as a step); externals() decides exactly afterwards.
  std::vector<int> grow(int root, int gid) {
    std::vector<int> members = {root};
    group_[static_cast<size_t>(root)] = gid;
    std::set<int> ext;       // values read from outside the group (conservative)
    std::set<int> produced;  // outputs of members
    size_t steps = 0;
    auto add = [&](int n) {
      const int out = g_.nodes[static_cast<size_t>(n)].outputs[0];
      produced.insert(out);
      ext.erase(out);
      steps += 1 + literal_uses(n);
      for (int v : cand_[static_cast<size_t>(n)]->operands)
        if (!produced.count(v) && may_be_input(v)) ext.insert(v);
    };
    add(root);
    std::vector<int> work = {root};
    while (!work.empty()) {
      const int m = work.back();
      work.pop_back();
      for (int v : cand_[static_cast<size_t>(m)]->operands) {
        const int p = producer_[static_cast<size_t>(v)];
        if (p < 0 || !cand_[static_cast<size_t>(p)] || group_[static_cast<size_t>(p)] != -1 ||
            is_output_[static_cast<size_t>(v)])
          continue;
        bool inside = true;
        for (int c : consumers_[static_cast<size_t>(v)]) inside = inside && group_[static_cast<size_t>(c)] == gid;
        if (!inside) continue;
        // The inputs and steps the group would have with p.
        size_t inputs = ext.size() - (ext.count(v) ? 1 : 0);
        std::set<int> extra;
        for (int u : cand_[static_cast<size_t>(p)]->operands)
          if (u != v && !produced.count(u) && !ext.count(u) && may_be_input(u)) extra.insert(u);
        inputs += extra.size();
        if (inputs > static_cast<size_t>(cpu::kFusedMaxInputs) ||
            steps + 1 + literal_uses(p) > static_cast<size_t>(cpu::kFusedMaxSteps))
          continue;
        group_[static_cast<size_t>(p)] = gid;
        members.push_back(p);
        add(p);
        work.push_back(p);
      }
    }
    std::sort(members.begin(), members.end());
    return members;
  }

  // Literal operands of node n (each use may become a program step).
  size_t literal_uses(int n) const {
    size_t k = 0;
    for (int v : cand_[static_cast<size_t>(n)]->operands) k += literal_[static_cast<size_t>(v)] ? 1 : 0;
    return k;
  }

  // Whether value v may end up an input of the fused node: anything but a rank-0 literal.
  bool may_be_input(int v) const {
    if (!literal_[static_cast<size_t>(v)]) return true;
    const ir::Value& val = g_.values[static_cast<size_t>(v)];
    return g_.constants[static_cast<size_t>(val.constant)].rank() != 0;
  }

  // External inputs of a group (sorted members), in order of first use. One-element constants
  // are literals instead, unless their rank exceeds every other input's (or a rank is unknown):
  // then they stay inputs, so the output shape is always the broadcast of the node's inputs.
  std::vector<int> externals(const std::vector<int>& members) const {
    std::set<int> produced;
    for (int m : members) produced.insert(g_.nodes[static_cast<size_t>(m)].outputs[0]);
    int64_t max_rank = 0;
    for (int m : members)
      for (int v : cand_[static_cast<size_t>(m)]->operands) {
        if (produced.count(v) || literal_[static_cast<size_t>(v)]) continue;
        const ir::Shape& sh = g_.values[static_cast<size_t>(v)].shape;
        max_rank = !sh.rank_known || max_rank < 0 ? -1 : std::max<int64_t>(max_rank, static_cast<int64_t>(sh.dims.size()));
      }
    std::vector<int> ext;
    for (int m : members)
      for (int v : cand_[static_cast<size_t>(m)]->operands) {
        if (produced.count(v) || std::find(ext.begin(), ext.end(), v) != ext.end()) continue;
        if (literal_[static_cast<size_t>(v)]) {
          const ir::Value& val = g_.values[static_cast<size_t>(v)];
          const int64_t rank = g_.constants[static_cast<size_t>(val.constant)].rank();
          if (rank == 0 || (max_rank >= 0 && rank <= max_rank)) continue;
        }
        ext.push_back(v);
      }
    return ext;
  }

  Status build(const std::vector<int>& members, ir::Node* out) {
    FusedProgram p;
    std::vector<int> ext = externals(members);
    std::map<int, int> ref;  // value id -> operand reference
    for (size_t i = 0; i < ext.size(); ++i) {
      ref[ext[i]] = static_cast<int>(i);
      p.inputs.push_back(g_.values[static_cast<size_t>(ext[i])].dtype);
    }
    const int ni = static_cast<int>(ext.size());
    for (int m : members) {
      const Candidate& c = *cand_[static_cast<size_t>(m)];
      FusedStep st{c.op, {}, DType::kUndefined, c.params};
      for (int v : c.operands) {
        if (!ref.count(v)) {  // a literal, emitted before its first use
          const ir::Value& val = g_.values[static_cast<size_t>(v)];
          const Tensor& t = g_.constants[static_cast<size_t>(val.constant)];
          KILN_ASSIGN_OR_RETURN(double x, cpu::fused_scalar_value(t));
          p.steps.push_back(FusedStep{"Literal", {}, t.dtype(), {x, static_cast<double>(t.rank())}});
          ref[v] = ni + static_cast<int>(p.steps.size()) - 1;
        }
        st.args.push_back(ref.at(v));
      }
      const ir::Node& node = g_.nodes[static_cast<size_t>(m)];
      st.dtype = g_.values[static_cast<size_t>(node.outputs[0])].dtype;
      p.steps.push_back(std::move(st));
      ref[node.outputs[0]] = ni + static_cast<int>(p.steps.size()) - 1;
    }
    Status valid = cpu::fused_program_validate(p);
    if (!valid.ok()) return internal_error("fuse_elementwise built an invalid program: " + valid.to_string());
    const ir::Node& root = g_.nodes[static_cast<size_t>(members.back())];
    out->name = root.name;
    out->op = std::string(cpu::kFusedElementwiseOp);
    out->inputs = ext;
    out->outputs = root.outputs;
    cpu::fused_program_encode(p, &out->attrs);
    return Status();
  }

  ir::Graph& g_;
  std::vector<std::optional<Candidate>> cand_;
  std::vector<int> group_;  // per node: its group, -1 none yet, -2 examined and left alone
  std::vector<std::set<int>> consumers_;  // per value: the nodes reading it
  std::vector<int> producer_;
  std::vector<bool> is_output_;
  std::vector<bool> literal_;  // per value: a scalar constant a program can hold as a literal
};

}  // namespace

Status fuse_elementwise(ir::Graph& graph, FuseStats* stats) {
  // Steps need the dtype of every value they touch; importers leave most intermediates untyped.
  KILN_RETURN_IF_ERROR(ir::infer_shapes(graph, nullptr));
  Fuser f(graph);
  return f.run(stats);
}

}  // namespace kiln::compiler
