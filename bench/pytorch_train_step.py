#!/usr/bin/env python3
"""The baseline for bench_train_step: the same networks (paper, vgg) and the same step
(forward, softmax cross-entropy + the paper's L2 on dense1, backward, SGD Nesterov update) in
PyTorch with cuDNN, fp32, TF32 OFF (as ours). Prints JSON lines {name, batch, ms, img_per_s}.
Run where PyTorch and a GPU are (the lent device machine):
    python3 bench/pytorch_train_step.py --out pytorch_train_step.json
"""
import argparse, json, time
import torch
import torch.nn as nn

def paper(nc=7):
    def conv(i, o, pad): return [nn.Conv2d(i, o, 3, padding=pad), nn.ReLU()]
    return nn.Sequential(
        *conv(1, 64, 1), *conv(64, 64, 0), nn.BatchNorm2d(64, eps=1e-3, momentum=0.01), nn.MaxPool2d(2), nn.Dropout(0.3),
        *conv(64, 128, 1), *conv(128, 128, 1), nn.BatchNorm2d(128, eps=1e-3, momentum=0.01), nn.MaxPool2d(2), nn.Dropout(0.4),
        *conv(128, 256, 1), *conv(256, 256, 1), nn.BatchNorm2d(256, eps=1e-3, momentum=0.01), nn.MaxPool2d(2), nn.Dropout(0.4),
        *conv(256, 512, 1), nn.BatchNorm2d(512, eps=1e-3, momentum=0.01), nn.MaxPool2d(2), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(2048, 1024), nn.ReLU(), nn.Dropout(0.6), nn.Linear(1024, nc))

def vgg(nc=7):
    layers, i = [], 1
    for w, d in zip([64, 128, 256, 384], [0.1, 0.2, 0.3, 0.4]):
        for _ in range(2):
            layers += [nn.Conv2d(i, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            i = w
        layers += [nn.MaxPool2d(2), nn.Dropout(d)]
    layers += [nn.Flatten(), nn.Linear(384 * 9, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, nc)]
    return nn.Sequential(*layers)

def bench(name, make, batch, seconds):
    dev = torch.device("cuda")
    net = make().to(dev).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.rand(batch, 1, 48, 48, device=dev)
    y = torch.arange(batch, device=dev) % 7
    l2 = net[-4].weight if name == "paper" else None  # paper: dense1 kernel
    def step():
        loss = nn.functional.cross_entropy(net(x), y)
        if l2 is not None:
            loss = loss + 0.001 * (l2 * l2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    ms = 1000 * times[len(times) // 2]
    return {"name": f"pytorch/{name}", "batch": batch, "ms": ms, "img_per_s": batch / ms * 1000,
            "steps": len(times), "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
            "device": torch.cuda.get_device_name()}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="pytorch_train_step.json")
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    rows = []
    for name, make in [("paper", paper), ("vgg", vgg)]:
        for batch in (16, 64, 128):
            r = bench(name, make, batch, a.seconds)
            print(json.dumps(r), flush=True)
            rows.append(r)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)

if __name__ == "__main__":
    main()
