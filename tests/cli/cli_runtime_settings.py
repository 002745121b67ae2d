#!/usr/bin/env python3
"""End-to-end test of the runtime-settings surface of the `kiln` CLI and of `kiln bench`
(CTest `cli_runtime_settings`, label nogpu). Python standard library only.

Over the shipped example (examples/tiny_classifier):
- every invalid setting name, through every flag of `kiln run` and `kiln bench`: exit 2 and the
  parser's message listing the valid values;
- an invalid KILN_* value: a warning naming the valid values, the built-in default used, the run
  still passes;
- `kiln run --json` / text: each setting's value and source (flag, environment, builtin);
- flipping --cuda-graph-strategy (and the other GPU settings) leaves CPU outputs byte-identical;
- `kiln bench`: text and JSON with sane numbers, --threads, --batch, bad usage;
- `kiln build` under all 16 combinations of the four KILN_* runtime variables gives an engine
  byte-identical to one built with none set.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile

FAILURES = []
ENV_VARS = {  # a valid, non-default value for each runtime variable
    "KILN_CUDA_GRAPH_STRATEGY": "whole_graph_capture",
    "KILN_KERNEL_SPECIALIZATION": "eager",
    "KILN_RUNTIME_CACHE": None,  # a path in the temp folder, set in main()
    "KILN_MULTI_DEVICE_SAFE_MODE": "1",
}
BASE_ENV = {}


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("  FAILED: " + what, flush=True)
    return cond


def kiln(args, expect, what, env=None):
    full_env = dict(BASE_ENV)
    full_env.update(env or {})
    proc = subprocess.run([KILN] + args, capture_output=True, text=True, timeout=600,
                          env=full_env)
    check(proc.returncode == expect,
          "%s: exit %d, expected %d\n    cmd: kiln %s\n    env: %s\n    stdout: %s\n"
          "    stderr: %s" % (what, proc.returncode, expect, " ".join(args), env or {},
                              proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def parse_json(proc, what):
    try:
        return json.loads(proc.stdout)
    except ValueError:
        check(False, what + ": stdout is not JSON: %r" % proc.stdout[:500])
        return {}


def setting(j, name):
    return j.get("runtime_settings", {}).get(name, {})


def test_invalid_names(engine, data):
    print("invalid setting names through every flag", flush=True)
    cases = [
        (["--cuda-graph-strategy", "whole"],
         "invalid cuda_graph_strategy 'whole'; expected disabled|whole_graph_capture"),
        (["--cuda-graph-strategy", "Disabled"],
         "invalid cuda_graph_strategy 'Disabled'; expected disabled|whole_graph_capture"),
        (["--kernel-specialization", "sometimes"],
         "invalid dynamic_shapes_kernel_specialization_strategy 'sometimes'; "
         "expected lazy|eager|none"),
        (["--runtime-cache", ""], "invalid runtime_cache ''; expected a file path or none"),
        (["--multi-device-safe-mode", "yes"],
         "invalid multi_device_safe_mode 'yes'; expected 1|0|true|false"),
        (["--multi-device-safe-mode=on"],
         "invalid multi_device_safe_mode 'on'; expected 1|0|true|false"),
    ]
    for flag, message in cases:
        for cmd in (["run", engine, "--data", data], ["bench", engine, "--min-time", "0"]):
            what = "kiln %s %s" % (cmd[0], " ".join(flag))
            p = kiln(cmd + flag, 2, what)
            check("kiln: error: " + message in p.stderr,
                  what + ": stderr lacks the parser's message %r: %r" % (message, p.stderr))
            j = parse_json(kiln(cmd + flag + ["--json"], 2, what + " --json"), what)
            errors = j.get("errors") or [{}]
            check(j.get("status") == "error" and errors[0].get("message") == message,
                  what + " --json: error object %r" % j)
    # The optional value of --multi-device-safe-mode swallowing the engine gets a hint.
    p = kiln(["run", "--multi-device-safe-mode", engine, "--data", data], 2,
             "--multi-device-safe-mode before ENGINE")
    check("--multi-device-safe-mode=true" in p.stderr, "swallowed ENGINE hint: %r" % p.stderr)


def test_invalid_environment(engine, data):
    print("invalid KILN_* values", flush=True)
    cases = [
        ("KILN_CUDA_GRAPH_STRATEGY", "bogus", "cuda_graph_strategy", "disabled",
         "expected disabled|whole_graph_capture"),
        ("KILN_KERNEL_SPECIALIZATION", "bogus", "dynamic_shapes_kernel_specialization_strategy",
         "lazy", "expected lazy|eager|none"),
        ("KILN_MULTI_DEVICE_SAFE_MODE", "maybe", "multi_device_safe_mode", "false",
         "expected 1|0|true|false"),
    ]
    for var, value, name, builtin, expected in cases:
        p = kiln(["run", engine, "--data", data, "--json"], 0, var + "=" + value,
                 env={var: value})
        check("ignoring %s" % var in p.stderr and expected in p.stderr and
              "built-in default '%s'" % builtin in p.stderr,
              "%s=%s: warning names the variable, the valid values and the default: %r" %
              (var, value, p.stderr))
        check(p.stderr.count("ignoring " + var) == 1, var + ": warned once")
        j = parse_json(p, var)
        check(j.get("status") == "pass", var + ": the run still passes")
        check(setting(j, name) == {"value": builtin, "source": "builtin"},
              "%s=%s: %s resolves to the builtin, got %r" % (var, value, name, setting(j, name)))
    # The same through bench.
    p = kiln(["bench", engine, "--iterations", "3", "--min-time", "0", "--json"], 0,
             "bench with KILN_CUDA_GRAPH_STRATEGY=bogus", env={"KILN_CUDA_GRAPH_STRATEGY": "bogus"})
    check("expected disabled|whole_graph_capture" in p.stderr, "bench: env warning")
    check(setting(parse_json(p, "bench env"), "cuda_graph_strategy").get("source") == "builtin",
          "bench: bad env value falls back to the builtin")


def test_sources(engine, data, cache):
    print("resolved settings and their sources", flush=True)
    env = {"KILN_CUDA_GRAPH_STRATEGY": "disabled", "KILN_KERNEL_SPECIALIZATION": "eager",
           "KILN_RUNTIME_CACHE": "none"}
    args = ["--cuda-graph-strategy", "whole_graph_capture"]
    p = kiln(["run", engine, "--data", data, "--json"] + args, 0, "run --json sources", env=env)
    j = parse_json(p, "run --json sources")
    want = {
        "cuda_graph_strategy": {"value": "whole_graph_capture", "source": "flag"},
        "dynamic_shapes_kernel_specialization_strategy": {"value": "eager",
                                                          "source": "environment"},
        "runtime_cache": {"value": "none", "source": "environment"},
        "multi_device_safe_mode": {"value": "false", "source": "builtin"},
    }
    check(j.get("runtime_settings") == want,
          "run --json: settings %r, expected %r" % (j.get("runtime_settings"), want))
    # Every flag at once wins over every variable.
    flags = ["--cuda-graph-strategy", "disabled", "--kernel-specialization", "none",
             "--runtime-cache", cache, "--multi-device-safe-mode"]
    all_env = {k: v for k, v in ENV_VARS.items()}
    j = parse_json(kiln(["run", engine, "--data", data, "--json"] + flags, 0, "all flags",
                        env=all_env), "all flags")
    want = {
        "cuda_graph_strategy": {"value": "disabled", "source": "flag"},
        "dynamic_shapes_kernel_specialization_strategy": {"value": "none", "source": "flag"},
        "runtime_cache": {"value": cache, "source": "flag"},
        "multi_device_safe_mode": {"value": "true", "source": "flag"},
    }
    check(j.get("runtime_settings") == want,
          "all flags: settings %r, expected %r" % (j.get("runtime_settings"), want))
    # Nothing set: every source is builtin (or the environment's cache folder for the cache).
    j = parse_json(kiln(["run", engine, "--data", data, "--json"], 0, "no settings"),
                   "no settings")
    for name in ("cuda_graph_strategy", "dynamic_shapes_kernel_specialization_strategy",
                 "multi_device_safe_mode", "runtime_cache"):
        check(setting(j, name).get("source") == "builtin", "no settings: %s is builtin" % name)
    check(setting(j, "runtime_cache").get("value", "").endswith("kiln/runtime.kcache"),
          "builtin runtime cache is the per-user file: %r" % setting(j, "runtime_cache"))
    # The text form shows the same.
    p = kiln(["run", engine, "--data", data] + args, 0, "run text sources", env=env)
    for line in ("cuda_graph_strategy", "whole_graph_capture  (flag)", "eager  (environment)",
                 "none  (environment)", "false  (builtin)"):
        check(line in p.stdout, "run text output shows %r: %r" % (line, p.stdout))
    check(p.stdout.strip().splitlines()[-1].startswith("PASS"), "run text: still PASS")


def test_cpu_results_unchanged(engine, data, tmp):
    print("GPU settings do not change CPU results", flush=True)
    variants = [
        [],
        ["--cuda-graph-strategy", "disabled"],
        ["--cuda-graph-strategy", "whole_graph_capture"],
        ["--cuda-graph-strategy", "whole_graph_capture", "--kernel-specialization", "eager",
         "--multi-device-safe-mode", "true", "--runtime-cache", "none"],
        ["--kernel-specialization", "none"],
    ]
    outputs = []
    for i, v in enumerate(variants):
        out_dir = os.path.join(tmp, "outs_%d" % i)
        p = kiln(["run", engine, "--data", data, "--save-outputs", out_dir] + v, 0,
                 "run %s" % " ".join(v))
        check(p.stdout.strip().splitlines()[-1].startswith("PASS") if p.stdout.strip() else False,
              "run %s: PASS" % " ".join(v))
        files = {}
        if os.path.isdir(out_dir):
            for f in sorted(os.listdir(out_dir)):
                with open(os.path.join(out_dir, f), "rb") as fh:
                    files[f] = fh.read()
        check(files, "run %s: saved outputs" % " ".join(v))
        outputs.append(files)
    for i in range(1, len(outputs)):
        check(outputs[i] == outputs[0],
              "outputs with %s differ from the default run's" % " ".join(variants[i]))


def test_bench(engine, tmp):
    print("kiln bench", flush=True)
    p = kiln(["bench", engine, "--iterations", "30", "--warmup", "3", "--min-time", "0.2",
              "--json", "--cuda-graph-strategy", "whole_graph_capture"], 0, "bench --json")
    j = parse_json(p, "bench --json")
    lat = j.get("latency_ms", {})
    check(j.get("status") == "ok", "bench: status ok")
    check(lat.get("count", 0) >= 30, "bench: at least --iterations calls, got %r" % lat)
    check(0 < lat.get("min", 0) <= lat.get("median", -1) <= lat.get("p90", -1) <=
          lat.get("p99", -1) <= lat.get("max", -1), "bench: ordered percentiles %r" % lat)
    check(lat.get("min", 0) <= lat.get("mean", -1) <= lat.get("max", -1), "bench: mean in range")
    check(j.get("measured_s", 0) >= 0.2, "bench: --min-time honoured: %r" % j.get("measured_s"))
    thr = j.get("throughput_per_s", 0)
    check(thr > 0 and abs(thr - lat.get("count", 0) / j.get("measured_s", 1)) <= 1e-6 * thr,
          "bench: throughput = calls / measured time")
    # One thread: wall time >= the sum of the latencies, so throughput <= 1 / mean.
    check(thr <= 1000.0 / lat.get("mean", 1e9) * 1.01, "bench: throughput <= 1 / mean latency")
    check(j.get("first_call_ms", 0) > 0, "bench: first call timed")
    stats = j.get("engine_stats", {})
    check(stats.get("contexts_created") == 1, "bench: one context: %r" % stats)
    check(stats.get("calls") == 1 + 3 + lat.get("count", -1),
          "bench: engine calls = first + warmup + measured: %r" % stats)
    check(stats.get("contexts_reused") == stats.get("calls", 0) - 1, "bench: the rest reused")
    check(setting(j, "cuda_graph_strategy") == {"value": "whole_graph_capture", "source": "flag"},
          "bench --json: flag source")
    check(j.get("inputs") == [{"name": "x", "dtype": "f32", "shape": [4, 16]}],
          "bench: opt shape from the profile: %r" % j.get("inputs"))

    p = kiln(["bench", engine, "--iterations", "20", "--min-time", "0", "--warmup", "2",
              "--threads", "3", "--batch", "8", "--json"], 0, "bench --threads 3 --batch 8")
    j = parse_json(p, "bench threads")
    lat = j.get("latency_ms", {})
    check(lat.get("count", 0) >= 20, "bench threads: count")
    check(j.get("inputs", [{}])[0].get("shape") == [8, 16], "bench --batch 8 shape")
    check(abs(j.get("samples_per_s", 0) - 8 * j.get("throughput_per_s", -1)) <=
          1e-6 * j.get("samples_per_s", 1), "bench: samples/s = 8 x calls/s")
    check(j.get("engine_stats", {}).get("calls") == 1 + 3 * 2 + lat.get("count", -1),
          "bench threads: calls = first + 3 x warmup + measured")

    p = kiln(["bench", engine, "--iterations", "10", "--min-time", "0",
              "--shape", "x:2x16"], 0, "bench text")
    for line in ("first call", "latency     median", "p90", "p99", "min", "mean",
                 "inferences/s", "context created", "runtime settings:",
                 "[2, 16] (random, seed 0)", "disabled  (builtin)"):
        check(line in p.stdout, "bench text shows %r: %r" % (line, p.stdout))

    kiln(["bench", engine, "--shape", "x:100x16"], 2, "bench shape outside the profile")
    kiln(["bench", engine, "--shape", "y:1x16"], 2, "bench unknown input")
    kiln(["bench", engine, "--shape", "x:1x16:2x16:3x16"], 2, "bench --shape range")
    kiln(["bench", engine, "--threads", "0"], 2, "bench --threads 0")
    kiln(["bench", engine, "--iterations", "0"], 2, "bench --iterations 0")
    kiln(["bench", os.path.join(tmp, "missing.kiln")], 2, "bench missing engine")
    h = kiln(["bench", "--help"], 0, "bench --help")
    check("Examples:" in h.stdout and "--cuda-graph-strategy" in h.stdout, "bench --help")
    h = kiln(["run", "--help"], 0, "run --help")
    check("--multi-device-safe-mode" in h.stdout, "run --help lists the settings flags")
    # No GPU (CI): a clear error, not a crash. With a GPU: it runs.
    p = subprocess.run([KILN, "bench", engine, "--backend", "cuda", "--iterations", "3",
                        "--min-time", "0", "--json"], capture_output=True, text=True,
                       timeout=600, env=BASE_ENV)
    if p.returncode == 0:
        check(parse_json(p, "bench cuda").get("latency_ms", {}).get("count", 0) >= 3,
              "bench --backend cuda")
    else:
        check(p.returncode in (2, 3) and "kiln: error: " in p.stderr,
              "bench --backend cuda without a GPU: exit %d, stderr %r" %
              (p.returncode, p.stderr[-500:]))


def test_build_ignores_environment(model, tmp):
    print("kiln build under every combination of KILN_* variables", flush=True)
    ref_path = os.path.join(tmp, "ref.kiln")
    kiln(["build", model, "-o", ref_path], 0, "build with no KILN_* set")
    with open(ref_path, "rb") as f:
        ref = f.read()
    names = sorted(ENV_VARS)
    for mask in itertools.product([False, True], repeat=len(names)):
        env = {n: ENV_VARS[n] for n, on in zip(names, mask) if on}
        out = os.path.join(tmp, "env_%s.kiln" % "".join("1" if m else "0" for m in mask))
        kiln(["build", model, "-o", out], 0, "build with %s" % env, env=env)
        if os.path.exists(out):
            with open(out, "rb") as f:
                data = f.read()
            check(data == ref, "engine built with %s differs from the one built with none" % env)
            for value in ("whole_graph_capture", "runtime.kcache", "eager"):
                check(value.encode() not in data, "engine holds runtime value %r" % value)


def main():
    global KILN
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--example", required=True, help="examples/tiny_classifier")
    args = ap.parse_args()
    KILN = args.kiln
    model = os.path.join(args.example, "model.onnx")
    data = os.path.join(args.example, "test_data_set_0")
    with tempfile.TemporaryDirectory(prefix="kiln_cli_settings_") as tmp:
        BASE_ENV.update({k: v for k, v in os.environ.items() if not k.startswith("KILN_")})
        BASE_ENV["XDG_CACHE_HOME"] = os.path.join(tmp, "xdg")  # keep the builtin cache here
        cache = os.path.join(tmp, "flag.kcache")
        ENV_VARS["KILN_RUNTIME_CACHE"] = os.path.join(tmp, "env.kcache")
        engine = os.path.join(tmp, "tiny.kiln")
        p = kiln(["build", model, "-o", engine, "--shape", "x:1x16:4x16:64x16"], 0, "build")
        if p.returncode == 0:
            test_invalid_names(engine, data)
            test_invalid_environment(engine, data)
            test_sources(engine, data, cache)
            test_cpu_results_unchanged(engine, data, tmp)
            test_bench(engine, tmp)
        test_build_ignores_environment(model, tmp)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
