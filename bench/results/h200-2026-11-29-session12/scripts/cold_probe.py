"""Where lazy's first call at a new shape loses: memo misses or a cold host/GPU after the settle
wait? Per shape: F first call (new shape), S steady median, C1 a seen-shape call after sleeping as
long as settle waited, C2 the same after a busy wait, C3 after a sleep with another thread churning
memory (as NVRTC does)."""
import os, sys, time, statistics, threading
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
import numpy as np, torch, kiln
from harness import models as M
from harness.systems import settle
strategy = sys.argv[1] if len(sys.argv) > 1 else "lazy"
spec = M.MODELS["encoder_l4_d256"]
model = M.build(spec)
prof = ((1, 16, 256), (1, 128, 256), (1, 320, 256))
onnx = kiln.export_onnx(model, (torch.randn(1, 16, 256),), shapes={"input_0": prof})
mod = kiln.compile(onnx, shapes={"input_0": prof})
mod.runtime_settings = kiln.runtime.RuntimeSettings(dynamic_shapes_kernel_specialization_strategy=strategy, runtime_cache=None)
def one(x):
    torch.cuda.synchronize(); t0 = time.perf_counter(); mod(x); torch.cuda.synchronize(); return (time.perf_counter() - t0) * 1e3
def churn(stop):
    a = np.ones(8 << 20, dtype=np.float32)
    while not stop.is_set():
        a = a * 1.0001
def busy(ms):
    t = time.perf_counter()
    while (time.perf_counter() - t) * 1e3 < ms: pass
rows = []
with torch.inference_mode():
    mod(torch.randn(1, 320, 256, device="cuda")); torch.cuda.synchronize(); settle(mod)
    for n in range(16, 305, 32):
        x = torch.randn(1, n, 256, device="cuda"); torch.cuda.synchronize()
        F = one(x)
        W = settle(mod)
        for _ in range(5): one(x)
        S = statistics.median([one(x) for _ in range(50)])
        w = max(W, 80.0)
        c1 = []; c2 = []; c3 = []
        for _ in range(3):
            time.sleep(w / 1e3); c1.append(one(x))
            busy(w); c2.append(one(x))
            stop = threading.Event(); th = threading.Thread(target=churn, args=(stop,)); th.start()
            time.sleep(w / 1e3); stop.set(); th.join(); c3.append(one(x))
        print(f"{strategy} seq {n}: F {F:.3f} S {S:.3f} F/S {F/S:.2f} | wait {W:.0f} | C1 sleep {statistics.median(c1):.3f} "
              f"C2 busy {statistics.median(c2):.3f} C3 churn {statistics.median(c3):.3f}", flush=True)
