// The kernel specialiser of one CUDA program (one execution context): which variant of each
// kernel a call launches, and when specialised variants get compiled.
//
// Kernels are tracked per *shape signature* (the dtypes and dims of the call's inputs). Each
// signature owns an immutable KernelSet (specialised variant key -> loaded kernel); a call takes
// a snapshot of its signature's set at entry and launches from it, so a call never sees a
// half-swapped set. What a call does for a specialisable launch whose specialised kernel is not
// in the set depends on dynamic_shapes_kernel_specialization_strategy (kiln/runtime.h):
//   none   run the generic kernel; never compile after the context exists.
//   eager  compile (or fetch from the runtime cache) the specialised kernel now, launch it, and
//          publish it for the signature at the end of the call.
//   lazy   run the generic kernel; at the end of the call, queue one background job for the
//          signature on a process-wide pool of 2 threads. The job compiles the missing kernels
//          and swaps in a new set (one shared_ptr swap) between calls. A signature has at most
//          one job queued or running (de-duplication); the kernel table compiles each kernel
//          once per process even when several programs want it. GEMMs are treated alike (the
//          GEMM bridge, gemm.h): a problem cuBLASLt is not ready for runs on kiln's own GEMM
//          kernel and the same job gets cuBLASLt ready for it (gemm_library_warm).
// Static-shape programs compile every kernel they launch (the specialised variants) at creation
// (precompile), so no strategy ever compiles on a call.
//
// Destroying a Specializer cancels its queued jobs and waits for one already running, which stops
// after its current NVRTC compile or GEMM problem. At process exit the pool cancels what
// is queued and joins its threads before the runtime cache's exit save.
// Thread-safe: concurrent calls on one program each have their own Call.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/device.h"
#include "backends/cuda/kernel_jit.h"
#include "backends/cuda/ops/handler.h"
#include "kiln/runtime.h"
#include "kiln/runtime_cache.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

class Specializer {
 public:
  struct Options {
    KernelSpecializationStrategy strategy = KernelSpecializationStrategy::kLazy;
    std::shared_ptr<RuntimeCache> cache;  // null: no persistent cache
    int sm = 0;
    int device = 0;
  };
  struct State;

  // The kernels of one call; a KernelProvider for its RunContext.
  class Call final : public KernelProvider {
   public:
    Result<cudaKernel_t> kernel_for(const KernelVariant& v) override;
    bool gemm_may_bridge() const override { return may_bridge_; }
    cudaKernel_t gemm_bridge(const GemmDesc& desc, const GemmProblem& problem, const std::string& kernel_key) override;

   private:
    friend class Specializer;
    std::shared_ptr<State> state_;
    std::string signature_;
    std::shared_ptr<const std::map<std::string, cudaKernel_t>> set_;  // snapshot at entry
    std::map<std::string, cudaKernel_t> added_;                       // eager: compiled now
    std::vector<KernelVariant> missing_;                              // lazy: to compile later
    uint64_t generic_ = 0, specialized_ = 0, plain_ = 0;
    bool may_bridge_ = false;        // lazy, and the signature may still bridge a GEMM
    uint64_t gemm_generation_ = 0;   // gemm_library_generation() at entry
    std::vector<GemmWarmRequest> gemm_missing_;  // bridged: cuBLASLt to get ready later
    uint64_t bridged_ = 0, bridged_declined_ = 0;
  };

  // A call's kernels for its lifetime: begin_call() on construction, end_call() on destruction
  // (also when the run fails). A null specializer gives a null provider (generic kernels).
  class Scope {
   public:
    Scope(Specializer* spec, std::span<const Tensor> inputs)
        : spec_(spec), call_(spec ? spec->begin_call(inputs) : nullptr) {}
    ~Scope() {
      if (spec_) spec_->end_call(*call_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    KernelProvider* provider() const { return call_.get(); }
    // The call's shape signature (signature_of), or null for a null specializer.
    const std::string* signature() const { return call_ ? &call_->signature_ : nullptr; }

   private:
    Specializer* spec_;
    std::unique_ptr<Call> call_;
  };

  explicit Specializer(Options options);
  ~Specializer();
  Specializer(const Specializer&) = delete;
  Specializer& operator=(const Specializer&) = delete;

  // "f32[2,77];i64[2]": the key kernels are tracked under.
  static std::string signature_of(std::span<const Tensor> inputs);
  static std::string signature_of(std::span<const DType> dtypes, std::span<const Dims> dims);

  std::unique_ptr<Call> begin_call(std::span<const Tensor> inputs);
  // Publishes what an eager call compiled, or queues a lazy call's missing kernels.
  void end_call(Call& call);

  // At creation: loads every kernel of `planned` (generic; specialised instead when `signature`
  // is given - a static engine - publishing them as that signature's final set), compiling in
  // parallel. A kernel that
  // fails here is only logged: the call that needs it reports the error (or falls back).
  // `final` false: the set is published but not final (lazy's GEMMs are still to get ready).
  void precompile(const std::vector<KernelVariant>& planned, const std::string* signature, bool final = true);

  // True once `signature`'s set holds every specialised kernel its calls launch (nothing will
  // be swapped in any more): what CUDA-graph capture waits for.
  bool kernels_final(const std::string& signature) const;
  // Counters: kernels_compiled, cache_hits, cache_misses, compile_us, call_compiles (compiles
  // done on a call's thread), generic_launches, specialized_launches, plain_launches,
  // specializations (kernels made available by specialising), swaps, specialize_jobs,
  // specialize_pending, specialize_cancelled, specialize_dropped, signatures; the GEMM bridge's
  // gemm_bridged (GEMMs computed by kiln's kernel) and gemm_readied (problems a job got cuBLASLt
  // ready for), and gemm_tuning_* for the timing those jobs did.
  void add_counters(std::map<std::string, uint64_t>& out) const;

  // What planning found at creation, reported with the counters (planned_kernels,
  // specializable_kernels, planned_launches).
  void set_plan_counts(uint64_t kernels, uint64_t specializable, uint64_t launches);

  JitCounters& jit();
  RuntimeCache* cache() const;
  const Options& options() const { return options_; }

 private:
  Options options_;
  std::shared_ptr<State> state_;
};

// The specialiser of a program for `graph` prepared with `options` on `device`: opens the
// runtime cache the settings name (a cache that cannot be opened is logged and skipped), plans
// the graph's kernels host-only at the static shape or the profile's opt shape
// (PrepareOptions::opt_shapes; generic kernels at min_shapes too) and precompiles them: generic
// ones always, specialised ones too when every input is static. Never fails because of planning or compiling (logged at debug).
// `phase` (may be empty) is called after opening the cache ("prepare.kernels.cache") and after
// planning ("prepare.kernels.plan"), for KILN_CUDA_HOST_PROFILE.
std::shared_ptr<Specializer> make_specializer(const ir::Graph& graph, const DeviceInfo& device,
                                              const PrepareOptions& options, int64_t host_limit,
                                              const std::function<void(const char*)>& phase = {});

}  // namespace kiln::cuda
