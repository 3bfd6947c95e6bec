#!/usr/bin/env python3
"""OpenVINO's side of bench/vs_openvino.py: one exported ONNX model, one batch size, one thread
count, timed as bench_forward times emotune (random inputs in [0, 1), warm-up calls, then the
median and minimum wall time of --iters synchronous inferences). Prints one JSON line.

  ov_forward.py MODEL.onnx --batch 1 --threads 1 [--iters 30] [--warmup 5] [--precision default|f32]

Compiled for "CPU" with INFERENCE_NUM_THREADS = --threads, one stream, the LATENCY hint; --precision
default leaves INFERENCE_PRECISION_HINT as OpenVINO chooses it (bf16 on CPUs with AMX or
AVX512-BF16: what a user who installs it gets), f32 sets it to f32. The precision OpenVINO ran is
read back from the compiled model and printed.
"""
import argparse
import json
import time

import numpy as np
import openvino as ov

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--iters", type=int, default=30)
ap.add_argument("--warmup", type=int, default=5)
ap.add_argument("--precision", default="default", choices=["default", "f32"])
a = ap.parse_args()

core = ov.Core()
model = core.read_model(a.model)
model.reshape([a.batch, 1, 48, 48])
config = {"INFERENCE_NUM_THREADS": a.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
if a.precision == "f32":
    config["INFERENCE_PRECISION_HINT"] = "f32"
compiled = core.compile_model(model, "CPU", config)
req = compiled.create_infer_request()
x = np.random.default_rng(1).random((a.batch, 1, 48, 48), dtype=np.float32)
for _ in range(a.warmup):
    req.infer({0: x})
ms = []
cpu0 = time.process_time()
for _ in range(a.iters):
    t = time.perf_counter()
    req.infer({0: x})
    ms.append((time.perf_counter() - t) * 1e3)
cpu_ms = (time.process_time() - cpu0) * 1e3 / a.iters
ms.sort()
print(json.dumps({"engine": "openvino", "version": ov.__version__, "model": a.model, "batch": a.batch,
                  "threads": a.threads, "precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
                  "iters": a.iters, "median_ms": ms[len(ms) // 2], "min_ms": ms[0], "cpu_ms": cpu_ms}))
