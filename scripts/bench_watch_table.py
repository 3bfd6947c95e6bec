#!/usr/bin/env python3
"""The `emotune watch` table of docs/benchmarks.md from bench_watch's JSON (--json FILE).

  scripts/bench_watch_table.py docs/bench/watch-cpu-2026-12-02.json [more.json ...]
"""
import json
import sys

STAGES = ["decode", "convert", "detect", "track", "network", "smooth", "draw", "encode", "total"]


def table(path):
    doc = json.load(open(path))
    print(f"Context: {doc['date']}; commit {doc['commit']}; CPU {doc['cpu'].strip()}; "
          f"{doc['hardware_threads']} hardware threads; OPENBLAS_NUM_THREADS "
          f"{doc.get('openblas_num_threads', 'unset')}; model {doc['model']}; {doc['frames']} frames "
          f"640x480 per run; load average {doc['loadavg_at_start']} at the start, "
          f"{doc.get('loadavg_at_end', '?')} at the end\n")
    print("| faces | detect every | frames/s | frames/cpu_s | " + " | ".join(STAGES[:-1]) +
          " | total ms/frame |")
    print("|" + "---:|" * (4 + len(STAGES)))
    for r in doc["runs"]:
        ms = r["ms_per_frame"]
        cells = [str(r["faces"]), str(r["detect_every"]), f"{r['frames_per_s']:.1f}",
                 f"{r['frames_per_cpu_s']:.1f}"] + [f"{ms[s]:.3f}" if s == "smooth" else f"{ms[s]:.2f}" for s in STAGES]
        print("| " + " | ".join(cells) + " |")
    print()


for p in sys.argv[1:]:
    table(p)
