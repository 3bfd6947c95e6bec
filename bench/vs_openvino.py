#!/usr/bin/env python3
"""emotune vs OpenVINO and the newest ONNX Runtime on the CPU, same exported model, same run
(issue 23, point 4).

  bench/vs_openvino.py [--build build-nocuda] [--models paper,vgg] [--batches 1,64] [--threads 1,2]
                       [--rounds 2] [--json out.json]

Per cell, in rounds that alternate the engines: emotune's inference graph at --precision auto
(bench_forward; bf16 where the CPU has AVX512-BF16 or AMX) against OpenVINO at its default
precision (bench/ov_forward.py: bf16 on such CPUs), then emotune fp32 against OpenVINO with an f32
precision hint and against ONNX Runtime (bench/ort_forward.py) at the release this script pins,
the newest (tests/onnx/run.sh keeps 1.20 for the parity check). Medians of each run's calls; a
cell reports the median over rounds. Ratios are the peer's ms / emotune's ms: >= 1 means emotune
is at least as fast.

OpenVINO and ONNX Runtime come from PyPI into their own venv (EMOTUNE_OPENVINO_VENV, else
~/.cache/emotune/openvino-venv), made here when absent or holding other pins.
"""
import os
import statistics

import run_context
from run_context import run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQS = "openvino==2026.4.0 onnxruntime==1.32.0 numpy==2.4.6"


def main():
    a = run_context.inference_args(__doc__, rounds=2).parse_args()
    os.chdir(ROOT)
    emotune, bench = run_context.built(a.build, "vs_openvino", "emotune", "bench_forward")
    py = run_context.venv_python(REQS, "EMOTUNE_OPENVINO_VENV", "openvino-venv")
    context = run_context.start(emotune, ROOT)
    rows = []
    for model, src, onnx, batch, threads, common in run_context.inference_cells(emotune, a):
        res = {k: [] for k in ("auto", "ov", "fp32", "ov_f32", "ort")}
        ov_precision = ""
        for _ in range(a.rounds):
            res["auto"].append(run_json([bench, "--model", src, "--precision", "auto"] + common)["median_ms"])
            o = run_json([py, "bench/ov_forward.py", onnx] + common)
            ov_precision = o["precision"]
            res["ov"].append(o["median_ms"])
            res["fp32"].append(run_json([bench, "--model", src] + common)["median_ms"])
            res["ov_f32"].append(run_json([py, "bench/ov_forward.py", onnx, "--precision", "f32"] + common)["median_ms"])
            res["ort"].append(run_json([py, "bench/ort_forward.py", onnx] + common)["median_ms"])
        row = {"model": model, "batch": batch, "threads": threads, "ov_default_precision": ov_precision,
               **{k + "_ms": statistics.median(v) for k, v in res.items()}, "rounds": res}
        rows.append(row)
        print(f"{model:5} batch {batch:3} threads {threads}: auto {row['auto_ms']:8.2f}  OV {row['ov_ms']:8.2f} "
              f"({ov_precision})  fp32 {row['fp32_ms']:8.2f}  OV f32 {row['ov_f32_ms']:8.2f}  "
              f"ORT {row['ort_ms']:8.2f} ms", flush=True)
    run_context.finish(context, rows, a.json)
    print("| model | batch | threads | emotune auto ms | OpenVINO default ms | OV / emotune | emotune fp32 ms "
          "| OpenVINO f32 ms | OV f32 / emotune fp32 | ONNX Runtime ms | ORT / emotune fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['auto_ms']:.2f} | {r['ov_ms']:.2f} "
              f"({r['ov_default_precision']}) | **{r['ov_ms'] / r['auto_ms']:.2f}** | {r['fp32_ms']:.2f} | "
              f"{r['ov_f32_ms']:.2f} | **{r['ov_f32_ms'] / r['fp32_ms']:.2f}** | {r['ort_ms']:.2f} | "
              f"**{r['ort_ms'] / r['fp32_ms']:.2f}** |")


if __name__ == "__main__":
    main()
