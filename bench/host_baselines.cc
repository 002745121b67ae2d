// Raw CUDA host costs on this machine, for reading kiln_host_bench's numbers: a library kernel
// (NVRTC-compiled, loaded with cudaLibraryLoadData like kiln's) launched with cudaLaunchKernel,
// the same kernel through the driver's cuLaunchKernel on its CUfunction, cudaMemsetAsync, and a
// 1x1024x1024 f32 cublasLtMatmul, each on a blocking and on a non-blocking stream; then each of
// cuBLASLt's top algorithms for M x 1024 x 1024 Linears (KILN_BENCH_GEMM_M).
#include "host_baselines.h"

#include <cublasLt.h>
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/nvrtc.h"

namespace kiln::bench {
namespace {

using Clock = std::chrono::steady_clock;

double per_op_us(int n, const std::function<void()>& op, cudaStream_t s) {
  for (int i = 0; i < 50; ++i) op();
  cudaStreamSynchronize(s);
  std::vector<double> t;
  for (int rep = 0; rep < 20; ++rep) {
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) op();
    t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n);
    cudaStreamSynchronize(s);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

void print_host_baselines() {
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  Result<cuda::CompiledKernel> k = cuda::nvrtc_compile(
      {"kiln_noop", "extern \"C\" __global__ void kiln_noop(float* p, long long n) { if (n < 0) p[0] = 1; }"},
      major * 10 + minor);
  if (!k.ok()) {
    std::printf("baselines: %s\n", k.status().to_string().c_str());
    return;
  }
  cudaLibrary_t lib = nullptr;
  cudaKernel_t kern = nullptr;
  if (cudaLibraryLoadData(&lib, k->image.data(), nullptr, nullptr, 0, nullptr, nullptr, 0) != cudaSuccess ||
      cudaLibraryGetKernel(&kern, lib, "kiln_noop") != cudaSuccess) {
    std::printf("baselines: cudaLibraryLoadData failed\n");
    return;
  }
  // The driver entry points without linking libcuda.
  using GetFunction = CUresult (*)(CUfunction*, CUkernel);
  using Launch = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void**, void**);
  void* get_fn = nullptr;
  void* launch_fn = nullptr;
  cudaDriverEntryPointQueryResult q;
  cudaGetDriverEntryPointByVersion("cuKernelGetFunction", &get_fn, 12000, cudaEnableDefault, &q);
  cudaGetDriverEntryPointByVersion("cuLaunchKernel", &launch_fn, 12000, cudaEnableDefault, &q);
  CUfunction fn = nullptr;
  if (get_fn) reinterpret_cast<GetFunction>(get_fn)(&fn, reinterpret_cast<CUkernel>(kern));

  float* buf = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&buf), 4 << 20);
  long long n = 1;
  void* args[] = {&buf, &n};
  cublasLtHandle_t lt = nullptr;
  cublasLtCreate(&lt);
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, 1024, 1024, 1024);  // weights
  cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, 1024, 1, 1024);     // one input row
  cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, 1024, 1, 1024);
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulPreferenceCreate(&pref);
  size_t ws_bytes = 32 << 20;
  void* ws = nullptr;
  cudaMalloc(&ws, ws_bytes);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &heur, &found);
  float *w = nullptr, *x = nullptr, *y = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&w), 4 << 20);
  cudaMalloc(reinterpret_cast<void**>(&x), 4096);
  cudaMalloc(reinterpret_cast<void**>(&y), 4096);
  const float one = 1, zero = 0;

  for (unsigned flags : {cudaStreamDefault, cudaStreamNonBlocking}) {
    cudaStream_t s = nullptr;
    cudaStreamCreateWithFlags(&s, flags);
    const char* kind = flags == cudaStreamDefault ? "blocking stream" : "non-blocking stream";
    std::printf("baseline (%s): cudaLaunchKernel(cudaKernel_t) %.2f us", kind,
                per_op_us(200, [&] { cudaLaunchKernel(reinterpret_cast<const void*>(kern), 1, 32, args, 0, s); }, s));
    if (fn && launch_fn)
      std::printf(", cuLaunchKernel(CUfunction) %.2f us", per_op_us(200, [&] {
                    reinterpret_cast<Launch>(launch_fn)(fn, 1, 1, 1, 32, 1, 1, 0, reinterpret_cast<CUstream>(s), args,
                                                         nullptr);
                  }, s));
    std::printf(", cudaMemsetAsync %.2f us", per_op_us(200, [&] { cudaMemsetAsync(buf, 0, 4, s); }, s));
    if (found)
      std::printf(", cublasLtMatmul 1x1024x1024 f32 %.2f us", per_op_us(100, [&] {
                    cublasLtMatmul(lt, op, &one, w, la, x, lb, &zero, y, ld, y, ld, &heur.algo, ws, ws_bytes, s);
                  }, s));
    std::printf(" (host time per call, queued back to back)\n");
    cudaStreamDestroy(s);
  }
  // kiln's layout of a Linear of M rows (Gemm transB=1: D^T[n,m] = W[n,k] x^T[k,m] column-major),
  // n = k = 1024, f32 and f16, M from KILN_BENCH_GEMM_M (comma-separated, default 1,64): host time
  // to enqueue and GPU time per call of each of the heuristic's top algorithms.
  std::vector<int> rows;
  {
    const char* env = std::getenv("KILN_BENCH_GEMM_M");
    std::string list = env && *env ? env : "1,64";
    for (size_t p = 0; p < list.size();) {
      size_t c = list.find(',', p);
      const int m = std::atoi(list.substr(p, c - p).c_str());
      if (m > 0 && m <= 4096) rows.push_back(m);
      p = c == std::string::npos ? list.size() : c + 1;
    }
  }
  float *xm = nullptr, *ym = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&xm), size_t{4096} * 1024 * 4);
  cudaMalloc(reinterpret_cast<void**>(&ym), size_t{4096} * 1024 * 4);
  for (int m : rows) {
    for (cudaDataType_t type : {CUDA_R_32F, CUDA_R_16F}) {
      cublasLtMatmulDesc_t op2 = nullptr;
      cublasLtMatrixLayout_t a2 = nullptr, b2 = nullptr, d2 = nullptr;
      cublasLtMatmulDescCreate(&op2, CUBLAS_COMPUTE_32F, CUDA_R_32F);
      const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
      cublasLtMatmulDescSetAttribute(op2, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t);
      cublasLtMatmulDescSetAttribute(op2, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n);
      cublasLtMatrixLayoutCreate(&a2, type, 1024, 1024, 1024);
      cublasLtMatrixLayoutCreate(&b2, type, 1024, static_cast<uint64_t>(m), 1024);
      cublasLtMatrixLayoutCreate(&d2, type, 1024, static_cast<uint64_t>(m), 1024);
      cublasLtMatmulHeuristicResult_t top[8];
      int got = 0;
      cublasLtMatmulAlgoGetHeuristic(lt, op2, a2, b2, d2, d2, pref, 8, top, &got);
      cudaStream_t s = nullptr;
      cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      cudaEvent_t e0, e1;
      cudaEventCreate(&e0);
      cudaEventCreate(&e1);
      for (int i = 0; i < got; ++i) {
        auto call = [&] {
          cublasLtMatmul(lt, op2, &one, w, a2, xm, b2, &zero, ym, d2, ym, d2, &top[i].algo, ws, ws_bytes, s);
        };
        const double host = per_op_us(100, call, s);
        // The stream waits on a host function while the 100 calls are queued, so the GPU runs
        // them back to back: GPU time alone, not the host's queuing rate.
        std::atomic<int> released{0};
        cudaLaunchHostFunc(
            s,
            [](void* p) {
              while (static_cast<std::atomic<int>*>(p)->load(std::memory_order_acquire) == 0) std::this_thread::yield();
            },
            &released);
        cudaEventRecord(e0, s);
        for (int r = 0; r < 100; ++r) call();
        cudaEventRecord(e1, s);
        released.store(1, std::memory_order_release);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        std::printf("baseline: cuBLASLt %s %dx1024x1024 (kiln layout) heuristic #%d: host %.2f us, GPU %.2f us per "
                    "call, workspace %zu\n",
                    type == CUDA_R_32F ? "f32" : "f16", m, i, host, ms * 1e3 / 100, top[i].workspaceSize);
      }
      cudaEventDestroy(e0);
      cudaEventDestroy(e1);
      cudaStreamDestroy(s);
      cublasLtMatrixLayoutDestroy(a2);
      cublasLtMatrixLayoutDestroy(b2);
      cublasLtMatrixLayoutDestroy(d2);
      cublasLtMatmulDescDestroy(op2);
    }
  }
  cudaFree(xm);
  cudaFree(ym);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  cudaFree(w);
  cudaFree(x);
  cudaFree(y);
  cudaFree(ws);
  cudaFree(buf);
  cudaLibraryUnload(lib);
}

}  // namespace kiln::bench
