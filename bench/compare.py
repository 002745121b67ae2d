#!/usr/bin/env python3
"""kiln side by side with PyTorch on the same GPU, in one process and run (issue #9).

    python3 bench/compare.py [--models mlp,resnet18,...] [--dtypes fp32,fp16] [--out DIR] [--quick]
                             [--scenario all|steady,dynamic,startup,threads] [--docs docs/performance.md]
    python3 bench/compare.py --render DIR/results.json [--docs docs/performance.md]

For each model and batch: build the model with random weights (fixed seed), export it to ONNX
once, build a kiln engine per precision with kiln.compile, check kiln's output against PyTorch
fp32 (exit 1 beyond tolerance, loudly), then time PyTorch eager, eager + a manual CUDA graph,
torch.compile (default and reduce-overhead) and kiln under each cuda_graph_strategy. Writes
results.json (one row per measurement), results.md (tables with kiln's ratio to each baseline),
PNG plots (when matplotlib is there) and, with --docs, docs/performance.md.

Needs torch (+ torchvision for the CNNs) with CUDA and kiln importable (PYTHONPATH=build/python
or `pip install .`). --quick keeps the whole run under 10 minutes on an H100/H200 (fewer
iterations, and a time budget shared out over the scenarios, after which rows are skipped and
say so). Scenarios (all by default): steady (the tables above), dynamic (the 4-layer encoder at
seq 16, 48, ..., 304 in order: first call and steady p50 per new shape under each kernel
specialisation strategy, a static engine per shape, PyTorch eager and
torch.compile(dynamic=True); lazy's steady state is also timed against a static engine of the
shape side by side, interleaved in one process), startup (fresh processes: empty vs warm runtime cache, for the
encoder and mobilenet) and threads (N threads sharing one engine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ALL_MODELS = "mlp,resnet18,encoder_l4_d256,encoder_l12_d768,mobilenet_v3_small"


# Shares of the wall-clock budget per scenario (normalised over the scenarios that run).
SHARES = {"steady": 0.55, "dynamic": 0.25, "startup": 0.1, "threads": 0.1}


class Budget:
    def __init__(self, seconds):
        self.start = time.perf_counter()
        self.seconds = seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def exceeded(self) -> bool:
        return self.seconds is not None and self.elapsed() > self.seconds


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def meta(args) -> dict:
    import torch
    m = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "command": "python3 bench/compare.py " + " ".join(sys.argv[1:]),
         "torch": torch.__version__, "python": platform.python_version(),
         "cuda": torch.version.cuda,
         "timing": "per-iteration host clock around torch.cuda.synchronize(); p50 and p99 of the "
                   "timed iterations after warm-up" + (" (--quick)" if args.quick else ""),
         "notes": "TF32 off for fp32 in PyTorch and kiln."}
    try:
        import torchvision
        m["torchvision"] = torchvision.__version__
    except ImportError:
        m["torchvision"] = "absent"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        m["card"] = f"{p.name} ({p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB)"
        try:
            import subprocess
            m["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                          "--format=csv,noheader"], capture_output=True, text=True,
                                         timeout=20).stdout.strip().splitlines()[0]  # one line per GPU
        except Exception:  # noqa: BLE001 - optional
            pass
    try:
        import kiln
        m["kiln"] = kiln.__version__
    except ImportError as e:
        m["kiln"] = f"not importable: {e}"
    return m


def steady_model(spec, dtypes, quick: bool, budget) -> list:
    """Pass 1 for one model (run in a child process): export once, then per batch and dtype
    PyTorch eager, eager + CUDA graph, and a kiln engine under each cuda_graph_strategy."""
    import torch
    import kiln
    from harness import models as M
    from harness import systems as S
    params = S.QUICK if quick else S.FULL
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    batches = spec.quick_batches if quick else spec.batches
    model = M.build(spec)
    lo, hi = spec.sample_shape(min(batches)), spec.sample_shape(max(batches))
    t0 = time.perf_counter()
    try:
        onnx = kiln.export_onnx(model, (M.sample(spec, min(batches)),),
                                shapes={"input_0": (lo, lo, hi)} if lo != hi else None)
    except Exception as e:  # noqa: BLE001 - recorded, run continues
        log(f"FAIL export {spec.name}: {e}")
        return [{"scenario": "steady", "model": spec.name, "batch": 0, "dtype": "-",
                 "system": "export", "status": f"error: export: {e}"[:400]}]
    log(f"{spec.name}: exported ONNX ({len(onnx) / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f} s")
    for batch in batches:
        if budget.exceeded():
            rows += [{"scenario": "steady", "model": spec.name, "batch": batch, "dtype": d,
                      "system": s, "status": f"skipped: time budget ({budget.seconds:.0f} s)"}
                     for d in dtypes for s in S.SYSTEMS]
            continue
        x = M.sample(spec, batch).cuda()
        with torch.inference_mode():
            ref = model.cuda()(x).float()
        model.cpu()
        for dtype in dtypes:
            base = {"scenario": "steady", "model": spec.name, "batch": batch, "dtype": dtype,
                    "description": spec.description}
            for system in ("torch_eager", "torch_cudagraph"):
                rows.append(run_one(base, system, lambda s=system: S.torch_system(
                    s, model, x, M.TORCH_DTYPES[dtype]), ref, params, None))
                print("ROW " + json.dumps(rows[-1], default=str), flush=True)
            t0 = time.perf_counter()
            try:
                mod = kiln.compile(onnx, shapes={"input_0": spec.sample_shape(batch)},
                                   precision=dtype, name=f"{spec.name}_b{batch}_{dtype}")
                build_s = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001
                log(f"FAIL kiln build {spec.name} b{batch} {dtype}: {e}")
                for system in S.KILN:
                    rows.append({**base, "system": system, "status": f"error: build: {e}"[:400]})
                    print("ROW " + json.dumps(rows[-1], default=str), flush=True)
                continue
            for system in S.KILN:
                # Announced first: if kiln crashes the process, the parent knows which row.
                print("RUNNING " + json.dumps({**base, "system": system}), flush=True)
                r = run_one(base, system, lambda s=system, m=mod: S.kiln_system(s, m, x), ref, params,
                            M.TOLERANCE[dtype])
                r["build_s"] = build_s
                r["engine_bytes"] = len(mod._bytes or b"")
                r["stats"] = mod.stats()
                rows.append(r)
                print("ROW " + json.dumps(r, default=str), flush=True)
            del mod
            torch.cuda.empty_cache()
    return rows


def steady(args, specs, dtypes, budget, flush) -> tuple:
    """Pass 1 per model in a child process (a crash costs that model's remaining rows, recorded
    as errors, not the run); pass 2 in this process: torch.compile rows as the budget allows."""
    import torch
    from harness import models as M
    from harness import scenarios as SC
    from harness import systems as S
    params = S.QUICK if args.quick else S.FULL
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for spec in specs:
        left = None if budget.seconds is None else max(1.0, budget.seconds - budget.elapsed())
        got = SC.child(["steady", spec.name, ",".join(dtypes), "1" if args.quick else "0",
                        "none" if left is None else f"{left:.0f}"], timeout=(left or 3000) + 240)
        rows += [r for r in got if r.get("status") != "running"]
        crashed = [r for r in got if r.get("status", "").startswith("error: child")]
        running = [r for r in got if r.get("status") == "running"]
        if crashed and running:  # the row in flight when the child died
            rows.append({**running[-1], "status": crashed[0]["status"]})
        for r in crashed:
            r.update({"scenario": "steady", "model": spec.name, "batch": 0, "dtype": "-",
                      "system": "child"})
        flush(rows)
    failed = any(r.get("status", "ok").startswith(("error", "mismatch")) for r in rows)
    configs = [(r["model"], r["batch"], r["dtype"]) for r in rows
               if r.get("system") == "torch_eager" and r.get("status") == "ok"]
    models = {}
    for name, batch, dtype in configs:
        for system in ("torch_compile", "torch_compile_ro"):
            base = {"scenario": "steady", "model": name, "batch": batch, "dtype": dtype,
                    "description": M.MODELS[name].description}
            if args.no_compile or budget.exceeded():
                why = "skipped: --no-compile" if args.no_compile else \
                    f"skipped: time budget ({budget.seconds:.0f} s) spent before this torch.compile row"
                rows.append({**base, "system": system, "status": why})
                continue
            if name not in models:
                models[name] = M.build(M.MODELS[name])
            x = M.sample(M.MODELS[name], batch).cuda()
            rows.append(run_one(base, system, lambda s=system, m=models[name]: S.torch_system(
                s, m, x, M.TORCH_DTYPES[dtype]), None, params, None))
            flush(rows)
    return rows, failed


def run_one(base, system, prepare, ref, params, tol) -> dict:
    import torch
    from harness import models as M
    from harness import systems as S
    row = {**base, "system": system}
    try:
        with torch.inference_mode():
            prep = prepare()
            row["settings"] = prep.settings
            row["setup_s"] = prep.setup_s
            if ref is not None:
                row["rel_err"] = M.relative_l2(prep.output().float(), ref)
            row.update(S.measure(prep.fn, params))
        row["status"] = "ok"
        if tol is not None and not row["rel_err"] <= tol:
            row["status"] = f"mismatch: relative L2 error {row['rel_err']:.3g} > {tol:g}"
            log(f"FAIL {base['model']} b{base['batch']} {base['dtype']} {system}: {row['status']}")
        else:
            log(f"{base['model']} b{base['batch']} {base['dtype']} {S.SYSTEMS[system]}: "
                f"p50 {row['p50_ms']:.3f} ms p99 {row['p99_ms']:.3f} ms"
                + (f" err {row['rel_err']:.1e}" if "rel_err" in row else ""))
    except Exception as e:  # noqa: BLE001 - recorded per row; the run goes on
        row["status"] = f"error: {type(e).__name__}: {e}"[:400]
        log(f"FAIL {base['model']} b{base['batch']} {base['dtype']} {system}: {row['status']}")
        traceback.print_exc()
    del prepare
    torch.cuda.empty_cache()
    return row


def child(argv) -> int:
    from harness import scenarios as SC
    kind = argv[0]
    if kind == "steady":
        from harness import models as M
        budget = Budget(None if argv[4] == "none" else float(argv[4]))
        steady_model(M.MODELS[argv[1]], argv[2].split(","), argv[3] == "1", budget)
        return 0  # rows were printed as they came
    if kind == "threads":
        budget = Budget(None if argv[3] == "none" else float(argv[3]))
        rows = SC.child_threads([m for m in argv[1].split(",") if m], argv[2] == "1", budget)
        for r in rows:
            print("ROW " + json.dumps(r), flush=True)
        return 0
    if kind == "dynamic":  # prints its rows as they come
        SC.child_dynamic(argv[1], argv[2], [int(s) for s in argv[3].split(",")], int(argv[4]))
        return 0
    if kind == "startup":
        rows = [SC.child_startup(argv[1], argv[2], argv[3], argv[4])]
    else:
        raise SystemExit(f"unknown child {kind}")
    for r in rows:
        print("ROW " + json.dumps(r), flush=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=ALL_MODELS, help=f"comma-separated, from {ALL_MODELS}")
    ap.add_argument("--dtypes", default="fp32,fp16", help="comma-separated: fp32, fp16, bf16")
    ap.add_argument("--out", default="bench-out", help="folder for results.json, results.md, plots")
    ap.add_argument("--quick", action="store_true", help="fewer iterations; whole run < 10 minutes")
    ap.add_argument("--scenario", default="all",
                    help="steady, dynamic, startup, threads, a comma-separated list, or all (default)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-clock budget, shared out over the scenarios; rows past a scenario's "
                         "share are skipped, unused time passes on (default: 500 with --quick)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile baselines")
    ap.add_argument("--docs", default=None, help="also regenerate this performance.md")
    ap.add_argument("--render", default=None, help="only re-render outputs from this results.json")
    ap.add_argument("--note", default=None, help="a note added to the results' notes (shown in the docs)")
    args = ap.parse_args()
    from harness import report

    if args.render:
        with open(args.render) as f:
            results = json.load(f)
        if args.note:
            results["meta"]["notes"] = (results["meta"].get("notes", "") + " " + args.note).strip()
        report.write_all(results, args.out, args.docs)
        return 0

    import torch
    if not torch.cuda.is_available():
        print("compare.py needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    from harness import models as M
    total = Budget(args.budget_s if args.budget_s is not None else (500 if args.quick else None))
    specs = M.resolve([m for m in args.models.split(",") if m])
    dtypes = [d for d in args.dtypes.split(",") if d]
    bad = [d for d in dtypes if d not in M.TORCH_DTYPES]
    if bad:
        print(f"unknown dtype(s) {bad}; expected fp32, fp16, bf16", file=sys.stderr)
        return 2
    scenarios = ["steady", "dynamic", "startup", "threads"] if args.scenario == "all" else \
        args.scenario.split(",")
    results = {"meta": meta(args), "rows": []}
    failed = False
    for i, scenario in enumerate(scenarios):
        # This scenario's share of what is left (steady gets the most: it has the most rows).
        shares = [SHARES.get(sc, 0.1) for sc in scenarios[i:]]
        budget = Budget(None if total.seconds is None else
                        max(10.0, (total.seconds - total.elapsed()) * shares[0] / sum(shares)))
        log(f"scenario {scenario} (elapsed {total.elapsed():.0f} s, budget "
            f"{'none' if budget.seconds is None else f'{budget.seconds:.0f} s'})")
        def flush(partial, done=list(results["rows"])):
            results["rows"] = done + partial
            report.write_all(results, args.out, None, plots=False)  # survives a crash

        if scenario == "steady":
            rows, f = steady(args, specs, dtypes, budget, flush)
            failed = failed or f
        else:
            from harness import scenarios as SC
            fn = {"dynamic": SC.run_dynamic, "startup": SC.run_startup, "threads": SC.run_threads}.get(scenario)
            if fn is None:
                print(f"unknown scenario {scenario}", file=sys.stderr)
                return 2
            try:
                rows = fn([s.name for s in specs], args.quick, budget)
            except Exception as e:  # noqa: BLE001 - recorded
                traceback.print_exc()
                rows = [{"scenario": scenario, "model": "-", "system": "-",
                         "status": f"error: {type(e).__name__}: {e}"[:400]}]
            failed = failed or any(r.get("status", "ok").startswith(("error", "mismatch")) for r in rows)
        for r in rows:
            r["card"] = results["meta"].get("card", "")
            r["versions"] = {k: results["meta"].get(k) for k in ("torch", "kiln", "cuda", "driver")}
        results["rows"] = [r for r in results["rows"] if r.get("scenario") != scenario] + rows
        report.write_all(results, args.out, None, plots=False)
    report.write_all(results, args.out, args.docs)
    print(report.render_markdown(results))
    log(f"done in {total.elapsed():.0f} s; {'FAILED (see failures above)' if failed else 'all checks passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
