#include "backends/cuda/specializer.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "backends/cuda/device.h"
#include "backends/cuda/kernel_table.h"
#include "core/logging.h"

namespace kiln::cuda {

using KernelMap = std::map<std::string, cudaKernel_t>;

struct Specializer::State {
  Options options;
  JitCounters jit;       // JIT work off the call path: precompile and background jobs
  JitCounters call_jit;  // JIT work on a call's thread
  std::atomic<bool> cancelled{false};
  std::atomic<uint64_t> generic{0}, specialized{0}, plain{0}, specializations{0}, swaps{0}, jobs{0},
      pending{0}, cancelled_jobs{0}, dropped{0}, bridged{0}, readied{0};
  GemmTuningCounters warm_tuning;  // the timing background jobs do for the GEMM bridge
  std::atomic<uint64_t> planned_kernels{0}, planned_specializable{0}, planned_launches{0};

  struct Sig {
    std::shared_ptr<const KernelMap> set = std::make_shared<const KernelMap>();
    bool pending = false;  // a background job is queued or running
    bool final = false;    // every specialised kernel its calls launch is in `set`, cuBLASLt ready
    bool keeps_bridge = false;  // a GEMM cuBLASLt declined: the bridge computes it for good
  };
  mutable std::mutex mu;
  std::map<std::string, Sig> sigs;
  int running = 0;                  // jobs of this program running now (under mu)
  std::condition_variable idle;     // signalled when a job ends

  // Swaps in `sig`'s set extended by `added` (one pointer swap under the lock).
  void publish(const std::string& sig, const KernelMap& added, bool final) {
    std::lock_guard<std::mutex> lock(mu);
    Sig& s = sigs[sig];
    if (!added.empty()) {
      auto next = std::make_shared<KernelMap>(*s.set);
      size_t fresh = 0;
      for (const auto& [key, k] : added) fresh += next->emplace(key, k).second ? 1 : 0;
      if (fresh > 0) {
        s.set = std::move(next);
        swaps.fetch_add(1, std::memory_order_relaxed);
        specializations.fetch_add(fresh, std::memory_order_relaxed);
      }
    }
    if (final) s.final = true;
  }
};

namespace {

struct Job {
  std::shared_ptr<Specializer::State> owner;
  std::string signature;
  std::vector<KernelVariant> kernels;
  std::vector<GemmWarmRequest> gemms;  // the GEMM bridge: problems to get cuBLASLt ready for
};

constexpr size_t kPoolThreads = 2;
constexpr size_t kMaxQueuedJobs = 256;

// The process-wide background pool. Never destroyed; shut down (queue dropped, threads joined)
// at exit.
class Pool {
 public:
  static Pool& get() {
    static Pool* pool = [] {
      auto* p = new Pool();
      std::atexit([] { get().shutdown(); });
      return p;
    }();
    return *pool;
  }

  // False when the queue is full or the pool is shut down: the caller may try again later.
  bool submit(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || queue_.size() >= kMaxQueuedJobs) return false;
    queue_.push_back(std::move(job));
    while (threads_.size() < kPoolThreads) threads_.emplace_back([this] { work(); });
    cv_.notify_one();
    return true;
  }

  // Drops `owner`'s queued jobs.
  void cancel(const Specializer::State* owner) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::remove_if(queue_.begin(), queue_.end(), [&](const Job& j) {
      if (j.owner.get() != owner) return false;
      j.owner->cancelled_jobs.fetch_add(1, std::memory_order_relaxed);
      j.owner->pending.fetch_sub(1, std::memory_order_relaxed);
      return true;
    });
    queue_.erase(it, queue_.end());
  }

  void shutdown() {
    stopping_.store(true);  // a GEMM warm-up in flight stops at its next problem
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      for (Job& j : queue_) j.owner->pending.fetch_sub(1, std::memory_order_relaxed);
      queue_.clear();
      threads.swap(threads_);
      cv_.notify_all();
    }
    for (std::thread& t : threads) t.join();  // a compile in flight finishes first
  }

 private:
  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
        // Counted as running before the queue lock is released: a Specializer being destroyed
        // either cancels the job in the queue or waits for it (lock order: the pool's, then the
        // owner's).
        std::lock_guard<std::mutex> owner_lock(job.owner->mu);
        ++job.owner->running;
      }
      run(job);
    }
  }

  // Drops repeated kernels and GEMM problems (one kernel may serve several nodes), keeping the
  // first of each.
  static void dedup(Job& job) {
    std::unordered_set<std::string> seen;
    std::erase_if(job.kernels, [&](const KernelVariant& v) { return !seen.insert(v.spec_key).second; });
    std::erase_if(job.gemms, [&](const GemmWarmRequest& r) { return !seen.insert(r.problem.key).second; });
  }

  static void run(Job& job) {
    Specializer::State& st = *job.owner;  // counted in st.running by work()
    dedup(job);
    KernelMap added;
    bool all = true;
    if (device_set(st.options.device).ok()) {
      for (const KernelVariant& v : job.kernels) {
        if (st.cancelled.load(std::memory_order_relaxed)) {
          all = false;
          break;
        }
        Result<cudaKernel_t> k =
            KernelTable::global().get(v.spec_key, st.options.sm, v.spec_build, st.options.cache.get(), &st.jit);
        if (k.ok()) {
          added.emplace(v.spec_key, *k);
        } else {
          all = false;
          log_once(LogLevel::kWarning, "specialize-failed:" + v.spec_key,
                   "CUDA backend: specialising a kernel failed; the generic kernel stays in use: " +
                       k.status().to_string());
        }
      }
      if (!job.gemms.empty() && !st.cancelled.load(std::memory_order_relaxed)) {
        // cuBLASLt's first use may register its own clean-up at exit; the pool's shutdown must run
        // before it (atexit runs handlers in reverse order), or an exit during a warm-up would
        // pull the library out from under this thread.
        static std::once_flag exit_order;
        std::call_once(exit_order, [] {
          gemm_library_load();
          std::atexit([] { get().shutdown(); });
        });
        const size_t ready = gemm_library_warm(
            st.options.device, job.gemms, st.options.cache, st.options.sm, &st.warm_tuning,
            [&st] { return st.cancelled.load(std::memory_order_relaxed) || get().stopping_.load(); });
        st.readied.fetch_add(ready, std::memory_order_relaxed);
      }
      for (const GemmWarmRequest& r : job.gemms)
        if (gemm_library_state(st.options.device, r.problem.key, UINT64_MAX) == GemmLibraryState::kCold) all = false;
    } else {
      all = false;
    }
    st.publish(job.signature, added, all);
    {
      std::lock_guard<std::mutex> lock(st.mu);
      st.sigs[job.signature].pending = false;
      --st.running;
    }
    st.pending.fetch_sub(1, std::memory_order_relaxed);
    st.idle.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace

Specializer::Specializer(Options options) : options_(options), state_(std::make_shared<State>()) {
  state_->options = std::move(options);
}

Specializer::~Specializer() {
  state_->cancelled.store(true);
  Pool::get().cancel(state_.get());
  // A job of this program already running stops at its next kernel or GEMM problem; wait for it,
  // so that no work of a destroyed engine is left to race the process's exit (a cuBLASLt query in
  // flight while the library's exit clean-up runs crashed the CLI).
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->idle.wait(lock, [this] { return state_->running == 0; });
}

JitCounters& Specializer::jit() { return state_->jit; }
RuntimeCache* Specializer::cache() const { return state_->options.cache.get(); }

namespace {
void append_signature(std::string& s, DType dtype, const Dims& dims) {
  if (!s.empty()) s += ';';
  s += dtype_name(dtype);
  s += '[';
  for (size_t d = 0; d < dims.size(); ++d) s += (d ? "," : "") + std::to_string(dims[d]);
  s += ']';
}
}  // namespace

std::string Specializer::signature_of(std::span<const Tensor> inputs) {
  std::string s;
  for (const Tensor& t : inputs) append_signature(s, t.dtype(), t.dims());
  return s;
}

std::string Specializer::signature_of(std::span<const DType> dtypes, std::span<const Dims> dims) {
  std::string s;
  for (size_t i = 0; i < dtypes.size() && i < dims.size(); ++i) append_signature(s, dtypes[i], dims[i]);
  return s;
}

void Specializer::set_plan_counts(uint64_t kernels, uint64_t specializable, uint64_t launches) {
  state_->planned_kernels = kernels;
  state_->planned_specializable = specializable;
  state_->planned_launches = launches;
}

std::unique_ptr<Specializer::Call> Specializer::begin_call(std::span<const Tensor> inputs) {
  auto call = std::make_unique<Call>();
  call->state_ = state_;
  call->signature_ = signature_of(inputs);
  const bool lazy = state_->options.strategy == KernelSpecializationStrategy::kLazy && gemm_bridge_enabled();
  if (lazy) call->gemm_generation_ = gemm_library_generation();
  std::lock_guard<std::mutex> lock(state_->mu);
  const State::Sig& sig = state_->sigs[call->signature_];
  call->set_ = sig.set;
  call->may_bridge_ = lazy && (!sig.final || sig.keeps_bridge);
  return call;
}

cudaKernel_t Specializer::Call::gemm_bridge(const GemmDesc& desc, const GemmProblem& problem,
                                            const std::string& kernel_key) {
  const std::optional<cudaKernel_t> kernel = KernelTable::global().find(kernel_key, state_->options.sm);
  if (!kernel) return nullptr;  // not planned, so not loaded: cuBLASLt now
  switch (gemm_library_state(state_->options.device, problem.key, gemm_generation_)) {
    case GemmLibraryState::kReady:
      return nullptr;
    case GemmLibraryState::kDeclined:
      ++bridged_declined_;
      break;
    case GemmLibraryState::kCold:
      gemm_missing_.push_back(GemmWarmRequest{desc, problem});
      break;
  }
  ++bridged_;
  return *kernel;
}

Result<cudaKernel_t> Specializer::Call::kernel_for(const KernelVariant& v) {
  State& st = *state_;
  const int sm = st.options.sm;
  RuntimeCache* cache = st.options.cache.get();
  if (v.spec_key.empty()) {
    ++plain_;
    return KernelTable::global().get(v.key, sm, v.build, cache, &st.call_jit);
  }
  if (auto it = set_->find(v.spec_key); it != set_->end()) {
    ++specialized_;
    return it->second;
  }
  if (auto it = added_.find(v.spec_key); it != added_.end()) {
    ++specialized_;
    return it->second;
  }
  switch (st.options.strategy) {
    case KernelSpecializationStrategy::kNone:
      break;
    case KernelSpecializationStrategy::kEager: {
      Result<cudaKernel_t> k = KernelTable::global().get(v.spec_key, sm, v.spec_build, cache, &st.call_jit);
      if (k.ok()) {
        added_.emplace(v.spec_key, *k);
        ++specialized_;
        return k;
      }
      log_once(LogLevel::kWarning, "specialize-failed:" + v.spec_key,
               "CUDA backend: specialising a kernel failed; the generic kernel stays in use: " +
                   k.status().to_string());
      break;
    }
    case KernelSpecializationStrategy::kLazy:
      // Loaded already (by another program): taking it costs no wait, and the swap at the end
      // of this call makes it part of the signature's set.
      if (std::optional<cudaKernel_t> k = KernelTable::global().find(v.spec_key, sm)) {
        added_.emplace(v.spec_key, *k);
        ++specialized_;
        return *k;
      }
      missing_.push_back(v);
      break;
  }
  ++generic_;
  return KernelTable::global().get(v.key, sm, v.build, cache, &st.call_jit);
}

void Specializer::end_call(Call& call) {
  State& st = *state_;
  st.generic.fetch_add(call.generic_, std::memory_order_relaxed);
  st.specialized.fetch_add(call.specialized_, std::memory_order_relaxed);
  st.plain.fetch_add(call.plain_, std::memory_order_relaxed);
  st.bridged.fetch_add(call.bridged_, std::memory_order_relaxed);
  if (call.bridged_declined_ > 0) {
    std::lock_guard<std::mutex> lock(st.mu);
    st.sigs[call.signature_].keeps_bridge = true;
  }
  st.publish(call.signature_, call.added_, call.generic_ == 0 && call.gemm_missing_.empty());
  if (call.missing_.empty() && call.gemm_missing_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    State::Sig& sig = st.sigs[call.signature_];
    if (sig.pending) return;  // one job per signature at a time
    sig.pending = true;
  }
  // The lists go to the job as they are (moved, not copied); the worker drops the duplicates (one
  // kernel may serve several nodes): this runs on the caller's thread, at the end of a first call.
  st.pending.fetch_add(1, std::memory_order_relaxed);
  st.jobs.fetch_add(1, std::memory_order_relaxed);
  if (!Pool::get().submit(Job{state_, call.signature_, std::move(call.missing_), std::move(call.gemm_missing_)})) {
    st.pending.fetch_sub(1, std::memory_order_relaxed);
    st.dropped.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(st.mu);
    st.sigs[call.signature_].pending = false;  // a later call asks again
  }
}

void Specializer::precompile(const std::vector<KernelVariant>& planned, const std::string* signature, bool final) {
  State& st = *state_;
  struct Task {
    const std::string* key;
    const KernelTable::Builder* build;
    bool specialised;
  };
  std::vector<Task> tasks;
  for (const KernelVariant& v : planned) {
    // A static signature launches the specialised variant only: its generic one is compiled on
    // the call that would need it (one whose specialised compile failed), not here.
    if (signature && !v.spec_key.empty()) {
      tasks.push_back({&v.spec_key, &v.spec_build, true});
    } else {
      tasks.push_back({&v.key, &v.build, false});
    }
  }
  if (tasks.empty()) {
    if (signature) st.publish(*signature, {}, final);
    return;
  }
  std::mutex mu;
  KernelMap added;
  bool all = true;
  auto done = [&](const Task& t, const Result<cudaKernel_t>& k) {
    std::lock_guard<std::mutex> lock(mu);
    if (!k.ok()) {
      all = false;
      log(LogLevel::kDebug, "CUDA backend: precompiling " + *t.key + " failed: " + k.status().to_string());
    } else if (t.specialised) {
      added.emplace(*t.key, *k);
    }
  };
  // Kernels the runtime cache holds load here, one after another: a load is a fraction of a
  // millisecond, and threads would only contend (warm start of the benchmark encoder on the H200
  // machine: 2.9 ms on this thread, 9-10 ms on 16). What needs NVRTC compiles in parallel.
  std::vector<const Task*> to_compile;
  for (const Task& t : tasks) {
    Result<cudaKernel_t> k =
        KernelTable::global().get_cached(*t.key, st.options.sm, *t.build, st.options.cache.get(), &st.jit);
    if (!k.ok() && k.status().code() == StatusCode::kNotFound) {
      to_compile.push_back(&t);
      continue;
    }
    done(t, k);
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    (void)device_set(st.options.device);
    for (size_t i; (i = next.fetch_add(1)) < to_compile.size();) {
      const Task& t = *to_compile[i];
      done(t, KernelTable::global().get(*t.key, st.options.sm, *t.build, st.options.cache.get(), &st.jit));
    }
  };
  const size_t threads =
      std::min<size_t>(to_compile.size(), std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16));
  std::vector<std::thread> pool;
  for (size_t i = 1; i < threads; ++i) pool.emplace_back(work);
  if (!to_compile.empty()) work();
  for (std::thread& t : pool) t.join();
  if (signature) st.publish(*signature, added, all && final);
}

bool Specializer::kernels_final(const std::string& signature) const {
  if (state_->options.strategy == KernelSpecializationStrategy::kNone) return true;
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->sigs.find(signature);
  return it != state_->sigs.end() && it->second.final;
}

void Specializer::add_counters(std::map<std::string, uint64_t>& out) const {
  const State& st = *state_;
  st.jit.add_to(out);
  st.call_jit.add_to(out);
  out["call_compiles"] += st.call_jit.compiles.load(std::memory_order_relaxed);
  out["generic_launches"] += st.generic.load(std::memory_order_relaxed);
  out["specialized_launches"] += st.specialized.load(std::memory_order_relaxed);
  out["plain_launches"] += st.plain.load(std::memory_order_relaxed);
  out["specializations"] += st.specializations.load(std::memory_order_relaxed);
  out["swaps"] += st.swaps.load(std::memory_order_relaxed);
  out["specialize_jobs"] += st.jobs.load(std::memory_order_relaxed);
  out["specialize_pending"] += st.pending.load(std::memory_order_relaxed);
  out["specialize_cancelled"] += st.cancelled_jobs.load(std::memory_order_relaxed);
  out["specialize_dropped"] += st.dropped.load(std::memory_order_relaxed);
  out["planned_kernels"] += st.planned_kernels.load(std::memory_order_relaxed);
  out["specializable_kernels"] += st.planned_specializable.load(std::memory_order_relaxed);
  out["planned_launches"] += st.planned_launches.load(std::memory_order_relaxed);
  out["gemm_bridged"] += st.bridged.load(std::memory_order_relaxed);
  out["gemm_readied"] += st.readied.load(std::memory_order_relaxed);
  out["gemm_tuning_hits"] += st.warm_tuning.hits.load(std::memory_order_relaxed);
  out["gemm_tuning_misses"] += st.warm_tuning.misses.load(std::memory_order_relaxed);
  out["gemm_tuning_timed"] += st.warm_tuning.timed.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(st.mu);
  out["signatures"] += st.sigs.size();
}

}  // namespace kiln::cuda
