# Per-kernel GPU time of kiln engines (torch.profiler sees every kernel of the process through
# CUPTI), fused attention vs not. Usage: python3 prof.py
import os, sys, time, json
import torch
sys.path.insert(0, "bench")
from harness import models as M
from harness import systems as S
import kiln
from torch.profiler import profile, ProfilerActivity

cases = [c for c in [("encoder_l4_d256", 1, "fp32"), ("encoder_l4_d256", 1, "fp16"), ("encoder_l12_d768", 8, "fp16"),
         ("encoder_l12_d768", 8, "fp32")] if c[2] in sys.argv[2].split(",")]
for name, batch, dt in cases:
    spec = M.MODELS[name]
    model = M.build(spec)
    x = M.sample(spec, batch)
    onnx = kiln.export_onnx(model, (x,))
    xc = x.cuda()
    for fuse in sys.argv[1].split(","):
        os.environ["KILN_FUSE_ATTENTION"] = fuse
        mod = kiln.compile(onnx, shapes={"input_0": tuple(x.shape)}, precision=dt)
        out = {}
        for strat in ("disabled", "whole_graph_capture"):
            p = S.kiln_system("kiln_" + strat, mod, xc)
            for _ in range(50): p.fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            n = 300
            for _ in range(n): p.fn()
            torch.cuda.synchronize()
            out[strat] = (time.perf_counter() - t0) / n * 1e3
        p = S.kiln_system("kiln_disabled", mod, xc)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(20): p.fn()
            torch.cuda.synchronize()
        print(f"=== {name} b{batch} {dt} fuse={fuse} kernel={os.environ.get('KILN_ATTENTION_KERNEL', 'auto')}: mean ms/call disabled {out['disabled']:.4f} wgc {out['whole_graph_capture']:.4f}")
        tbl = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60)
        print(tbl)
        sys.stdout.flush()
