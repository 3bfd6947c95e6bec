#!/usr/bin/env python3
"""A markdown table of every benchmark in a Google Benchmark JSON file (aggregates: the median rows
when repetitions were run), with its time and counters, plus the run's context lines that start
with emotune_ (date, commit, CPU, threads, load average...).
    scripts/bench_list.py FILE.json [--counters images/s,faces]"""
import argparse, json

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--counters", default="")
    a = ap.parse_args()
    doc = json.load(open(a.json))
    ctx = doc.get("context", {})
    keys = [k for k in ctx if k.startswith("emotune_")]
    print("Context: " + "; ".join(f"{k[8:]} {ctx[k]}" for k in keys) + f"; benchmark library {ctx.get('library_build_type', '?')} build\n")
    rows = doc["benchmarks"]
    if any(r.get("aggregate_name") for r in rows):
        rows = [r for r in rows if r.get("aggregate_name") == "median"]
    counters = [c for c in a.counters.split(",") if c]
    print("| benchmark | time |" + "".join(f" {c} |" for c in counters))
    print("|---|---:|" + "---:|" * len(counters))
    for r in rows:
        name = r.get("run_name", r["name"])
        t = f"{r['real_time']:.3g} {r['time_unit']}"
        vals = []
        for c in counters:
            v = r.get(c)
            vals.append("" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}"))
        print(f"| `{name}` | {t} |" + "".join(f" {v} |" for v in vals))

if __name__ == "__main__":
    main()
