"""Host cost of one kiln Module call with a replayed graph, piece by piece, beside torch's manual
CUDA graph replay (mlp b1 fp32 and fp16)."""
import os, sys, time, statistics, copy
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import torch, kiln
from kiln import module as KM, runtime as RT
from harness import models as M
def med(f, n=2000):
    for _ in range(200): f()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns(); f(); ts.append(time.perf_counter_ns() - t0)
    return statistics.median(ts) / 1e3
for dtype, prec in ((torch.float32, "fp32"), (torch.float16, "fp16")):
    for b in (1, 64):
        spec = M.MODELS["mlp"]
        model = M.build(spec).eval()
        x = M.sample(spec, b).cuda()
        mod = kiln.compile(model, example_inputs=(M.sample(spec, b),), precision=prec) if prec != "fp32" else kiln.compile(model, example_inputs=(M.sample(spec, b),))
        mod.runtime_settings = RT.RuntimeSettings(cuda_graph_strategy="whole_graph_capture")
        xd = x if prec == "fp32" else x  # kiln takes f32 inputs; engine casts
        for _ in range(5): mod(xd)
        torch.cuda.synchronize()
        tot = med(lambda: (mod(xd), torch.cuda.synchronize()))
        call_only = med(lambda: mod(xd), 3000); torch.cuda.synchronize()
        sync = med(lambda: torch.cuda.synchronize())
        caps = med(lambda: KM._to_capsule(xd))
        ov = med(lambda: RT._module_overrides(mod))
        sc = med(lambda: RT._scope_dict())
        c, k, d, s = KM._to_capsule(xd)
        md = RT._module_overrides(mod); sd = RT._scope_dict()
        def eng():
            c, k, d, s = KM._to_capsule(xd)
            return mod._engine.run([c], "cuda", 0, None, md, sd, s)
        er = med(eng); torch.cuda.synchronize()
        out = eng()
        fc = med(lambda: KM._from_capsule(mod._engine.run([KM._to_capsule(xd)[0]], "cuda", 0, None, md, sd, s)[0], "torch", (2, 0)))
        torch.cuda.synchronize()
        # torch manual graph
        tm = copy.deepcopy(model).cuda().to(dtype)
        sx = x.to(dtype).clone(); xx = x.to(dtype)
        side = torch.cuda.Stream(); side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3): tm(sx)
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g): sy = tm(sx)
        ttot = med(lambda: (sx.copy_(xx), g.replay(), torch.cuda.synchronize()))
        tcall = med(lambda: (sx.copy_(xx), g.replay()), 3000); torch.cuda.synchronize()
        print(f"{prec} mlp b{b}: kiln call+sync {tot:.1f} us, call only {call_only:.1f}, sync alone {sync:.1f}; "
              f"_to_capsule {caps:.1f}, _module_overrides {ov:.1f}, _scope_dict {sc:.1f}, capsule+engine.run {er:.1f}, "
              f"+from_capsule {fc:.1f} | torch graph copy+replay+sync {ttot:.1f}, copy+replay {tcall:.1f}", flush=True)
        print("   counters", {k: v for k, v in mod.stats()["backend_counters"].items() if "graph" in k or "replay" in k or "copies" in k or "rebind" in k})
