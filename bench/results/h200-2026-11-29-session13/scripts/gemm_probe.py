"""Bridge GEMM kernel probe (session 13): GPU time per GEMM of the committed bridge kernel
(old_n?.cu, dumped from gemm_kernel_source) and of the template variants in gemm_variants.cu, under
split-K policies, beside cuBLAS (torch.matmul in a torch CUDA graph, f32, no TF32), with the GPU's clocks held up: a 2 s
busy spell first, then every timing replays its CUDA graph for 30 ms before the timed replays.
f32, bias epilogue. Prints us per GEMM (median of 5 timed replays of a 50-launch graph)."""
import os, sys, time, statistics, subprocess
import cupy as cp, numpy as np
D = os.path.dirname(os.path.abspath(__file__))
SMS = cp.cuda.Device().attributes["MultiProcessorCount"]
ws = cp.zeros(64 << 20, cp.float32); ctr = cp.zeros(1 << 16, cp.uint32)

def policy(tiles, k, smin, target, cap=16):
    if smin == 0: return 1, k
    s = min(-(-int(SMS * target) // tiles), k // (smin * 32), cap)
    if s < 2: return 1, k
    per = -(-k // s); kc = -(-per // 32) * 32; s = -(-k // kc)
    return (1, k) if s < 2 else (s, kc)

def old_policy(tiles, k, sms=SMS):  # gemm_split() as committed
    if tiles <= 0 or k < 256 or tiles * 2 > sms: return 1, k
    s = min(sms // tiles, k // 128, 16, 256 // tiles)
    if s < 2: return 1, k
    per = -(-k // s); kc = -(-per // 32) * 32; s = -(-k // kc)
    return (1, k) if s < 2 else (s, kc)

st = cp.cuda.Stream(non_blocking=True)
def timed(f, n=50, warm_s=0.03):
    with st:
        for _ in range(3): f()
        st.begin_capture()
        for _ in range(n): f()
        g = st.end_capture()
        t = time.perf_counter()
        while time.perf_counter() - t < warm_s:
            g.launch(st); st.synchronize()
        out = []
        for _ in range(5):
            a, b = cp.cuda.Event(), cp.cuda.Event(); a.record(st); g.launch(st); b.record(st); b.synchronize()
            out.append(cp.cuda.get_elapsed_time(a, b) / n * 1e3)
    return statistics.median(out)

import torch
torch.backends.cuda.matmul.allow_tf32 = False
def torch_timed(a, b, tb, n=50, warm_s=0.03):  # cuBLAS through torch (cupy cannot capture cuBLAS calls)
    bm = b.t() if tb else b
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        for _ in range(3): a @ bm
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(n): a @ bm
    t = time.perf_counter()
    while time.perf_counter() - t < warm_s:
        g.replay(); torch.cuda.synchronize()
    out = []
    for _ in range(5):
        x, y = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        x.record(); g.replay(); y.record(); y.synchronize(); out.append(x.elapsed_time(y) / n * 1e3)
    return statistics.median(out)

smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,power.draw", "--format=csv,noheader", "-lms", "500"],
                       stdout=open(os.environ.get("OUT", "/tmp") + "/clocks.txt", "w"), stderr=subprocess.DEVNULL)
ported = {tb: cp.RawKernel(open(f"{D}/ported_{'nt' if tb else 'nn'}.cu").read(), f"kiln_gemm_f32_{'nt' if tb else 'nn'}_bias",
                           options=("--std=c++17",)) for tb in (0, 1)} if os.path.exists(f"{D}/ported_nn.cu") else None
old = {tb: cp.RawKernel(open(f"{D}/old_{'nt' if tb else 'nn'}.cu").read(), f"kiln_gemm_f32_{'nt' if tb else 'nn'}_bias",
                        options=("--std=c++17",)) for tb in (0, 1)}
mod = cp.RawModule(code=open(f"{D}/gemm_variants.cu").read(), options=("--std=c++17",))
VARS = [(32, 64, 2, 4), (32, 32, 2, 2), (32, 32, 2, 4), (16, 64, 1, 4), (64, 64, 4, 4)]
POLS = [("s4t1", 4, 1.0), ("s2t1", 2, 1.0), ("s1t1", 1, 1.0), ("s1t2", 1, 2.0), ("s2t2", 2, 2.0)]
# hold the clocks up
big = cp.random.rand(4096, 4096, dtype=cp.float32)
t = time.perf_counter()
while time.perf_counter() - t < 2.0:
    big @ big; cp.cuda.Device().synchronize()
Ms = [int(a) for a in (sys.argv[1:] or ["112", "304"])]
for M in Ms:
    for N, K in ((768, 256), (256, 256), (1024, 256), (256, 1024)):
        for tb in (0, 1):
            A = cp.random.rand(M, K, dtype=cp.float32) - 0.5
            B = (cp.random.rand(N, K, dtype=cp.float32) if tb else cp.random.rand(K, N, dtype=cp.float32)) - 0.5
            bias = cp.random.rand(N, dtype=cp.float32); Dm = cp.empty((M, N), cp.float32)
            Bm = B.T if tb else B
            ref = A @ Bm + bias
            res = {}
            res["cublas"] = torch_timed(torch.as_tensor(A, device="cuda"), torch.as_tensor(B, device="cuda"), tb)
            tiles = ((N + 63) // 64) * ((M + 31) // 32)
            s, kc = old_policy(tiles, K)
            args = (A, B, Dm, bias, np.uint64(0), np.int64(M), np.int64(N), np.int64(K), np.int64(K), np.int64(K if tb else N),
                    np.int64(N), np.int64(0), np.int64(0), np.int64(0), np.float32(1), np.float32(0), ws, ctr, np.int32(s), np.int64(kc))
            f = lambda: old[tb](((N + 63) // 64, (M + 31) // 32, s), (256,), args)
            res[f"old/committed(s{s})"] = timed(f)
            f(); err = float(cp.abs(Dm - ref).max()); assert err < 1e-3, err
            if ported:  # the kernel as gemm_kernel_source now writes it, split as gemm_split() now picks
                tiles = -(-N // 32) * -(-M // 32)
                s, kc = policy(tiles, K, 2, 2.0) if tiles < SMS else (1, K)
                args = (A, B, Dm, bias, np.uint64(0), np.int64(M), np.int64(N), np.int64(K), np.int64(K), np.int64(K if tb else N),
                        np.int64(N), np.int64(0), np.int64(0), np.int64(0), np.float32(1), np.float32(0), ws, ctr, np.int32(s), np.int64(kc))
                f = lambda: ported[tb]((-(-N // 32), -(-M // 32), s), (128,), args)
                Dm.fill(0); f(); cp.cuda.Device().synchronize()
                err = float(cp.abs(Dm - ref).max()); assert err < 1e-3, ("ported", err)
                res[f"ported(s{s})"] = timed(f)
            for TM, TN, RM, RN in ([] if os.environ.get("PORTED_ONLY") else VARS):
                kern = mod.get_function(f"v{TM}x{TN}_{RM}x{RN}_{'nt' if tb else 'nn'}")
                tiles = -(-N // TN) * -(-M // TM)
                for pname, smin, target in POLS:
                    s, kc = policy(tiles, K, smin, target)
                    args = (A, B, Dm, bias, np.int64(M), np.int64(N), np.int64(K), np.int64(K), np.int64(K if tb else N), np.int64(N),
                            ws, ctr, np.int32(s), np.int64(kc))
                    f = lambda: kern((-(-N // TN), -(-M // TM), s), ((TM // RM) * (TN // RN),), args)
                    Dm.fill(0); f(); cp.cuda.Device().synchronize()
                    err = float(cp.abs(Dm - ref).max()); assert err < 1e-3, (TM, TN, pname, err)
                    res[f"{TM}x{TN}_{RM}x{RN}/{pname}(s{s})"] = timed(f)
            best = sorted(res.items(), key=lambda kv: kv[1])
            print(f"M{M} N{N} K{K} {'NT' if tb else 'NN'}: cublas {res['cublas']:.2f} ported {res.get([k for k in res if k.startswith('ported')][0] if ported else 'x', float('nan')):.2f} old {[v for k, v in res.items() if k.startswith('old')][0]:.2f} | best: "
                  + "; ".join(f"{k} {v:.2f}" for k, v in best[:6]), flush=True)
            print("   all: " + "; ".join(f"{k} {v:.2f}" for k, v in res.items()), flush=True)
smi.terminate()
