"""Fresh-process warm start probe: prints engine load + first inference and the host profile."""
import json, os, subprocess, sys, time
if len(sys.argv) > 1 and sys.argv[1] == "child":
    engine, cache = sys.argv[2], sys.argv[3]
    t0 = time.perf_counter()
    import torch, kiln
    x = torch.randn(*json.loads(sys.argv[4]), device="cuda"); torch.cuda.synchronize()
    t1 = time.perf_counter()
    mod = kiln.load(engine)
    mod.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=cache)
    t2 = time.perf_counter()
    with torch.inference_mode():
        a = time.perf_counter(); mod(x); torch.cuda.synchronize(); b = time.perf_counter()
        mod(x); torch.cuda.synchronize(); c = time.perf_counter()
    st = mod.stats()
    flat = {}
    def walk(d, p=""):
        for k, v in d.items():
            if isinstance(v, dict): walk(v, p + k + ".")
            elif isinstance(v, (int, float)) and ("host_ns" in p + k): flat[(p + k).split("host_ns.")[-1]] = round(v / 1e3)
    walk(st)
    print(json.dumps({"load_ms": round((t2 - t1) * 1e3, 2), "first_ms": round((b - a) * 1e3, 2),
                      "second_ms": round((c - b) * 1e3, 2), "us": flat}))
    sys.exit(0)
# driver: python3 startup_probe.py DIR N: builds both engines in DIR, one cold process, N warm
d, n = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from harness import models as M
import kiln
os.makedirs(d, exist_ok=True)
for name in ("encoder_l4_d256", "mobilenet_v3_small"):
    spec = M.MODELS[name]
    engine, cache = os.path.join(d, name + ".kiln"), os.path.join(d, name + ".kcache")
    kiln.compile(M.build(spec), example_inputs=(M.sample(spec, 1),)).save(engine)
    shape = json.dumps(list(spec.sample_shape(1)))
    for i in range(n + 1):
        out = subprocess.run([sys.executable, __file__, "child", engine, cache, shape], capture_output=True, text=True)
        print(name, "cold" if i == 0 else "warm", out.stdout.strip() or out.stderr[-800:], flush=True)
