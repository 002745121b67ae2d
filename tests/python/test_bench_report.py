"""bench/harness/report.py's verdicts for the dynamic scenario (issue #6's targets), from rows as
bench/compare.py writes them: no GPU, no torch. The judging logic decides what the benchmark
reports as met, so it is tested like code."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from harness import report  # noqa: E402


def _rows(first_ms, p50_ms, ratio=None, q1=None, q3=None, beside=None):
    lazy = {"scenario": "dynamic", "model": "enc", "system": "kiln_lazy", "shape": "1x16x256", "step": 0,
            "first_ms": first_ms, "p50_ms": p50_ms, "settle_ms": 10.0}
    if ratio is not None:
        lazy.update({"beside_lazy_p50_ms": p50_ms, "beside_static_p50_ms": p50_ms / ratio,
                     "beside_ratio_median": ratio, "beside_ratio_q1": q1, "beside_ratio_q3": q3,
                     "beside_rounds": 16, "beside_calls": 15})
    elif beside is not None:
        lazy.update({"beside_lazy_p50_ms": beside[0], "beside_static_p50_ms": beside[1]})
    static = {"scenario": "dynamic", "model": "enc", "system": "kiln_static", "shape": "1x16x256", "step": 0,
              "first_ms": 50.0, "p50_ms": 0.5}
    return [lazy, static]


def _verdict(rows):
    table = report.scenario_tables(rows)
    line = next(l for l in table.splitlines() if l.startswith("| 1x16x256"))
    return line.rstrip(" |").rsplit("|", 1)[-1].strip()


def test_paired_ratio_at_or_below_one_is_met():
    assert _verdict(_rows(0.9, 0.5, ratio=0.998, q1=0.97, q3=1.02)).startswith("yes / yes: 0.998x static")


def test_ratio_above_one_within_the_rounds_spread_is_a_tie_not_a_pass():
    v = _verdict(_rows(0.9, 0.5, ratio=1.013, q1=0.98, q3=1.03))
    assert v == "yes / tie: 1.013x static, rounds' IQR 0.980-1.030 spans 1"


def test_ratio_above_one_beyond_the_spread_is_not_met():
    v = _verdict(_rows(0.9, 0.5, ratio=1.017, q1=1.004, q3=1.028))
    assert v == "yes / no: 1.017x static, rounds' IQR 1.004-1.028"


def test_first_call_over_twice_steady_is_not_met():
    assert _verdict(_rows(1.12, 0.5, ratio=0.99, q1=0.98, q3=1.0)).startswith("no: first 2.24x / yes")
    assert _verdict(_rows(1.0, 0.5, ratio=0.99, q1=0.98, q3=1.0)).startswith("yes / yes")  # exactly 2x


def test_older_rows_without_paired_rounds_compare_the_medians():
    assert _verdict(_rows(0.9, 0.5, beside=(0.537, 0.517))) == "yes / no: 1.04x static"
    assert _verdict(_rows(0.9, 0.5, beside=(0.50, 0.517))) == "yes / yes"


def _steady_rows(batch, **p50):
    return {s: {"scenario": "steady", "model": "m", "batch": batch, "dtype": "fp32", "system": s,
                "p50_ms": v, "p99_ms": v, "status": "ok"} for s, v in p50.items()}


def test_steady_targets_per_row():
    rows = _steady_rows(1, torch_eager=1.0, kiln_disabled=0.9, torch_cudagraph=0.30,
                        kiln_whole_graph_capture=0.20, torch_compile_ro=0.40)
    assert report.targets(rows, 1) == ["yes", "yes", "yes"]  # 0.20 <= 0.30 and <= 0.40 / 2
    rows["kiln_whole_graph_capture"]["p50_ms"] = 0.21
    assert report.targets(rows, 1) == ["yes", "yes", "no"]   # over half of reduce-overhead
    rows["kiln_whole_graph_capture"]["p50_ms"] = 0.31
    assert report.targets(rows, 1) == ["yes", "no", "no"]    # over eager + CUDA graph


def test_reduce_overhead_target_only_on_batch_one_and_missing_rows_are_not_judged():
    rows = _steady_rows(32, torch_eager=1.0, kiln_disabled=1.1, torch_cudagraph=0.5,
                        kiln_whole_graph_capture=0.4, torch_compile_ro=0.1)
    assert report.targets(rows, 32) == ["no", "yes", "–"]
    del rows["torch_cudagraph"]
    rows["torch_compile_ro"]["status"] = "skipped: --no-compile"
    assert report.targets(rows, 1) == ["no", "–", "–"]
