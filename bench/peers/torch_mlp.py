#!/usr/bin/env python3
"""bench/peers/torch_mlp.py - the shapes of bench/bench_engine.c in PyTorch.

Same model (Linear+ReLU trunk, three Linear heads of 10 classes, summed
softmax cross-entropy), same optimiser (Adam, lr 1e-3), same synthetic data
(a pool of 16 batches of normal inputs and uniform labels), one thread
(torch.set_num_threads(1) and OPENBLAS_NUM_THREADS=1), so the two programs can be run side by side:

    python3 bench/peers/torch_mlp.py [--seconds S] [--only small|large]

Needs python3-torch (Debian: apt-get install python3-torch). Prints one
key=value line per shape, like bench_engine.
"""
import argparse
import os
import sys
import time

# torch.set_num_threads() governs PyTorch's own pool only; Debian's torch
# calls OpenBLAS (libblas.so.3), whose pthread pool defaults to every core.
# Pin both to --threads before torch loads, or "one thread" runs sgemm on two.
_threads = "1"
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
os.environ["OPENBLAS_NUM_THREADS"] = _threads
os.environ["OMP_NUM_THREADS"] = _threads

try:
    import torch
except ImportError:
    sys.exit("torch_mlp.py: PyTorch is not installed (Debian: apt-get install python3-torch)")

POOL = 16
WINDOWS = 7


def run(label, n_in, h1, h2, batch, seconds):
    torch.manual_seed(1)
    trunk = torch.nn.Sequential(torch.nn.Linear(n_in, h1), torch.nn.ReLU(),
                                torch.nn.Linear(h1, h2), torch.nn.ReLU())
    heads = torch.nn.ModuleList([torch.nn.Linear(h2, 10) for _ in range(3)])
    params = list(trunk.parameters()) + list(heads.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    xs = torch.randn(POOL, batch, n_in)
    ys = torch.randint(0, 10, (POOL, 3, batch))
    ce = torch.nn.functional.cross_entropy

    def step(k):
        x, y = xs[k % POOL], ys[k % POOL]
        opt.zero_grad(set_to_none=True)
        h = trunk(x)
        loss = sum(ce(heads[t](h), y[t]) for t in range(3))
        loss.backward()
        opt.step()
        return loss

    # Warm-up, then WINDOWS timing windows: best and median, as bench_engine.
    k = 0
    rates = []
    for w in range(-1, WINDOWS):
        t0 = time.perf_counter()
        until = t0 + (0.3 if w < 0 else seconds / WINDOWS)
        n = 0
        while True:
            for _ in range(4):
                loss = step(k)
                k += 1
                n += 1
            if time.perf_counter() >= until:
                break
        if w >= 0:
            rates.append(n * batch / (time.perf_counter() - t0))
    best = max(rates)
    med = sorted(rates)[WINDOWS // 2]
    print("shape=%s batch=%d samples_per_s=%.0f median=%.0f step_us=%.1f loss=%.4f"
          % (label, batch, best, med, batch / best * 1e6, float(loss)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--only", choices=["small", "large"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print("# torch_mlp torch=%s threads=%d seconds=%.1f" % (torch.__version__, a.threads, a.seconds))
    if a.only in (None, "small"):
        for b in (32, 128, 512):
            run("64-256-256-3x10", 64, 256, 256, b, a.seconds)
    if a.only in (None, "large"):
        for b in (32, 128):
            run("784-1024-1024-3x10", 784, 1024, 1024, b, a.seconds)


if __name__ == "__main__":
    main()
