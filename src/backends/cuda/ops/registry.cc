#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "backends/cpu/kernel.h"
#include "backends/cuda/kernels/gemm.h"
#include "backends/cuda/ops/handler.h"
#include "core/alloc_limit.h"
#include "platform/file.h"

namespace kiln::cuda {
namespace {

const std::map<std::string, const OpHandler*, std::less<>>& table() {
  static const auto* t = [] {
    auto* handlers = new HandlerTable();
    register_elementwise_handlers(*handlers);
    register_movement_handlers(*handlers);
    register_reduce_handlers(*handlers);
    register_nn_handlers(*handlers);
    register_attention_handlers(*handlers);
    auto* m = new std::map<std::string, const OpHandler*, std::less<>>();
    for (auto& [op, h] : handlers->entries) (*m)[op] = h.release();
    return m;
  }();
  return *t;
}

}  // namespace

const OpHandler* handler_for(std::string_view op) {
  auto it = table().find(op);
  return it == table().end() ? nullptr : it->second;
}

std::vector<std::string> cuda_ops() {
  std::vector<std::string> ops;
  for (const auto& [op, h] : table()) ops.push_back(op);
  return ops;
}

namespace {

uint64_t profile_now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

kernels::GemmKernelSpec gemm_kernel_spec(const GemmDesc& g) {
  kernels::GemmKernelSpec spec;
  spec.dtype = g.dtype;
  spec.trans_a = g.trans_a;
  spec.trans_b = g.trans_b;
  spec.bias = g.bias;
  spec.beta = g.beta != 0.0;
  spec.act = g.act == GemmActivation::kRelu       ? kernels::GemmEpilogue::kRelu
             : g.act == GemmActivation::kGeluTanh ? kernels::GemmEpilogue::kGeluTanh
                                                  : kernels::GemmEpilogue::kNone;
  return spec;
}

// kiln's GEMM kernels of a spec, the GEMV kernel's (gemv) or the bridge's: each variant built once
// per (kernel, spec) and kept for the process, so calls build no key strings (steady-state GEMV
// calls; a lazy first call bridges every GEMM).
const KernelVariant& gemm_variant(const kernels::GemmKernelSpec& spec, bool gemv) {
  static std::mutex mu;
  static auto* variants = new std::map<uint32_t, std::unique_ptr<KernelVariant>>();  // lives as long as the process
  const uint32_t id = static_cast<uint32_t>(spec.dtype) | uint32_t{spec.trans_a} << 8 | uint32_t{spec.trans_b} << 9 |
                      uint32_t{spec.bias} << 10 | uint32_t{spec.beta} << 11 | static_cast<uint32_t>(spec.act) << 12 |
                      uint32_t{gemv} << 16;
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<KernelVariant>& v = (*variants)[id];
  if (!v)
    v = std::make_unique<KernelVariant>(
        gemv ? KernelVariant{kernels::gemv_kernel_key(spec), [spec] { return kernels::gemv_kernel_source(spec); }, {}, {}}
             : KernelVariant{kernels::gemm_kernel_key(spec), [spec] { return kernels::gemm_kernel_source(spec); }, {}, {}});
  return *v;
}

const KernelVariant& gemv_variant(const kernels::GemmKernelSpec& spec) { return gemm_variant(spec, true); }
const KernelVariant& gemm_bridge_variant(const GemmDesc& g) { return gemm_variant(gemm_kernel_spec(g), false); }

// The GEMV kernel's view of a one-row or one-column product (gemv_applies): for n == 1, D^T [1, m]
// = op(B)^T [1, k] x op(A)^T [k, m], so the operands swap and so do their transposes, and a bias
// per row of D becomes the row's bias.
struct GemvCall {
  kernels::GemmKernelSpec spec;
  const void* x = nullptr;  // the row operand
  const void* w = nullptr;  // the matrix
  long long n = 0, lda = 0, ldb = 0;
};

GemvCall gemv_call(const GemmDesc& g, const void* a, const void* b) {
  GemvCall call;
  call.spec = gemm_kernel_spec(g);
  if (g.m == 1 && !g.bias_rows) {
    call.x = a;
    call.w = b;
    call.n = g.n;
    call.lda = g.lda;
    call.ldb = g.ldb;
    return call;
  }
  call.x = b;
  call.w = a;
  call.spec.trans_a = !g.trans_b;
  call.spec.trans_b = !g.trans_a;
  call.spec.bias = g.bias_rows;
  call.n = g.m;
  call.lda = g.ldb;
  call.ldb = g.lda;
  return call;
}

}  // namespace

uint64_t RunContext::profile_start() const { return profile_on_ ? profile_now_ns() : 0; }

void RunContext::add_plan_ns(uint64_t t0) {
  if (profile_on_) profile_.plan_ns += profile_now_ns() - t0;
}

Status RunContext::launch_gemm_bridge(cudaKernel_t kernel, const GemmDesc& g, const void* a, const void* b, void* d,
                                      const void* bias, const void* c) {
  const void* c_arg = g.beta != 0.0 ? (c ? c : d) : nullptr;
  long long m = g.m, n = g.n, k = g.k, lda = g.lda, ldb = g.ldb, ldd = g.ldd;
  long long sa = g.stride_a, sb = g.stride_b, sd = g.stride_d;
  float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);
  const long long tiles_n = (g.n + kernels::kGemmTileN - 1) / kernels::kGemmTileN;
  const long long tiles_m = (g.m + kernels::kGemmTileM - 1) / kernels::kGemmTileM;
  const uint64_t t0 = profile_on_ ? profile_now_ns() : 0;
  // Small problems split K over more blocks (kernels/gemm.h), using the stream's scratch. A split
  // problem has fewer tiles than SMs and at most 16 splits, so batch * splits stays far
  // below gridDim.z's limit.
  kernels::GemmSplit split = kernels::gemm_split(tiles_n * tiles_m * g.batch, g.k, device_.multiprocessors);
  GemmRunner::SplitScratch scratch;
  if (split.splits > 1) {
    Result<GemmRunner::SplitScratch> got = gemm_->split_scratch();
    if (got.ok()) {
      scratch = *got;
    } else {  // no scratch to be had: one pass over K
      split = kernels::GemmSplit{1, g.k};
    }
  }
  int splits = split.splits;
  long long kc = split.kc;
  void* args[] = {&a,  &b,  &d,  &bias, &c_arg, &m,     &n,    &k, &lda, &ldb, &ldd, &sa, &sb, &sd,
                  &alpha, &beta, &scratch.partials, &scratch.counters, &splits, &kc};
  const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m),
                  static_cast<unsigned>(g.batch * splits));
  // Counted as a GEMM (bridged_gemms), not in launches(): GEMMs are never kiln's kernel launches.
  const cudaError_t err = cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, dim3(kernels::kGemmThreads),
                                           args, 0, stream_->get());
  if (profile_on_) profile_.gemm_ns += profile_now_ns() - t0;
  if (err != cudaSuccess) return cuda_status(err, "cudaLaunchKernel (GEMM bridge kernel, " + where() + ")");
  return Status();
}

std::string RunContext::where() const { return node_ ? cpu::node_context(*node_) : std::string("(no node)"); }

Result<Tensor> RunContext::alloc(DType dtype, Dims dims) {
  if (planning_) {  // host memory standing in for device memory: marked cuda so placement matches a run
    // Zeros whose pages the OS maps only when read (planning launches nothing, and host nodes read
    // few of them): no clearing of megabytes of activations, and no heap growth, when a context
    // plans at creation. A process's first plan of the shared encoder_L4_d256 at [1, 128] on the
    // CPU machine: 3.8-4.0 ms before, 2.4-2.5 ms after; mobilenet_v3_small 2.5-2.7 -> 1.5-1.6 ms.
    uint64_t bytes = dtype_size(dtype);
    for (int64_t d : dims) {
      if (d < 0 || (d > 0 && bytes > (uint64_t{1} << 40) / static_cast<uint64_t>(d))) {
        bytes = 0;
        break;
      }
      bytes *= static_cast<uint64_t>(d);
    }
    if (bytes >= (uint64_t{256} << 10) && allocation_within_limit(bytes)) {
      if (std::shared_ptr<void> mem = platform::lazily_zeroed(static_cast<size_t>(bytes))) {
        void* data = mem.get();
        return Tensor::wrap(dtype, std::move(dims), data, std::move(mem), Device{DeviceType::kCuda, device_.index});
      }
    }
    Result<Tensor> t = Tensor::empty(dtype, std::move(dims));
    if (!t.ok()) return t.status().with_context(where());
    return Tensor::wrap(t->dtype(), t->dims(), t->data(), t->storage(), Device{DeviceType::kCuda, device_.index});
  }
  for (Tensor& o : offered_) {
    if (!o.defined() || o.dtype() != dtype || o.dims() != dims) continue;
    Tensor t = std::move(o);
    o = Tensor();
    return t;
  }
  const uint64_t t0 = profile_on_ ? profile_now_ns() : 0;
  Result<Tensor> t = hooks_ ? hooks_->alloc(dtype, std::move(dims)) : pool_->alloc(dtype, std::move(dims), stream_);
  if (profile_on_) profile_.alloc_ns += profile_now_ns() - t0;
  if (!t.ok()) return t.status().with_context(where());
  return t;
}

Status RunContext::launch(const std::string& key, const KernelTable::Builder& build, unsigned grid, unsigned block,
                          void** args, size_t shared_bytes) {
  return launch(KernelVariant{key, build, {}, {}}, grid, block, args, shared_bytes);
}

Status RunContext::launch(const KernelVariant& v, unsigned grid, unsigned block, void** args, size_t shared_bytes) {
  auto kernel = [&]() -> Result<cudaKernel_t> {
    return provider_ ? provider_->kernel_for(v) : KernelTable::global().get(v.key, device_.sm, v.build);
  };
  const uint64_t t0 = profile_on_ ? profile_now_ns() : 0;
  Result<cudaKernel_t> k = [&]() -> Result<cudaKernel_t> {
    if (!hooks_) return kernel();
    RelaxedCaptureMode relaxed;  // a first use loads a module: not allowed while capturing
    return kernel();
  }();
  const uint64_t t1 = profile_on_ ? profile_now_ns() : 0;
  if (profile_on_) profile_.lookup_ns += t1 - t0;
  if (!k.ok()) return k.status().with_context(where());
  ++launches_;
  if (!*k) return Status();  // planning: recorded, not launched
  const cudaError_t err =
      cudaLaunchKernel(reinterpret_cast<const void*>(*k), dim3(grid), dim3(block), args, shared_bytes, stream_->get());
  if (profile_on_) profile_.launch_ns += profile_now_ns() - t1;
  if (err != cudaSuccess) return cuda_status(err, "cudaLaunchKernel (kernel " + v.key + ", " + where() + ")");
  if (hooks_) hooks_->on_kernel(*k, dim3(grid), dim3(block), shared_bytes, args);
  return Status();
}

bool RunContext::gemv_ready(const GemmDesc& desc) const {
  if (!gemv_applies(desc)) return false;
  return planning_ || KernelTable::global().find(gemv_variant(gemv_call(desc, nullptr, nullptr).spec).key, device_.sm);
}

Status RunContext::gemm_run(const GemmDesc& desc, const void* a, const void* b, void* d, const void* bias,
                            const void* c) {
  // One row (or column) of D: kiln's GEMV kernel, when it is loaded (planned at creation: a call
  // never waits for NVRTC for it); else cuBLASLt as for any GEMM.
  if (gemv_applies(desc)) {
    const GemvCall call = gemv_call(desc, a, b);
    const KernelVariant& v = gemv_variant(call.spec);
    if (planning_ || KernelTable::global().find(v.key, device_.sm)) {
      const void* x = call.x;
      const void* w = call.w;
      long long n = call.n, k = desc.k, lda = call.lda, ldb = call.ldb;
      const void* c_arg = desc.beta != 0.0 ? (c ? c : d) : nullptr;
      float alpha = static_cast<float>(desc.alpha), beta = static_cast<float>(desc.beta);
      void* args[] = {&x, &w, &d, &bias, &c_arg, &n, &k, &lda, &ldb, &alpha, &beta};
      const kernels::GemvGeometry geo = kernels::gemv_geometry(call.spec, n);
      const uint64_t launched = launches_;
      Status s = launch(v, geo.grid, geo.block, args);
      launches_ = launched;  // a GEMM: counted in gemv_gemms(), never in launches()
      if (s.ok() && !planning_) ++gemv_gemms_;
      return s;
    }
  }
  if (desc.bias_rows) return invalid_argument(where() + ": a GEMM with a bias per row that the GEMV kernel cannot run");
  // The bridge kernel is part of a lazy program's plan (precompiled; `kiln cache warm`).
  if (planning_) {
    const bool bridgeable = provider_ && gemm_bridge_enabled() && gemm_bridge_supported(desc);
    return bridgeable ? provider_->kernel_for(gemm_bridge_variant(desc)).status() : Status();
  }
  // Steady-state calls stop at gemm_may_bridge(). Never while capturing: a graph is captured once
  // its GEMMs are final.
  if (provider_ && !hooks_ && provider_->gemm_may_bridge() && gemm_bridge_supported(desc)) {
    const uint64_t t0 = profile_on_ ? profile_now_ns() : 0;
    cudaKernel_t kernel = provider_->gemm_bridge(desc, gemm_problem(desc, a, b, d, bias, c),
                                                 gemm_bridge_variant(desc).key);
    if (profile_on_) profile_.bridge_ns += profile_now_ns() - t0;
    if (kernel) {
      ++bridged_gemms_;
      return launch_gemm_bridge(kernel, desc, a, b, d, bias, c);
    }
  }
  if (hooks_) {
    hooks_->on_library(a, b, d, bias);
    if (c) hooks_->on_library(c, nullptr, nullptr, nullptr);
  }
  if (!profile_on_) return gemm_->run(desc, a, b, d, bias, c);
  const uint64_t t0 = profile_now_ns();
  Status s = gemm_->run(desc, a, b, d, bias, c);
  profile_.gemm_ns += profile_now_ns() - t0;
  return s;
}

Status RunContext::memset(void* ptr, size_t bytes) {
  if (planning_ || bytes == 0) return Status();
  if (hooks_) hooks_->on_library(ptr, nullptr, nullptr, nullptr);
  return cuda_status(cudaMemsetAsync(ptr, 0, bytes, stream_->get()), "cudaMemsetAsync (" + where() + ")");
}

}  // namespace kiln::cuda
