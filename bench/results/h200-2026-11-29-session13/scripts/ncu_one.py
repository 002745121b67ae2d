"""One launch each of the committed bridge kernel and the 32x32 / 2x4 variant, for ncu (session 13):
M304 N1024 K256 NN (no split) and M112 N256 K256 NN (split K)."""
import os, cupy as cp, numpy as np
D = os.path.dirname(os.path.abspath(__file__))
old = cp.RawKernel(open(f"{D}/old_nn.cu").read(), "kiln_gemm_f32_nn_bias", options=("--std=c++17",))
mod = cp.RawModule(code=open(f"{D}/gemm_variants.cu").read(), options=("--std=c++17",))
v = mod.get_function("v32x32_2x4_nn")
ws = cp.zeros(16 << 20, cp.float32); ctr = cp.zeros(1 << 16, cp.uint32)
for M, N, K, s in ((304, 1024, 256, 1), (112, 256, 256, 4)):
    A = cp.random.rand(M, K, dtype=cp.float32); B = cp.random.rand(K, N, dtype=cp.float32)
    bias = cp.zeros(N, cp.float32); Dm = cp.empty((M, N), cp.float32)
    kc = K // s
    for _ in range(3):
        old(((N + 63) // 64, (M + 31) // 32, 1), (256,), (A, B, Dm, bias, np.uint64(0), np.int64(M), np.int64(N), np.int64(K), np.int64(K), np.int64(N),
            np.int64(N), np.int64(0), np.int64(0), np.int64(0), np.float32(1), np.float32(0), ws, ctr, np.int32(1), np.int64(K)))
        v((N // 32, (M + 31) // 32, s), (128,), (A, B, Dm, bias, np.int64(M), np.int64(N), np.int64(K), np.int64(K), np.int64(N), np.int64(N),
            ws, ctr, np.int32(s), np.int64(kc)))
    cp.cuda.Device().synchronize()
