#!/usr/bin/env python3
"""Turn the JSON of bench_cuda_conv2d (--benchmark_format=json or --benchmark_out) into the
markdown table of docs/benchmarks.md: for every layer, batch and direction, cuDNN's algorithm and
TFLOP/s, ours and the ratio cuDNN time / our time measured in the same run; then the geometric
mean of the ratio per direction (fwd, bwd_input, bwd_weight) against the goal of issue 4 (>= 0.5).

Benchmark names are '<ours|cudnn>/<direction>/<layer>/n<batch>' (plus Google Benchmark's
'/min_time:.../manual_time' suffixes). The provenance (device, driver, cuDNN, precision, layout,
L2 flush, date, commit) comes from the run's custom context.

Usage: scripts/bench_cuda_table.py RUN.json [--out FILE] [--goal 0.5]
Exit status 0 always for a readable file (the goal is reported, not enforced); 2 for a bad file.
Python 3 standard library only.
"""
import argparse
import json
import math
import re
import sys

DIRECTIONS = [("fwd", "forward"), ("bwd_input", "backward input"), ("bwd_weight", "backward weight")]


def parse(path):
    with open(path) as f:
        doc = json.load(f)
    ctx = doc.get("context", {})
    rows = {}
    errors = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"/(min_time|manual_time|real_time|iterations|repeats)(:[^/]*)?", "", b.get("run_name") or b["name"])
        m = re.match(r"^(ours|cudnn)/([a-z_]+)/([^/]+)/n(\d+)$", name)
        if not m:
            continue
        impl, direction, layer, batch = m.group(1), m.group(2), m.group(3), int(m.group(4))
        if b.get("error_occurred"):
            errors.append(f"{name}: {b.get('error_message', 'error')}")
            b = {"label": "ERROR"}
        rows[(direction, layer, batch, impl)] = b
    return ctx, rows, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("--out", help="write the markdown here as well as to stdout")
    ap.add_argument("--goal", type=float, default=0.5)
    args = ap.parse_args()
    try:
        ctx, rows, errors = parse(args.json)
    except (OSError, ValueError, KeyError) as e:
        print(f"bench_cuda_table.py: cannot read {args.json}: {e}", file=sys.stderr)
        return 2

    out = []
    out.append("### conv2d on the GPU: ours (implicit GEMM, fp32 FFMA) vs cuDNN (best FMA algorithm)")
    out.append("")
    for key, label in [("device", "Device"), ("sm_count", "SMs"), ("cuda_driver", "CUDA driver"),
                       ("cuda_runtime", "CUDA runtime"), ("cudnn", "cuDNN"), ("precision", "Precision"),
                       ("layout", "Layout"), ("l2_flush", "L2 flushed between iterations"),
                       ("date_utc", "Date (UTC)"), ("commit", "Commit"),  # runs before bench/provenance.h
                       ("emotune_date", "Date"), ("emotune_commit", "Commit")]:
        if key in ctx:
            out.append(f"- {label}: {ctx[key]}")
    if "host_name" in ctx:
        out.append(f"- Host: {ctx['host_name']}, {ctx.get('num_cpus', '?')} CPUs")
    out.append("- Command: `bench_cuda_conv2d --benchmark_out=conv2d_cuda.json` then "
               "`scripts/bench_cuda_table.py conv2d_cuda.json` (via scripts/gpu-check.sh)")
    out.append("- Ratio = cuDNN time / our time, both measured in this run (> 1: ours is faster). "
               "TFLOP/s counts 2 flops per multiply-add of the forward convolution, in every direction.")
    out.append("")
    out.append("| direction | layer | batch | cuDNN algorithm | cuDNN TFLOP/s | ours | ours TFLOP/s | ratio |")
    out.append("|---|---|---:|---|---:|---|---:|---:|")
    summary = []
    for direction, label in DIRECTIONS:
        keys = sorted({(k[1], k[2]) for k in rows if k[0] == direction}, key=lambda t: (t[1], t[0]))
        ratios = []
        for layer, batch in keys:
            ours = rows.get((direction, layer, batch, "ours"))
            cud = rows.get((direction, layer, batch, "cudnn"))
            ratio = ours.get("ratio_vs_cudnn") if ours else None
            if ratio:
                ratios.append(ratio)
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                label, layer, batch,
                (cud.get("label", "").replace("cuDNN ", "") if cud else "-"),
                (f"{cud['TFLOP/s']:.2f}" if cud and "TFLOP/s" in cud else "-"),
                (ours.get("label", "").replace("ours ", "") if ours else "-"),
                (f"{ours['TFLOP/s']:.2f}" if ours and "TFLOP/s" in ours else "-"),
                (f"{ratio:.2f}" if ratio else "-")))
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
        summary.append((label, geo, len(ratios), len(keys)))
    out.append("")
    out.append(f"| direction | geometric-mean ratio to cuDNN | cases | goal (>= {args.goal}) |")
    out.append("|---|---:|---:|---|")
    for label, geo, n, total in summary:
        verdict = "-" if geo is None else ("met" if geo >= args.goal else "NOT met")
        out.append(f"| {label} | {geo:.2f} | {n} of {total} | {verdict} |" if geo is not None
                   else f"| {label} | - | 0 of {total} | - |")
    if errors:
        out.append("")
        out.append("Benchmarks that reported an error (not in the means):")
        for e in errors:
            out.append(f"- {e}")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
