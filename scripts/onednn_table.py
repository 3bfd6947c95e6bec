#!/usr/bin/env python3
"""Markdown table of emotune's CPU conv kernels against oneDNN, from bench_vs_onednn's JSON lines
(one file per run, or stdin; lines that are not JSON objects are skipped):
    build/bin/bench_vs_onednn --precision fp32 > fp32.jsonl; ... --precision bf16 > bf16.jsonl
    python3 scripts/onednn_table.py fp32.jsonl bf16.jsonl
Ratio = oneDNN ms / emotune ms (> 1: emotune faster). Below the rows, the geometric mean of the ratio
per direction and precision; above them, the provenance the lines carry."""
import json, math, sys
from collections import defaultdict

def read_lines(paths):
    files = [open(p) for p in paths] if paths else [sys.stdin]
    for f in files:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if row.get("bench") == "vs_onednn":
                yield row

def distinct(rows, key):
    return ", ".join(sorted({str(r.get(key, "?")) for r in rows}))

def main():
    rows = list(read_lines(sys.argv[1:]))
    if not rows:
        sys.exit("onednn_table.py: no bench_vs_onednn lines")
    print(f"- Date {distinct(rows, 'date')}; commit {distinct(rows, 'commit')}; batch {distinct(rows, 'batch')}, "
          f"threads {distinct(rows, 'threads')}, median of {distinct(rows, 'iters')} calls after {distinct(rows, 'warmup')} warm-up")
    print(f"- emotune: {distinct(rows, 'emotune_path')}; bf16 kernel {distinct([r for r in rows if r['precision'] == 'bf16'], 'emotune_bf16_kernel') or '-'}")
    print(f"- oneDNN {distinct(rows, 'onednn_version')}, ISA {distinct(rows, 'onednn_isa')}, {distinct(rows, 'onednn_algorithm')}, "
          f"layouts {distinct(rows, 'onednn_layout')}; load average at start {distinct(rows, 'loadavg_at_start')}\n")
    print("| layer | direction | precision | emotune ms | oneDNN ms | oneDNN/emotune | oneDNN impl | max rel diff |")
    print("|---|---|---|---:|---:|---:|---|---:|")
    logs = defaultdict(list)
    for r in rows:
        if not r.get("valid"):
            print(f"| {r['layer']} | {r['direction']} | {r['precision']} | - | - | invalid | {r['onednn_impl']} | {r['max_rel_diff']:.1e} |")
            continue
        ratio = r["onednn_over_emotune"]
        logs[(r["direction"], r["precision"])].append(math.log(ratio))
        print(f"| {r['layer']} | {r['direction']} | {r['precision']} | {r['emotune_ms']:.2f} | {r['onednn_ms']:.2f} | "
              f"{ratio:.2f} | {r['onednn_impl']} | {r['max_rel_diff']:.1e} |")
    print("\n| direction | precision | layers | geometric mean oneDNN/emotune |")
    print("|---|---|---:|---:|")
    order = {"fwd": 0, "bwd_data": 1, "bwd_weights": 2}
    for (d, p), v in sorted(logs.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        print(f"| {d} | {p} | {len(v)} | {math.exp(sum(v) / len(v)):.2f} |")

if __name__ == "__main__":
    main()
