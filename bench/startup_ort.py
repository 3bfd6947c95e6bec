#!/usr/bin/env python3
"""The Python + ONNX Runtime side of bench/startup.py: the job of
`emotune predict --no-detect --model M IMAGE` done the way docs/onnx.md shows, as one process.

  startup_ort.py MODEL.onnx IMAGE

Decodes the image with Pillow (grey, resized to the model's side when it is not already),
preprocesses it with the model's `preprocess` metadata, runs ONNX Runtime (CPU provider, default
threads) and prints the top class and the probabilities, as predict's table does.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def main():
    model, image = sys.argv[1], sys.argv[2]
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    pre, classes = json.loads(meta["preprocess"]), json.loads(meta["classes"])
    s = pre["size"]
    img = Image.open(image).convert("L")
    if img.size != (s, s):
        img = img.resize((s, s), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32)
    x = (x * np.float32(pre["scale"]) - np.float32(pre["mean"])) / np.float32(pre["std"])
    p = sess.run(["probabilities"], {"input": x.reshape(1, 1, s, s)})[0][0]
    top = int(p.argmax())
    print(f"{image}: {classes[top]} {p[top]:.3f}")
    print("  ".join(f"{c} {v:.3f}" for c, v in zip(classes, p)))


if __name__ == "__main__":
    main()
