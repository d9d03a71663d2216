"""Attack speed and memory through mmrb's ART estimator, as ratios measured in one run (machines are noisy).

Prints: a plain torch PGD loop vs ART's PGD through ImageView (same model, batch, steps, device) and the ratio;
FGSM at 1 and at 3 ε values and the ratio (the clean-input gradient is computed once); the peak RSS of this
process; with --profile the top lines of a cProfile of the ART path; with --suite the peak RSS of a whole `mmrb run`
in a child process; and where CUDA is present the same PGD comparison on the GPU with a paper-size early fusion model
(SE-ResNet-154 + a BERT-base-sized encoder, random weights).
    .venv/bin/python scripts/perf.py [--n 120] [--size 64] [--steps 10] [--profile] [--suite suites/smoke.yaml]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

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


def best_of(run, repeats: int) -> float:
    """Fastest of `repeats` timed runs after one warm-up (the least disturbed by other load)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(model, split, device: str, steps: int, repeats: int, label: str, profile: bool = False) -> None:
    model = model.to(device).eval().requires_grad_(False)
    x, y, eps = split.images, split.labels, 8 / 255
    tokens = {k: v.to(device) for k, v in model.tokenize(split.texts).items()}
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    onehot = np.eye(2, dtype=np.float32)[y]
    view = ImageView(model, x, split.texts, device=device)
    pgd = ProjectedGradientDescent(view, eps=eps, eps_step=2.5 * eps / steps, max_iter=steps, batch_size=64, verbose=False)
    plain = best_of(lambda: plain_pgd(model, xt, tokens, yt, eps, steps, 64), repeats)
    ours = best_of(lambda: view.run_attack(pgd, x, onehot), repeats)
    print(f"{label}: {len(x)}×2×{x.shape[-1]}², PGD {steps} steps, batch 64, device {device}, "
          f"torch threads {torch.get_num_threads()}, best of {repeats}")
    print(f"  plain torch PGD loop       {plain:7.2f} s")
    print(f"  ART PGD via ImageView      {ours:7.2f} s   ratio {ours / plain:.3f}   (target <= 1.05)")

    def fgsm(epsilons):
        fresh = ImageView(model, x, split.texts, device=device)  # an empty gradient cache each time
        for e in epsilons:
            fresh.run_attack(FastGradientMethod(fresh, eps=e, batch_size=64), x, onehot)

    one = best_of(lambda: fgsm([8 / 255]), repeats)
    three = best_of(lambda: fgsm([2 / 255, 4 / 255, 8 / 255]), repeats)
    print(f"  FGSM at 1 ε                {one:7.3f} s")
    print(f"  FGSM at 3 ε                {three:7.3f} s   ratio {three / one:.3f}   (target <= 1.2)")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        view.run_attack(pgd, x, onehot)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        print("  cProfile of ART PGD via ImageView (tottime):")
        print("\n".join("    " + line for line in text.getvalue().splitlines() if line.strip())[:4000])


def suite_rss(suite: str) -> None:
    """Peak RSS of a whole `mmrb run` of `suite` (fresh run folder, the usual cache) in a child process."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmrb", "run", suite, "--out", out, "--no-leaderboard", "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"mmrb run {suite}: {time.perf_counter() - start:.0f} s, peak RSS {peak:.2f} GiB (target <= 2 GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of the ART path")
    parser.add_argument("--suite", help="also run this suite in a child process and print its peak RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = load_indiana(write_synthetic_indiana(f"{tmp}/data", n=args.n, seed=0, image_size=128))
        split = SplitArrays.from_samples(data.samples, args.size)
        bert = make_tiny_bert(split.texts, f"{tmp}/bert")
        compare(wrappers.create_model("early_fusion", text_encoder=str(bert)), split, "cpu", args.steps, args.repeats,
                "early_fusion (tiny)", args.profile)
        if torch.cuda.is_available():
            from transformers import BertConfig, BertModel

            BertModel(BertConfig(vocab_size=BertConfig.from_pretrained(bert).vocab_size)).save_pretrained(f"{tmp}/base")
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
                if (Path(bert) / name).exists():
                    (Path(tmp) / "base" / name).write_bytes((Path(bert) / name).read_bytes())
            big = SplitArrays.from_samples(data.samples[:64], 224)
            model = wrappers.create_model("early_fusion_paper", pretrained=False, text_encoder=f"{tmp}/base")
            compare(model, big, "cuda", args.steps, args.repeats, "early_fusion_paper (SE-ResNet-154 + BERT-base size)")
    print(f"peak RSS of this script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.suite:
        suite_rss(args.suite)


if __name__ == "__main__":
    main()
