// Probe kernels (session 13): the bridge's structure (register-staged tiles through shared memory,
// the next K step's loads in flight, split K summed in order by the tile's last block) with the
// tile, the outputs per thread and the reduction's load order as template parameters.
template <int TM, int TN, int RM, int RN, int TB>
__device__ __forceinline__ void body(const float* __restrict__ A, const float* __restrict__ B, float* D,
    const float* __restrict__ bias, long long m, long long n, long long k, long long lda, long long ldb,
    long long ldd, float* ws, unsigned* counters, int splits, long long kc) {
  constexpr int TX = TN / RN, TY = TM / RM, NT = TX * TY;
  constexpr int LA = TM * 32 / NT, LB = TN * 32 / NT;
  __shared__ float As[32][TM + 1];
  __shared__ float Bs[32][TN + 1];
  __shared__ unsigned last;
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int split = (int)(blockIdx.z % splits);
  const long long row0 = (long long)blockIdx.y * TM, col0 = (long long)blockIdx.x * TN;
  const long long kbeg = split * kc, kend = kbeg + kc < k ? kbeg + kc : k;
  float acc[RM][RN];
#pragma unroll
  for (int i = 0; i < RM; ++i)
#pragma unroll
    for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;
  float ra[LA], rb[LB];
  long long k0 = kbeg;
#define KLOAD()                                                                         \
  _Pragma("unroll") for (int q = 0; q < LA; ++q) {                                      \
    const int i = tid + NT * q, r = i / 32, kk = i % 32;                                \
    ra[q] = (row0 + r < m && k0 + kk < kend) ? A[(row0 + r) * lda + (k0 + kk)] : 0.0f; \
  }                                                                                     \
  _Pragma("unroll") for (int q = 0; q < LB; ++q) {                                      \
    const int i = tid + NT * q;                                                         \
    const int c = TB ? i / 32 : i % TN, kk = TB ? i % 32 : i / TN;                      \
    rb[q] = (col0 + c < n && k0 + kk < kend)                                            \
        ? B[TB ? (col0 + c) * ldb + (k0 + kk) : (k0 + kk) * ldb + (col0 + c)] : 0.0f;   \
  }
  KLOAD();
  while (k0 < kend) {
#pragma unroll
    for (int q = 0; q < LA; ++q) { const int i = tid + NT * q; As[i % 32][i / 32] = ra[q]; }
#pragma unroll
    for (int q = 0; q < LB; ++q) {
      const int i = tid + NT * q;
      if (TB) Bs[i % 32][i / 32] = rb[q]; else Bs[i / TN][i % TN] = rb[q];
    }
    __syncthreads();
    k0 += 32;
    if (k0 < kend) { KLOAD(); }
#pragma unroll
    for (int kk = 0; kk < 32; ++kk) {
      float a[RM], b[RN];
#pragma unroll
      for (int i = 0; i < RM; ++i) a[i] = As[kk][ty + TY * i];
#pragma unroll
      for (int j = 0; j < RN; ++j) b[j] = Bs[kk][tx + TX * j];
#pragma unroll
      for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  if (splits > 1) {
    constexpr int P = TM * TN;
    const unsigned long long tile = (unsigned long long)blockIdx.y * gridDim.x + blockIdx.x;
    float* part = ws + tile * (unsigned long long)splits * P;
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < RN; ++j) part[split * P + (i * RN + j) * NT + tid] = acc[i][j];
    __threadfence();
    __syncthreads();
    if (tid == 0) last = atomicAdd(&counters[tile], 1u) == (unsigned)(splits - 1);
    __syncthreads();
    if (!last) return;
    __threadfence();
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;
    for (int t = 0; t < splits; ++t) {  // all of a partial's loads issued together, partials in order
      float v[RM][RN];
#pragma unroll
      for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j) v[i][j] = __ldcg(part + t * P + (i * RN + j) * NT + tid);
#pragma unroll
      for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j) acc[i][j] += v[i][j];
    }
    if (tid == 0) counters[tile] = 0u;
  }
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const long long row = row0 + ty + TY * i;
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < RN; ++j) {
      const long long col = col0 + tx + TX * j;
      if (col >= n) continue;
      D[row * ldd + col] = acc[i][j] + bias[col];
    }
  }
}

#define VARIANT(NAME, TM, TN, RM, RN, TB)                                                              \
  extern "C" __global__ void __launch_bounds__((TM / RM) * (TN / RN)) NAME(                          \
      const float* __restrict__ A, const float* __restrict__ B, float* D, const float* __restrict__ bias, \
      long long m, long long n, long long k, long long lda, long long ldb, long long ldd, float* ws,     \
      unsigned* counters, int splits, long long kc) {                                                  \
    body<TM, TN, RM, RN, TB>(A, B, D, bias, m, n, k, lda, ldb, ldd, ws, counters, splits, kc);         \
  }
VARIANT(v32x64_2x4_nn, 32, 64, 2, 4, 0)
VARIANT(v32x64_2x4_nt, 32, 64, 2, 4, 1)
VARIANT(v32x32_2x2_nn, 32, 32, 2, 2, 0)
VARIANT(v32x32_2x2_nt, 32, 32, 2, 2, 1)
VARIANT(v32x32_2x4_nn, 32, 32, 2, 4, 0)
VARIANT(v32x32_2x4_nt, 32, 32, 2, 4, 1)
VARIANT(v16x64_1x4_nn, 16, 64, 1, 4, 0)
VARIANT(v16x64_1x4_nt, 16, 64, 1, 4, 1)
VARIANT(v64x64_4x4_nn, 64, 64, 4, 4, 0)
VARIANT(v64x64_4x4_nt, 64, 64, 4, 4, 1)
