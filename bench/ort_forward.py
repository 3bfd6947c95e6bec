#!/usr/bin/env python3
"""ONNX Runtime's side of bench/vs_onnxruntime.py: one exported model, one batch size, one thread
count, timed exactly as bench_forward times emotune (random inputs in [0, 1), warm-up calls, then
the median and minimum wall time of --iters calls of session.run). Prints one JSON line.

  ort_forward.py MODEL.onnx --batch 1 --threads 1 [--iters 30] [--warmup 5]

Session: CPU execution provider, intra-op threads = --threads, inter-op 1, sequential execution,
every graph optimisation on (ORT's default: BatchNorm folding, Conv+ReLU fusion, NCHWc layout).
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--iters", type=int, default=30)
ap.add_argument("--warmup", type=int, default=5)
a = ap.parse_args()

so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
x = np.random.default_rng(1).random((a.batch, 1, 48, 48), dtype=np.float32)
for _ in range(a.warmup):
    sess.run(None, {name: x})
ms = []
cpu0 = time.process_time()  # all threads of the process
for _ in range(a.iters):
    t = time.perf_counter()
    sess.run(None, {name: x})
    ms.append((time.perf_counter() - t) * 1e3)
cpu_ms = (time.process_time() - cpu0) * 1e3 / a.iters
ms.sort()
print(json.dumps({"engine": "onnxruntime", "version": ort.__version__, "model": a.model, "batch": a.batch,
                  "threads": a.threads, "iters": a.iters, "median_ms": ms[len(ms) // 2], "min_ms": ms[0],
                  "cpu_ms": cpu_ms}))
