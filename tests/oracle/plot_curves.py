"""Renders docs/results/init-curves.png from the curve CSVs of `oracle_dump curve` (emotune) and
keras_curve.py (Keras): window cross-entropy and accuracy per 50 steps, for both initialisations,
with the class-prior entropy of the training labels as the line a learning run must cross.

    python plot_curves.py CURVE_DIR OUT.png
"""
import csv
import os
import sys

import numpy as np


def load(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main(curve_dir, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = np.fromfile(os.path.join(curve_dir, "train-labels.u8"), np.uint8)
    p = np.bincount(labels, minlength=7) / len(labels)
    prior_h = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    styles = {("emotune", "keras"): ("tab:red", "-"), ("keras", "keras"): ("tab:red", "--"),
              ("emotune", "torch"): ("tab:blue", "-"), ("keras", "torch"): ("tab:blue", "--")}
    for (fw, init), (color, ls) in styles.items():
        path = os.path.join(curve_dir, f"{fw}-{init}.csv")
        if not os.path.exists(path):
            continue
        rows = load(path)
        if not rows:
            continue
        s = [int(r["step"]) for r in rows]
        label = f"{'emotune' if fw == 'emotune' else 'Keras'}, {'glorot (Keras default)' if init == 'keras' else 'PyTorch-style'} init"
        a1.plot(s, [float(r["train_ce"]) for r in rows], color=color, ls=ls, label=label)
        a2.plot(s, [100 * float(r["train_acc"]) for r in rows], color=color, ls=ls, label=label)
    a1.axhline(prior_h, color="gray", lw=0.8)
    a1.text(a1.get_xlim()[0], prior_h, f" class-prior entropy {prior_h:.3f}", va="bottom", color="gray", fontsize=8)
    a2.axhline(100 * p.max(), color="gray", lw=0.8)
    a2.text(a2.get_xlim()[0], 100 * p.max(), f" majority class {100 * p.max():.1f}%", va="bottom", color="gray", fontsize=8)
    a1.set(xlabel="step (batch 16)", ylabel="train cross-entropy, mean over 50 steps", ylim=(1.6, 4.8))
    a2.set(xlabel="step (batch 16)", ylabel="train accuracy over 50 steps (%)")
    a1.legend(fontsize=8)
    fig.suptitle("paper network, the seed's recipe (Adam 1e-4, batch 16, dropout on), FER-2013 Training; identical initial weights per init")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print(f"wrote {out_png}; class-prior entropy {prior_h:.4f}, majority {p.max():.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
