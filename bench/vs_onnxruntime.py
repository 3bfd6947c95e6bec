#!/usr/bin/env python3
"""emotune vs ONNX Runtime on the CPU, same exported model, same run (issue 16, docs/benchmarks.md).

  bench/vs_onnxruntime.py [--build build-nocuda] [--models paper,vgg] [--batches 1,64]
                          [--threads 1,2] [--rounds 3] [--json out.json]

For each model, batch size and thread count, in rounds that alternate the engines (so a
neighbour's load hits both alike): emotune's inference graph (bench_forward), emotune's training
graph in eval mode (the path before the inference graph, as the in-run baseline), and ONNX
Runtime on the model `emotune export` wrote (bench/ort_forward.py). Each entry is the median wall
time of its calls; a cell reports the median over rounds. ratio = ORT ms / emotune ms: >= 1 means
emotune is at least as fast. The CPU-time ratio compares process CPU time per call (all threads),
which other jobs on a shared machine disturb less than the wall time (it counts spinning threads).

ONNX Runtime comes from PyPI into the venv tests/onnx/run.sh uses (same pins), made here if absent.
"""
import os
import statistics

import run_context
from run_context import run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQS = "onnx==1.17.0 onnxruntime==1.20.1 numpy==1.26.4"  # as tests/onnx/run.sh


def main():
    a = run_context.inference_args(__doc__, rounds=3).parse_args()
    os.chdir(ROOT)
    emotune, bench = run_context.built(a.build, "vs_onnxruntime", "emotune", "bench_forward")
    py = run_context.venv_python(REQS, "EMOTUNE_ONNX_VENV", "onnx-venv")
    env = dict(os.environ)
    context = run_context.start(emotune, ROOT)
    rows = []
    for model, src, onnx, batch, threads, common in run_context.inference_cells(emotune, a):
        res = {"graph": [], "training": [], "ort": []}
        cpu = {"graph": [], "ort": []}
        for _ in range(a.rounds):
            g = run_json([bench, "--model", src] + common, env)
            o = run_json([py, "bench/ort_forward.py", onnx] + common, env)
            res["graph"].append(g["median_ms"])
            res["ort"].append(o["median_ms"])
            cpu["graph"].append(g["cpu_ms"])
            cpu["ort"].append(o["cpu_ms"])
            res["training"].append(
                run_json([bench, "--model", src, "--graph", "training"] + common, env)["median_ms"])
        row = {"model": model, "batch": batch, "threads": threads,
               **{k + "_ms": statistics.median(v) for k, v in res.items()},
               **{k + "_cpu_ms": statistics.median(v) for k, v in cpu.items()},
               "rounds": {k: v for k, v in res.items()}}
        row["ratio"] = row["ort_ms"] / row["graph_ms"]
        row["cpu_ratio"] = row["ort_cpu_ms"] / row["graph_cpu_ms"]
        row["ratio_training_graph"] = row["ort_ms"] / row["training_ms"]
        rows.append(row)
        print(f"{model:5} batch {batch:3} threads {threads}: emotune {row['graph_ms']:8.2f} ms  "
              f"ORT {row['ort_ms']:8.2f} ms  ratio {row['ratio']:.2f}  "
              f"(training graph {row['training_ms']:8.2f} ms)", flush=True)
    run_context.finish(context, rows, a.json)
    print("| model | batch | threads | emotune ms | ONNX Runtime ms | ratio (ORT / emotune) | CPU-time ratio | emotune before (training graph) ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['graph_ms']:.2f} | {r['ort_ms']:.2f} | "
              f"**{r['ratio']:.2f}** | {r['cpu_ratio']:.2f} | {r['training_ms']:.2f} |")


if __name__ == "__main__":
    main()
