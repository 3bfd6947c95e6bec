#!/usr/bin/env python3
"""Turn Google Benchmark JSON files into a markdown table with ratios to a baseline of the same run.

Benchmark names carry a variant token that tells the implementations apart, e.g.
    conv2d_forward/fast/paper.conv2_64->64_48x48_valid/n16
    conv2d_forward/ref/paper.conv2_64->64_48x48_valid/n16
--variant is a regex whose first group captures that token (default '/(fast|ref)/'); --baseline
names the token of the baseline (default 'ref'). Rows whose names are equal once the token is
replaced are the same problem, and each row's ratio is its rate divided by the baseline's rate for
that problem. The CUDA benchmark can use the same script, e.g.
    --variant '/(ours|cudnn)/' --baseline cudnn --counter TFLOP/s
The geometric mean of the ratios is given per operation (the name's text before the variant).

The rate comes from the counter named by --counter (default 'GFLOP/s'). When a run has repeated
measurements, the 'median' aggregate is used if present. The provenance (date, host, CPU, the
benchmark's own custom context such as emotune_commit) is printed above the table.

Usage: scripts/bench_table.py RUN.json [RUN2.json ...] [--variant RE] [--baseline TOKEN]
                              [--counter NAME] [--out FILE]
Python 3 standard library only.
"""
import argparse
import json
import math
import re
import sys


def load_rows(path, counter):
    with open(path) as f:
        doc = json.load(f)
    ctx = doc.get("context", {})
    rows = {}
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        run_type = b.get("run_type", "iteration")
        name = b.get("run_name") or b["name"]
        if run_type == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if counter not in b:
            continue
        # A median aggregate replaces the individual repetitions of the same benchmark.
        if run_type == "aggregate" or name not in rows or rows[name].get("run_type") != "aggregate":
            rows[name] = b
    return ctx, rows


def clean_name(name):
    # Google Benchmark appends its run settings ("/min_time:0.500/real_time"); they are not part of
    # the problem.
    return re.sub(r"/(iterations|min_time|repeats|real_time|manual_time|threads)(:[^/]*)?", "", name)


def fmt_rate(v):
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="Google Benchmark --benchmark_format=json outputs")
    ap.add_argument("--variant", default=r"/(fast|ref)/", help="regex; group 1 is the variant token")
    ap.add_argument("--baseline", default="ref", help="variant token of the baseline")
    ap.add_argument("--counter", default="GFLOP/s", help="counter holding the rate")
    ap.add_argument("--out", help="write the markdown here instead of stdout")
    args = ap.parse_args()
    variant_re = re.compile(args.variant)

    out = []
    for path in args.json:
        ctx, rows = load_rows(path, args.counter)
        out.append(f"Source: `{path}`\n")
        prov = [f"date {ctx.get('date', '?')}", f"host {ctx.get('host_name', '?')}",
                f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz",
                f"benchmark library build {ctx.get('library_build_type', '?')}"]
        for k in sorted(ctx):
            if k.startswith("emotune_") or k.startswith("cuda") or k.startswith("device"):
                prov.append(f"{k}: {ctx[k]}")
        out.append("Provenance: " + "; ".join(prov) + "\n")

        problems = {}  # problem key -> {variant: rate}
        order = []
        for name, b in rows.items():
            cname = clean_name(name)
            m = variant_re.search(cname)
            if not m:
                print(f"warning: no variant token in '{cname}', skipped", file=sys.stderr)
                continue
            token = m.group(1)
            key = cname[: m.start(1)] + "*" + cname[m.end(1):]
            op = cname[: m.start()] or cname
            if key not in problems:
                problems[key] = {"op": op, "rates": {}, "names": {}}
                order.append(key)
            problems[key]["rates"][token] = float(b[args.counter])
            problems[key]["names"][token] = cname

        out.append(f"| benchmark | {args.counter} | ratio to {args.baseline} |")
        out.append("|---|---:|---:|")
        ratios_by_op = {}
        for key in order:
            pr = problems[key]
            base = pr["rates"].get(args.baseline)
            for token in sorted(pr["rates"], key=lambda t: (t != args.baseline, t)):
                rate = pr["rates"][token]
                if base:
                    ratio = rate / base
                    ratio_s = f"{ratio:.2f}"
                    if token != args.baseline:
                        ratios_by_op.setdefault((pr["op"], token), []).append(ratio)
                else:
                    ratio_s = "n/a"
                out.append(f"| `{pr['names'][token]}` | {fmt_rate(rate)} | {ratio_s} |")
        if ratios_by_op:
            out.append("")
            out.append(f"| operation | variant | geometric-mean ratio to {args.baseline} | problems |")
            out.append("|---|---|---:|---:|")
            for (op, token), rs in ratios_by_op.items():
                gm = math.exp(sum(math.log(r) for r in rs) / len(rs))
                out.append(f"| {op} | {token} | {gm:.2f} | {len(rs)} |")
        out.append("")

    text = "\n".join(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
