// Row-major GEMM through cuBLASLt: D = alpha * op(A) * op(B) + beta * C (+ bias per column), C = D
// unless given.
//
// kiln's tensors are row-major; cuBLASLt is column-major. A row-major [m, n] matrix is the
// column-major [n, m] matrix with the same leading dimension, so D^T = op(B)^T * op(A)^T is
// computed instead, with A and B swapped: no copies. The bias epilogue then adds a vector of
// length n to every row of D (Gemm's usual [N] bias; cuBLASLt's bias runs along the rows of its
// column-major D, here our columns). A bias per row of D (a convolution's per-channel bias) has
// no cuBLASLt epilogue here: the row-major form (CUBLASLT_ORDER_ROW) that would give one is
// declined by cuBLASLt 13.0 on Hopper for f32/f16/bf16, so callers prefill D and use beta = 1.
// Epilogues: D = act(alpha * op(A) op(B) + beta * D + bias), act none, Relu
// (CUBLASLT_EPILOGUE_RELU[_BIAS]) or the tanh-approximated Gelu (CUBLASLT_EPILOGUE_GELU[_BIAS]);
// with batch > 1 every batch entry adds the same bias.
//
// A GemmRunner belongs to one run slot (one thread at a time): it owns a cuBLASLt handle, a
// workspace and a cache of plans (descriptors plus the heuristic's algorithm) keyed by the
// GemmDesc, so steady-state calls query no heuristics. With a tuning cache (set_tuning_cache),
// the algorithm chosen for each concrete problem is kept in the persistent runtime cache as a
// tuning entry (the cublasLtMatmulAlgo_t bytes, keyed by the problem, cuBLASLt's version and the
// SM) and reused by later processes after cublasLtMatmulAlgoCheck accepts it.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "backends/cuda/allocator.h"
#include "kiln/runtime_cache.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cuda {

enum class GemmActivation : uint8_t { kNone, kRelu, kGeluTanh };

struct GemmDesc {
  DType dtype = DType::kF32;     // A, B, D and bias: f32, f16, bf16 or f64
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;   // D is [m, n], op(A) is [m, k], op(B) is [k, n]
  int64_t lda = 0, ldb = 0, ldd = 0;  // row strides (elements) of A, B, D as stored
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;  // elements between batch entries (0: shared)
  double alpha = 1.0, beta = 0.0;
  bool bias = false;             // add a length-n vector to every row of D
  // Add a length-m vector to every column of D instead (a convolution's per-channel bias): only
  // kiln's GEMV kernel takes it, for n == 1 (gemv_applies); callers ask RunContext::gemv_ready
  // first and otherwise prefill D (beta = 1).
  bool bias_rows = false;
  GemmActivation act = GemmActivation::kNone;  // applied last, in cuBLASLt's epilogue
  bool allow_tf32 = false;       // f32 only: TF32 tensor cores
};

struct GemmTuningCounters {
  std::atomic<uint64_t> hits{0};    // algorithm choices taken from the runtime cache
  std::atomic<uint64_t> misses{0};  // problems the heuristic had to decide (then cached)
  std::atomic<uint64_t> timed{0};   // of those, decided by timing the heuristic's candidates
  std::atomic<uint64_t> family_starts{0};  // lazy: new M started from its family's algorithm
};

// A concrete GEMM problem as cuBLASLt sees it: the descriptor plus the alignment its operands'
// addresses allow. `key` names it (GemmRunner's plan key); `has_c` says a separate C was given.
struct GemmProblem {
  std::string key;
  unsigned align = 0;
  bool has_c = false;
};
GemmProblem gemm_problem(const GemmDesc& desc, const void* a, const void* b, const void* d, const void* bias,
                         const void* c);

// The GEMM bridge (docs/cuda_backend.md). A process's first cuBLASLt call for a new class of
// problem loads kernels out of the library (40-90 ms each on the H200, whatever the runtime
// cache holds), so under `lazy` a call does not wait for it: a problem cuBLASLt is not ready for
// on this device runs on kiln's own GEMM kernel (kernels/gemm.h) while a background job makes it
// ready (gemm_library_warm); calls that start after that use cuBLASLt.
// Ready and declined marks carry a generation (gemm_library_generation() when they were made), so
// that one call sees one answer throughout: a problem is ready for a call that began at
// generation G when it was marked ready at or before G.
enum class GemmLibraryState : uint8_t { kCold, kReady, kDeclined };
uint64_t gemm_library_generation();
GemmLibraryState gemm_library_state(int device, const std::string& key, uint64_t as_of);
// Marks `key` on `device` (gemm_library_warm's; public for tests): the mark takes the next
// generation, so calls that began before it still see the problem cold.
void gemm_library_mark(int device, const std::string& key, GemmLibraryState state);
// True when the bridge kernel can compute `desc` (f32 / f16 / bf16, grid within CUDA's limits).
// KILN_GEMM_BRIDGE=0 turns the bridge off (read once).
bool gemm_bridge_supported(const GemmDesc& desc);
bool gemm_bridge_enabled();
// Whether kiln's GEMV kernel (kernels/gemm.h) computes `desc` instead of cuBLASLt: one row of D
// (m == 1, no bias_rows), or one column of a contiguous D without a per-column bias (n == 1,
// ldd == 1, bias_rows allowed: computed as its transpose, D^T = op(B)^T op(A)^T, where the
// per-row bias runs along the row), in one batch entry, f32 / f16 / bf16. KILN_GEMV=0 turns it
// off (read once).
bool gemv_applies(const GemmDesc& desc);

// Initialises cuBLASLt in this process (a handle created and destroyed), so that whatever the
// library registers to run at exit is registered by the time this returns.
void gemm_library_load();

struct GemmWarmRequest {
  GemmDesc desc;
  GemmProblem problem;
};
// For each request not yet ready on `device`: plans it on a private runner and stream, times
// cuBLASLt's candidates on scratch operands with the same alignment (the choice is then shared
// by every runner of the process, and kept in `cache` when given), and marks it ready - or
// declined when cuBLASLt has no algorithm for it (the bridge keeps computing it). Runs on a
// background thread; never waits for other streams. `stop` (may be empty) is asked before each
// problem: true leaves the rest cold (the process is exiting, the program is gone). Returns the
// number of problems made ready.
size_t gemm_library_warm(int device, std::span<const GemmWarmRequest> requests, std::shared_ptr<RuntimeCache> cache,
                         int sm, GemmTuningCounters* counters, const std::function<bool()>& stop = {});

class GemmRunner {
 public:
  GemmRunner(std::shared_ptr<DevicePool> pool, std::shared_ptr<Stream> stream);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // Enqueues the product on the runner's stream. With beta != 0 the product adds beta * C, C
  // laid out like D: `c` when given, else D's old contents (`d`).
  // Errors: kUnsupported for a dtype cuBLASLt is not used for here (integers: the caller falls
  // back) and for a problem (layout, epilogue, dtype) cuBLASLt has no algorithm for, remembered
  // per problem so that later calls decline at once; kDeviceError naming the cuBLASLt call and
  // the shape.
  Status run(const GemmDesc& desc, const void* a, const void* b, void* d, const void* bias,
             const void* c = nullptr);

  uint64_t plans_built() const { return plans_built_; }
  // Keeps algorithm choices in `cache` (may be null: none) for SM `sm`; `counters` (may be null)
  // counts hits and misses. Call before the first run.
  void set_tuning_cache(std::shared_ptr<RuntimeCache> cache, int sm, GemmTuningCounters* counters);
  // Autotuning: a problem not in the runtime cache times up to 8 of the heuristic's candidates on
  // its own operands, on the runner's stream, and keeps the fastest (then cached like any choice
  // and shared by every runner of the process) - on its first call (kFirstCall) or, so that a
  // first call at a new shape pays nothing, on its second (kSecondCall); until then the
  // heuristic's first choice runs. Skipped inside a CUDA graph capture and when D is also the
  // accumulator (beta != 0 without a separate C). KILN_GEMM_AUTOTUNE=0 turns it off, =1 makes it
  // kFirstCall (read once). Call before the first run.
  enum class Autotune : uint8_t { kOff, kFirstCall, kSecondCall };
  void set_autotune(Autotune mode);
  // Marks the start of a program run (one walk of the graph): kSecondCall counts these.
  void begin_run() { ++runs_; }
  // Creates the cuBLASLt handle and allocates the workspace (run() does it on first use). A
  // runner whose work is captured into a CUDA graph must be initialised before the capture.
  Status init();
  // The GEMM bridge's split-K scratch for this runner's stream (kernels/gemm.h): space for
  // kGemmSplitScratchTiles partial tiles and as many zeroed tile counters, allocated on first use
  // and kept. Work on one stream runs in order, so its GEMMs share it.
  struct SplitScratch {
    float* partials = nullptr;
    unsigned* counters = nullptr;
  };
  Result<SplitScratch> split_scratch();

 private:
  struct Plan;
  // A concrete problem's identity (the GemmDesc's fields and the operands' alignment): what run()
  // looks plans up by on every call, so a steady-state call formats no key text.
  struct ProblemId {
    std::array<int64_t, 11> v{};
    bool operator==(const ProblemId&) const = default;
  };
  struct ProblemIdHash {
    size_t operator()(const ProblemId& id) const;
  };
  static ProblemId problem_id(const GemmDesc& desc, unsigned align);
  Result<Plan*> plan_for(const GemmDesc& desc, const ProblemId& id, unsigned align);
  // Fills plan.candidates with cuBLASLt's heuristic for it: up to `count` algorithms, best first.
  Status fetch_candidates(Plan& plan, int count) const;
  // Times plan.candidates on the call's operands and keeps the fastest in plan.algo.
  Status tune(Plan& plan, const GemmDesc& desc, const void* a, const void* b, void* d, const void* c,
              const void* alpha, const void* beta);
  void remember(const Plan& plan, const GemmDesc& desc);

  std::shared_ptr<DevicePool> pool_;
  std::shared_ptr<Stream> stream_;
  void* handle_ = nullptr;  // cublasLtHandle_t
  std::shared_ptr<void> workspace_;
  std::shared_ptr<void> split_scratch_;  // split_scratch(): the counters, then the partials
  size_t workspace_bytes_ = 0;
  std::unordered_map<ProblemId, std::unique_ptr<Plan>, ProblemIdHash> plans_;
  std::map<std::string, std::array<uint64_t, 8>> family_algo_;  // per M-family: its latest plan's algorithm
  std::unordered_set<ProblemId, ProblemIdHash> declined_;  // problems cuBLASLt has no algorithm for
  uint64_t plans_built_ = 0;
  std::shared_ptr<RuntimeCache> tuning_cache_;
  int tuning_sm_ = 0;
  GemmTuningCounters* tuning_counters_ = nullptr;
  Autotune autotune_ = Autotune::kOff;
  uint64_t runs_ = 0;
};

}  // namespace kiln::cuda
