#include "runtime/cache_warm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "format/engine_file.h"

#ifdef KILN_HAVE_CUDA
#include "backends/cuda/kernel_jit.h"
#include "backends/cuda/kernel_plan.h"
#endif

namespace kiln {

Result<int> parse_sm(const std::string& text) {
  std::string t = text;
  if (t.rfind("sm_", 0) == 0 || t.rfind("SM_", 0) == 0) t = t.substr(3);
  if (t.size() == 3 && t[1] == '.') t = std::string{t[0], t[2]};
  if (t.empty() || t.size() > 3 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return invalid_argument("invalid arch '" + text + "'; expected sm_XX, e.g. sm_90");
  const int sm = std::stoi(t);
  if (sm < 30) return invalid_argument("invalid arch '" + text + "'; expected sm_XX with XX >= 30");
  return sm;
}

#ifdef KILN_HAVE_CUDA
namespace {

// The plan of one engine for target `sm` at its opt (or static) shape; with `at_min`, at the
// profile's min shape.
Result<cuda::KernelPlan> plan_engine(const std::string& path, int sm, bool at_min = false) {
  Result<format::EngineModel> model = format::engine_load_file(path);
  if (!model.ok()) return model.status().with_context(path);
  std::vector<Dims> shapes;
  for (const format::Binding& b : model->inputs) {
    if (!b.opt.empty() || b.shape.rank_known) {
      std::optional<Dims> concrete = b.shape.concrete();
      const Dims& profile = at_min ? b.min : b.opt;
      shapes.push_back(!profile.empty() ? profile : concrete ? *concrete : Dims{});
    } else {
      return unsupported(path + ": input '" + b.name + "' has no shape profile to plan kernels for");
    }
  }
  Result<cuda::KernelPlan> plan = cuda::plan_kernels(model->graph, shapes, 4096, sm);
  if (!plan.ok()) return plan.status().with_context(path + ": planning kernels at the opt shape");
  return plan;
}

}  // namespace

Result<CacheWarmReport> cache_warm(const std::vector<std::string>& engine_paths, RuntimeCache& cache,
                                   const CacheWarmOptions& options) {
  if (options.sms.empty()) return invalid_argument("cache warm: no target arch given (e.g. --arch sm_90)");
  CacheWarmReport report;
  struct Task {
    cuda::KernelSource source;
    int sm;
    bool specialized;
  };
  std::vector<Task> tasks;
  std::set<std::string> seen;  // runtime-cache key: one compile per distinct source and SM
  for (const std::string& path : engine_paths) {
    ++report.engines;
    // Planned per target: a kernel form may depend on the architecture (kiln.Attention's
    // tensor-core form needs sm_80), so each SM gets the kernels its device will ask for.
    for (int sm : options.sms) {
      KILN_ASSIGN_OR_RETURN(cuda::KernelPlan plan, plan_engine(path, sm));
      // The min shape's generic kernels too (other layouts when a dim is 1), as a context does.
      if (Result<cuda::KernelPlan> at_min = plan_engine(path, sm, true); at_min.ok())
        for (cuda::KernelVariant& v : at_min->kernels) {
          v.spec_key.clear();
          plan.kernels.push_back(std::move(v));
        }
      for (const cuda::KernelVariant& v : plan.kernels) {
        for (int pass = 0; pass < 2; ++pass) {
          const bool spec = pass == 1;
          if (spec && (!options.specialized || v.spec_key.empty())) continue;
          Result<cuda::KernelSource> src = spec ? v.spec_build() : v.build();
          if (!src.ok()) {
            ++report.failed;
            if (report.errors.size() < 5) report.errors.push_back(path + ": " + src.status().to_string());
            continue;
          }
          if (!seen.insert(cuda::kernel_key(src->source, sm).to_hex()).second) continue;
          tasks.push_back({*src, sm, spec});
          ++report.per_arch[cuda::sm_arch(sm)];
          if (spec) ++report.specializable;
        }
      }
    }
  }
  report.kernels = tasks.size();

  cuda::JitCounters counters;
  std::atomic<size_t> next{0}, done{0};
  std::mutex mu;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < tasks.size();) {
      Result<cuda::KernelImage> image = cuda::kernel_image(tasks[i].source, tasks[i].sm, &cache, &counters);
      if (!image.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        ++report.failed;
        if (report.errors.size() < 5) report.errors.push_back(image.status().to_string());
      }
      done.fetch_add(1);
    }
  };
  const auto start = std::chrono::steady_clock::now();
  const size_t hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t nthreads = std::min(tasks.size(), options.threads > 0 ? static_cast<size_t>(options.threads) : hw);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nthreads; ++i) threads.emplace_back(work);
  while (done.load() < tasks.size()) {
    if (options.progress) options.progress(done.load(), tasks.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (std::thread& t : threads) t.join();
  if (options.progress) options.progress(tasks.size(), tasks.size());
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.compiled = counters.compiles.load();
  report.hits = counters.cache_hits.load();
  return report;
}

Result<KernelInventory> engine_kernel_inventory(const std::string& engine_path) {
  KILN_ASSIGN_OR_RETURN(cuda::KernelPlan plan, plan_engine(engine_path, 90));  // `kiln inspect`: as on sm_90
  KernelInventory inv;
  inv.kernels = plan.generic;
  inv.specializable = plan.specializable;
  inv.launches = plan.launches;
  inv.gemm_bridges = plan.gemm_bridges;
  inv.gemv_kernels = plan.gemv_kernels;
  inv.gpu_nodes = plan.gpu_nodes;
  inv.host_nodes = plan.host_nodes;
  inv.fallback_nodes = plan.fallback_nodes;
  return inv;
}

#else

Result<CacheWarmReport> cache_warm(const std::vector<std::string>&, RuntimeCache&, const CacheWarmOptions&) {
  return unavailable("cache warm: this kiln was built without the CUDA backend (CUDA toolkit not found)");
}

Result<KernelInventory> engine_kernel_inventory(const std::string&) {
  return unavailable("kernel inventory: this kiln was built without the CUDA backend");
}

#endif

}  // namespace kiln
