#!/usr/bin/env python3
"""emotune vs TensorFlow/Keras training on the CPU, same network, same run (issue 16 point 5).

  bench/vs_tensorflow_train.py [--build build-nocuda] [--archs paper,vgg] [--batches 16,64]
                               [--threads 1,2] [--rounds 3] [--json out.json] [--precision fp32|bf16]

Per cell, in rounds that alternate the engines: bench_train_cpu (emotune: forward with dropout,
cross-entropy + L2, backward, Adam) with its default convolutions, the same with
EMOTUNE_TRAIN_CONV=im2col (the path before Winograd, as the in-run baseline), and
bench/tf_train_step.py (Keras 3 on TensorFlow-CPU, the network built by tests/oracle). Each entry is
the median step time of its run; a cell reports the median over rounds, as images/s.
ratio = emotune img/s / TensorFlow img/s: >= 1 means emotune trains at least as fast.
--precision bf16 (issue 23): emotune --precision bf16 (its default bf16 kernel: AMX where present)
against Keras' mixed_bfloat16 policy, and emotune fp32 as the in-run baseline instead of im2col.

TensorFlow comes from PyPI into the Keras oracle's venv (build/oracle-venv, ORACLE_VENV overrides
the path), which this script makes when it is missing or holds other pins, with the pins of
tests/oracle/run.sh (its PIP_PKGS line), as that script does.
"""
import argparse
import os
import statistics
import subprocess
import sys

import run_context
from run_context import run_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_venv(venv):
    """The oracle's venv with tests/oracle/run.sh's pins, made (or remade) here if needed."""
    pins = None
    with open(os.path.join(ROOT, "tests", "oracle", "run.sh")) as f:
        for line in f:
            if line.startswith("PIP_PKGS="):
                pins = line.split("=", 1)[1].strip().strip('"')
    if not pins:
        sys.exit("vs_tensorflow_train: no PIP_PKGS line in tests/oracle/run.sh")
    marker = os.path.join(venv, ".oracle-ready")
    ready = os.path.exists(marker) and open(marker).read().strip() == pins
    if not ready:
        print(f"vs_tensorflow_train: making {venv} ({pins}, from PyPI)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                        *pins.split()], check=True)
        with open(marker, "w") as f:
            f.write(pins + "\n")
    return os.path.join(venv, "bin", "python")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-nocuda")
    ap.add_argument("--archs", default="paper,vgg")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--json")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    os.chdir(ROOT)
    bench = os.path.join(a.build, "bin", "bench_train_cpu")
    if not os.access(bench, os.X_OK):
        sys.exit(f"vs_tensorflow_train: {bench} not built (cmake -DEMOTUNE_BUILD_BENCH=ON, target bench_train_cpu)")
    venv = os.environ.get("ORACLE_VENV", "build/oracle-venv")
    py = ensure_venv(venv)
    emotune = os.path.join(a.build, "bin", "emotune")
    context = run_context.start(emotune, ROOT)
    im2col_env = dict(os.environ, EMOTUNE_TRAIN_CONV="im2col")
    rows = []
    for arch in a.archs.split(","):
        for batch in map(int, a.batches.split(",")):
            for threads in map(int, a.threads.split(",")):
                common = ["--arch", arch, "--batch", str(batch), "--threads", str(threads), "--iters", str(a.iters)]
                res = {"emotune": [], "im2col" if a.precision == "fp32" else "fp32": [], "tf": []}
                bf16 = a.precision == "bf16"
                for _ in range(a.rounds):
                    res["emotune"].append(run_json([bench] + common + ["--precision", a.precision])["img_per_s"])
                    res["tf"].append(run_json([py, "bench/tf_train_step.py"] + common + [
                        "--precision", "mixed_bfloat16" if bf16 else "float32"])["img_per_s"])
                    if bf16:
                        res["fp32"].append(run_json([bench] + common)["img_per_s"])
                    else:
                        res["im2col"].append(run_json([bench] + common, im2col_env)["img_per_s"])
                row = {"arch": arch, "batch": batch, "threads": threads, "precision": a.precision,
                       **{k + "_img_s": statistics.median(v) for k, v in res.items()}, "rounds": res}
                row["ratio"] = row["emotune_img_s"] / row["tf_img_s"]
                rows.append(row)
                base = "im2col" if a.precision == "fp32" else "fp32"
                print(f"{arch:5} batch {batch:3} threads {threads}: emotune {row['emotune_img_s']:7.1f} img/s  "
                      f"TF {row['tf_img_s']:7.1f}  ratio {row['ratio']:.2f}  ({base} {row[base + '_img_s']:7.1f})",
                      flush=True)
    run_context.finish(context, rows, a.json)
    if a.precision == "fp32":
        print("| network | batch | threads | emotune img/s | TensorFlow img/s | ratio (emotune / TF) | emotune, im2col only |")
    else:
        print("| network | batch | threads | emotune bf16 img/s | TensorFlow mixed_bfloat16 img/s | ratio (emotune / TF) "
              "| emotune fp32 img/s | emotune bf16 / fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|" + ("" if a.precision == "fp32" else "---:|"))
    for r in rows:
        if a.precision == "fp32":
            print(f"| {r['arch']} | {r['batch']} | {r['threads']} | {r['emotune_img_s']:.1f} | {r['tf_img_s']:.1f} | "
                  f"**{r['ratio']:.2f}** | {r['im2col_img_s']:.1f} |")
        else:
            print(f"| {r['arch']} | {r['batch']} | {r['threads']} | {r['emotune_img_s']:.1f} | {r['tf_img_s']:.1f} | "
                  f"**{r['ratio']:.2f}** | {r['fp32_img_s']:.1f} | {r['emotune_img_s'] / r['fp32_img_s']:.2f} |")


if __name__ == "__main__":
    main()
