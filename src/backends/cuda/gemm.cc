#include "backends/cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/capture_hooks.h"
#include "backends/cuda/device.h"
#include "backends/cuda/kernels/gemm.h"
#include "core/logging.h"

namespace kiln::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLASLt's recommendation for Hopper

// cuBLASLt's handle creation and its algorithm queries (heuristic, check) run one at a time in
// the process: with the GEMM bridge's background warm-up they can meet a call thread's. A
// precaution (the crash it was added for turned out to be an exit race, fixed in specializer.cc);
// they are rare (a handle per run slot, a query per new problem), and the matmuls themselves are
// not serialised.
std::mutex& library_mutex() {
  static std::mutex* mu = new std::mutex();  // lives as long as the process
  return *mu;
}

Status lt_status(cublasStatus_t s, const std::string& what) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status();
  std::string msg = what + " failed: " + cublasLtGetStatusString(s) + " (" + cublasLtGetStatusName(s) + ")";
  if (s == CUBLAS_STATUS_NOT_SUPPORTED) return unsupported(msg);
  if (s == CUBLAS_STATUS_ALLOC_FAILED) return resource_exhausted(msg);
  return device_error(msg);
}

unsigned alignment_of(const void* p, int64_t stride_bytes) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p) | static_cast<uintptr_t>(stride_bytes) | 256u;
  return static_cast<unsigned>(v & (~v + 1));  // lowest set bit
}

const char* activation_text(GemmActivation a) {
  switch (a) {
    case GemmActivation::kRelu: return "+relu";
    case GemmActivation::kGeluTanh: return "+gelu";
    case GemmActivation::kNone: break;
  }
  return "";
}

std::string shape_text(const GemmDesc& d) {
  char buf[192];
  std::snprintf(buf, sizeof buf, "m=%lld n=%lld k=%lld batch=%lld %s%s %s%s%s", static_cast<long long>(d.m),
                static_cast<long long>(d.n), static_cast<long long>(d.k), static_cast<long long>(d.batch),
                d.trans_a ? "T" : "N", d.trans_b ? "T" : "N", std::string(dtype_name(d.dtype)).c_str(),
                d.bias ? " +bias" : "", activation_text(d.act));
  return buf;
}

cublasLtEpilogue_t epilogue_of(const GemmDesc& g) {
  switch (g.act) {
    case GemmActivation::kRelu: return g.bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case GemmActivation::kGeluTanh: return g.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    case GemmActivation::kNone: break;
  }
  return g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

}  // namespace

namespace {

// How many of the heuristic's algorithms autotuning times: 8, or KILN_GEMM_TUNE_CANDIDATES (read
// once; 1..kMaxTuneCandidates), a diagnosis knob to see whether candidates past the 8th ever win.
constexpr int kMaxTuneCandidates = 64;
int tune_candidates() {
  static const int n = [] {
    const char* v = std::getenv("KILN_GEMM_TUNE_CANDIDATES");
    const int parsed = v ? std::atoi(v) : 0;
    return parsed >= 1 ? std::min(parsed, kMaxTuneCandidates) : 8;
  }();
  return n;
}

struct TimedChoices {
  std::mutex mu;
  std::map<CacheKey, cublasLtMatmulAlgo_t> by_key;
};

TimedChoices& timed_choices() {
  static TimedChoices* t = new TimedChoices();  // lives as long as the process
  return *t;
}

std::optional<cublasLtMatmulAlgo_t> timed_choice(const CacheKey& key) {
  TimedChoices& t = timed_choices();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.by_key.find(key);
  if (it == t.by_key.end()) return std::nullopt;
  return it->second;
}

// A GEMM problem as text: the plan key (and, with the workspace size, the runtime-cache key of
// its algorithm choice). Without M, the key of its M-family: M and the batch strides become -1.
// The text is
//   dtype|ta tb|m,n,k|lda,ldb,ldd|batch|stride_a,stride_b,stride_d|bias|allow_tf32|align|act
// (every field a decimal integer, ta and tb 0 or 1 side by side), written with std::to_chars: a
// lazy first call formats one per GEMM, and snprintf took 5-7x as long (0.34-0.47 against
// 0.05-0.07 us per key on the CPU machine, 200k keys).
// GemmBridgeTest.ProblemKeyTextIsStable pins the text (it names algorithm choices in runtime caches).
using ProblemKey = char[320];
void format_problem(const GemmDesc& g, unsigned align, bool with_m, ProblemKey& out) {
  auto m_part = [with_m](int64_t v) { return static_cast<long long>(with_m ? v : -1); };
  const long long fields[17] = {static_cast<int>(g.dtype), g.trans_a, g.trans_b, m_part(g.m), g.n, g.k, g.lda,
                                 g.ldb, g.ldd, g.batch, m_part(g.stride_a), m_part(g.stride_b), m_part(g.stride_d),
                                 g.bias, g.allow_tf32, align, static_cast<int>(g.act)};
  const char after[17] = "|\0|,,|,,||,,||||";  // the separator after each field (none between ta and tb)
  char* p = out;
  char* const end = out + sizeof(ProblemKey) - 1;  // 17 fields of at most 20 digits each fit
  for (int i = 0; i < 17; ++i) {
    p = std::to_chars(p, end, fields[i]).ptr;
    if (after[i] != '\0') *p++ = after[i];
  }
  *p = '\0';
}

unsigned operand_alignment(const GemmDesc& g, const void* a, const void* b, const void* d, const void* bias,
                           const void* c) {
  const auto es = static_cast<int64_t>(dtype_size(g.dtype));
  unsigned align = std::min({alignment_of(a, g.stride_a * es), alignment_of(b, g.stride_b * es),
                             alignment_of(d, g.stride_d * es), alignment_of(nullptr, g.lda * es),
                             alignment_of(nullptr, g.ldb * es), alignment_of(nullptr, g.ldd * es)});
  if (bias) align = std::min(align, alignment_of(bias, 0));
  if (c) align = std::min(align, alignment_of(c, g.stride_d * es));
  return align;
}

}  // namespace

GemmProblem gemm_problem(const GemmDesc& g, const void* a, const void* b, const void* d, const void* bias,
                         const void* c) {
  GemmProblem p;
  p.align = operand_alignment(g, a, b, d, bias, c);
  ProblemKey key;
  format_problem(g, p.align, /*with_m=*/true, key);
  p.key = key;
  p.has_c = c != nullptr;
  return p;
}

struct GemmRunner::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;      // workspace and alignment limits
  cublasLtMatmulAlgo_t algo{};
  std::vector<cublasLtMatmulAlgo_t> candidates;  // the heuristic's, in its order, while untuned
  CacheKey tuning_key;                            // runtime-cache key of the choice
  std::string family;                             // the problem without M (plan_for)
  bool needs_tuning = false;
  uint64_t first_run = 0;  // the runner's run count when the plan was built
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

GemmRunner::GemmRunner(std::shared_ptr<DevicePool> pool, std::shared_ptr<Stream> stream)
    : pool_(std::move(pool)), stream_(std::move(stream)) {}

void GemmRunner::set_autotune(Autotune mode) {
  static const std::optional<bool> forced = env_switch("KILN_GEMM_AUTOTUNE");
  autotune_ = !forced ? mode : *forced ? Autotune::kFirstCall : Autotune::kOff;
}

void GemmRunner::set_tuning_cache(std::shared_ptr<RuntimeCache> cache, int sm, GemmTuningCounters* counters) {
  tuning_cache_ = std::move(cache);
  tuning_sm_ = sm;
  tuning_counters_ = counters;
}

GemmRunner::~GemmRunner() {
  plans_.clear();
  if (handle_) {
    std::lock_guard<std::mutex> lock(library_mutex());
    cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
  }
}

Result<GemmRunner::SplitScratch> GemmRunner::split_scratch() {
  constexpr size_t kCounterBytes = kernels::kGemmSplitScratchTiles * sizeof(unsigned);
  constexpr size_t kPartialBytes = size_t{kernels::kGemmSplitScratchTiles} * kernels::kGemmPartialFloats * sizeof(float);
  if (!split_scratch_) {
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<void> mem, pool_->alloc_bytes(kCounterBytes + kPartialBytes, stream_));
    KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(mem.get(), 0, kCounterBytes, stream_->get()),
                              "cudaMemsetAsync (GEMM split-K counters)");
    split_scratch_ = std::move(mem);
  }
  auto* base = static_cast<char*>(split_scratch_.get());
  return SplitScratch{reinterpret_cast<float*>(base + kCounterBytes), reinterpret_cast<unsigned*>(base)};
}

Status GemmRunner::init() {
  if (handle_) return Status();
  cublasLtHandle_t h = nullptr;
  {
    std::lock_guard<std::mutex> lock(library_mutex());
    KILN_RETURN_IF_ERROR(lt_status(cublasLtCreate(&h), "cublasLtCreate"));
  }
  handle_ = h;
  KILN_ASSIGN_OR_RETURN(workspace_, pool_->alloc_bytes(kWorkspaceBytes, stream_));
  workspace_bytes_ = kWorkspaceBytes;
  return Status();
}

Status GemmRunner::fetch_candidates(Plan& plan, int count) const {
  cublasLtMatmulHeuristicResult_t results[kMaxTuneCandidates] = {};
  int found = 0;
  std::lock_guard<std::mutex> lock(library_mutex());
  const cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), plan.op, plan.a, plan.b, plan.d, plan.d,
                                     plan.pref, std::clamp(count, 1, kMaxTuneCandidates), results, &found);
  if (s != CUBLAS_STATUS_SUCCESS) return lt_status(s, "cublasLtMatmulAlgoGetHeuristic");
  plan.candidates.clear();
  for (int i = 0; i < found; ++i) plan.candidates.push_back(results[i].algo);
  return Status();
}

GemmRunner::ProblemId GemmRunner::problem_id(const GemmDesc& g, unsigned align) {
  ProblemId id;
  id.v = {static_cast<int64_t>(g.dtype) | int64_t{g.trans_a} << 8 | int64_t{g.trans_b} << 9 | int64_t{g.bias} << 10 |
              int64_t{g.allow_tf32} << 11 | static_cast<int64_t>(g.act) << 12 | static_cast<int64_t>(align) << 16,
          g.m, g.n, g.k, g.lda, g.ldb, g.ldd, g.batch, g.stride_a, g.stride_b, g.stride_d};
  return id;
}

size_t GemmRunner::ProblemIdHash::operator()(const ProblemId& id) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the words, then a final mix
  for (int64_t x : id.v) h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
  return static_cast<size_t>(h ^ (h >> 29));
}

Result<GemmRunner::Plan*> GemmRunner::plan_for(const GemmDesc& g, const ProblemId& id, unsigned align) {
  auto it = plans_.find(id);
  if (it != plans_.end()) return it->second.get();
  ProblemKey key_text;
  format_problem(g, align, /*with_m=*/true, key_text);
  const std::string key = key_text;
  const std::string where = "cuBLASLt GEMM (" + shape_text(g) + ")";
  cudaDataType_t type;
  cublasComputeType_t compute;
  cudaDataType_t scale = CUDA_R_32F;
  switch (g.dtype) {
    case DType::kF32:
      type = CUDA_R_32F;
      compute = g.allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::kF16: type = CUDA_R_16F; compute = CUBLAS_COMPUTE_32F; break;
    case DType::kBF16: type = CUDA_R_16BF; compute = CUBLAS_COMPUTE_32F; break;
    case DType::kF64: type = CUDA_R_64F; compute = CUBLAS_COMPUTE_64F; scale = CUDA_R_64F; break;
    default:
      return unsupported("cuBLASLt GEMM: dtype " + std::string(dtype_name(g.dtype)) + " is not supported");
  }
  auto plan = std::make_unique<Plan>();
  KILN_RETURN_IF_ERROR(lt_status(cublasLtMatmulDescCreate(&plan->op, compute, scale), where + ": cublasLtMatmulDescCreate"));
  // Column-major view: D^T[n, m] = op(B)^T * op(A)^T; cuBLASLt's "A" is our B and its "B" our A.
  cublasOperation_t ta = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t tb = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  KILN_RETURN_IF_ERROR(lt_status(
      cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), where + ": TRANSA"));
  KILN_RETURN_IF_ERROR(lt_status(
      cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), where + ": TRANSB"));
  const cublasLtEpilogue_t epi = epilogue_of(g);
  if (epi != CUBLASLT_EPILOGUE_DEFAULT)
    KILN_RETURN_IF_ERROR(lt_status(
        cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), where + ": EPILOGUE"));
  if (g.bias) {
    cudaDataType_t bias_type = type;
    KILN_RETURN_IF_ERROR(lt_status(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                                  &bias_type, sizeof bias_type),
                                   where + ": BIAS_DATA_TYPE"));
    if (g.batch > 1) {  // every batch entry adds the same vector
      int64_t bias_stride = 0;
      KILN_RETURN_IF_ERROR(lt_status(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE,
                                                                    &bias_stride, sizeof bias_stride),
                                     where + ": BIAS_BATCH_STRIDE"));
    }
  }
  auto layout = [&](cublasLtMatrixLayout_t* l, uint64_t rows, uint64_t cols, int64_t ld, int64_t stride,
                    const char* what) -> Status {
    KILN_RETURN_IF_ERROR(lt_status(cublasLtMatrixLayoutCreate(l, type, rows, cols, ld), where + ": layout " + what));
    if (g.batch > 1) {
      int32_t count = static_cast<int32_t>(g.batch);
      KILN_RETURN_IF_ERROR(lt_status(
          cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), where));
      KILN_RETURN_IF_ERROR(lt_status(
          cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
          where));
    }
    return Status();
  };
  const uint64_t m = static_cast<uint64_t>(g.m), n = static_cast<uint64_t>(g.n), k = static_cast<uint64_t>(g.k);
  KILN_RETURN_IF_ERROR(layout(&plan->a, g.trans_b ? k : n, g.trans_b ? n : k, g.ldb, g.stride_b, "B"));
  KILN_RETURN_IF_ERROR(layout(&plan->b, g.trans_a ? m : k, g.trans_a ? k : m, g.lda, g.stride_a, "A"));
  KILN_RETURN_IF_ERROR(layout(&plan->d, n, m, g.ldd, g.stride_d, "D"));

  KILN_RETURN_IF_ERROR(
      lt_status(cublasLtMatmulPreferenceCreate(&plan->pref), where + ": cublasLtMatmulPreferenceCreate"));
  cublasLtMatmulPreference_t pref = plan->pref;
  uint64_t ws = workspace_bytes_;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  uint32_t al = align;
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof al);
  // The algorithm: a timed choice (this process's, else the runtime cache's), else - without
  // autotuning - the heuristic's first choice an earlier process cached, else the heuristic now.
  // Timed and heuristic choices have keys of their own, so an old heuristic entry never stands in
  // for a timing.
  const std::string arch = "sm_" + std::to_string(tuning_sm_);
  const std::string problem = key + "|ws=" + std::to_string(workspace_bytes_);
  const int lt_version = static_cast<int>(cublasLtGetVersion());
  const CacheKey timed_key = make_tuning_key("cublaslt-matmul-timed|" + problem, lt_version, arch);
  const CacheKey heuristic_key = make_tuning_key("cublaslt-matmul|" + problem, lt_version, arch);
  bool tuned = false;
  // A choice timed earlier in this process (by any runner) comes first, so that every program and
  // run slot of the process computes a problem with the same algorithm (bitwise-equal results
  // between programs, with or without a runtime cache).
  if (std::optional<cublasLtMatmulAlgo_t> algo = timed_choice(timed_key)) {
    plan->algo = *algo;
    tuned = true;
  }
  auto from_cache = [&](const CacheKey& k) {
    std::optional<CacheValue> v = tuning_cache_->lookup(k);
    if (!v || v->bytes->size() != sizeof(cublasLtMatmulAlgo_t)) return false;
    cublasLtMatmulAlgo_t algo;
    std::memcpy(&algo, v->bytes->data(), sizeof algo);
    cublasLtMatmulHeuristicResult_t check{};
    std::unique_lock<std::mutex> lock(library_mutex());
    if (cublasLtMatmulAlgoCheck(static_cast<cublasLtHandle_t>(handle_), plan->op, plan->a, plan->b, plan->d, plan->d,
                                &algo, &check) != CUBLAS_STATUS_SUCCESS ||
        check.workspaceSize > workspace_bytes_)
      return false;
    plan->algo = algo;
    return true;
  };
  if (tuning_cache_ && !tuned) {
    tuned = from_cache(timed_key) || (autotune_ == Autotune::kOff && from_cache(heuristic_key));
    if (tuning_counters_) (tuned ? tuning_counters_->hits : tuning_counters_->misses).fetch_add(1);
  }
  // Problems that differ only in M (a dynamic dim: sequence length, batch) form a family.
  ProblemKey family;
  format_problem(g, align, /*with_m=*/false, family);
  static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(std::array<uint64_t, 8>));
  if (!tuned && autotune_ == Autotune::kSecondCall) {
    // Under lazy a first call at a new M starts from the algorithm its family last used, when
    // cuBLASLt accepts it for this problem (a check is cheaper than a heuristic query); a later
    // run times the candidates as for any new problem.
    auto sib = family_algo_.find(family);
    if (sib != family_algo_.end()) {
      cublasLtMatmulAlgo_t algo;
      std::memcpy(&algo, sib->second.data(), sizeof algo);
      cublasLtMatmulHeuristicResult_t check{};
      std::unique_lock<std::mutex> lock(library_mutex());
      if (cublasLtMatmulAlgoCheck(static_cast<cublasLtHandle_t>(handle_), plan->op, plan->a, plan->b, plan->d,
                                  plan->d, &algo, &check) == CUBLAS_STATUS_SUCCESS &&
          check.workspaceSize <= workspace_bytes_) {
        plan->algo = algo;
        plan->tuning_key = timed_key;
        plan->needs_tuning = true;
        tuned = true;
        if (tuning_counters_) tuning_counters_->family_starts.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  if (!tuned) {
    // kSecondCall asks for the heuristic's first choice only (asking for 8 costs a first call at a
    // new shape tens of microseconds per problem); the candidates come when it is timed.
    Status h = fetch_candidates(*plan, autotune_ == Autotune::kFirstCall ? tune_candidates() : 1);
    if (!h.ok()) return h.with_context(where);
    if (plan->candidates.empty()) return unsupported(where + ": cuBLASLt has no algorithm for this shape");
    plan->algo = plan->candidates[0];
    // One candidate is as good as timed.
    plan->tuning_key = autotune_ != Autotune::kOff ? timed_key : heuristic_key;
    if (autotune_ == Autotune::kSecondCall || (autotune_ == Autotune::kFirstCall && plan->candidates.size() > 1)) {
      if (autotune_ == Autotune::kSecondCall) plan->candidates.clear();  // asked for when timed
      plan->needs_tuning = true;  // run() times the candidates on a call's operands
    } else {
      plan->candidates.clear();
      remember(*plan, g);
    }
  }
  ++plans_built_;
  plan->first_run = runs_;
  plan->family = family;
  std::memcpy(family_algo_[family].data(), &plan->algo, sizeof plan->algo);
  Plan* p = plan.get();
  plans_[id] = std::move(plan);
  return p;
}

void GemmRunner::remember(const Plan& plan, const GemmDesc& g) {
  if (!tuning_cache_) return;
  const std::string arch = "sm_" + std::to_string(tuning_sm_);
  Status s = tuning_cache_->insert(
      plan.tuning_key, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&plan.algo), sizeof plan.algo),
      CacheEntryMeta{CacheEntryKind::kTuning, "cublaslt " + shape_text(g), arch});
  (void)s;  // a full or read-only cache only costs the heuristic next time
}

// Holds a stream until the host releases it: while the timed calls are queued behind it, the GPU
// waits, so it then runs them back to back and the events between them measure GPU time alone
// (queuing a small GEMM takes the host longer than running it, so without the hold the events
// measure the host's queuing rate, the same for every candidate). A host function may not call
// CUDA; it only waits on the flag, at most a second (a safety net: tune() always releases it).
struct StreamHold {
  std::atomic<int> released{0};
  static void CUDART_CB wait(void* p) {
    auto* self = static_cast<StreamHold*>(p);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (self->released.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
  }
};

Status GemmRunner::tune(Plan& plan, const GemmDesc& g, const void* a, const void* b, void* d, const void* c,
                        const void* alpha, const void* beta) {
  const cudaStream_t stream = stream_->get();
  cudaEvent_t start = nullptr, stop = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudaEventCreate(&start), "cudaEventCreate (GEMM tuning)");
  if (cudaEventCreate(&stop) != cudaSuccess) {
    cudaEventDestroy(start);
    return device_error("cudaEventCreate (GEMM tuning) failed");
  }
  auto matmul = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), plan.op, alpha, b, plan.a, a, plan.b, beta,
                          c ? c : d, plan.d, d, plan.d, &algo, workspace_.get(), workspace_bytes_, stream);
  };
  int best = -1;
  float best_ms = 0;
  Status failure;
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    if (matmul(plan.candidates[i]) != CUBLAS_STATUS_SUCCESS) continue;  // warm-up; an algorithm may decline
    constexpr int kRuns = 5;
    StreamHold hold;
    const bool held = cudaLaunchHostFunc(stream, &StreamHold::wait, &hold) == cudaSuccess;
    bool ok = cudaEventRecord(start, stream) == cudaSuccess;
    for (int r = 0; ok && r < kRuns; ++r) ok = matmul(plan.candidates[i]) == CUBLAS_STATUS_SUCCESS;
    ok = ok && cudaEventRecord(stop, stream) == cudaSuccess;
    hold.released.store(1, std::memory_order_release);  // before any wait: the stream must move on
    const cudaError_t sync = cudaStreamSynchronize(stream);  // `hold` is not used after this
    if (sync != cudaSuccess) {
      failure = cuda_status(sync, "cudaStreamSynchronize (GEMM tuning, " + shape_text(g) + ")");
      break;
    }
    float ms = 0;
    if (!held || !ok || cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) continue;
    // A later candidate must be clearly faster (1%): the heuristic's order breaks near-ties.
    if (best < 0 || ms < best_ms * 0.99f) {
      best = static_cast<int>(i);
      best_ms = ms;
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGetLastError();
  KILN_RETURN_IF_ERROR(failure);
  if (best >= 0) plan.algo = plan.candidates[static_cast<size_t>(best)];
  {
    TimedChoices& t = timed_choices();
    std::lock_guard<std::mutex> lock(t.mu);
    auto [it, inserted] = t.by_key.emplace(plan.tuning_key, plan.algo);
    if (!inserted) plan.algo = it->second;  // another runner timed it first: the same choice everywhere
  }
  plan.candidates.clear();
  plan.needs_tuning = false;
  std::memcpy(family_algo_[plan.family].data(), &plan.algo, sizeof plan.algo);  // the family's best guess now
  if (tuning_counters_) tuning_counters_->timed.fetch_add(1, std::memory_order_relaxed);
  remember(plan, g);
  return Status();
}

Status GemmRunner::run(const GemmDesc& g, const void* a, const void* b, void* d, const void* bias, const void* c) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return Status();
  if (g.bias_rows) return unsupported("cuBLASLt GEMM (" + shape_text(g) + "): a bias per row of D is the GEMV kernel's only");
  KILN_RETURN_IF_ERROR(init());
  const unsigned align = operand_alignment(g, a, b, d, bias, c);
  const ProblemId id = problem_id(g, align);
  if (declined_.count(id)) return unsupported("cuBLASLt GEMM (" + shape_text(g) + "): no algorithm (declined before)");
  Result<Plan*> planned = plan_for(g, id, align);
  if (!planned.ok() && planned.status().code() == StatusCode::kUnsupported) declined_.insert(id);
  KILN_ASSIGN_OR_RETURN(Plan * plan, std::move(planned));
  // Named only when a call fails: steady-state calls build no strings.
  auto where = [&g] { return "cuBLASLt GEMM (" + shape_text(g) + ")"; };
  if (g.bias) {
    const cublasStatus_t s =
        cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (s != CUBLAS_STATUS_SUCCESS) return lt_status(s, where() + ": BIAS_POINTER");
  }
  float alpha32 = static_cast<float>(g.alpha), beta32 = static_cast<float>(g.beta);
  const void* alpha = g.dtype == DType::kF64 ? static_cast<const void*>(&g.alpha) : &alpha32;
  const void* beta = g.dtype == DType::kF64 ? static_cast<const void*>(&g.beta) : &beta32;
  // kSecondCall: a later program run than the one that met the problem (the same problem recurs
  // within one run: an encoder's layers).
  if (plan->needs_tuning && (autotune_ != Autotune::kSecondCall || runs_ > plan->first_run)) {
    // Timing reruns the product: only where that cannot change D's inputs (D is not also C), and
    // never inside a capture (it waits for the stream).
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    const bool capturing = cudaStreamIsCapturing(stream_->get(), &capture) != cudaSuccess ||
                           capture != cudaStreamCaptureStatusNone;
    cudaGetLastError();
    if (!capturing && (g.beta == 0.0 || (c && c != d))) {
      if (plan->candidates.empty()) {  // kSecondCall: the heuristic's candidates, asked for now
        Status s = fetch_candidates(*plan, tune_candidates());
        if (!s.ok()) return s.with_context(where());
      }
      if (plan->candidates.size() > 1) {
        Status s = tune(*plan, g, a, b, d, c, alpha, beta);
        if (!s.ok()) return s.with_context(where());
      } else {  // one candidate is as good as timed
        plan->candidates.clear();
        plan->needs_tuning = false;
        remember(*plan, g);
      }
    }
  }
  const cublasStatus_t s = cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), plan->op, alpha, b, plan->a, a,
                                          plan->b, beta, c ? c : d, plan->d, d, plan->d, &plan->algo,
                                          workspace_.get(), workspace_bytes_, stream_->get());
  return s == CUBLAS_STATUS_SUCCESS ? Status() : lt_status(s, where() + ": cublasLtMatmul");
}

namespace {

// Which problems cuBLASLt is ready for, per device; see GemmLibraryState.
// Marks by (device, problem key), looked up by a view of the key (no copy per bridged GEMM).
struct MarkLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return a.first != b.first ? a.first < b.first : std::string_view(a.second) < std::string_view(b.second);
  }
};

struct LibraryMarks {
  std::mutex mu;
  std::map<std::pair<int, std::string>, std::pair<GemmLibraryState, uint64_t>, MarkLess> marks;
  std::atomic<uint64_t> generation{1};
};

LibraryMarks& library_marks() {
  static LibraryMarks* m = new LibraryMarks();  // lives as long as the process
  return *m;
}

}  // namespace

void gemm_library_mark(int device, const std::string& key, GemmLibraryState state) {
  LibraryMarks& m = library_marks();
  std::lock_guard<std::mutex> lock(m.mu);
  const uint64_t gen = m.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
  m.marks[{device, key}] = {state, gen};
}

namespace {

// Scratch operands of the warm job: at most this much device memory per problem; a larger one is
// left to the call that needs it.
constexpr size_t kWarmScratchLimit = size_t{512} << 20;

int64_t extent(int64_t batch, int64_t batch_stride, int64_t rows, int64_t ld, int64_t cols) {
  return (batch - 1) * batch_stride + (rows - 1) * ld + cols;
}

std::shared_ptr<DevicePool> warm_pool(int device) {
  static std::mutex mu;
  static auto* pools = new std::map<int, std::shared_ptr<DevicePool>>();  // lives as long as the process
  std::lock_guard<std::mutex> lock(mu);
  auto it = pools->find(device);
  if (it != pools->end()) return it->second;
  Result<std::shared_ptr<DevicePool>> pool = DevicePool::create(device, DevicePool::Kind::kStreamOrdered);  // keeps nothing cached
  if (!pool.ok()) return nullptr;
  return (*pools)[device] = *pool;
}

}  // namespace

uint64_t gemm_library_generation() { return library_marks().generation.load(std::memory_order_acquire); }

GemmLibraryState gemm_library_state(int device, const std::string& key, uint64_t as_of) {
  LibraryMarks& m = library_marks();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.marks.find(std::pair<int, std::string_view>(device, key));
  if (it == m.marks.end() || it->second.second > as_of) return GemmLibraryState::kCold;
  return it->second.first;
}

void gemm_library_load() {
  std::lock_guard<std::mutex> lock(library_mutex());
  cublasLtHandle_t h = nullptr;
  if (cublasLtCreate(&h) != CUBLAS_STATUS_SUCCESS) return;
  // The heuristic initialises more of the library on its first use: one query on a small problem.
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t l = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  if (cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 64, 64, 64) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS) {
    cublasLtMatmulHeuristicResult_t r{};
    int found = 0;
    cublasLtMatmulAlgoGetHeuristic(h, op, l, l, l, l, pref, 1, &r, &found);
  }
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (l) cublasLtMatrixLayoutDestroy(l);
  if (op) cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(h);
}

bool gemm_bridge_enabled() {
  static const bool on = env_switch("KILN_GEMM_BRIDGE").value_or(true);
  return on;
}

bool gemv_applies(const GemmDesc& g) {
  static const bool on = env_switch("KILN_GEMV").value_or(true);
  if (!on || g.batch != 1 || g.m <= 0 || g.n <= 0 || g.k <= 0) return false;
  if (g.dtype != DType::kF32 && g.dtype != DType::kF16 && g.dtype != DType::kBF16) return false;
  // One row of D; or one column of a contiguous D without a bias (its transpose is one row, and
  // the bias would run along it: callers of n == 1 products, convolutions, prefill theirs instead).
  if (g.bias && g.bias_rows) return false;
  const bool row = g.m == 1 && !g.bias_rows, column = g.n == 1 && g.ldd == 1 && !g.bias;
  return (row || column) && std::max(g.m, g.n) <= (int64_t{1} << 34);
}

bool gemm_bridge_supported(const GemmDesc& g) {
  if (g.dtype != DType::kF32 && g.dtype != DType::kF16 && g.dtype != DType::kBF16) return false;
  constexpr int64_t kMaxGridYZ = 65535;
  return g.m > 0 && g.n > 0 && g.k >= 0 && g.batch >= 1 && g.batch <= kMaxGridYZ &&
         (g.m + kernels::kGemmTileM - 1) / kernels::kGemmTileM <= kMaxGridYZ &&
         (g.n + kernels::kGemmTileN - 1) / kernels::kGemmTileN <= (int64_t{1} << 31) - 1;
}

size_t gemm_library_warm(int device, std::span<const GemmWarmRequest> requests, std::shared_ptr<RuntimeCache> cache,
                         int sm, GemmTuningCounters* counters, const std::function<bool()>& stop) {
  // A caller may be capturing a graph in global mode on another thread: this thread's allocations
  // and synchronisations are not part of it.
  RelaxedCaptureMode relaxed;
  if (!device_set(device).ok()) return 0;
  std::shared_ptr<DevicePool> pool = warm_pool(device);
  // Non-blocking: the legacy default stream (a caller's) never waits for the warm-up, nor it for it.
  Result<std::shared_ptr<Stream>> stream = Stream::create(device, cudaStreamNonBlocking);
  if (!pool || !stream.ok()) return 0;
  GemmRunner runner(pool, *stream);
  runner.set_tuning_cache(std::move(cache), sm, counters);
  runner.set_autotune(GemmRunner::Autotune::kFirstCall);
  size_t ready = 0;
  for (const GemmWarmRequest& r : requests) {
    if (stop && stop()) break;
    if (gemm_library_state(device, r.problem.key, UINT64_MAX) != GemmLibraryState::kCold) continue;
    const GemmDesc& g = r.desc;
    const auto es = static_cast<int64_t>(dtype_size(g.dtype));
    // Operands as stored, each on its own 256-byte boundary plus the problem's alignment, so that
    // the private runner sees the same problem key as the calls that wait for it.
    const int64_t sizes[5] = {
        extent(g.batch, g.stride_a, g.trans_a ? g.k : g.m, g.lda, g.trans_a ? g.m : g.k) * es,
        extent(g.batch, g.stride_b, g.trans_b ? g.n : g.k, g.ldb, g.trans_b ? g.k : g.n) * es,
        extent(g.batch, g.stride_d, g.m, g.ldd, g.n) * es, g.bias ? g.n * es : 0,
        g.beta != 0.0 ? extent(g.batch, g.stride_d, g.m, g.ldd, g.n) * es : 0};
    const int64_t shift = r.problem.align < 256 ? r.problem.align : 0;
    int64_t offsets[5], total = 0;
    for (int i = 0; i < 5; ++i) {
      offsets[i] = total + shift;
      total += (shift + std::max<int64_t>(sizes[i], 0) + 255) / 256 * 256;
    }
    if (total <= 0 || static_cast<size_t>(total) > kWarmScratchLimit) {
      gemm_library_mark(device, r.problem.key, GemmLibraryState::kReady);  // the call plans it itself
      continue;
    }
    Result<std::shared_ptr<void>> scratch = pool->alloc_bytes(static_cast<size_t>(total), *stream);
    if (!scratch.ok()) continue;  // cold: a later job tries again
    auto* base = static_cast<char*>(scratch->get());
    if (cudaMemsetAsync(base, 0, static_cast<size_t>(total), (*stream)->get()) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    // beta != 0 gets a C of its own (not D), so that the candidates can be timed.
    const Status s = runner.run(g, base + offsets[0], base + offsets[1], base + offsets[2],
                                g.bias ? base + offsets[3] : nullptr, g.beta != 0.0 ? base + offsets[4] : nullptr);
    const cudaError_t sync = cudaStreamSynchronize((*stream)->get());
    scratch->reset();
    if (s.ok() && sync == cudaSuccess) {
      gemm_library_mark(device, r.problem.key, GemmLibraryState::kReady);
      ++ready;
    } else {
      cudaGetLastError();
      if (stop && stop()) break;  // exiting: the libraries may be going away under the call
      if (!s.ok() && s.code() != StatusCode::kUnsupported)
        log_once(LogLevel::kWarning, "gemm-warm-failed",
                 "CUDA backend: getting cuBLASLt ready for a GEMM failed; kiln's own GEMM kernel keeps computing it: " +
                     s.to_string());
      gemm_library_mark(device, r.problem.key, GemmLibraryState::kDeclined);
    }
  }
  return ready;
}

}  // namespace kiln::cuda
