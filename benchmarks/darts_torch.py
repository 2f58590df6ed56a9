#!/usr/bin/python3
"""PyTorch reference for `dptrain search` (benchmarks/bench_search.sh): the
DARTS supernet (Liu et al. 2019, the quark0/darts search space) searched with
the first-order bilevel loop, timed per step at a fixed number of threads.

The supernet: stem conv 3x3 (in -> 3C, no bias) + BN (affine); `layers` cells,
reductions (C doubled, stride 2 on the edges from the cell inputs) at
layers//3 and 2*layers//3; each cell preprocesses its two inputs to C
channels (ReLU-conv1x1-BN, or FactorizedReduce after a reduction cell), has 4
nodes fed by 14 mixed edges and outputs the concat of the 4 nodes (4C);
global average pool; linear. A mixed edge is sum_k softmax(alpha)_k op_k(x)
over none, max_pool_3x3, avg_pool_3x3 (count_include_pad=False),
skip_connect (identity, FactorizedReduce at stride 2), sep_conv_3x3/5x5,
dil_conv_3x3/5x5; the pools are followed by BN; every BN outside the stem
is affine=False. alpha: normal and reduce, [14, 8] each, 1e-3 * randn.

One step (first order, as DARTS' --unrolled off):
  alpha step   on a batch of the held-out half: loss.backward() (this also
               computes the weights' gradients, as the reference does; they
               are discarded), Adam(lr 3e-4, betas (0.5, 0.999), wd 1e-3)
  weight step  on a batch of the training half: SGD(momentum 0.9, wd 3e-4,
               lr 0.025 cosine to 0.001 over the run's steps), grad-norm
               clip 5
The networks stay in train mode (batch statistics) throughout, as DARTS.

Prints one line
  torch_search: layers=L channels=C batch=B params=P train_images_per_s=X peak_rss_mb=M step_s=S
where step_s is the median time of one timed step (alpha step + weight step)
and train_images_per_s = batch / step_s counts the weight-step batch only
(the alpha step's batch is extra work). peak_rss_mb is ru_maxrss of this
process. --csv FILE appends the same figures and more (mean step time, the
alpha/weight split) as a row, with a header when the file is new.

Run with Debian's interpreter (/usr/bin/python3). The thread count is put
into OPENBLAS/OMP/MKL_NUM_THREADS before torch is imported (Debian's torch
calls OpenBLAS, which torch.set_num_threads does not limit).

Parameter counts (alpha excluded, --params-only): --in-channels 3 --channels
16 --layers 8 -> 1,930,618 (DARTS' CIFAR-10 search, "param size 1.93 MB");
1 channel, --channels 8 --layers 5 -> 393,778.
"""
import argparse
import gzip
import math
import os
import resource
import statistics
import struct
import sys
import time

PRIMITIVES = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
              "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
STEPS, MULTIPLIER, STEM_MULTIPLIER, EDGES = 4, 4, 3, 14
MEAN, STD = 0.2860, 0.3530


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64, help="per step, for each of the two batches")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                     help="directory of the Fashion-MNIST IDX .gz files (default %(default)s)")
    src.add_argument("--synthetic", action="store_true", help="random images and labels instead")
    ap.add_argument("--limit", type=int, default=0,
                    help="use the first N training images (0 = all); first half trains, second half is held out")
    ap.add_argument("--in-channels", type=int, default=1, help="image channels (synthetic / --params-only)")
    ap.add_argument("--image-size", type=int, default=28, help="synthetic image side")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.025)
    ap.add_argument("--lr-min", type=float, default=0.001)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=3e-4)
    ap.add_argument("--grad-clip", type=float, default=5.0)
    ap.add_argument("--arch-lr", type=float, default=3e-4)
    ap.add_argument("--arch-weight-decay", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--params-only", action="store_true", help="print the parameter count (alpha excluded) and exit")
    ap.add_argument("--csv", help="append a row to this CSV file")
    a = ap.parse_args()
    for k in ("layers", "channels", "batch", "in_channels", "image_size", "classes", "threads"):
        if getattr(a, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1")
    if a.steps < 1 or a.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if a.layers < 3:
        ap.error("--layers must be >= 3 (two reduction cells at layers//3 and 2*layers//3)")
    return a


a = parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(a.threads)

import numpy as np  # noqa: E402  (after the thread variables)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------- primitives

def bn(c, affine=False):
    return nn.BatchNorm2d(c, affine=affine)


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, k, stride, pad, bias=False), bn(cout))


class DilConv(nn.Sequential):
    """ReLU, depthwise k x k dilated conv, pointwise conv, BN."""
    def __init__(self, cin, cout, k, stride, pad, dil):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cin, k, stride, pad, dilation=dil, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), bn(cout))


class SepConv(nn.Sequential):
    """Two (ReLU, depthwise k x k, pointwise, BN) blocks; only the first strides."""
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cin, k, stride, pad, groups=cin, bias=False),
                         nn.Conv2d(cin, cin, 1, bias=False), bn(cin),
                         nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cin, k, 1, pad, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), bn(cout))


class FactorizedReduce(nn.Module):
    """ReLU, then two stride-2 1x1 convs (to cout/2 each), the second on the
    input shifted by one pixel, concatenated; BN."""
    def __init__(self, cin, cout):
        super().__init__()
        assert cout % 2 == 0
        self.a = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.b = nn.Conv2d(cin, cout // 2, 1, 2, bias=False)
        self.bn = bn(cout)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


def make_op(name, c, stride):
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), bn(c))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False), bn(c))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2)
    raise ValueError(name)


# ------------------------------------------------------------------ supernet

class MixedEdge(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.ops = nn.ModuleList(make_op(p, c, stride) for p in PRIMITIVES)

    def forward(self, x, w):  # w: [8] mixing weights of this edge
        return sum(w[k] * op(x) for k, op in enumerate(self.ops))


class SearchCell(nn.Module):
    def __init__(self, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        # node i reads states 0 .. i+1; edges from the two cell inputs stride in a reduction cell
        self.edges = nn.ModuleList(MixedEdge(c, 2 if reduction and j < 2 else 1)
                                   for i in range(STEPS) for j in range(2 + i))

    def forward(self, s0, s1, weights):  # weights: [14, 8]
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(STEPS):
            node = sum(self.edges[e + j](h, weights[e + j]) for j, h in enumerate(states))
            e += len(states)
            states.append(node)
        return torch.cat(states[-MULTIPLIER:], dim=1)


class Supernet(nn.Module):
    def __init__(self, in_ch, c, layers, classes):
        super().__init__()
        cs = STEM_MULTIPLIER * c
        self.stem = nn.Sequential(nn.Conv2d(in_ch, cs, 3, padding=1, bias=False), bn(cs, affine=True))
        c_pp, c_p, cur = cs, cs, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                cur *= 2
            self.cells.append(SearchCell(c_pp, c_p, cur, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, MULTIPLIER * cur
        self.classifier = nn.Linear(c_p, classes)
        # architecture parameters: plain tensors, not registered, so never in parameters()
        self.alpha_normal = (1e-3 * torch.randn(EDGES, len(PRIMITIVES))).requires_grad_()
        self.alpha_reduce = (1e-3 * torch.randn(EDGES, len(PRIMITIVES))).requires_grad_()

    def arch_parameters(self):
        return [self.alpha_normal, self.alpha_reduce]

    def forward(self, x):
        wn = F.softmax(self.alpha_normal, dim=-1)
        wr = F.softmax(self.alpha_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, wr if cell.reduction else wn)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


# ---------------------------------------------------------------------- data

def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_train(a):
    """uint8 images [N, ch, H, W] and int64 labels of the training split (first
    --limit of them). Kept as bytes; batches are normalised when drawn."""
    if a.synthetic:
        n = a.limit or 2 * a.batch * (a.steps + a.warmup)
        g = torch.Generator().manual_seed(a.seed + 1)
        x = torch.randint(0, 256, (n, a.in_channels, a.image_size, a.image_size), dtype=torch.uint8, generator=g)
        return x, torch.randint(0, a.classes, (n,), generator=g)
    paths = [os.path.join(a.data, f) for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")]
    for p in paths:
        if not os.path.isfile(p):
            sys.exit(f"darts_torch: {p} not found (--data DIR holds the Fashion-MNIST IDX .gz files; or --synthetic)")
    x, y = read_idx(paths[0]), read_idx(paths[1])
    if len(x) != len(y):
        sys.exit(f"darts_torch: {len(x)} images but {len(y)} labels under {a.data}")
    if a.limit:
        x, y = x[:a.limit], y[:a.limit]
    if a.in_channels != 1:
        sys.exit("darts_torch: Fashion-MNIST has one channel (--in-channels 1, or --synthetic)")
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


class Queue:
    """Endless random batches from a subset of indices (a fresh permutation per
    pass, as SubsetRandomSampler), normalised to float when drawn."""
    def __init__(self, x, y, idx, batch, gen):
        self.x, self.y, self.idx, self.batch, self.gen = x, y, idx, batch, gen
        self.perm, self.pos = None, len(idx)

    def next(self):
        if self.pos + self.batch > len(self.idx):  # drop the last partial batch
            self.perm, self.pos = self.idx[torch.randperm(len(self.idx), generator=self.gen)], 0
        b = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        xb = (self.x[b].float().div_(255.0) - MEAN) / STD
        return xb.contiguous(), self.y[b]


# ---------------------------------------------------------------------- main

def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main():
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    torch.manual_seed(a.seed)
    net = Supernet(a.in_channels, a.channels, a.layers, a.classes)
    nparams = sum(p.numel() for p in net.parameters())
    if a.params_only:
        print(f"torch_search: layers={a.layers} channels={a.channels} in_channels={a.in_channels} "
              f"classes={a.classes} params={nparams}")
        return

    x, y = load_train(a)
    half = len(x) // 2
    if half < a.batch:
        sys.exit(f"darts_torch: {len(x)} training images give halves of {half}, fewer than one batch of {a.batch}")
    gen = torch.Generator().manual_seed(a.seed)
    train_q = Queue(x, y, torch.arange(0, half), a.batch, gen)          # weights
    valid_q = Queue(x, y, torch.arange(half, 2 * half), a.batch, gen)   # alpha

    w_opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=a.arch_lr, betas=(0.5, 0.999),
                             weight_decay=a.arch_weight_decay)
    total = a.warmup + a.steps
    net.train()
    t_step, t_alpha, t_weight = [], [], []
    for step in range(total):
        w_opt.param_groups[0]["lr"] = a.lr_min + (a.lr - a.lr_min) * (1 + math.cos(math.pi * step / total)) / 2
        xt, yt = train_q.next()
        xv, yv = valid_q.next()
        t0 = time.perf_counter()
        # alpha step on the held-out batch (first order: d L_val / d alpha at the current weights)
        a_opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xv), yv).backward()
        a_opt.step()
        t1 = time.perf_counter()
        # weight step on the training batch
        w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), a.grad_clip)
        w_opt.step()
        t2 = time.perf_counter()
        if not math.isfinite(loss.item()):
            sys.exit(f"darts_torch: loss is {loss.item()} at step {step}")
        if step >= a.warmup:
            t_step.append(t2 - t0)
            t_alpha.append(t1 - t0)
            t_weight.append(t2 - t1)
        print(f"step {step + 1}/{total}{'' if step >= a.warmup else ' (warmup)'}: alpha_s={t1 - t0:.3f} "
              f"weight_s={t2 - t1:.3f} loss={loss.item():.4f} rss_mb={peak_rss_mb():.0f}",
              file=sys.stderr, flush=True)

    med = statistics.median(t_step)
    ips = a.batch / med
    rss = peak_rss_mb()
    print(f"torch_search: layers={a.layers} channels={a.channels} batch={a.batch} params={nparams} "
          f"train_images_per_s={ips:.3f} peak_rss_mb={rss:.0f} step_s={med:.3f}", flush=True)
    if a.csv:
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, "a") as f:
            if new:
                f.write("layers,channels,batch,threads,source,params,steps,warmup,train_images_per_s,"
                        "step_s_median,step_s_mean,step_s_min,step_s_max,alpha_s_median,weight_s_median,"
                        "peak_rss_mb\n")
            f.write(f"{a.layers},{a.channels},{a.batch},{a.threads},{'synthetic' if a.synthetic else 'fashion-mnist'},"
                    f"{nparams},{a.steps},{a.warmup},{ips:.4f},{med:.4f},{statistics.mean(t_step):.4f},"
                    f"{min(t_step):.4f},{max(t_step):.4f},{statistics.median(t_alpha):.4f},"
                    f"{statistics.median(t_weight):.4f},{rss:.1f}\n")


if __name__ == "__main__":
    main()
