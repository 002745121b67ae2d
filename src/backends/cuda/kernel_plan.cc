#include "backends/cuda/kernel_plan.h"

#include <map>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel.h"
#include "backends/cuda/kernels/gemm.h"

namespace kiln::cuda {
namespace {

// Records launches instead of making them.
class Recorder final : public KernelProvider {
 public:
  explicit Recorder(KernelPlan& plan) : plan_(plan) {}
  Result<cudaKernel_t> kernel_for(const KernelVariant& v) override {
    // A GEMM: the bridge kernel that lazy's first calls may run instead of cuBLASLt, or the GEMV
    // kernel of a one-row product.
    const bool gemm = v.key.starts_with(kernels::kGemmKernelKeyPrefix);
    const bool gemv = v.key.starts_with(kernels::kGemvKernelKeyPrefix);
    if (!gemm && !gemv) ++plan_.launches;
    if (seen_.insert(v.key + '\n' + v.spec_key).second) {
      if (gemm) ++plan_.gemm_bridges;
      if (gemv) ++plan_.gemv_kernels;
      plan_.kernels.push_back(v);
      if (!v.spec_key.empty()) ++plan_.specializable;
      if (generic_.insert(v.key).second) ++plan_.generic;
    }
    return static_cast<cudaKernel_t>(nullptr);
  }

 private:
  KernelPlan& plan_;
  std::set<std::string> seen_, generic_;
};

// Where a value lives in the planned run, and its host tensor (zeros where a kernel computed it).
struct PlannedValue {
  Tensor t;
  bool host = false, dev = false;
};

// One walk of the graph with the inputs on the host (as host arrays arrive) or on the device (as
// device tensors do). Sets *input_on_host when a node ran on the host with a graph input among its
// inputs: a call with device inputs runs that node on the GPU instead.
Status plan_pass(const ir::Graph& g, std::span<const Dims> input_shapes, int64_t host_limit, bool inputs_on_device,
                 int sm, KernelPlan& plan, Recorder& recorder, bool* input_on_host) {
  // The SM count is launch geometry only: no kernel choice depends on it (the architecture may).
  DeviceInfo device;
  device.sm = sm;
  device.multiprocessors = 132;
  RunContext ctx(device, nullptr, nullptr, nullptr, nullptr, false);
  ctx.set_planning(true);
  ctx.set_kernel_provider(&recorder);
  std::vector<bool> is_input(g.values.size(), false);
  for (int id : g.inputs) is_input[static_cast<size_t>(id)] = true;

  std::vector<PlannedValue> vals(g.values.size());
  std::vector<int> last_use(g.values.size(), -1);
  for (size_t n = 0; n < g.nodes.size(); ++n)
    for (int id : g.nodes[n].inputs)
      if (id >= 0) last_use[static_cast<size_t>(id)] = static_cast<int>(n);
  for (size_t i = 0; i < g.values.size(); ++i) {
    if (g.values[i].constant < 0) continue;
    vals[i] = {g.constants[static_cast<size_t>(g.values[i].constant)], true, true};
  }
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ir::Value& v = g.values[static_cast<size_t>(g.inputs[i])];
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(v.dtype, input_shapes[i]));
    vals[static_cast<size_t>(g.inputs[i])] = {t, !inputs_on_device, inputs_on_device};
  }

  std::vector<Tensor> in, out;
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    const ir::Node& node = g.nodes[n];
    const OpHandler* handler = handler_for(node.op);
    bool any_input = false, all_host_small = true;
    for (int id : node.inputs) {
      if (id < 0) continue;
      any_input = true;
      const PlannedValue& v = vals[static_cast<size_t>(id)];
      if (!v.host || v.t.numel() > host_limit) all_host_small = false;
    }
    bool on_host = (any_input && all_host_small) || !handler;
    bool fallback = !handler && !(any_input && all_host_small);
    out.assign(node.outputs.size(), Tensor());
    if (!on_host) {
      in.assign(node.inputs.size(), Tensor());
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int id = node.inputs[k];
        if (id < 0) continue;
        PlannedValue& v = vals[static_cast<size_t>(id)];
        (handler->host_input(node, k) ? v.host : v.dev) = true;
        in[k] = v.t;
      }
      ctx.set_node(&node, static_cast<int>(n));
      Status s = handler->run(ctx, in, out);
      if (s.code() == StatusCode::kUnsupported) {
        on_host = fallback = true;
        out.assign(node.outputs.size(), Tensor());
      } else if (!s.ok()) {
        return s;
      } else {
        ++plan.gpu_nodes;
      }
    }
    if (on_host) {
      for (int id : node.inputs)
        if (id >= 0 && is_input[static_cast<size_t>(id)]) *input_on_host = true;
      in.assign(node.inputs.size(), Tensor());
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int id = node.inputs[k];
        if (id < 0) continue;
        vals[static_cast<size_t>(id)].host = true;
        in[k] = vals[static_cast<size_t>(id)].t;
      }
      KILN_RETURN_IF_ERROR(cpu::run_node(node, in, out));
      ++(fallback ? plan.fallback_nodes : plan.host_nodes);
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      const int id = node.outputs[k];
      if (id < 0) continue;
      if (!out[k].defined())
        return internal_error(cpu::node_context(node) + ": kernel produced no output " + std::to_string(k));
      // Handlers return device tensors (planning: host memory marked cuda) or host tensors
      // (Shape, Size): placed as a run would place them.
      const bool dev = !on_host && out[k].device().type == DeviceType::kCuda;
      vals[static_cast<size_t>(id)] = {std::move(out[k]), !dev, dev};
    }
    for (int id : node.inputs)
      if (id >= 0 && last_use[static_cast<size_t>(id)] == static_cast<int>(n) && g.values[id].constant < 0) {
        bool is_output = false;
        for (int o : g.outputs) is_output = is_output || o == id;
        if (!is_output) vals[static_cast<size_t>(id)] = PlannedValue();
      }
  }
  return Status();
}

}  // namespace

Result<KernelPlan> plan_kernels(const ir::Graph& g, std::span<const Dims> input_shapes, int64_t host_limit, int sm) {
  if (input_shapes.size() != g.inputs.size())
    return invalid_argument("plan_kernels: the graph has " + std::to_string(g.inputs.size()) + " inputs, got " +
                            std::to_string(input_shapes.size()) + " shapes");
  KILN_RETURN_IF_ERROR(g.validate());
  KernelPlan plan;
  Recorder recorder(plan);
  bool input_on_host = false;
  KILN_RETURN_IF_ERROR(plan_pass(g, input_shapes, host_limit, false, sm, plan, recorder, &input_on_host));
  if (input_on_host) {
    // A small node reads a graph input: with host inputs it runs on the host, with device inputs on
    // the GPU. Plan that walk too, so that its kernels are ready as well (the counts stay the
    // host-input walk's).
    const KernelPlan counts = plan;
    bool unused = false;
    KILN_RETURN_IF_ERROR(plan_pass(g, input_shapes, host_limit, true, sm, plan, recorder, &unused));
    plan.launches = counts.launches;
    plan.gpu_nodes = counts.gpu_nodes;
    plan.host_nodes = counts.host_nodes;
    plan.fallback_nodes = counts.fallback_nodes;
  }
  return plan;
}

}  // namespace kiln::cuda
