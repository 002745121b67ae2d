# A/B of KILN_GEMM_TUNE_CANDIDATES (set in the environment of this process): p50 ms per call.
import os, sys, time, statistics
import torch
sys.path.insert(0, "bench")
from harness import models as M
from harness.systems import settle
import kiln
cases = [("encoder_l4_d256", 1, "fp32"), ("encoder_l4_d256", 1, "fp16"), ("mlp", 1, "fp32"), ("mlp", 64, "fp16"),
         ("encoder_l12_d768", 8, "fp16")]
K = os.environ.get("KILN_GEMM_TUNE_CANDIDATES", "8")
torch.backends.cuda.matmul.allow_tf32 = False
onnx = {}
for name, batch, dt in cases:
    spec = M.MODELS[name]
    if (name, batch) not in onnx:
        onnx[(name, batch)] = kiln.export_onnx(M.build(spec), (M.sample(spec, batch),),
                                      shapes=None)
    x = M.sample(spec, batch).cuda()
    mod = kiln.compile(onnx[(name, batch)], shapes={"input_0": tuple(x.shape)}, precision=dt)
    res = []
    for strat in ("disabled", "whole_graph_capture"):
        mod.runtime_settings = kiln.runtime.RuntimeSettings(cuda_graph_strategy=strat, runtime_cache=None)
        for _ in range(20): mod(x)
        torch.cuda.synchronize(); settle(mod)
        for _ in range(20): mod(x)
        ts = []
        for _ in range(400):
            t0 = time.perf_counter(); mod(x); torch.cuda.synchronize(); ts.append((time.perf_counter() - t0) * 1e3)
        res.append(statistics.median(ts))
    print(f"K={K} {name} b{batch} {dt}: disabled {res[0]:.4f} wgc {res[1]:.4f}", flush=True)
