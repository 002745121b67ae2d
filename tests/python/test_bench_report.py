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
