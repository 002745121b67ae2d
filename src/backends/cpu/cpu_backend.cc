#include "backends/cpu/cpu_backend.h"

#include <vector>

#include "core/half.h"

namespace kiln::cpu {
namespace {

bool is_half(DType d) { return d == DType::kF16 || d == DType::kBF16; }

// The widened copy is twice the size of a tensor that may come from untrusted input:
// allocation can fail, and must give a Status rather than abort (Tensor::zeros).
Result<Tensor> half_to_f32(const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(DType::kF32, t.dims()));
  const uint16_t* src = t.data_as<const uint16_t>();
  float* dst = out.data_as<float>();
  const int64_t n = t.numel();
  if (t.dtype() == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  }
  return out;
}

Result<Tensor> f32_to_half(const Tensor& t, DType half) {
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(half, t.dims()));
  const float* src = t.data_as<const float>();
  uint16_t* dst = out.data_as<uint16_t>();
  const int64_t n = t.numel();
  if (half == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
  }
  return out;
}

class CpuProgram final : public BackendProgram {
 public:
  CpuProgram(std::shared_ptr<const ir::Graph> graph, std::vector<std::vector<int>> frees)
      : graph_(std::move(graph)), frees_(std::move(frees)) {}

 protected:
  Status do_run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) const override {
    const ir::Graph& g = *graph_;
    if (inputs.size() != g.inputs.size())
      return invalid_argument("expected " + std::to_string(g.inputs.size()) + " inputs, got " +
                              std::to_string(inputs.size()));
    std::vector<Tensor> slots(g.values.size());
    for (size_t i = 0; i < g.values.size(); ++i)
      if (g.values[i].constant >= 0) slots[i] = g.constants[g.values[i].constant];
    for (size_t i = 0; i < inputs.size(); ++i) slots[g.inputs[i]] = inputs[i];

    std::vector<Tensor> in, out;
    for (size_t n = 0; n < g.nodes.size(); ++n) {
      const ir::Node& node = g.nodes[n];
      in.assign(node.inputs.size(), Tensor());
      for (size_t k = 0; k < node.inputs.size(); ++k)
        if (node.inputs[k] >= 0) in[k] = slots[node.inputs[k]];
      out.assign(node.outputs.size(), Tensor());
      KILN_RETURN_IF_ERROR(run_node(node, in, out));
      for (size_t k = 0; k < node.outputs.size(); ++k) {
        int id = node.outputs[k];
        if (id < 0) continue;
        if (!out[k].defined())
          return internal_error(node_context(node) + ": kernel produced no output " + std::to_string(k));
        slots[id] = std::move(out[k]);
      }
      for (int id : frees_[n]) slots[id] = Tensor();
    }
    outputs->clear();
    for (int id : g.outputs) outputs->push_back(slots[id]);
    return Status();
  }

 private:
  std::shared_ptr<const ir::Graph> graph_;
  std::vector<std::vector<int>> frees_;  // per node: values dead after it runs
};

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device{}; }

 protected:
  bool do_supports(Feature f) const override { return false; }

  Result<std::unique_ptr<BackendProgram>> do_prepare(std::shared_ptr<const ir::Graph> graph,
                                                     const PrepareOptions& options) const override {
    const ir::Graph& g = *graph;
    KILN_RETURN_IF_ERROR(g.validate());
    const KernelRegistry& reg = kernel_registry();
    for (const ir::Node& node : g.nodes)
      if (!reg.find(node.op))
        return unsupported(node_context(node) + ": op " + node.op + " has no CPU kernel");
    // Last use of every intermediate value, so its memory is released as early as possible.
    std::vector<int> last_use(g.values.size(), -1);
    for (size_t n = 0; n < g.nodes.size(); ++n)
      for (int id : g.nodes[n].inputs)
        if (id >= 0) last_use[id] = static_cast<int>(n);
    for (int id : g.outputs) last_use[id] = static_cast<int>(g.nodes.size());
    std::vector<std::vector<int>> frees(g.nodes.size());
    for (size_t id = 0; id < g.values.size(); ++id) {
      if (g.values[id].constant >= 0) continue;
      if (last_use[id] >= 0 && last_use[id] < static_cast<int>(g.nodes.size()))
        frees[last_use[id]].push_back(static_cast<int>(id));
    }
    return std::unique_ptr<BackendProgram>(new CpuProgram(std::move(graph), std::move(frees)));
  }
};

}  // namespace

Status run_node(const ir::Node& node, std::span<const Tensor> in, std::span<Tensor> out) {
  const KernelInfo* k = kernel_registry().find(node.op);
  if (!k) return unsupported(node_context(node) + ": op " + node.op + " has no CPU kernel");
  DType half = DType::kUndefined;
  if (!k->native_half)
    for (const Tensor& t : in)
      if (t.defined() && is_half(t.dtype())) half = t.dtype();
  if (half == DType::kUndefined) return k->fn(node, in, out);

  std::vector<Tensor> widened(in.begin(), in.end());
  for (Tensor& t : widened) {
    if (t.defined() && is_half(t.dtype())) {
      Result<Tensor> w = half_to_f32(t);
      if (!w.ok()) return w.status().with_context(node_context(node));
      t = std::move(w).value();
    }
  }
  KILN_RETURN_IF_ERROR(k->fn(node, widened, out));
  for (Tensor& t : out) {
    if (t.defined() && t.dtype() == DType::kF32) {
      Result<Tensor> n = f32_to_half(t, half);
      if (!n.ok()) return n.status().with_context(node_context(node));
      t = std::move(n).value();
    }
  }
  return Status();
}

std::unique_ptr<Backend> create_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace kiln::cpu
