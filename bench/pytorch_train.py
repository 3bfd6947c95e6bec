#!/usr/bin/env python3
"""PyTorch baseline for training speed and accuracy: the same network and recipe as an emotune
config (configs/*.json: arch, epochs, batch_size, optimizer, lr, schedule, no augmentation
beyond flip/crop when asked), on the same data (the packed FER-2013 file), reporting PublicTest
accuracy per epoch and wall time. Runs on the lent GPU machine beside emotune's own runs.
    python3 bench/pytorch_train.py --config configs/paper-seed.json --data PATH.u8.xz --out DIR
"""
import argparse, json, lzma, math, os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_train_step import paper, vgg

def load_packed(path):
    raw = np.frombuffer(lzma.decompress(open(path, "rb").read()), dtype=np.uint8).reshape(-1, 2306)
    return raw[:, 0].astype(np.int64), raw[:, 1], raw[:, 2:].reshape(-1, 1, 48, 48)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=0)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    epochs = a.epochs or cfg.get("epochs", 30)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.get("seed", 1))
    dev = torch.device("cuda")
    y, usage, x = load_packed(a.data)
    xt = torch.tensor(x[usage == 0], device=dev).float() / 255
    yt = torch.tensor(y[usage == 0], device=dev)
    xv = torch.tensor(x[usage == 1], device=dev).float() / 255
    yv = torch.tensor(y[usage == 1], device=dev)
    net = (paper if cfg.get("arch", "paper") == "paper" else vgg)().to(dev)
    lr, bs = cfg.get("lr", 1e-3), cfg.get("batch_size", 64)
    if cfg.get("optimizer", "adam") == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.get("momentum", 0.9),
                              nesterov=cfg.get("nesterov", False), weight_decay=cfg.get("weight_decay", 0))
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr, eps=cfg.get("eps", 1e-7))
    cosine = cfg.get("schedule") == "cosine"
    aug = cfg.get("augment", "none") != "none"
    l2 = net[-4].weight if cfg.get("arch", "paper") == "paper" else None
    os.makedirs(a.out, exist_ok=True)
    log = []
    t_start = time.time()
    for epoch in range(epochs):
        if cosine:
            for g in opt.param_groups:
                g["lr"] = 0.5 * lr * (1 + math.cos(math.pi * epoch / epochs))
        net.train()
        perm = torch.randperm(len(yt), device=dev)
        for i in range(0, len(perm) - bs + 1, bs):
            idx = perm[i:i + bs]
            xb = xt[idx]
            if aug:  # flip and pad-4 crop, the cheap part of our augmentation
                flip = torch.rand(len(idx), device=dev) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                xb = F.pad(xb, (4, 4, 4, 4), mode="replicate")
                dx, dy = np.random.randint(0, 9, 2)
                xb = xb[:, :, dy:dy + 48, dx:dx + 48]
            loss = F.cross_entropy(net(xb), yt[idx], label_smoothing=cfg.get("label_smoothing", 0.0))
            if l2 is not None:
                loss = loss + 0.001 * (l2 * l2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(xv[i:i + 512]).argmax(1) for i in range(0, len(yv), 512)])
            acc = (pred == yv).float().mean().item()
        log.append({"epoch": epoch + 1, "val_acc": acc, "seconds": time.time() - t_start})
        print(json.dumps(log[-1]), flush=True)
    summary = {"config": a.config, "epochs": epochs, "best_val_acc": max(r["val_acc"] for r in log),
               "final_val_acc": log[-1]["val_acc"], "wall_seconds": time.time() - t_start,
               "torch": torch.__version__, "device": torch.cuda.get_device_name(), "log": log}
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), indent=1)

if __name__ == "__main__":
    main()
