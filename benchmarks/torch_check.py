#!/usr/bin/python3
"""dptrain's safetensors against PyTorch, both ways (issue 20, "the trained model out").

(a) export -> PyTorch: `dptrain export --run RUN --format safetensors` writes the run's weights; this
    script rebuilds the network in PyTorch from the description in the file's metadata (a network
    description as src/models/zoo/*.json, or the model's name with the table below), loads the tensors
    with numpy (Debian 12 has no safetensors package: the format is a JSON header and raw bytes), runs
    the test set in eval mode and compares the logits with `dptrain predict --run RUN --logits`.
(b) PyTorch -> --init: the same network initialised by PyTorch (seed --seed) is saved as safetensors;
    `dptrain train --init FILE --limit B --batch B --epochs 1` takes one step on the first B training
    images (one batch holds all of them, so the sampler's shuffle only reorders the batch, and the mean
    loss does not depend on the order); its loss (metrics.jsonl) is compared with PyTorch's on the same
    batch in train mode.

Inputs: read from the dptrain shard set itself (manifest, 128-byte shard headers, zstd frames decoded
with the zstd command), normalised as dptrain does: lut[v] = (v / 255 - mean) / std in float32, with the
export's dptrain.normalize (a), the manifest's mean/std lines (b), or Fashion-MNIST's default numbers.

Prints a table of what it compared; exits 1 on a mismatch (relative difference > --tol), 2 on bad use.

  /usr/bin/python3 benchmarks/torch_check.py --dptrain build/dptrain --data DIR --work DIR
      [--run RUN] [--test-limit N] [--model NAME|FILE.json] [--batch B] [--seed S] [--tol 1e-4]

Run with OPENBLAS_NUM_THREADS=1 (benchmarks/torch_check.sh does)."""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530  # what dptrain normalises with when the manifest has no mean/std lines

# mlp and cnn as src/models/zoo describes them, for a build without the zoo (a file whose metadata names
# the model only).
FALLBACK = {
    "mlp": {"name": "mlp", "layers": [
        {"type": "flatten"},
        {"type": "linear", "name": "fc1", "out": 512}, {"type": "relu"},
        {"type": "linear", "name": "fc2", "out": 256}, {"type": "relu"},
        {"type": "linear", "name": "fc3", "out": "classes"}]},
    "cnn": {"name": "cnn", "layers": [
        {"type": "conv", "name": "conv1", "out": 32, "kernel": 3, "padding": 1}, {"type": "relu"},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv", "name": "conv2", "out": 64, "kernel": 3, "padding": 1}, {"type": "relu"},
        {"type": "maxpool", "kernel": 2},
        {"type": "flatten"},
        {"type": "linear", "name": "fc1", "out": 128}, {"type": "relu"},
        {"type": "linear", "name": "fc2", "out": "classes"}]},
}


def fail(msg, code=2):
    print(f"torch_check: {msg}", file=sys.stderr)
    sys.exit(code)


# ------------------------------------------------------------ safetensors with numpy

NP_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "I8": "i1",
             "I16": "<i2", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


def st_read(path):
    with open(path, "rb") as f:
        b = f.read()
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(b)[8 + n:]
    out = {}
    for name, e in header.items():
        lo, hi = e["data_offsets"]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(data[lo:hi], "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(data[lo:hi], NP_DTYPES[e["dtype"]])
        out[name] = a.reshape(e["shape"]).copy()
    return out, meta


def st_write(path, tensors, meta):
    header, at = {"__metadata__": meta}, 0
    for name, a in tensors.items():
        dt = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [at, at + a.nbytes]}
        at += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for a in tensors.values():
            f.write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())


# ------------------------------------------------------------ a dptrain shard set

def read_split(data, split, limit=0):
    """(pixels uint8 [N, C, H, W], labels int64 [N]) of `split` in global record order, first `limit`."""
    shape, shards = None, []
    with open(os.path.join(data, "manifest.txt")) as f:
        for line in f:
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            if w[0] == "schema":
                if w[1] != "image_u8":
                    fail(f"{data}: schema {w[1]}: this script reads image_u8 shard sets")
                kv = dict(x.split("=", 1) for x in w[2:])
                shape = (int(kv["channels"]), int(kv["height"]), int(kv["width"]))
            elif w[0] == "shard" and w[1] == split:
                shards.append((w[2], int(w[3])))
    if shape is None or not shards:
        fail(f"{data}/manifest.txt: no image_u8 schema or no {split} shards")
    rec = 2 + shape[0] * shape[1] * shape[2]
    raw, total = [], 0
    for name, count in shards:
        with open(os.path.join(data, name), "rb") as f:
            b = f.read()
        if b[:8] != b"DPSHARD\0" or struct.unpack_from("<I", b, 20)[0] != rec:
            fail(f"{data}/{name}: not an image shard of {rec}-byte records")
        frames, pos = [], 128
        while pos < len(b):
            comp, _ = struct.unpack_from("<II", b, pos)
            frames.append(b[pos + 8:pos + 8 + comp])
            pos += 8 + comp
        out = subprocess.run(["zstd", "-d", "-c", "-q"], input=b"".join(frames), capture_output=True, check=True).stdout
        if len(out) != count * rec:
            fail(f"{data}/{name}: {len(out)} bytes decoded, the manifest says {count} records of {rec}")
        raw.append(out)
        total += count
        if limit and total >= limit:
            break
    a = np.frombuffer(b"".join(raw), np.uint8).reshape(-1, rec)
    if limit:
        a = a[:limit]
    labels = a[:, :2].copy().view("<u2").reshape(-1).astype(np.int64)
    return a[:, 2:].reshape(-1, *shape), labels


def manifest_stats(data):
    """The manifest's per-channel `mean` and `std` lines (shards/README.md), or Fashion-MNIST's numbers that
    dptrain normalises with when a manifest has none."""
    stats = {}
    with open(os.path.join(data, "manifest.txt")) as f:
        for line in f:
            w = line.split()
            if w and w[0] in ("mean", "std"):
                stats[w[0]] = [float(v) for v in w[1:]]
    if "mean" in stats and "std" in stats:
        return stats["mean"], stats["std"], "the manifest"
    return [FMNIST_MEAN], [FMNIST_STD], "Fashion-MNIST's default"


def normalise(pixels, mean, std):
    """dptrain's lookup table, float32 arithmetic throughout: lut[v] = (v / 255 - mean) / std per channel."""
    mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
    v = np.arange(256, dtype=np.float32) / np.float32(255)
    x = np.empty(pixels.shape, np.float32)
    for c in range(pixels.shape[1]):
        lut = (v - mean[c % len(mean)]) / std[c % len(std)]
        x[:, c] = lut[pixels[:, c]]
    return torch.from_numpy(x)


# ------------------------------------------------------------ the network of a description

class Net(nn.Module):
    """Modules registered under their state_dict names (dotted names make nested containers); the
    forward runs the steps in order."""

    def __init__(self, desc, in_shape, classes):
        super().__init__()
        out = [None]
        self.steps = self._layers(desc["layers"], "", tuple(in_shape), classes, out)
        self.out_shape = out[0]

    def put(self, name, module):
        parent, parts = self, name.split(".")
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, nn.Module())
            parent = getattr(parent, p)
        parent.add_module(parts[-1], module)
        return module

    def _layers(self, layers, prefix, shape, classes, out_shape):
        fns = []
        for i, L in enumerate(layers):
            fn, shape = self._layer(L, prefix + str(L.get("name", i)), shape, classes, i)
            fns.append(fn)
        out_shape[0] = shape
        return fns

    def _layer(self, L, name, shape, classes, i):
        t = L.get("type")
        where = f"layer {i} ({t})"
        if t == "conv":
            if len(shape) != 3:
                fail(f"{where}: conv needs [C, H, W] input, has {list(shape)}")
            k, s, p, d, g = (L.get("kernel", 3), L.get("stride", 1), L.get("padding", 0), L.get("dilation", 1),
                             L.get("groups", 1))
            m = self.put(name, nn.Conv2d(shape[0], L["out"], k, s, p, d, g, bias=L.get("bias", True)))
            h = (shape[1] + 2 * p - d * (k - 1) - 1) // s + 1
            w = (shape[2] + 2 * p - d * (k - 1) - 1) // s + 1
            return m, (L["out"], h, w)
        if t == "batchnorm":
            cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            m = self.put(name, cls(shape[0], eps=L.get("eps", 1e-5), momentum=L.get("momentum", 0.1),
                                   affine=L.get("affine", True)))
            return m, shape
        if t in ("relu", "gelu", "tanh", "sigmoid"):
            return {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[t], shape
        if t in ("maxpool", "avgpool"):
            k = L["kernel"]
            s, p = L.get("stride", k), L.get("padding", 0)
            fn = (lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p)) if t == "maxpool" else \
                (lambda x, k=k, s=s, p=p: F.avg_pool2d(x, k, s, p))
            return fn, (shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1)
        if t == "global_avgpool":
            return (lambda x: x.mean((2, 3))), (shape[0],)
        if t == "flatten":
            return (lambda x: torch.flatten(x, 1)), (int(np.prod(shape)),)
        if t == "linear":
            out = classes if L["out"] == "classes" else L["out"]
            if len(shape) != 1:
                fail(f"{where}: linear needs flat input, has {list(shape)} (add a flatten)")
            return self.put(name, nn.Linear(shape[0], out, bias=L.get("bias", True))), (out,)
        if t == "dropout":
            m = nn.Dropout(L.get("p", 0.5))
            self.add_module(f"_dropout{id(m)}", m)  # no parameters: not in the state_dict
            return m, shape
        if t == "residual":
            body_shape = [None]
            body = self._layers(L["layers"], name + ".body.", shape, classes, body_shape)
            out = body_shape[0]
            short = None
            if tuple(out) != tuple(shape):
                stride = shape[1] // out[1]
                short = [self.put(name + ".shortcut.0", nn.Conv2d(shape[0], out[0], 1, stride, bias=False)),
                         self.put(name + ".shortcut.1", nn.BatchNorm2d(out[0]))]

            def residual(x, body=body, short=short):
                y = x
                for f in body:
                    y = f(y)
                s = x
                for f in short or []:
                    s = f(s)
                return y + s
            return residual, out
        fail(f"{where}: unknown layer type '{t}'")

    def forward(self, x):
        for f in self.steps:
            x = f(x)
        return x


def description(model_arg, meta):
    """The description: the file's metadata, a .json path, the shipped zoo file, or the table above."""
    if meta.get("dptrain.description"):
        return json.loads(meta["dptrain.description"]), "the file's metadata"
    name = meta.get("dptrain.model") or model_arg
    if name.endswith(".json"):
        with open(name) as f:
            inside = os.path.abspath(name).startswith(ROOT + os.sep)
            return json.load(f), os.path.relpath(name, ROOT) if inside else name
    zoo = os.path.join(ROOT, "src", "models", "zoo", name + ".json")
    if os.path.exists(zoo):
        with open(zoo) as f:
            return json.load(f), os.path.relpath(zoo, ROOT)
    if name in FALLBACK:
        return FALLBACK[name], "torch_check.py's table"
    fail(f"no description for model '{name}' (give --model FILE.json)")


def rel(a, b):
    """max over rows of |a - b|_inf / |b|_inf."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(np.max(np.abs(a - b).max(1) / np.maximum(np.abs(b).max(1), 1e-30)))


def run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"{what} failed ({' '.join(cmd)}):\n{p.stderr}{p.stdout}", 1)
    return p.stdout


# ------------------------------------------------------------ (a) and (b)

def check_export(args, rows):
    path = os.path.join(args.work, "export.safetensors")
    run([args.dptrain, "export", "--run", args.run, "--format", "safetensors", "--out", path], "dptrain export")
    tensors, meta = st_read(path)
    desc, src = description(args.model, meta)
    shape = json.loads(meta["dptrain.input"]) if "dptrain.input" in meta else [1, 28, 28]
    classes = int(meta.get("dptrain.classes", 10))
    if "dptrain.normalize" in meta:
        norm = json.loads(meta["dptrain.normalize"])
        if norm.get("scale", 255) != 255:
            fail(f"{path}: a model of vector features (scale {norm['scale']}): this script reads image shards")
    else:
        mean, std, _ = manifest_stats(args.data)
        norm = {"mean": mean, "std": std}
    torch.manual_seed(0)
    net = Net(desc, shape, classes)
    sd = net.state_dict()
    missing = sorted(set(k for k in sd if not k.endswith("num_batches_tracked")) - set(tensors))
    extra = sorted(set(tensors) - set(sd))
    if missing or extra:
        fail(f"{path}: names differ from PyTorch's state_dict: missing {missing}, extra {extra}", 1)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    net.eval()
    out = run([args.dptrain, "predict", "--run", args.run, "--data", args.data, "--logits", "--limit",
               str(args.test_limit)], "dptrain predict")
    lines = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
    if not lines or any(rec.get("index") != i for i, rec in enumerate(lines)):
        fail("dptrain predict --logits printed no JSON lines, or not in test-set order", 1)
    theirs = [rec["logits"] for rec in lines]
    pixels, labels = read_split(args.data, "test", len(theirs))
    if any(rec["label"] != y for rec, y in zip(lines, labels)):
        fail("dptrain predict's labels are not the test split's", 1)
    with torch.no_grad():
        ours = torch.cat([net(normalise(pixels[i:i + 500], norm["mean"], norm["std"]))
                          for i in range(0, len(pixels), 500)]).numpy()
    theirs = np.asarray(theirs, np.float32)
    if theirs.shape != ours.shape:
        fail(f"dptrain predict gave logits of shape {theirs.shape}, PyTorch {ours.shape}", 1)
    r = rel(ours, theirs)
    agree = int((ours.argmax(1) == theirs.argmax(1)).sum())
    acc = float((ours.argmax(1) == labels).mean())
    rows.append(("export -> PyTorch logits", f"{desc.get('name', '?')} ({src})",
                 f"{len(ours)} test images, top-1 agree {agree}/{len(ours)}, acc {acc:.4f}", r))


def check_init(args, rows):
    desc, src = description(args.model, {})
    pixels, labels = read_split(args.data, "train", args.batch)
    with open(os.path.join(args.data, "manifest.txt")) as f:
        kv = dict(x.split("=", 1) for line in f if line.startswith("schema") for x in line.split()[2:])
    shape, classes = (int(kv["channels"]), int(kv["height"]), int(kv["width"])), int(kv["classes"])
    torch.manual_seed(args.seed)
    net = Net(desc, shape, classes)
    if any(isinstance(m, nn.Dropout) for m in net.modules()):
        rows.append(("PyTorch init -> dptrain first-step loss", desc.get("name", "?"),
                     "skipped: dropout makes the first-step loss random", None))
        return
    path = os.path.join(args.work, "torch_init.safetensors")
    st_write(path, {k: v.detach().numpy().copy() for k, v in net.state_dict().items()},
             {"format": "pt", "written_by": "benchmarks/torch_check.py"})
    net.train()
    mean, std, _ = manifest_stats(args.data) if args.mean is None else (args.mean, args.std, "--mean/--std")
    x = normalise(pixels, mean, std)
    loss_torch = float(F.cross_entropy(net(x), torch.from_numpy(labels)))
    out_dir = os.path.join(args.work, "init_run")
    model = args.model
    run([args.dptrain, "train", "--data", args.data, "--model", model, "--init", path, "--limit", str(args.batch),
         "--batch", str(args.batch), "--epochs", "1", "--test-limit", "10", "--threads", "1", "--out", out_dir,
         "--quiet"], "dptrain train --init")
    loss_dp = None
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "epoch":
                loss_dp = rec["train_loss"]
    if loss_dp is None:
        fail(f"{out_dir}/metrics.jsonl has no epoch record", 1)
    rows.append(("PyTorch init -> dptrain first-step loss", f"{desc.get('name', '?')} ({src})",
                 f"batch {args.batch}: dptrain {loss_dp:.6f}, PyTorch {loss_torch:.6f}",
                 abs(loss_dp - loss_torch) / abs(loss_torch)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dptrain", required=True)
    ap.add_argument("--data", required=True, help="shard set (image_u8)")
    ap.add_argument("--work", required=True, help="folder for the files this writes")
    ap.add_argument("--run", help="a trained run: check (a), export -> PyTorch")
    ap.add_argument("--model", default="cnn", help="(b): name or description file; (a) reads the file's metadata")
    ap.add_argument("--test-limit", type=int, default=1000, help="(a): the first N test images, 0 = all")
    ap.add_argument("--batch", type=int, default=64, help="(b): the one batch")
    ap.add_argument("--seed", type=int, default=1, help="(b): PyTorch's initialisation seed")
    ap.add_argument("--mean", type=float, nargs="+", help="(b): normalisation (default: the manifest's)")
    ap.add_argument("--std", type=float, nargs="+")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--skip-init", action="store_true", help="run (a) only")
    args = ap.parse_args()
    if (args.mean is None) != (args.std is None):
        fail("--mean and --std go together")
    torch.set_num_threads(1)
    os.makedirs(args.work, exist_ok=True)
    rows = []
    if args.run:
        check_export(args, rows)
    if not args.skip_init:
        check_init(args, rows)
    bad = 0
    print(f"{'check':<42} {'model':<36} {'rel diff':>10}  verdict  details")
    for what, model, details, r in rows:
        ok = r is None or r <= args.tol
        bad += not ok
        rs = "-" if r is None else f"{r:.2e}"
        print(f"{what:<42} {model:<36} {rs:>10}  {'ok' if ok else 'FAIL':<7}  {details}")
    print(f"torch_check: {'PASS' if not bad else 'FAIL'} (tolerance {args.tol:g} relative)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
