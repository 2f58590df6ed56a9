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

PC-DARTS (Xu et al. 2020), as `dptrain search --partial-channels K
--edge-norm on|off` computes it (src/nas/supernet.c):
  partial channels K  every edge's ops are built on C/K channels and read the
                first C/K channels of their state; the other C - C/K channels
                bypass them (max-pooled 3x3 stride 2 pad 1 on the stride-2
                edges of a reduction cell, the size a stride-2 op gives;
                PC-DARTS' code pools 2x2, dptrain's 3x3 is matched here); the
                edge's output is channel_shuffle(cat(mixed op, bypass), K):
                channel j*K + g of the result is channel g*(C/K) + j of the
                concat (view [K, C/K], transpose).
  edge normalisation  node i = sum_j softmax(beta[node i's edges])_j edge_j;
                beta: normal and reduce, [14] each, 1e-3 * randn, stepped by
                the alpha optimizer. Default (auto): on iff K > 1, as dptrain.
The node is sum_j b_j shuffle(cat(mixed_j, bypass_j)) per edge, as the PC-DARTS
code writes it; dptrain computes the same function as
shuffle(cat(sum_j b_j mixed_j, sum_j b_j bypass_j)) (one shuffle per node),
which --fused-node selects here (--check-forms compares the two).

One step (first order, as DARTS' --unrolled off):
  alpha step   on a batch of the held-out half: loss.backward() (this also
               computes the weights' gradients, as the reference does; they
               are discarded), Adam(lr 3e-4, betas (0.5, 0.999), wd 1e-3)
  weight step  on a batch of the training half: SGD(momentum 0.9, wd 3e-4,
               lr 0.025 cosine to 0.001 over the run's steps), grad-norm
               clip 5
The networks stay in train mode (batch statistics) throughout, as DARTS.
(dptrain's alpha step differs: it computes no weight gradients and clips
alpha's gradient norm at 10, --arch-clip; README "Architecture search".)

--strategy gumbel is GDAS (Dong & Yang 2019) as `dptrain search --strategy
gumbel` computes it (src/nas/strategy_gumbel.c, supernet.c): its point is that
an edge costs one op, so only the sampled op is computed. Per edge
h = one_hot(argmax softmax((alpha + g) / tau)), exactly 0/1 in the forward,
softmax's gradient in the backward (straight-through); g is Gumbel noise
(-log(-log u), u as dptrain clamps it) drawn before every pass, alpha's and
the weights'; tau falls linearly 10 -> 0.1 over the run. The edge is
h_k op_k(x) for the sampled k (none: nothing). The other entries add nothing,
not even the "+ h_i" that GDAS' code adds for its gradient: dptrain's
weighted sum skips an op it does not compute, so h_i (i != k) gets no
gradient and alpha's gradient comes through h_k alone, as here. With partial
channels the sampled op runs on C/K channels and the bypass and edge
normalisation are as above.

--self-distill LAMBDA is SD-DARTS (Zhu et al. 2021) as dptrain computes it
(src/nas/distill.c): the weight step's loss gains
lambda T^2 KL(softmax(z_teacher / T) || softmax(z / T)) (batch mean; T:
--distill-temp, dptrain's default 1), the teacher being a copy of the
supernet (weights, alpha, beta) from the end of the previous epoch, run under
no_grad in train mode with the student's mixing (gumbel: the same noise and
tau, its own alpha). dptrain's first epoch has no teacher; from the second on
every weight step pays one teacher forward. This script has no epochs: it
snapshots the teacher once after the warm-up steps, so every timed step pays
that forward, as dptrain's second epoch does (bench_search.sh runs dptrain
two epochs with --self-distill and takes the second epoch's rate).

Prints one line
  torch_search: layers=L channels=C batch=B params=P train_images_per_s=X peak_rss_mb=M step_s=S
                partial_channels=K edge_norm=0|1 arch_params=A strategy=darts|gumbel self_distill=LAMBDA
where step_s is the median time of one timed step (alpha step + weight step)
and train_images_per_s = batch / step_s counts the weight-step batch only
(the alpha step's batch is extra work). peak_rss_mb is ru_maxrss of this
process. --csv FILE appends the same figures and more (mean step time, the
alpha/weight split) as a row, with a header when the file is new (a file
begun before the strategy/self_distill columns gets rows longer than its
header: start a new one).

Run with Debian's interpreter (/usr/bin/python3). The thread count is put
into OPENBLAS/OMP/MKL_NUM_THREADS before torch is imported (Debian's torch
calls OpenBLAS, which torch.set_num_threads does not limit).

Parameter counts (alpha excluded, --params-only): --in-channels 3 --channels
16 --layers 8 -> 1,930,618 (DARTS' CIFAR-10 search, "param size 1.93 MB");
1 channel, --channels 8 --layers 5 -> 393,778 (arch_params 224); with
--partial-channels 4 (C/K = 2 channels through the ops in the first cells)
-> 66,154 and arch_params 252 (alpha 224 + beta 28): "66154 weights + 252
alphas" in `dptrain search --partial-channels 4`'s first line
(tests/bench/darts_torch_pc.sh compares more sizes).
"""
import argparse
import copy
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
GUMBEL_TAU = (10.0, 0.1)  # dptrain's gumbel tau: linear from the first to the last step
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
    ap.add_argument("--partial-channels", type=int, default=1, metavar="K",
                    help="PC-DARTS: 1/K of each edge's channels go through the ops (default 1: DARTS)")
    ap.add_argument("--edge-norm", choices=("auto", "on", "off"), default="auto",
                    help="softmax(beta) weights each node's edges (auto: on iff K > 1, as dptrain)")
    ap.add_argument("--fused-node", action="store_true",
                    help="with K > 1: one shuffle per node over the beta-weighted sums (dptrain's form; "
                         "default: a shuffle per edge, the PC-DARTS code's form)")
    ap.add_argument("--strategy", choices=("darts", "gumbel"), default="darts",
                    help="mixing: darts (softmax(alpha), every op) or gumbel (GDAS: one sampled op per edge, "
                         "tau 10 -> 0.1)")
    ap.add_argument("--self-distill", type=float, default=0.0, metavar="LAMBDA",
                    help="SD-DARTS: the weight step adds LAMBDA T^2 KL(teacher || student), the teacher being "
                         "the supernet after the warm-up steps (default 0: off)")
    ap.add_argument("--distill-temp", type=float, default=1.0, metavar="T",
                    help="self-distillation temperature of both sides (default %(default)s, dptrain's)")
    ap.add_argument("--check-forms", action="store_true",
                    help="check that the per-edge and fused node forms give the same forward and gradients "
                         "on a few images, then exit")
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
    if not 1 <= a.partial_channels <= 64:
        ap.error(f"--partial-channels: {a.partial_channels} is out of range [1, 64]")
    if a.partial_channels > 1 and a.channels % (2 * a.partial_channels):
        ap.error(f"--partial-channels {a.partial_channels} needs --channels divisible by {2 * a.partial_channels} "
                 f"(C/K even: FactorizedReduce halves it); {a.channels} is not")
    if not (math.isfinite(a.self_distill) and a.self_distill >= 0):
        ap.error(f"--self-distill: {a.self_distill} must be >= 0")
    if not (math.isfinite(a.distill_temp) and a.distill_temp > 0):
        ap.error(f"--distill-temp: {a.distill_temp} must be > 0")
    a.edge_norm = a.partial_channels > 1 if a.edge_norm == "auto" else a.edge_norm == "on"
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

def channel_shuffle(x, groups):
    """ShuffleNet's / PC-DARTS': channel j*groups + g of the result is channel
    g*(C/groups) + j of x (dptrain's dp_channel_shuffle)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class MixedEdge(nn.Module):
    """sum_k w_k op_k(x); with K > 1 partial channels the ops (built on C/K
    channels) read x's first C/K channels and the rest bypass them."""
    def __init__(self, c, stride, k):
        super().__init__()
        self.k, self.stride = k, stride
        self.ops = nn.ModuleList(make_op(p, c // k, stride) for p in PRIMITIVES)

    def mixed(self, x, w, pick=None):
        """w: [8] mixing weights of this edge; x: the ops' channels. pick (gumbel):
        the sampled op, the only one computed; none is a constant zero (dptrain
        computes nothing for it, so neither x nor w gets a gradient from it)."""
        if pick is None:
            return sum(w[i] * op(x) for i, op in enumerate(self.ops))
        if PRIMITIVES[pick] == "none":
            return torch.zeros_like(x[:, :, ::self.stride, ::self.stride])
        return w[pick] * self.ops[pick](x)

    def split(self, x):
        """(the ops' C/K channels, the bypass at the ops' output size)"""
        cp = x.shape[1] // self.k
        rest = x[:, cp:]
        return x[:, :cp], F.max_pool2d(rest, 3, 2, 1) if self.stride == 2 else rest

    def forward(self, x, w, pick=None):
        if self.k == 1:
            return self.mixed(x, w, pick)
        xa, xb = self.split(x)
        return channel_shuffle(torch.cat([self.mixed(xa, w, pick), xb], dim=1), self.k)


class SearchCell(nn.Module):
    def __init__(self, c_pp, c_p, c, reduction, reduction_prev, k, fused):
        super().__init__()
        self.reduction, self.k, self.fused = reduction, k, fused and k > 1
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        # node i reads states 0 .. i+1; edges from the two cell inputs stride in a reduction cell
        self.edges = nn.ModuleList(MixedEdge(c, 2 if reduction and j < 2 else 1, k)
                                   for i in range(STEPS) for j in range(2 + i))

    def forward(self, s0, s1, weights, edge_w, picks=None):
        """weights: [14, 8]; edge_w: [14] or None; picks (gumbel): each edge's sampled op"""
        pk = picks or [None] * EDGES
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(STEPS):
            # b_j * t, or t itself without edge normalisation (DARTS computes no product there)
            bw = (lambda j, t: t) if edge_w is None else (lambda j, t, e=e: edge_w[e + j] * t)
            if self.fused:
                # dptrain's form: shuffle(cat(sum_j b_j mixed_j, sum_j b_j bypass_j))
                parts = [self.edges[e + j].split(h) for j, h in enumerate(states)]
                mixed = sum(bw(j, self.edges[e + j].mixed(xa, weights[e + j], pk[e + j]))
                            for j, (xa, _) in enumerate(parts))
                byp = sum(bw(j, xb) for j, (_, xb) in enumerate(parts))
                node = channel_shuffle(torch.cat([mixed, byp], dim=1), self.k)
            else:
                node = sum(bw(j, self.edges[e + j](h, weights[e + j], pk[e + j])) for j, h in enumerate(states))
            e += len(states)
            states.append(node)
        return torch.cat(states[-MULTIPLIER:], dim=1)


def edge_weights(beta):
    """[14]: softmax of beta over each node's incoming edges"""
    parts, e = [], 0
    for i in range(STEPS):
        parts.append(F.softmax(beta[e:e + 2 + i], dim=-1))
        e += 2 + i
    return torch.cat(parts)


class OneHotST(torch.autograd.Function):
    """One-hot of each row's argmax (ties: the first) forward, identity backward:
    GDAS' hard - soft.detach() + soft, but exactly 0 and 1 as dptrain's
    dp_onehot_st (the subtraction leaves h_k a rounding error away from 1)."""
    @staticmethod
    def forward(ctx, soft):
        return torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)

    @staticmethod
    def backward(ctx, grad):
        return grad


def gumbel_noise(gen):
    """[2, 14, 8] (normal, reduce): -log(-log u), u kept off 0 and 1 as dptrain's gumbel_draw"""
    u = torch.rand(2, EDGES, len(PRIMITIVES), generator=gen)
    return -torch.log(-torch.log(u * 0.999998 + 1e-6))


def gumbel_tau(progress):
    return GUMBEL_TAU[0] - (GUMBEL_TAU[0] - GUMBEL_TAU[1]) * progress


class Supernet(nn.Module):
    def __init__(self, in_ch, c, layers, classes, k=1, edge_norm=False, fused=False, strategy="darts"):
        super().__init__()
        self.strategy = strategy
        cs = STEM_MULTIPLIER * c
        self.stem = nn.Sequential(nn.Conv2d(in_ch, cs, 3, padding=1, bias=False), bn(cs, affine=True))
        c_pp, c_p, cur = cs, cs, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                cur *= 2
            self.cells.append(SearchCell(c_pp, c_p, cur, reduction, reduction_prev, k, fused))
            reduction_prev = reduction
            c_pp, c_p = c_p, MULTIPLIER * cur
        self.classifier = nn.Linear(c_p, classes)
        # architecture parameters: plain tensors, not registered, so never in parameters()
        self.alpha_normal = (1e-3 * torch.randn(EDGES, len(PRIMITIVES))).requires_grad_()
        self.alpha_reduce = (1e-3 * torch.randn(EDGES, len(PRIMITIVES))).requires_grad_()
        self.betas = []
        if edge_norm:  # PC-DARTS' edge normalisation, stepped with alpha
            self.beta_normal = (1e-3 * torch.randn(EDGES)).requires_grad_()
            self.beta_reduce = (1e-3 * torch.randn(EDGES)).requires_grad_()
            self.betas = [self.beta_normal, self.beta_reduce]

    def arch_parameters(self):
        return [self.alpha_normal, self.alpha_reduce] + self.betas

    def forward(self, x, noise=None, tau=1.0):
        """noise [2, 14, 8], tau: gumbel's (the teacher is given the student's)"""
        pn = pr = None
        if self.strategy == "gumbel":
            wn = OneHotST.apply(F.softmax((self.alpha_normal + noise[0]) / tau, dim=-1))
            wr = OneHotST.apply(F.softmax((self.alpha_reduce + noise[1]) / tau, dim=-1))
            pn, pr = wn.argmax(-1).tolist(), wr.argmax(-1).tolist()
        else:
            wn = F.softmax(self.alpha_normal, dim=-1)
            wr = F.softmax(self.alpha_reduce, dim=-1)
        bn_, br = (edge_weights(b) for b in self.betas) if self.betas else (None, None)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            red = cell.reduction
            s0, s1 = s1, cell(s0, s1, wr if red else wn, br if red else bn_, pr if red else pn)
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

def check_forms():
    """The per-edge node (PC-DARTS' code) and the fused node (dptrain's) are
    the same function: the same weights, alpha and beta in both, forward and
    every gradient compared in float64 on a few images."""
    torch.manual_seed(a.seed)
    k = a.partial_channels if a.partial_channels > 1 else 2
    c = a.channels if a.channels % (2 * k) == 0 else 2 * k
    nets = [Supernet(a.in_channels, c, a.layers, a.classes, k, True, fused, a.strategy).double()
            for fused in (False, True)]
    nets[1].load_state_dict(nets[0].state_dict())
    arch = [torch.randn(EDGES, len(PRIMITIVES), dtype=torch.float64) for _ in range(2)] + \
           [torch.randn(EDGES, dtype=torch.float64) for _ in range(2)]  # far from uniform, so a wrong weighting shows
    for net in nets:  # alpha and beta are plain tensors, which .double() leaves alone
        net.alpha_normal, net.alpha_reduce, net.beta_normal, net.beta_reduce = \
            (t.clone().requires_grad_() for t in arch)
        net.betas = [net.beta_normal, net.beta_reduce]
    x = torch.randn(4, a.in_channels, a.image_size, a.image_size, dtype=torch.float64)
    y = torch.arange(4) % a.classes
    noise = gumbel_noise(torch.Generator().manual_seed(a.seed)).double()  # gumbel: both nets sample alike
    outs = []
    for net in nets:
        net.train()
        out = net(x, noise, 1.0)
        F.cross_entropy(out, y).backward()
        outs.append((out.detach(), [p.grad for p in net.parameters()], [p.grad for p in net.arch_parameters()]))
    # each tensor's difference relative to its own largest entry (float64: ~1e-16 would be exact)
    pairs = [(outs[0][0], outs[1][0])] + [pq for i in (1, 2) for pq in zip(outs[0][i], outs[1][i])]
    # gumbel: the ops not sampled have no gradient, in both forms alike (one form only: a failure)
    pairs = [(t0, t1) for t0, t1 in pairs if t0 is not None or t1 is not None]
    worst = max(math.inf if t0 is None or t1 is None else
                ((t0 - t1).abs().max() / t0.abs().max().clamp_min(1e-30)).item() for t0, t1 in pairs)
    ok = worst < 1e-8
    print(f"torch_search: check_forms K={k} channels={c} layers={a.layers} strategy={a.strategy} tensors={len(pairs)} "
          f"max_rel_diff={worst:.3g} "
          f"{'ok' if ok else 'FAILED'}")
    if not ok:
        sys.exit(1)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main():
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.check_forms:
        return check_forms()
    net = Supernet(a.in_channels, a.channels, a.layers, a.classes, a.partial_channels, a.edge_norm, a.fused_node,
                   a.strategy)
    nparams = sum(p.numel() for p in net.parameters())
    narch = sum(p.numel() for p in net.arch_parameters())
    pc = f"partial_channels={a.partial_channels} edge_norm={int(a.edge_norm)} arch_params={narch}"
    if a.params_only:
        print(f"torch_search: layers={a.layers} channels={a.channels} in_channels={a.in_channels} "
              f"classes={a.classes} params={nparams} {pc}")
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
    gumbel = a.strategy == "gumbel"
    noise_gen = torch.Generator().manual_seed(a.seed + 2)  # gumbel's noise, its own stream (as dptrain's)
    sd, T = a.self_distill, a.distill_temp
    teacher = None
    net.train()
    t_step, t_alpha, t_weight = [], [], []
    for step in range(total):
        w_opt.param_groups[0]["lr"] = a.lr_min + (a.lr - a.lr_min) * (1 + math.cos(math.pi * step / total)) / 2
        tau = gumbel_tau(step / total) if gumbel else 1.0
        if sd > 0 and step == a.warmup:  # the teacher "of the epoch before": the net as the timed steps begin
            teacher = copy.deepcopy(net)
            for p in list(teacher.parameters()) + teacher.arch_parameters():
                p.requires_grad_(False)
            teacher.train()
        xt, yt = train_q.next()
        xv, yv = valid_q.next()
        t0 = time.perf_counter()
        # alpha step on the held-out batch (first order: d L_val / d alpha at the current weights)
        a_opt.zero_grad(set_to_none=True)
        noise = gumbel_noise(noise_gen) if gumbel else None  # drawn before every pass
        F.cross_entropy(net(xv, noise, tau), yv).backward()
        a_opt.step()
        t1 = time.perf_counter()
        # weight step on the training batch
        w_opt.zero_grad(set_to_none=True)
        noise = gumbel_noise(noise_gen) if gumbel else None
        p_teacher = None
        if teacher is not None:
            with torch.no_grad():  # its activations are freed as it goes: the step's peak stays the student's
                p_teacher = F.softmax(teacher(xt, noise, tau) / T, dim=1)
        logits = net(xt, noise, tau)
        loss = F.cross_entropy(logits, yt)
        obj = loss
        if p_teacher is not None:
            kl = F.kl_div(F.log_softmax(logits / T, dim=1), p_teacher, reduction="batchmean")
            obj = loss + sd * T * T * kl
        obj.backward()
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
              f"weight_s={t2 - t1:.3f} loss={loss.item():.4f}{f' kl={kl.item():.4f}' if p_teacher is not None else ''} "
              f"rss_mb={peak_rss_mb():.0f}",
              file=sys.stderr, flush=True)

    med = statistics.median(t_step)
    ips = a.batch / med
    rss = peak_rss_mb()
    print(f"torch_search: layers={a.layers} channels={a.channels} batch={a.batch} params={nparams} "
          f"train_images_per_s={ips:.3f} peak_rss_mb={rss:.0f} step_s={med:.3f} {pc} strategy={a.strategy} "
          f"self_distill={sd:g}", flush=True)
    if a.csv:
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, "a") as f:
            if new:
                f.write("layers,channels,batch,threads,source,params,steps,warmup,train_images_per_s,"
                        "step_s_median,step_s_mean,step_s_min,step_s_max,alpha_s_median,weight_s_median,"
                        "peak_rss_mb,partial_channels,edge_norm,fused_node,arch_params,strategy,self_distill,"
                        "distill_temp\n")
            f.write(f"{a.layers},{a.channels},{a.batch},{a.threads},{'synthetic' if a.synthetic else 'fashion-mnist'},"
                    f"{nparams},{a.steps},{a.warmup},{ips:.4f},{med:.4f},{statistics.mean(t_step):.4f},"
                    f"{min(t_step):.4f},{max(t_step):.4f},{statistics.median(t_alpha):.4f},"
                    f"{statistics.median(t_weight):.4f},{rss:.1f},{a.partial_channels},{int(a.edge_norm)},"
                    f"{int(a.fused_node)},{narch},{a.strategy},{sd:g},{T:g}\n")


if __name__ == "__main__":
    main()
