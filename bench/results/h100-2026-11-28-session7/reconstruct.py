"""Rebuilds results.json for this run from the results.md tables compare.py printed into its log
(startup.md, dynamic.md here): the device tool brought back at most 8 files per call and the
run's results.json files were not among them. Fields the tables do not print are None (p99 of
the dynamic rows); everything else is as printed, at the printed precision."""
import json, os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
CARD = "NVIDIA H100 80GB HBM3 (132 SMs, 79 GiB)"
VERS = {"torch": "2.11.0+cu130", "kiln": "0.1.0", "cuda": "13.0", "driver": "580.159.04"}


def table(path, first_col):
    rows = []
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[0] not in (first_col, "") and not set(cells[0]) <= set("-:"):
            rows.append(cells)
    return rows


rows = []
for c in table(os.path.join(here, "startup.md"), "model"):
    model, system, rep, imp, load, first, second, total = c
    rows.append({"scenario": "startup", "model": model, "system": system, "rep": int(rep) - 1,
                 "import_s": float(imp), "load_s": float(load), "first_s": float(first),
                 "second_s": float(second), "total_s": float(total), "status": "ok", "card": CARD,
                 "versions": VERS, "reconstructed": True})
dyn = os.path.join(here, "dynamic.md")
systems = ["torch_eager", "torch_compile_dynamic", "kiln_lazy", "kiln_eager", "kiln_none", "kiln_static"]
waits = [float(x) for x in re.search(r"per shape, ms: ([0-9., ]+)\.", open(dyn).read()).group(1).split(",")]
for step, c in enumerate(table(dyn, "shape")):
    for i, system in enumerate(systems):
        first, p50 = (float(x) for x in c[1 + i].split("/"))
        rows.append({"scenario": "dynamic", "model": "encoder_l4_d256", "system": system, "step": step,
                     "shape": c[0], "first_ms": first, "settle_ms": waits[step] if system == "kiln_lazy" else 0.0,
                     "p50_ms": p50, "p99_ms": None, "status": "ok", "card": CARD, "versions": VERS,
                     "reconstructed": True})
json.dump({"meta": {"card": CARD, "driver": VERS["driver"], "torch": VERS["torch"], "cuda": VERS["cuda"],
                    "kiln": VERS["kiln"]}, "rows": rows}, open(os.path.join(here, "results.json"), "w"), indent=1)
print(len(rows), "rows")
