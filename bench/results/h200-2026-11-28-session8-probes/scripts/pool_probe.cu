// Probe: what a fresh stream-ordered pool's first allocation costs, and why.
#include <cuda_runtime.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cstdlib>
static double now_ms() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#define T(label, expr) do { double t0 = now_ms(); cudaError_t e = (expr); double t1 = now_ms(); printf("  %-44s %8.3f ms %s\n", label, t1 - t0, e ? cudaGetErrorString(e) : ""); } while (0)
static cudaMemPool_t make_pool(size_t max_size) {
  cudaMemPoolProps p{}; p.allocType = cudaMemAllocationTypePinned; p.handleTypes = cudaMemHandleTypeNone;
  p.location.type = cudaMemLocationTypeDevice; p.location.id = 0; p.maxSize = max_size;
  cudaMemPool_t pool; T("cudaMemPoolCreate", cudaMemPoolCreate(&pool, &p)); return pool;
}
int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "pool";
  printf("mode %s\n", mode);
  T("cudaFree(0) (context)", cudaFree(0));
  cudaStream_t s; T("cudaStreamCreate", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void* p = nullptr;
  if (!strcmp(mode, "malloc_first")) { T("cudaMalloc 1 MB", cudaMalloc(&p, 1 << 20)); T("cudaMalloc 32 MB", cudaMalloc(&p, 32 << 20)); }
  if (!strcmp(mode, "default")) {
    T("default pool cudaMallocAsync 1 B + sync", (cudaMallocAsync(&p, 1, s), cudaStreamSynchronize(s)));
    T("default pool cudaMallocAsync 4 MB + sync", (cudaMallocAsync(&p, 4 << 20, s), cudaStreamSynchronize(s)));
  }
  size_t max = 0;
  if (!strcmp(mode, "max256")) max = 256u << 20;
  if (!strcmp(mode, "max64")) max = 64u << 20;
  cudaMemPool_t pool = make_pool(max);
  T("pool alloc 1 B (no sync)", cudaMallocFromPoolAsync(&p, 1, pool, s));
  T("  sync", cudaStreamSynchronize(s));
  T("pool alloc 4 MB + sync", (cudaMallocFromPoolAsync(&p, 4 << 20, pool, s), cudaStreamSynchronize(s)));
  T("pool alloc 64 MB + sync", (cudaMallocFromPoolAsync(&p, 64 << 20, pool, s), cudaStreamSynchronize(s)));
  cudaMemPool_t pool2 = make_pool(max);
  T("second pool alloc 1 B + sync", (cudaMallocFromPoolAsync(&p, 1, pool2, s), cudaStreamSynchronize(s)));
  T("cudaMalloc 1 MB", cudaMalloc(&p, 1 << 20));
  uint64_t v = 0; cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &v);
  printf("  pool reserved %.1f MB\n", v / 1048576.0);
  return 0;
}
