// kiln generated kernel
__device__ __forceinline__ float kiln_f16_to_f32(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short kiln_f32_to_f16(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float kiln_bf16_to_f32(unsigned short h) {
  return __uint_as_float(((unsigned int)h) << 16);
}
__device__ __forceinline__ unsigned short kiln_f32_to_bf16(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
template <typename T> __device__ __forceinline__ T kiln_ipow(T base, T e) {
  if (e < 0) return base == 1 ? (T)1 : (base == (T)-1 ? ((e & 1) ? (T)-1 : (T)1) : (T)0);
  T r = 1;
  while (e) { if (e & 1) r *= base; base *= base; e >>= 1; }
  return r;
}
template <typename T> __device__ __forceinline__ T kiln_pymod(T a, T b) {
  if (b == 0) return 0;
  T r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
template <typename T> __device__ __forceinline__ T kiln_cmod(T a, T b) { return b == 0 ? (T)0 : a % b; }
template <typename T> __device__ __forceinline__ T kiln_idiv(T a, T b) { return b == 0 ? (T)0 : a / b; }
struct KilnStrided {
  long long dims[8];
  long long strides[7][8];
  int rank;
};
// Records the first failure of a run (code = node index + 1); the host reads it after the run.
__device__ __forceinline__ void kiln_report(int* flag, int code) { atomicCAS(flag, 0, code); }
typedef float T;
extern "C" __global__ void __launch_bounds__(256) kiln_gemm_f32_nn_bias(const T* __restrict__ A, const T* __restrict__ B, T* D, const T* __restrict__ bias, const T* C,
    long long m, long long n, long long k, long long lda, long long ldb, long long ldd,
    long long stride_a, long long stride_b, long long stride_d, float alpha, float beta,
    float* ws, unsigned* counters, int splits, long long kc) {
  __shared__ float As[32][33];
  __shared__ float Bs[32][65];
  __shared__ unsigned last;
  const int tid = threadIdx.x;
  const long long z = blockIdx.z / splits;
  const int split = (int)(blockIdx.z % splits);
  A += z * stride_a; B += z * stride_b; D += z * stride_d;
  if (C) C += z * stride_d;
  const int tx = tid % 16, ty = tid / 16;
  const long long row0 = (long long)blockIdx.y * 32, col0 = (long long)blockIdx.x * 64;
  const long long kbeg = split * kc, kend = kbeg + kc < k ? kbeg + kc : k;
  float acc[2][4];
  for (int i = 0; i < 2; ++i) for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  float ra[4], rb[8];
  long long k0 = kbeg;
  auto load = [&]() {
    for (int q = 0; q < 4; ++q) {
      const int i = tid + 256 * q; const int r = i / 32, kk = i % 32;
      ra[q] = (row0 + r < m && k0 + kk < kend) ? A[(row0 + r) * lda + (k0 + kk)] : 0.0f;
    }
    for (int q = 0; q < 8; ++q) {
      const int i = tid + 256 * q; const int c = i % 64, kk = i / 64;
      rb[q] = (col0 + c < n && k0 + kk < kend) ? B[(k0 + kk) * ldb + (col0 + c)] : 0.0f;
    }
  };
  load();
  for (; k0 < kend;) {
    for (int q = 0; q < 4; ++q) {
      const int i = tid + 256 * q; const int r = i / 32, kk = i % 32;
      As[kk][r] = ra[q];
    }
    for (int q = 0; q < 8; ++q) {
      const int i = tid + 256 * q; const int c = i % 64, kk = i / 64;
      Bs[kk][c] = rb[q];
    }
    __syncthreads();
    k0 += 32;
    if (k0 < kend) load();
#pragma unroll
    for (int kk = 0; kk < 32; ++kk) {
      float a[2], b[4];
      for (int i = 0; i < 2; ++i) a[i] = As[kk][ty + 16 * i];
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
      for (int i = 0; i < 2; ++i) for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  if (splits > 1) {  // split K: the tile's last block to finish sums the partial tiles in order
    const unsigned long long tile = ((unsigned long long)z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    float* part = ws + tile * (unsigned long long)splits * 2048ull;
    for (int i = 0; i < 2; ++i) for (int j = 0; j < 4; ++j) part[split * 2048 + (i * 4 + j) * 256 + tid] = acc[i][j];
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(&counters[tile], 1u) == (unsigned)(splits - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = 0; i < 2; ++i) for (int j = 0; j < 4; ++j) {
      float sum = 0.0f;
      for (int t = 0; t < splits; ++t) sum += __ldcg(part + t * 2048 + (i * 4 + j) * 256 + tid);
      acc[i][j] = sum;
    }
    if (tid == 0) counters[tile] = 0u;  // ready for the next GEMM on this stream
  }
  for (int i = 0; i < 2; ++i) {
    const long long row = row0 + ty + 16 * i;
    if (row >= m) continue;
    for (int j = 0; j < 4; ++j) {
      const long long col = col0 + tx + 16 * j;
      if (col >= n) continue;
      const long long off = row * ldd + col;
      float v = alpha * acc[i][j];
        v += bias[col];
      D[off] = (float)(v);
    }
  }
}
