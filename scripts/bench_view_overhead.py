"""Prints the cost of ART's PGD through the image view relative to a plain torch PGD loop (same model, data).

The view adds ART's estimator machinery and the per-query text lookup; run it after changing either:
    .venv/bin/python scripts/bench_view_overhead.py [--n 120] [--size 64] [--device cpu]
Ratios are measured in one run, back to back, so machine noise cancels out as far as it can.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent

import wrappers
from benchmark.data import SplitArrays
from benchmark.data.indiana import load_indiana
from benchmark.data.synth import write_synthetic_indiana
from wrappers.estimators import ImageView
from wrappers.text import make_tiny_bert


def plain_pgd(model, x, tokens, y, eps, steps, batch_size):
    """Madry PGD (no random start) written directly in torch: the floor the view is compared with."""
    out = []
    for b in range(0, len(x), batch_size):
        xb, yb = x[b:b + batch_size], y[b:b + batch_size]
        ctx = {k: v[b:b + batch_size] for k, v in tokens.items()}
        xa = xb.clone()
        for _ in range(steps):
            xa.requires_grad_(True)
            (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xa, ctx), yb), xa)
            xa = (xb + (xa.detach() + 2.5 * eps / steps * grad.sign() - xb).clamp(-eps, eps)).clamp(0, 1)
        out.append(xa)
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = load_indiana(write_synthetic_indiana(f"{tmp}/data", n=args.n, seed=0, image_size=128))
        split = SplitArrays.from_samples(data.samples, args.size)
        model = wrappers.create_model("early_fusion", text_encoder=str(make_tiny_bert(split.texts, f"{tmp}/bert")))
    model = model.to(args.device).eval().requires_grad_(False)
    x, y, eps = split.images, split.labels, 8 / 255
    tokens = {k: v.to(args.device) for k, v in model.tokenize(split.texts).items()}
    xt, yt = torch.as_tensor(x, device=args.device), torch.as_tensor(y, device=args.device)
    view = ImageView(model, x, split.texts, device=args.device)
    attack = ProjectedGradientDescent(view, eps=eps, eps_step=2.5 * eps / args.steps, max_iter=args.steps, batch_size=64,
                                      verbose=False)
    timings = {}
    for name, run in (("plain torch PGD", lambda: plain_pgd(model, xt, tokens, yt, eps, args.steps, 64)),
                      ("ART PGD via ImageView", lambda: attack.generate(x, y=np.eye(2)[y]))):
        run()  # warm-up
        start = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - start
    base = timings["plain torch PGD"]
    print(f"early_fusion, {args.n}×2×{args.size}², PGD {args.steps} steps, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    for name, seconds in timings.items():
        print(f"  {name:24s} {seconds:7.2f} s   ratio {seconds / base:.2f}")


if __name__ == "__main__":
    main()
