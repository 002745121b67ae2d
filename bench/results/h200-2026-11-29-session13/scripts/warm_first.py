"""Lazy first calls at new shapes in warm conditions (30 calls at the previous shape right before),
GPU time by kernel class for those first calls vs steady, bridge on and off (argv[1]: 1/0)."""
import os, sys, time, statistics
import torch
sys.path.insert(0, "bench")
from harness import models as M
from harness.systems import settle
import kiln
from torch.profiler import profile, ProfilerActivity
spec = M.MODELS["encoder_l4_d256"]
model = M.build(spec)
prof_shapes = ((1, 16, 256), (1, 128, 256), (1, 320, 256))
onnx = kiln.export_onnx(model, (torch.randn(1, 128, 256),), shapes={"input_0": prof_shapes})
mod = kiln.compile(onnx, shapes={"input_0": prof_shapes})
mod.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=None)
def one(x):
    torch.cuda.synchronize(); t0 = time.perf_counter(); mod(x); torch.cuda.synchronize(); return (time.perf_counter() - t0) * 1e3
def cls(name):
    return "bridge" if name.startswith("kiln_gemm") else ("other_kiln" if name.startswith("kiln") else "cublas")
def agg(p, calls):
    d = {}
    for e in p.key_averages():
        if getattr(e, "device_time_total", 0) > 0 and not e.key.startswith("cuda") and "Memcpy" not in e.key and "Memset" not in e.key:
            d[cls(e.key)] = d.get(cls(e.key), 0) + e.device_time_total / calls
    return {k: round(v, 1) for k, v in d.items()}
xs = {}
mod(torch.randn(1, 320, 256, device="cuda")); torch.cuda.synchronize(); settle(mod)
prev = torch.randn(1, 320, 256, device="cuda")
Fs, Ss = [], []
firsts = []
for n in range(16, 305, 32):
    x = torch.randn(1, n, 256, device="cuda")
    for _ in range(30): mod(prev)
    F = one(x)
    settle(mod)
    for _ in range(10): one(x)
    S = statistics.median([one(x) for _ in range(60)])
    Fs.append(F); Ss.append(S)
    print(f"seq {n}: warm first {F:.3f} steady {S:.3f} ratio {F/S:.2f}", flush=True)
    prev = x
# GPU time of first calls (warm) at fresh shapes vs steady, by class
seqs = [100, 104, 108, 116, 120, 124]
x128 = torch.randn(1, 128, 256, device="cuda")
tot_first = {}
for s in seqs:
    for _ in range(30): mod(x128)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        mod(torch.randn(1, s, 256, device="cuda")); torch.cuda.synchronize()
    for k, v in agg(p, 1).items(): tot_first[k] = tot_first.get(k, 0) + v / len(seqs)
    settle(mod)
for _ in range(30): mod(x128)
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(20): mod(x128)
    torch.cuda.synchronize()
print("first calls GPU us by class (warm):", {k: round(v, 1) for k, v in tot_first.items()}, " steady seq128:", agg(p, 20))
print("counters", {k: v for k, v in mod.stats()["backend_counters"].items() if k.startswith("gemm")})
