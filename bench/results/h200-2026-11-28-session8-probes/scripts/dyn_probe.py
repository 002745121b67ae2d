"""Dynamic-shape probe: lazy first call vs steady, per op host time; lazy (after swap) vs a static
engine of the same shape timed interleaved in one process."""
import json, os, sys, time, statistics
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import torch, kiln
from harness import models as M
from harness.systems import settle
strategy = sys.argv[1] if len(sys.argv) > 1 else "lazy"
spec = M.MODELS["encoder_l4_d256"]
model = M.build(spec)
prof = ((1, 16, 256), (1, 128, 256), (1, 320, 256))
onnx = kiln.export_onnx(model, (torch.randn(1, 16, 256),), shapes={"input_0": prof})
mod = kiln.compile(onnx, shapes={"input_0": prof})
mod.runtime_settings = kiln.runtime.RuntimeSettings(dynamic_shapes_kernel_specialization_strategy=strategy, runtime_cache=None)
def host():
    out = {}
    def walk(d, p=""):
        for k, v in d.items():
            if isinstance(v, dict): walk(v, p + k + ".")
            elif isinstance(v, (int, float)): out[p + k] = v
    walk(mod.stats()); return out
def delta(a, b, scale):
    return {k.split("host_ns.")[-1] if "host_ns." in k else k.split(".")[-1]: round((b[k] - a.get(k, 0)) / scale, 1)
            for k in b if isinstance(b[k], (int, float)) and b[k] != a.get(k, 0) and ("host_ns" in k or "counters" in k)}
def timed(f, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); torch.cuda.synchronize(); ts.append((time.perf_counter() - t0) * 1e3)
    return ts
with torch.inference_mode():
    mod(torch.randn(1, 320, 256, device="cuda")); torch.cuda.synchronize(); settle(mod)
    for n in range(16, 305, 32):
        x = torch.randn(1, n, 256, device="cuda"); torch.cuda.synchronize()
        a = host(); t0 = time.perf_counter(); mod(x); torch.cuda.synchronize(); first = (time.perf_counter() - t0) * 1e3; b = host()
        waited = settle(mod)
        timed(lambda: mod(x), 5)
        c = host(); st = timed(lambda: mod(x), 50); d = host()
        static = kiln.compile(onnx, shapes={"input_0": (1, n, 256)})
        static.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=None)
        timed(lambda: static(x), 5)
        L, S = [], []
        for r in range(6):
            L += timed(lambda: mod(x), 15); S += timed(lambda: static(x), 15)
        print(f"{strategy} seq {n}: first {first:.3f} steady {statistics.median(st):.3f} settle {waited:.0f} | "
              f"interleaved lazy {statistics.median(L):.3f} static {statistics.median(S):.3f}")
        print("  first us ", json.dumps(delta(a, b, 1e3)))
        print("  steady us", json.dumps(delta(c, d, 50e3)))
