#!/usr/bin/python3
"""PyTorch reference for benchmarks/compare_torch.sh and compare_ddp.sh: the
same network (mlp, cnn, resnet20 or a description FILE.json, built by
torch_check.py's interpreter of the description format), data, normalisation and optimizer as `dptrain train`, at one
thread per process. Under torchrun (WORLD_SIZE > 1) it trains with
DistributedDataParallel over gloo, batch per rank, DistributedSampler.

Prints one line: `final: epochs=E test_acc=A train_samples_per_s=R wall_s=W`
(training steps only in samples/s, evaluation excluded, as dptrain).
Run with Debian's interpreter (/usr/bin/python3) and OPENBLAS_NUM_THREADS=1:
torch.set_num_threads does not limit the OpenBLAS that torch calls here."""
import argparse
import gzip
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(root, split, limit):
    pre = "train" if split == "train" else "t10k"
    x = idx(f"{root}/{pre}-images-idx3-ubyte.gz")
    y = idx(f"{root}/{pre}-labels-idx1-ubyte.gz")
    if limit:
        x, y = x[:limit], y[:limit]
    x = (torch.from_numpy(x.astype(np.float32) / 255.0) - 0.2860) / 0.3530
    return x.unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


def lr_at(a, step, total):
    """dptrain's schedule (src/optim/schedule.c): warm-up base*(step+1)/warmup, then cosine over the rest."""
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    if a.schedule == "constant":
        return a.lr
    t, T = step - a.warmup, total - a.warmup
    if t >= T:
        return a.min_lr
    return a.min_lr + (a.lr - a.min_lr) * (1 + math.cos(math.pi * t / T)) / 2


def crop_flip(x, pad, fill):
    """torchvision's RandomCrop(size, padding=pad, fill) then RandomHorizontalFlip(0.5), per image."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), value=fill)
    out = torch.empty_like(x)
    oy = torch.randint(0, 2 * pad + 1, (n,))
    ox = torch.randint(0, 2 * pad + 1, (n,))
    flip = torch.rand(n) < 0.5
    for i in range(n):
        im = xp[i, :, oy[i]:oy[i] + h, ox[i]:ox[i] + w]
        out[i] = im.flip(-1) if flip[i] else im
    return out


def model(name):
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_check import Net, description
    desc, _ = description(name, {})
    return Net(desc, (1, 28, 28), 10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn", help="mlp | cnn | resnet20 | FILE.json")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idx", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--nesterov", action="store_true")
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    ap.add_argument("--warmup", type=int, default=0, help="linear warm-up steps, as dptrain's --warmup")
    ap.add_argument("--min-lr", type=float, default=0.0)
    ap.add_argument("--augment", action="store_true", help="RandomCrop(padding=--crop-pad) + RandomHorizontalFlip")
    ap.add_argument("--crop-pad", type=int, default=4)
    ap.add_argument("--log-epochs", action="store_true", help="print each epoch's test accuracy")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    t_start = time.perf_counter()
    xtr, ytr = load(a.idx, "train", a.limit)
    xte, yte = load(a.idx, "test", 0)
    net = model(a.model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum, nesterov=a.nesterov,
                          weight_decay=a.weight_decay)
    steps_per_epoch = -(-(len(xtr) // world) // a.batch)
    total = a.epochs * steps_per_epoch
    fill = (0.0 - 0.2860) / 0.3530  # a pixel of 0 after normalisation, as dptrain pads
    train_time, samples, step = 0.0, 0, 0
    for epoch in range(a.epochs):
        net.train()
        if world > 1:  # DistributedSampler's split: a shared permutation, every world-th index
            g = torch.Generator()
            g.manual_seed(a.seed + epoch)
            perm = torch.randperm(len(xtr), generator=g)[rank::world]
        else:
            perm = torch.randperm(len(xtr))
        for i in range(0, len(perm), a.batch):
            idx_b = perm[i:i + a.batch]
            xb, yb = xtr[idx_b], ytr[idx_b]
            t0 = time.perf_counter()
            if a.augment:
                xb = crop_flip(xb, a.crop_pad, fill)
            for g in opt.param_groups:
                g["lr"] = lr_at(a, step, total)
            step += 1
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            train_time += time.perf_counter() - t0
            samples += len(idx_b) * world
        net.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 500):
                correct += (net(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item()
        if a.log_epochs and rank == 0:
            print(f"epoch {epoch + 1}/{a.epochs} test_acc={correct / len(xte):.4f} "
                  f"wall_s={time.perf_counter() - t_start:.1f}", flush=True)
    if rank != 0:
        return
    print(f"final: ranks={world} epochs={a.epochs} test_acc={correct / len(xte):.4f} "
          f"train_samples_per_s={samples / train_time:.0f} wall_s={time.perf_counter() - t_start:.1f}", flush=True)


if __name__ == "__main__":
    main()
