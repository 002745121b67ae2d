"""The systems compared, and how they are timed.

Timing: each iteration is bracketed by torch.cuda.synchronize() and read on the host clock
(perf_counter), so every system is measured the same way, whichever stream it runs on (kiln
without RunOptions.stream uses its own streams, which CUDA events on torch's stream would not
see). This is the latency a caller waiting for the result observes; the synchronisation adds a
few microseconds to every system alike. Warm-up iterations run first; the statistics are the
median (p50) and the 99th percentile (p99) of the timed iterations.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from .names import BASELINES, KILN, SYSTEMS  # noqa: F401 - re-exported


@dataclasses.dataclass
class Params:
    warmup: int
    iters: int
    min_iters: int
    max_seconds: float


QUICK = Params(warmup=5, iters=200, min_iters=30, max_seconds=0.5)
FULL = Params(warmup=50, iters=2000, min_iters=200, max_seconds=8.0)


def percentile(sorted_values: List[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def measure(fn: Callable[[], object], p: Params) -> Dict[str, float]:
    """Times fn: warm-up, then synchronised iterations; milliseconds."""
    for _ in range(p.warmup):
        fn()
    torch.cuda.synchronize()
    times: List[float] = []
    deadline = time.perf_counter() + p.max_seconds
    while len(times) < p.iters and (len(times) < p.min_iters or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 0.99),
            "mean_ms": statistics.fmean(times), "min_ms": times[0], "iters": len(times)}


def settle(run, timeout_s: float = 10.0) -> float:
    """kiln: waits until no specialisation is pending (lazy swaps its kernels, and cuBLASLt for
    its GEMMs, in between calls); returns the milliseconds waited."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout_s:
        if run.stats().get("backend_counters", {}).get("specialize_pending", 0) == 0:
            break
        time.sleep(0.001)
    return (time.perf_counter() - t) * 1e3


def first_call_ms(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def _output(y):
    return y[0] if isinstance(y, (tuple, list)) else y


class Prepared:
    """A ready-to-time system: fn() runs one inference; output() is a result to check."""

    def __init__(self, fn: Callable[[], object], setup_s: float, settings: dict,
                 output: Optional[Callable[[], torch.Tensor]] = None):
        self.fn = fn
        self.setup_s = setup_s
        self.settings = settings
        self.output = output or (lambda: _output(fn()))


def torch_system(name: str, model_cpu: torch.nn.Module, x: torch.Tensor, dtype) -> Prepared:
    """PyTorch systems: eager, eager + manual CUDA graph, torch.compile (default and
    reduce-overhead). `model_cpu` is f32 on the CPU; `x` the f32 CUDA input."""
    t0 = time.perf_counter()
    model = copy.deepcopy(model_cpu).to(device="cuda", dtype=dtype).eval()
    xd = x.to(dtype)
    settings = {"dtype": str(dtype).replace("torch.", "")}
    if name == "torch_eager":
        return Prepared(lambda: model(xd), time.perf_counter() - t0, settings)
    if name == "torch_cudagraph":
        static_x = xd.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = model(static_x)

        def replay():
            static_x.copy_(xd)
            graph.replay()
            return static_y
        return Prepared(replay, time.perf_counter() - t0, settings)
    if name in ("torch_compile", "torch_compile_ro"):
        torch._dynamo.reset()  # a static-shape compile per row, not an automatic-dynamic one
        mode = "reduce-overhead" if name == "torch_compile_ro" else "default"
        compiled = torch.compile(model, mode=mode)
        for _ in range(3):  # compile (and record the cudagraph tree) outside the timing
            compiled(xd)
        torch.cuda.synchronize()
        settings["mode"] = mode
        return Prepared(lambda: compiled(xd), time.perf_counter() - t0, settings)
    raise ValueError(name)


def kiln_system(name: str, module, x: torch.Tensor) -> Prepared:
    """kiln under one cuda_graph_strategy (a per-module runtime setting: no scope per call)."""
    import kiln
    strategy = name[len("kiln_"):]
    mod = copy.copy(module)  # same engine, own runtime settings
    mod.runtime_settings = kiln.runtime.RuntimeSettings(cuda_graph_strategy=strategy)
    t0 = time.perf_counter()
    mod(x)  # creates the execution context for this setting (kernels compiled or cached)
    torch.cuda.synchronize()
    settle(mod)  # lazy: its background work (specialised kernels, cuBLASLt) is done: steady state
    return Prepared(lambda: mod(x), time.perf_counter() - t0, {"cuda_graph_strategy": strategy})
