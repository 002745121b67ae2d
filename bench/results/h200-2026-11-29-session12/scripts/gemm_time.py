import cupy as cp, numpy as np, os
D = os.path.dirname(os.path.abspath(__file__))
def split(tiles, k, sms=132, cap=16):
    if tiles <= 0 or k < 256 or tiles * 2 > sms: return 1, k
    s = min(sms // tiles, k // 128, cap, 256 // tiles)
    if s < 2: return 1, k
    per = (k + s - 1) // s; kc = (per + 31) // 32 * 32; s = (k + kc - 1) // kc
    return (1, k) if s < 2 else (s, kc)
ws = cp.zeros(256 * 2048 * 16, cp.float32); ctr = cp.zeros(4096, cp.uint32)
def time_launch(f, n=100):
    st = cp.cuda.Stream(non_blocking=True)
    with st:
        for _ in range(5): f()
        st.begin_capture()
        for _ in range(n): f()
        g = st.end_capture()
        g.launch(st); st.synchronize()
        a, b = cp.cuda.Event(), cp.cuda.Event(); a.record(st)
        for _ in range(3): g.launch(st)
        b.record(st); b.synchronize()
    return cp.cuda.get_elapsed_time(a, b) / (3 * n) * 1e3
for var, threads in (("old", 256), ("new", 128)):
    for tb in (0, 1):
        src = open(f"{D}/{var}_{'nt' if tb else 'nn'}.cu").read()
        name = f"kiln_gemm_f32_{'nt' if tb else 'nn'}_bias"
        kern = cp.RawKernel(src, name, options=("--std=c++17",))
        for M, N, K in ((112, 768, 256), (112, 256, 256), (112, 1024, 256), (112, 256, 1024)):
            A = cp.random.rand(M, K, dtype=cp.float32); B = cp.random.rand(N, K, dtype=cp.float32) if tb else cp.random.rand(K, N, dtype=cp.float32)
            bias = cp.random.rand(N, dtype=cp.float32); Dm = cp.empty((M, N), cp.float32)
            tiles = ((N + 63) // 64) * ((M + 31) // 32)
            res = []
            for mode in ("auto", "nosplit", "cap4"):
                s, kc = split(tiles, K) if mode == "auto" else ((1, K) if mode == "nosplit" else split(tiles, K, cap=4))
                grid = ((N + 63) // 64, (M + 31) // 32, s)
                args = (A, B, Dm, bias, np.uint64(0), np.int64(M), np.int64(N), np.int64(K), np.int64(K), np.int64(K if tb else N), np.int64(N),
                        np.int64(0), np.int64(0), np.int64(0), np.float32(1), np.float32(0), ws, ctr, np.int32(s), np.int64(kc))
                f = lambda: kern(grid, (threads,), args)
                t = time_launch(f)
                cp.cuda.Stream.null.synchronize(); ref = A @ (B.T if tb else B) + bias; f(); cp.cuda.Device().synchronize()
                err = float(cp.abs(Dm - ref).max())
                res.append(f"{mode}(s={s}) {t:.2f}us err {err:.1e}")
            Bt = B.T if tb else B
            tc = float("nan")
            print(f"{var} {'NT' if tb else 'NN'} M{M} N{N} K{K}: " + "; ".join(res) + f" | cupy matmul {tc:.2f}us", flush=True)
