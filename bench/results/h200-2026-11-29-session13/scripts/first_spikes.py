"""Lazy first calls at new shapes, warm (30 calls at the previous shape first), repeated over three
sweeps of ten never-seen sequence lengths each: how often a first call spikes, and whether the
spike is host time (until the call returns) or GPU time (after). With KILN_CUDA_HOST_PROFILE=1
set, it also prints the host time per op of each first call beside the steady call's."""
import json, os, sys, time, statistics
sys.path.insert(0, "bench")
import torch, kiln
from harness import models as M
from harness.systems import settle
spec = M.MODELS["encoder_l4_d256"]
model = M.build(spec)
prof = ((1, 16, 256), (1, 128, 256), (1, 320, 256))
onnx = kiln.export_onnx(model, (torch.randn(1, 128, 256),), shapes={"input_0": prof})
mod = kiln.compile(onnx, shapes={"input_0": prof})
mod.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=None)
profiled = bool(os.environ.get("KILN_CUDA_HOST_PROFILE"))
def flat():
    out = {}
    def walk(d, p=""):
        for k, v in d.items():
            if isinstance(v, dict): walk(v, p + k + ".")
            elif isinstance(v, (int, float)): out[p + k] = v
    walk(mod.stats()); return out
def delta(a, b, scale=1e3):
    return {k.split(".")[-1]: round((b[k] - a.get(k, 0)) / scale, 1) for k in b
            if "host_ns" in k and b[k] != a.get(k, 0)}
def call(x):
    torch.cuda.synchronize(); t0 = time.perf_counter(); mod(x); t1 = time.perf_counter(); torch.cuda.synchronize()
    t2 = time.perf_counter(); return (t1 - t0) * 1e3, (t2 - t0) * 1e3
with torch.inference_mode():
    prev = torch.randn(1, 320, 256, device="cuda")
    mod(prev); torch.cuda.synchronize(); settle(mod)
    ratios = []
    for rep in range(int(os.environ.get("REPS", "3"))):
        for i in range(10):
            n = 16 + 32 * i + 8 * rep - (4 if rep == 2 else 0)
            x = torch.randn(1, n, 256, device="cuda")
            for _ in range(30): mod(prev)
            a = flat(); fh, ft = call(x); b = flat()
            settle(mod)
            for _ in range(10): call(x)
            c = flat(); st = [call(x) for _ in range(60)]; d = flat()
            sh = statistics.median(s[0] for s in st); stt = statistics.median(s[1] for s in st)
            ratios.append(ft / stt)
            print(f"rep {rep} seq {n}: first {ft:.3f} (host {fh:.3f}) steady {stt:.3f} (host {sh:.3f}) ratio {ft / stt:.2f}", flush=True)
            if profiled:
                print("   first  us", json.dumps(delta(a, b)))
                print("   steady us", json.dumps(delta(c, d, 60e3)))
            prev = x
    print(f"ratios: max {max(ratios):.2f}, over 2: {sum(r > 2 for r in ratios)} of {len(ratios)}, median {statistics.median(ratios):.2f}")
