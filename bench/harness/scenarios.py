"""Scenarios beyond steady state (issue #9): dynamic shapes, start-up, threads.

dynamic and startup run each system in a fresh child process (`compare.py --child ...`), so a
system's first calls pay its own compilation and never profit from another system's kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import List

import torch

from . import models as M
from . import systems as S
from .systems import first_call_ms, measure, Params

# Issue #6: the 4-layer d=256 encoder at seq 16, 48, ..., 304 (ten new shapes, in order).
ENCODER_SEQS = list(range(16, 305, 32))
DYNAMIC_STEPS = {"mlp": [1, 8, 64, 8, 33, 1, 64], "encoder_l4_d256": ENCODER_SEQS}
DYNAMIC_QUICK = {"encoder_l4_d256": ENCODER_SEQS}
# kiln_static: an engine built for exactly that shape (the bar lazy's steady state must meet).
DYNAMIC_SYSTEMS = ["torch_eager", "torch_compile_dynamic", "kiln_lazy", "kiln_eager", "kiln_none",
                   "kiln_static"]


def _dyn_shape(model: str, n: int):
    return (n, 1024) if model == "mlp" else (1, n, 256)


# One untimed call at this size before the sweep, for every system but kiln_static: process and
# context start-up are the startup scenario's business, the sweep measures new shapes.
DYNAMIC_WARMUP = {"mlp": 2, "encoder_l4_d256": 320}
DYNAMIC_LEAD_CALLS = 30


def _dyn_profile(model: str):
    return ((1, 1024), (8, 1024), (64, 1024)) if model == "mlp" else \
        ((1, 16, 256), (1, 128, 256), (1, 320, 256))


def child_dynamic(model_name: str, system: str, steps: List[int], steady_iters: int) -> List[dict]:
    spec = M.MODELS[model_name]
    model = M.build(spec)
    x0 = torch.randn(_dyn_shape(model_name, steps[0]))
    onnx = None
    if system.startswith("kiln_"):
        import kiln
        onnx = kiln.export_onnx(model, (x0,), shapes={"input_0": _dyn_profile(model_name)})
        if system != "kiln_static":
            mod = kiln.compile(onnx, shapes={"input_0": _dyn_profile(model_name)})
            mod.runtime_settings = kiln.runtime.RuntimeSettings(
                dynamic_shapes_kernel_specialization_strategy=system[len("kiln_"):], runtime_cache=None)
            run = mod
    else:
        m = model.cuda()
        run = torch.compile(m, mode="default", dynamic=True) if system == "torch_compile_dynamic" else m
    rows = []
    kiln_run = system.startswith("kiln_")
    with torch.inference_mode():
        if system != "kiln_static":
            xw = torch.randn(_dyn_shape(model_name, DYNAMIC_WARMUP[model_name]), device="cuda")
            run(xw)
            torch.cuda.synchronize()
            if kiln_run:
                S.settle(run)
            # Every later step's first call comes right after the previous step's timed calls; step
            # 0's comes after as many calls at the warm-up shape, not after settle's idle wait (an idle
            # GPU drops to its idle clock within ~100 ms, and a call after that costs 1.5-2.5x steady
            # at a shape already seen: bench/results/h200-2026-11-29-session12, cold_probe.py).
            for _ in range(DYNAMIC_LEAD_CALLS):
                run(xw)
            torch.cuda.synchronize()
        for step, n in enumerate(steps):
            x = torch.randn(_dyn_shape(model_name, n), device="cuda")
            if system == "kiln_static":  # a fresh engine per shape; its build is not timed
                import kiln
                run = kiln.compile(onnx, shapes={"input_0": _dyn_shape(model_name, n)})
                run.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=None)
            first = first_call_ms(lambda: run(x))
            # Steady state is measured after lazy's swap (issue #6: "steady state after the swap").
            settle = S.settle(run) if kiln_run else 0.0
            t = measure(lambda: run(x), Params(warmup=5, iters=steady_iters, min_iters=steady_iters,
                                                max_seconds=0))
            row = {"scenario": "dynamic", "model": model_name, "system": system, "step": step,
                   "shape": "x".join(map(str, _dyn_shape(model_name, n))), "first_ms": first,
                   "settle_ms": settle, "p50_ms": t["p50_ms"], "p99_ms": t["p99_ms"], "status": "ok",
                   "lead_calls": DYNAMIC_LEAD_CALLS if system != "kiln_static" else 0}
            if system == "kiln_lazy":
                row.update(_beside_static(onnx, model_name, n, run, x))
            rows.append(row)
            print("ROW " + json.dumps(rows[-1]), flush=True)  # as it comes: a timeout keeps the rows so far
    return rows


# Lazy's steady state against a static engine of the same shape, in one process and interleaved
# (rounds of calls to each in turn, the order alternating between rounds): this machine's host
# speed moves between states up to 1.7x apart within a run, which separate processes, or one block
# after the other, would measure. Each round gives a ratio of the two rounds' medians (paired: a
# slow spell slows both); the verdict takes the median of those ratios, and their interquartile
# range says how far apart rounds of the same comparison land.
BESIDE_ROUNDS, BESIDE_CALLS = 16, 15


def _beside_static(onnx, model_name: str, n: int, lazy, x) -> dict:
    import statistics
    import kiln
    static = kiln.compile(onnx, shapes={"input_0": _dyn_shape(model_name, n)})  # not timed
    static.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=None)
    timed = {"lazy": [], "static": []}
    ratios = []
    for run in (lazy, static):
        for _ in range(5):
            run(x)
    torch.cuda.synchronize()
    for r in range(BESIDE_ROUNDS):
        order = (("lazy", lazy), ("static", static)) if r % 2 == 0 else (("static", static), ("lazy", lazy))
        this_round = {}
        for name, run in order:
            ts = []
            for _ in range(BESIDE_CALLS):
                t0 = time.perf_counter()
                run(x)
                torch.cuda.synchronize()
                ts.append((time.perf_counter() - t0) * 1e3)
            timed[name] += ts
            this_round[name] = statistics.median(ts)
        ratios.append(this_round["lazy"] / this_round["static"])
    q = statistics.quantiles(ratios, n=4)
    return {"beside_lazy_p50_ms": statistics.median(timed["lazy"]),
            "beside_static_p50_ms": statistics.median(timed["static"]),
            "beside_ratio_median": statistics.median(ratios), "beside_ratio_q1": q[0], "beside_ratio_q3": q[2],
            "beside_rounds": BESIDE_ROUNDS, "beside_calls": BESIDE_CALLS}


def child_startup(model_name: str, system: str, engine_path: str, cache: str) -> dict:
    """One fresh process: imports and CUDA initialisation (import_s), then loading the engine or
    building the model (load_s), then the first and second inference."""
    t0 = time.perf_counter()
    import torch as _t
    spec = M.MODELS[model_name]
    if system.startswith("kiln"):
        import kiln
    x = _t.randn(spec.sample_shape(1), device="cuda")  # CUDA is initialised here, for every system
    _t.cuda.synchronize()
    t1 = time.perf_counter()
    if system.startswith("kiln"):
        mod = kiln.load(engine_path)
        mod.runtime_settings = kiln.runtime.RuntimeSettings(runtime_cache=cache)
        run = mod
    else:
        m = M.build(spec).cuda()
        run = _t.compile(m) if system == "torch_compile" else m
    t2 = time.perf_counter()
    with torch.inference_mode():
        first = first_call_ms(lambda: run(x)) / 1e3
        second = first_call_ms(lambda: run(x)) / 1e3
    return {"scenario": "startup", "model": model_name, "system": system, "import_s": t1 - t0,
            "load_s": t2 - t1, "first_s": first, "second_s": second,
            "total_s": (t2 - t0) + first, "status": "ok"}


def child(args: List[str], timeout: float) -> List[dict]:
    """Runs `compare.py --child ARGS`, echoing its log; returns the rows it printed ("ROW {json}"),
    the row it announced last ("RUNNING {json}", status "running") and, when it failed, a row
    with status "error: child ..." that says how."""
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "compare.py"), "--child"] + args
    rows, running, tail = [], [], []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fired = []
    timer = threading.Timer(timeout, lambda: (fired.append(1), proc.kill()))
    timer.start()
    try:
        for line in proc.stdout:
            if line.startswith("ROW "):
                rows.append(json.loads(line[4:]))
            elif line.startswith("RUNNING "):
                running = [{**json.loads(line[8:]), "status": "running"}]
            else:
                print(line, end="", flush=True)
                tail = (tail + [line.strip()])[-3:]
        rc = proc.wait()
    finally:
        timer.cancel()
    if rc != 0:
        how = f"killed by signal {-rc}" if rc < 0 else f"exited {rc}"
        if fired:
            how = f"timed out after {timeout:.0f} s"
        return rows + running + [{"status": f"error: child {how}: {' | '.join(tail)}"[:400]}]
    if not rows:
        return [{"status": f"error: child printed no rows: {' | '.join(tail)}"[:400]}]
    return rows


_child = child


def _timeout(budget, cap: float) -> float:
    """A child's time limit: `cap`, and no more than what the scenario's budget has left (plus a
    grace of 20 s, so a child started just in time can finish a row)."""
    if budget.seconds is None:
        return cap
    return max(20.0, min(cap, budget.seconds - budget.elapsed() + 20.0))


def run_dynamic(models: List[str], quick: bool, budget) -> List[dict]:
    rows = []
    steps_for = DYNAMIC_QUICK if quick else DYNAMIC_STEPS
    for name in [m for m in models if m in steps_for] or ["encoder_l4_d256"]:
        steps = steps_for[name]
        for system in DYNAMIC_SYSTEMS:
            if budget.exceeded():
                rows.append({"scenario": "dynamic", "model": name, "system": system, "step": 0,
                             "shape": "-", "status": "skipped: time budget"})
                continue
            got = _child(["dynamic", name, system, ",".join(map(str, steps)),
                          "100" if quick else "300"], timeout=_timeout(budget, 150 if quick else 600))
            for r in got:
                r.setdefault("scenario", "dynamic")
                r.setdefault("model", name)
                r.setdefault("system", system)
                r.setdefault("step", 0)
                r.setdefault("shape", "-")
            rows += got
    return rows


STARTUP_REPEATS = 3


def run_startup(models: List[str], quick: bool, budget) -> List[dict]:
    import kiln
    rows = []
    # Issue #6: the encoder and mobilenet, each in fresh processes: empty cache, then warm.
    names = [m for m in models if m in ("encoder_l4_d256", "mobilenet_v3_small")] or \
        ["encoder_l4_d256", "mobilenet_v3_small"]
    for name in names:
        spec = M.MODELS[name]
        with tempfile.TemporaryDirectory() as tmp:
            engine = os.path.join(tmp, f"{name}.kiln")
            kiln.compile(M.build(spec), example_inputs=(M.sample(spec, 1),)).save(engine)
            cache = os.path.join(tmp, "runtime.kcache")
            # kiln's processes run STARTUP_REPEATS times each (the report takes the median): every
            # cold one with an empty cache file of its own, every warm one with the first cold
            # one's cache.
            plan = [("kiln_cold_cache", "kiln", rep) for rep in range(STARTUP_REPEATS)] + \
                [("kiln_warm_cache", "kiln", rep) for rep in range(STARTUP_REPEATS)] + [("torch_eager", "torch_eager", 0)]
            if not quick:
                plan.append(("torch_compile", "torch_compile", 0))
            for label, system, rep in plan:
                if budget.exceeded():
                    rows.append({"scenario": "startup", "model": name, "system": label, "rep": rep,
                                 "status": "skipped: time budget"})
                    continue
                path = os.path.join(tmp, f"cold{rep}.kcache") if label == "kiln_cold_cache" and rep else cache
                got = _child(["startup", name, system, engine, path], timeout=_timeout(budget, 90 if quick else 300))
                for r in got:
                    r.update({"scenario": "startup", "model": name, "system": label, "rep": rep})
                rows += got
    return rows


def run_threads(models: List[str], quick: bool, budget) -> List[dict]:
    """In a child process: a kiln crash must not end the whole run."""
    left = None if budget.seconds is None else max(1.0, budget.seconds - budget.elapsed())
    rows = child(["threads", ",".join(models), "1" if quick else "0",
                  "none" if left is None else f"{left:.0f}"], timeout=(left or 600) + 120)
    for r in rows:
        r.setdefault("scenario", "threads")
        r.setdefault("model", "-")
        r.setdefault("batch", 1)
        r.setdefault("system", "-")
        r.setdefault("threads", 0)
    return rows


def child_threads(models: List[str], quick: bool, budget) -> List[dict]:
    import copy
    import kiln
    name = "resnet18" if "resnet18" in models or not models else models[0]
    spec = M.MODELS[name]
    batch = 1
    model = M.build(spec)
    mod = kiln.compile(model, example_inputs=(M.sample(spec, batch),))
    tmodel = copy.deepcopy(model).cuda().eval()
    calls = 50 if quick else 300
    rows = []
    for system in ("torch_eager", "kiln_disabled", "kiln_whole_graph_capture"):
        runner = tmodel if system == "torch_eager" else copy.copy(mod)
        if system != "torch_eager":
            runner.runtime_settings = kiln.runtime.RuntimeSettings(
                cuda_graph_strategy=system[len("kiln_"):])
        for n in ((1, 2, 4) if quick else (1, 2, 4, 8)):
            if budget.exceeded():
                rows.append({"scenario": "threads", "model": name, "batch": batch, "system": system,
                             "threads": n, "status": "skipped: time budget"})
                continue
            lat: List[float] = []
            errors: List[str] = []
            lock = threading.Lock()

            def worker():
                try:
                    stream = torch.cuda.Stream()
                    x = torch.randn(spec.sample_shape(batch), device="cuda")
                    with torch.cuda.stream(stream), torch.inference_mode():
                        runner(x)  # warm
                        stream.synchronize()
                        mine = []
                        for _ in range(calls):
                            t0 = time.perf_counter()
                            runner(x)
                            stream.synchronize()
                            mine.append((time.perf_counter() - t0) * 1e3)
                    with lock:
                        lat.extend(mine)
                except Exception as e:  # noqa: BLE001 - reported in the row
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")
            threads = [threading.Thread(target=worker) for _ in range(n)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            if errors:
                rows.append({"scenario": "threads", "model": name, "batch": batch, "system": system,
                             "threads": n, "status": "error: " + errors[0][:300]})
                continue
            lat.sort()
            rows.append({"scenario": "threads", "model": name, "batch": batch, "system": system,
                         "threads": n, "throughput": n * calls / wall, "p50_ms": lat[len(lat) // 2],
                         "status": "ok"})
    return rows
