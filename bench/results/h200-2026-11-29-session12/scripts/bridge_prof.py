"""GPU time of kiln's bridge GEMM kernel vs cuBLASLt on the benchmark encoder's GEMMs (fp32 b1
seq 128 area): first calls at new sequence lengths bridge; steady calls use cuBLASLt."""
import os, sys, time
import torch
sys.path.insert(0, "bench")
from harness import models as M
import kiln
from torch.profiler import profile, ProfilerActivity
spec = M.MODELS["encoder_l4_d256"]
model = M.build(spec)
prof_shapes = ((1, 16, 256), (1, 128, 256), (1, 320, 256))
onnx = kiln.export_onnx(model, (torch.randn(1, 128, 256),), shapes={"input_0": prof_shapes})
for dt in ("fp32", "fp16"):
    mod = kiln.compile(onnx, shapes={"input_0": prof_shapes}, precision=dt)
    mod.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=None)
    mod(torch.randn(1, 320, 256, device="cuda")); torch.cuda.synchronize(); time.sleep(1.5)
    def agg(p, calls):
        d = {}
        for e in p.key_averages():
            if e.device_type is not None and getattr(e, "device_time_total", 0) > 0:
                name = e.key
                cls = "bridge" if "gemm_bridge" in name else ("gemv" if name.startswith("gemv") else
                      ("cublas" if any(s in name for s in ("gemm", "xmma", "cutlass", "sgemm", "Kernel2", "splitK")) else "other"))
                d[cls] = d.get(cls, 0) + e.device_time_total / calls
        return {k: round(v, 1) for k, v in d.items()}
    seqs = [120, 124, 126, 130, 132, 136]
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for s in seqs:
            mod(torch.randn(1, s, 256, device="cuda")); torch.cuda.synchronize()
    first = agg(p, len(seqs))
    time.sleep(2.0)
    x = torch.randn(1, 128, 256, device="cuda")
    for _ in range(30): mod(x)
    time.sleep(1.5)
    for _ in range(30): mod(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(20): mod(x)
        torch.cuda.synchronize()
    steady = agg(p, 20)
    print(f"{dt}: us of GPU per call by class; first calls (bridged) {first}; steady seq 128 {steady}", flush=True)
    print("   counters", {k: v for k, v in mod.stats()["backend_counters"].items() if k.startswith("gemm")})
    if dt == "fp32":
        with profile(activities=[ProfilerActivity.CUDA]) as p:
            for _ in range(20): mod(x)
            torch.cuda.synchronize()
        print(p.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=70))
