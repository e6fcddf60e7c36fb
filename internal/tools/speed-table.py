#!/usr/bin/env python3
"""Training speed beside scikit-learn's HistGradientBoosting, in one run on one machine.

For every dataset of ../shared/data with a spec in models/specs and more than 5,000 rows, RUNS
times (default 3), one after the other:
  - scikit-learn's HistGradientBoostingClassifier fit on the standard training rows, as
    ../shared/bench/baselines.py times it (XGBoost left out: a stand-in module makes its import
    fail, which baselines.py skips);
  - one fit of each tree family on the same rows: BenchmarkFitGBDTShared in internal/train (the
    final fit, with the rounds cross-fitting chose);
  - `churnctl train` with the default trainer, auto (every family, 5-fold cross-fitting,
    calibration, evaluation, bundle), wall time of the whole command.
Prints a Markdown table of the medians and their ratios to HistGradientBoosting's fit, and the
load average before and after (the machine may be shared).

HistGradientBoosting runs with OMP_NUM_THREADS=HGB_THREADS (default 1): on a loaded 2-core machine
its OpenMP threads' spinning barriers make the default (2 threads) 10-20x slower than one thread,
so one thread is the harder comparison there. HGB_THREADS=0 keeps scikit-learn's default.

usage (from the repository root, with the system python3 that has scikit-learn):
  /usr/bin/python3 internal/tools/speed-table.py      (or: make speed-table)
"""
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
RUNS = int(os.environ.get("RUNS", "3"))
HGB_THREADS = os.environ.get("HGB_THREADS", "1")
FAMILIES = ["gbdt", "gbdt-leafwise"]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def datasets():
    for spec in sorted(glob.glob(os.path.join(ROOT, "models", "specs", "*.json"))):
        name = os.path.basename(spec)[:-5]
        csv = os.path.join(SHARED, "data", name + ".csv")
        if not os.path.exists(csv):
            continue
        import pandas as pd  # the system package, as baselines.py uses
        rows = len(pd.read_csv(csv))
        if rows > 5000:
            yield name, spec, csv, rows


def hgb_seconds(spec, csv, stub):
    s = json.load(open(spec))
    cmd = [sys.executable, os.path.join(SHARED, "bench", "baselines.py"), csv, s["label"]["column"], s["label"]["positive"]]
    if s.get("drop"):
        cmd += ["--drop"] + s["drop"]
    env = dict(os.environ, PYTHONPATH=stub)
    if HGB_THREADS != "0":
        env["OMP_NUM_THREADS"] = HGB_THREADS
    for line in run(cmd, env=env).splitlines():
        r = json.loads(line)
        if r["model"] == "hgb":
            return r["fit_seconds"]
    raise SystemExit("baselines.py printed no hgb line")


def fit_seconds(test_bin, name):
    out = run([test_bin, "-test.run", "^$", "-test.bench", f"FitGBDTShared/^{name}$/", "-test.benchtime", "1x"],
              cwd=os.path.join(ROOT, "internal", "train"))
    got = {}
    for m in re.finditer(r"BenchmarkFitGBDTShared/[^/]+/(\S+?)-\d+\s+\d+\s+(\d+) ns/op", out):
        got[m.group(1)] = int(m.group(2)) / 1e9
    if set(got) != set(FAMILIES):
        raise SystemExit("benchmark output without every family:\n" + out)
    return got


def auto_seconds(churnctl, name, spec, csv, out):
    t0 = time.perf_counter()
    run([churnctl, "train", "--quiet", "--data", csv, "--spec", spec,
         "--test-idx", os.path.join(SHARED, "bench", "splits", name + "_test_idx.csv"),
         "--version", "speed", "--created", "2026-12-07T00:00:00Z", "--out", out])
    return time.perf_counter() - t0


def main():
    tmp = tempfile.mkdtemp(prefix="speed-table-")
    stub = os.path.join(tmp, "stub")
    os.mkdir(stub)
    with open(os.path.join(stub, "xgboost.py"), "w") as f:
        f.write('raise ImportError("left out by speed-table.py")\n')
    churnctl, test_bin = os.path.join(tmp, "churnctl"), os.path.join(tmp, "train.test")
    run(["go", "build", "-o", churnctl, "./cmd/churnctl"], cwd=ROOT)
    run(["go", "test", "-c", "-o", test_bin, "./internal/train"], cwd=ROOT)
    load0 = os.getloadavg()
    rows_out = []
    for name, spec, csv, rows in datasets():
        hgb, fits, auto = [], {f: [] for f in FAMILIES}, []
        for _ in range(RUNS):
            hgb.append(hgb_seconds(spec, csv, stub))
            for f, s in fit_seconds(test_bin, name).items():
                fits[f].append(s)
            auto.append(auto_seconds(churnctl, name, spec, csv, os.path.join(tmp, name + ".json")))
            print(f"# {name}: hgb {hgb[-1]:.2f} s, " + ", ".join(f"{f} {fits[f][-1]:.2f} s" for f in FAMILIES)
                  + f", auto {auto[-1]:.2f} s", file=sys.stderr)
        h = statistics.median(hgb)
        cells = [name, str(rows), f"{h:.2f}"]
        for f in FAMILIES:
            m = statistics.median(fits[f])
            cells += [f"{m:.2f}", f"{m / h:.2f}"]
        a = statistics.median(auto)
        cells += [f"{a:.2f}", f"{a / h:.1f}"]
        rows_out.append(cells)
    load1 = os.getloadavg()
    head = ["dataset", "rows", "HGB fit s"]
    for f in FAMILIES:
        head += [f"{f} fit s", "ratio"]
    head += ["auto s", "ratio"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for cells in rows_out:
        print("| " + " | ".join(cells) + " |")
    print(f"\nmedians of {RUNS} runs; HistGradientBoosting with OMP_NUM_THREADS={HGB_THREADS if HGB_THREADS != '0' else 'unset'}; "
          f"load average (1, 5, 15 min) before {load0[0]:.1f}, {load0[1]:.1f}, {load0[2]:.1f}, "
          f"after {load1[0]:.1f}, {load1[1]:.1f}, {load1[2]:.1f}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
