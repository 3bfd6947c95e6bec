#!/usr/bin/env python3
"""TensorFlow/Keras' side of bench/vs_tensorflow_train.py: one training step of the same network
(tests/oracle/keras_oracle.py builds it layer for layer: Keras' own ReLU, pooling and Dropout),
timed as bench_train_cpu times emotune's: random inputs, warm-up steps, then the median wall time
of --iters steps of a compiled tf.function (forward with dropout, sparse cross-entropy + L2,
backward, Adam 1e-4). One JSON line.

  tf_train_step.py --arch paper --batch 16 --threads 1 [--iters 10] [--warmup 2]
                   [--precision float32|mixed_bfloat16]

mixed_bfloat16 is Keras' mixed-precision policy (bf16 compute, fp32 variables), the counterpart of
emotune's --precision bf16; the logits are cast to float32 before the loss, as Keras' guide says
and as emotune keeps softmax and loss in fp32.

Threads: intra-op = --threads, inter-op 1 (set before TensorFlow starts its pools).
"""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--arch", default="paper")
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--iters", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
a = ap.parse_args()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras  # noqa: E402

keras.mixed_precision.set_global_policy(a.precision)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
from keras_oracle import build  # noqa: E402

layers, _ = build(a.arch, mask_dropout=False)
tail = [keras.layers.Activation("linear", dtype="float32")] if a.precision != "float32" else []
model = keras.Sequential([keras.Input((48, 48, 1))] + layers + tail)
opt = keras.optimizers.Adam(1e-4)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
rng = np.random.default_rng(1)
x = tf.constant(rng.random((a.batch, 48, 48, 1), dtype=np.float32))
y = tf.constant(np.arange(a.batch) % 7)


@tf.function
def step():
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = loss_fn(y, logits) + tf.add_n(model.losses) if model.losses else loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for _ in range(a.warmup):
    step().numpy()
ms = []
for _ in range(a.iters):
    t = time.perf_counter()
    step().numpy()
    ms.append((time.perf_counter() - t) * 1e3)
ms.sort()
med = ms[len(ms) // 2]
print(json.dumps({"engine": "tensorflow", "version": tf.__version__, "arch": a.arch, "batch": a.batch,
                  "threads": a.threads, "precision": a.precision, "iters": a.iters, "median_ms": med, "img_per_s": a.batch * 1e3 / med}))
