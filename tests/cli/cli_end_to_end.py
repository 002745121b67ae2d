#!/usr/bin/env python3
"""End-to-end test of the `kiln` CLI over the shared models (CTest `cli_end_to_end`, label nogpu).

For every model in --models: `kiln build`, `kiln inspect --json`, and `kiln run --data` on every
test_data_set (must print PASS). Then the error paths with their exit codes: a wrong-dtype input,
a rank and a profile violation, an unknown input name (2), a truncated and a missing engine (2),
a deliberately wrong reference output (1, FAIL naming the output), an unsupported model (3), bad
usage (2). Needs only the Python standard library: .npy, TensorProto and ModelProto bytes are
written by hand.
"""
import argparse
import ast
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("  FAILED: " + what, flush=True)


def kiln(args, expect, what):
    proc = subprocess.run([KILN] + args, capture_output=True, text=True, timeout=600)
    ok = proc.returncode == expect
    check(ok, "%s: exit %d, expected %d\n    cmd: kiln %s\n    stdout: %s\n    stderr: %s" %
          (what, proc.returncode, expect, " ".join(args), proc.stdout[-2000:], proc.stderr[-2000:]))
    if ok and expect != 0 and expect != 1:
        check("kiln: error: " in proc.stderr, what + ": stderr lacks 'kiln: error: '")
    return proc


def parse_json(proc, what):
    try:
        return json.loads(proc.stdout)
    except ValueError:
        check(False, what + ": stdout is not JSON: %r" % proc.stdout[:500])
        return {}


# ---- hand-written protobuf and .npy -----------------------------------------------------------

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def tensor_proto(name, elem_type, dims, raw):
    return b"".join(field(1, d) for d in dims) + field(2, elem_type) + field(8, name) + field(9, raw)


def value_info(name, elem_type, dims):
    shape = b"".join(field(1, field(1, d)) for d in dims)
    return field(1, name) + field(2, field(1, field(1, elem_type) + field(2, shape)))


def unsupported_model():
    """A valid ModelProto whose only node is an op of a custom domain kiln cannot know."""
    node = field(1, "x") + field(2, "y") + field(3, "n0") + field(4, "FancyOp") + \
        field(7, "com.example.custom")
    graph = field(1, node) + field(2, "g") + field(11, value_info("x", 1, [2, 3])) + \
        field(12, value_info("y", 1, [2, 3]))
    opset = field(8, field(1, "") + field(2, 17)) + \
        field(8, field(1, "com.example.custom") + field(2, 1))
    return field(1, 8) + opset + field(7, graph)


NPY_DESCR = {"f32": ("<f4", 4), "f64": ("<f8", 8), "i32": ("<i4", 4), "i64": ("<i8", 8),
             "u8": ("|u1", 1), "bool": ("|b1", 1)}


def write_npy(path, dtype, dims):
    descr, size = NPY_DESCR[dtype]
    shape = "(%d,)" % dims[0] if len(dims) == 1 else "(" + ", ".join(str(d) for d in dims) + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    n = 1
    for d in dims:
        n *= d
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(b"\x00" * (n * size))


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    return header, data[10 + hlen:]


# ---- the test ----------------------------------------------------------------------------------

def test_model(model_dir, tmp):
    name = os.path.basename(model_dir)
    engine = os.path.join(tmp, name + ".kiln")
    print("model " + name, flush=True)
    build = kiln(["build", os.path.join(model_dir, "model.onnx"), "-o", engine,
                  "--metadata", "test=cli_end_to_end"], 0, name + ": build")
    if build.returncode != 0:
        return None
    check("min [" in build.stdout and "wrote " in build.stdout, name + ": build prints profiles")
    info = kiln(["inspect", engine, "--json"], 0, name + ": inspect --json")
    meta = parse_json(info, name + ": inspect --json") if info.returncode == 0 else {}
    check(meta.get("metadata", {}).get("test") == "cli_end_to_end", name + ": metadata kept")
    check(meta.get("node_count", 0) > 0 and meta.get("op_histogram"), name + ": ops listed")
    sets = sorted(d for d in os.listdir(model_dir) if d.startswith("test_data_set_"))
    check(len(sets) > 0, name + ": has test data sets")
    for s in sets:
        run = kiln(["run", engine, "--data", os.path.join(model_dir, s)], 0, "%s/%s: run" % (name, s))
        last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
        check(last.startswith("PASS max_abs_err="), "%s/%s: last line is PASS, got %r" %
              (name, s, last))
    if not meta.get("inputs") or not meta.get("outputs"):
        return None
    return engine, meta


def test_errors(model_dir, engine, meta, tmp):
    name = os.path.basename(model_dir)
    data = os.path.join(model_dir, "test_data_set_0")
    inp = meta["inputs"][0]
    wrong = "i32" if inp["dtype"] != "i32" else "f32"
    bad = os.path.join(tmp, "wrong_dtype.npy")
    write_npy(bad, wrong, inp["min"])
    p = kiln(["run", engine, "--data", data, "--input", "%s=%s" % (inp["name"], bad)], 2,
             name + ": wrong dtype input")
    check(inp["name"] in p.stderr and wrong in p.stderr, name + ": dtype error names binding")

    write_npy(bad, inp["dtype"], inp["min"] + [1])
    kiln(["run", engine, "--data", data, "--input", "%s=%s" % (inp["name"], bad)], 2,
         name + ": wrong rank input")

    fixed = [i for i, (lo, hi) in enumerate(zip(inp["min"], inp["max"])) if lo == hi]
    if fixed:
        dims = list(inp["min"])
        dims[fixed[0]] += 1
        write_npy(bad, inp["dtype"], dims)
        p = kiln(["run", engine, "--data", data, "--input", "%s=%s" % (inp["name"], bad)], 2,
                 name + ": input outside the profile")
        check("profile" in p.stderr, name + ": profile error says so")

    p = kiln(["run", engine, "--data", data, "--input", "no_such_input=%s" % bad], 2,
             name + ": unknown input name")
    check("no_such_input" in p.stderr, name + ": unknown input named")
    kiln(["run", engine], 2, name + ": no inputs at all")

    # A reference output that differs in one element: FAIL naming the output, exit 1.
    out_dir = os.path.join(tmp, "outs")
    kiln(["run", engine, "--data", data, "--save-outputs", out_dir], 0, name + ": --save-outputs")
    out0 = meta["outputs"][0]
    saved = os.path.join(out_dir, out0["name"] + ".npy")
    check(os.path.exists(saved), name + ": saved " + saved)
    if os.path.exists(saved) and out0["dtype"] == "f32":
        header, raw = read_npy(saved)
        shape = ast.literal_eval(header)["shape"]
        raw = bytearray(raw)
        raw[0:4] = struct.pack("<f", struct.unpack("<f", raw[0:4])[0] + 1.0)
        wrong_dir = os.path.join(tmp, "wrong_ref")
        os.makedirs(wrong_dir, exist_ok=True)
        for f in os.listdir(data):
            if f.startswith("input_"):
                shutil.copy(os.path.join(data, f), wrong_dir)
        with open(os.path.join(wrong_dir, "output_0.pb"), "wb") as f:
            f.write(tensor_proto(out0["name"], 1, list(shape), bytes(raw)))
        p = kiln(["run", engine, "--data", wrong_dir], 1, name + ": wrong reference output")
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        check(last.startswith("FAIL output '%s'" % out0["name"]), name + ": FAIL line, got " + last)
        j = kiln(["run", engine, "--data", wrong_dir, "--json"], 1, name + ": wrong ref --json")
        if j.returncode == 1:
            check(parse_json(j, name).get("status") == "fail", name + ": json status fail")

    # --input from a .pb file, --iterations and --json.
    args = []
    for i, b in enumerate(meta["inputs"]):
        args += ["--input", "%s=%s" % (b["name"], os.path.join(data, "input_%d.pb" % i))]
    p = kiln(["run", engine, "--json", "--iterations", "3"] + args, 0, name + ": --input .pb --json")
    if p.returncode == 0:
        j = parse_json(p, name + ": run --json")
        check(j.get("status") == "ok" and j.get("timings", {}).get("iterations") == 3,
              name + ": json timings")
        check(len(j.get("outputs", [])) == len(meta["outputs"]), name + ": json outputs")
        check(j.get("runtime_settings", {}).get("cuda_graph_strategy", {}).get("source"),
              name + ": json runtime settings with sources")

    with open(engine, "rb") as f:
        blob = f.read()
    for cut in (0, 16, len(blob) // 2, len(blob) - 1):
        trunc = os.path.join(tmp, "truncated.kiln")
        with open(trunc, "wb") as f:
            f.write(blob[:cut])
        kiln(["run", trunc, "--data", data], 2, "%s: engine truncated at %d" % (name, cut))
        kiln(["inspect", trunc], 2, "%s: inspect engine truncated at %d" % (name, cut))
    kiln(["run", os.path.join(tmp, "missing.kiln"), "--data", data], 2, "missing engine")


def test_usage(tmp):
    model = os.path.join(tmp, "unsupported.onnx")
    with open(model, "wb") as f:
        f.write(unsupported_model())
    p = kiln(["build", model, "-o", os.path.join(tmp, "u.kiln")], 3, "unsupported model")
    check("FancyOp" in p.stderr or "com.example.custom" in p.stderr, "unsupported op named")
    with open(model, "wb") as f:
        f.write(b"\xff\xff\xff garbage")
    kiln(["build", model, "-o", os.path.join(tmp, "g.kiln")], 2, "garbage model")
    kiln(["build"], 2, "build without arguments")
    kiln(["build", model, "-o", "x.kiln", "--shape", "x:1x2:3x4"], 2, "malformed --shape")
    kiln(["build", model, "-o", "x.kiln", "--precision", "fp8"], 2, "bad --precision")
    kiln(["run", "e.kiln", "--backend", "tpu"], 2, "bad --backend")
    kiln(["frobnicate"], 2, "unknown command")
    kiln([], 2, "no command")
    v = kiln(["--version"], 0, "--version")
    check(v.stdout.startswith("kiln "), "--version prints the version")
    for cmd in ("build", "run", "bench", "inspect"):
        h = kiln([cmd, "--help"], 0, cmd + " --help")
        check("Examples:" in h.stdout, cmd + " --help has examples")


def main():
    global KILN
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    KILN = args.kiln
    if not os.path.isdir(args.models):
        print("test data missing: " + args.models)
        return 1
    models = sorted(os.path.join(args.models, d) for d in os.listdir(args.models)
                    if os.path.exists(os.path.join(args.models, d, "model.onnx")))
    check(len(models) >= 4, "expected the 4 shared models, found %d" % len(models))
    with tempfile.TemporaryDirectory(prefix="kiln_cli_") as tmp:
        built = {}
        for m in models:
            r = test_model(m, tmp)
            if r:
                built[m] = r
        # Error paths on the smallest model that built.
        if built:
            m = min(built, key=lambda m: os.path.getsize(built[m][0]))
            test_errors(m, built[m][0], built[m][1], tmp)
        test_usage(tmp)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
