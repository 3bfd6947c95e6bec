#!/usr/bin/env python3
"""Markdown table of one training step, emotune vs PyTorch, from the two files one GPU session wrote:
    scripts/bench_train_table.py train_step.json pytorch_train_step.json
train_step.json: bench_train_step --benchmark_out (Google Benchmark JSON, manual time);
pytorch_train_step.json: bench/pytorch_train_step.py --out. Ratio = PyTorch time / ours (> 1: ours faster)."""
import json, re, sys

def main():
    ours_doc = json.load(open(sys.argv[1]))
    theirs = {(r["name"].split("/")[1], r["batch"]): r for r in json.load(open(sys.argv[2]))}
    ctx = ours_doc["context"]
    any_torch = next(iter(theirs.values()))
    print(f"- Device: {any_torch['device']}; date {ctx.get('emotune_date', ctx.get('date', '?'))}; PyTorch {any_torch['torch']}, cuDNN {any_torch['cudnn']}")
    print("- Step: forward, softmax cross-entropy (+ the paper's L2 on dense1), backward, SGD Nesterov update; fp32, TF32 off on both sides")
    print("- Timing: emotune the mean of manually timed steps (Google Benchmark), PyTorch the median step; both after warm-up and synchronised after every step\n")
    print("| network | batch | emotune ms | emotune img/s | PyTorch ms | PyTorch img/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for b in ours_doc["benchmarks"]:
        m = re.match(r"train_step/(\w+)/cuda/(\d+)", b["name"])
        if not m or b.get("error_occurred"):
            continue
        arch, batch = m.group(1), int(m.group(2))
        t = theirs.get((arch, batch))
        if not t:
            continue
        ms = b["real_time"] if b.get("time_unit") == "ms" else b["real_time"] / 1e6
        print(f"| {arch} | {batch} | {ms:.2f} | {batch / ms * 1000:,.0f} | {t['ms']:.2f} | {t['img_per_s']:,.0f} | {t['ms'] / ms:.2f} |")

if __name__ == "__main__":
    main()
