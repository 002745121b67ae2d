// make_specializer (specializer.h): how a CUDA program gets its kernels at creation.
#include <chrono>

#include "backends/cuda/kernel_plan.h"
#include "backends/cuda/kernels/gemm.h"
#include "backends/cuda/specializer.h"
#include "core/logging.h"

namespace kiln::cuda {

std::shared_ptr<Specializer> make_specializer(const ir::Graph& g, const DeviceInfo& device,
                                              const PrepareOptions& options, int64_t host_limit,
                                              const std::function<void(const char*)>& phase) {
  auto phase_done = [&phase](const char* name) {
    if (phase) phase(name);
  };
  Specializer::Options so;
  so.strategy = options.settings.kernel_specialization;
  so.sm = device.sm;
  so.device = device.index;
  Result<std::shared_ptr<RuntimeCache>> cache = RuntimeCache::for_setting(options.settings);
  if (cache.ok()) {
    so.cache = *cache;
  } else {
    log_once(LogLevel::kWarning, "cuda-runtime-cache-open",
             "CUDA backend: running without a runtime cache: " + cache.status().to_string());
  }
  auto spec = std::make_shared<Specializer>(so);
  phase_done("prepare.kernels.cache");

  // The shapes to plan at: the static shape, or the profile's opt shape.
  bool is_static = true;
  std::vector<Dims> shapes;
  std::vector<DType> dtypes;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ir::Value& v = g.values[static_cast<size_t>(g.inputs[i])];
    dtypes.push_back(v.dtype);
    if (std::optional<Dims> d = v.shape.concrete()) {
      shapes.push_back(*d);
    } else {
      is_static = false;
      if (i < options.opt_shapes.size() && !options.opt_shapes[i].empty()) shapes.push_back(options.opt_shapes[i]);
    }
  }
  if (options.static_shapes && options.opt_shapes.size() == g.inputs.size()) {  // profile min == max
    is_static = true;
    shapes = options.opt_shapes;
  }
  if (shapes.size() != g.inputs.size()) return spec;  // no shapes to plan at: kernels compile on first use
  const auto start = std::chrono::steady_clock::now();
  Result<KernelPlan> plan = plan_kernels(g, shapes, host_limit, device.sm);
  if (!plan.ok()) {
    log(LogLevel::kDebug, "CUDA backend: kernel planning failed (kernels compile on first use): " +
                              plan.status().to_string());
    return spec;
  }
  spec->set_plan_counts(plan->kernels.size(), plan->specializable, plan->launches);
  phase_done("prepare.kernels.plan");
  std::vector<KernelVariant> kernels = plan->kernels;
  // A dynamic engine's smallest shapes often take other generic layouts (a dim of 1 drops out of a
  // broadcast): plan the min shape too, so a call there need not wait for NVRTC either. Only its
  // generic kernels are compiled here.
  if (!is_static && options.min_shapes.size() == g.inputs.size() && options.min_shapes != shapes) {
    Result<KernelPlan> at_min = plan_kernels(g, options.min_shapes, host_limit, device.sm);
    if (at_min.ok()) {
      for (KernelVariant& v : at_min->kernels) kernels.push_back(std::move(v));
    }
  }
  // The GEMM bridge's kernels (kernels/gemm.h) serve lazy only; under lazy a static signature's
  // set is final once cuBLASLt is ready for its GEMMs too (the first call's job sees to that).
  const bool bridge = so.strategy == KernelSpecializationStrategy::kLazy && gemm_bridge_enabled();
  bool bridged = false;
  std::erase_if(kernels, [&](const KernelVariant& v) {
    const bool gemm = v.key.starts_with(kernels::kGemmKernelKeyPrefix);
    bridged = bridged || gemm;
    return gemm && !bridge;
  });
  const std::string signature = Specializer::signature_of(dtypes, shapes);
  spec->precompile(kernels, is_static ? &signature : nullptr, !(bridge && bridged));
  log(LogLevel::kDebug,
      "CUDA backend: " + std::to_string(plan->kernels.size()) + " kernels ready in " +
          std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()) + " s");
  return spec;
}

}  // namespace kiln::cuda
