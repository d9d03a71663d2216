"""What randomness buys a model under EOT, outside mmrb's attack code: plain torch PGD on early_fusion (the twin) and
on its randomised variants of examples/randomised_model/jittered.py (shift + noise, shift only, noise only), each
attacked with one draw per step and with EOT, scored by the majority of 21 draws; and what a batch of EOT draws
costs on this machine (ms per row at 40 and at 800 rows). `--exact N` runs only the strongest attack on the shift +
noise model: the expectation over every one of the (2·SHIFT + 1)² shifts taken exactly (no sampled draws) with a
fresh noise draw, on a margin loss clipped at −1 (no gain for pushing one shift far past the boundary: the score is
a majority), N steps, on the first --n samples.

    .venv/bin/python scripts/bench_randomised.py [--n 40] [--steps 50] [--eot-steps 30] [--draws 10] [--exact 50]

Uses examples/randomised_model/randomised_twin.yaml's data and the twin trained by mmrb (trained first if the cache lacks it).
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark import default_cache
from benchmark.run.runner import prepare_data
from benchmark.spec.suite import load_suite
from wrappers.fusion import EarlyFusion
from wrappers.training import obtain_trained

ROOT = Path(__file__).resolve().parents[1]


def _example():
    spec = importlib.util.spec_from_file_location("jittered", ROOT / "examples" / "randomised_model" / "jittered.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pgd(model, x, tokens, y, eps: float, steps: int, draws: int) -> torch.Tensor:
    """L∞ PGD from the clean input, step ε/8, on the cross-entropy of the logits averaged over `draws` passes."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        logits = torch.stack([model(adv, tokens) for _ in range(draws)]).mean(0)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), adv)
        adv = (x + (adv.detach() + eps / 8 * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def pgd_every_shift(model, x, tokens, y, eps: float, steps: int, shift: int, noise: float) -> torch.Tensor:
    """L∞ PGD (step ε/4, then ε/10 for the second half) on the mean over all (2·shift + 1)² rolls of the clipped
    margin loss, each roll with a fresh noise draw, through the model's deterministic (early fusion) forward."""
    rolls = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
    batch = {k: v.repeat(len(rolls), 1) for k, v in tokens.items()}
    adv = x.clone()
    for step in range(steps):
        adv.requires_grad_(True)
        rolled = torch.cat([torch.roll(adv, r, (2, 3)) for r in rolls])
        rolled = (rolled + noise * torch.randn_like(rolled)).clamp(0, 1)
        logits = EarlyFusion.forward(model, rolled, batch).view(len(rolls), len(y), -1)
        gap = (logits[..., 1] - logits[..., 0]) * (2 * y - 1)  # the true class's logit minus the other's
        (grad,) = torch.autograd.grad(-gap.clamp(min=-1.0).mean(), adv)
        size = eps / 4 if step < steps // 2 else eps / 10
        adv = (x + (adv.detach() + size * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def majority(model, x, tokens, y, draws: int = 21) -> float:
    with torch.no_grad():
        votes = sum((model(x, tokens).argmax(1) == y).float() for _ in range(draws))
    return float((votes > draws / 2).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--eot-steps", type=int, default=30)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--exact", type=int, default=0, help="steps of the every-shift attack (runs only that)")
    args = parser.parse_args()
    example, eps = _example(), 8 / 255
    suite = load_suite(ROOT / "examples" / "randomised_model" / "randomised_twin.yaml")  # the plug-in is loaded
    data = prepare_data(suite, default_cache())
    twin = obtain_trained("early_fusion", {}, data.train_set, default_cache(), suite.training_seeds[0], "cpu").eval()
    test = data.test
    x, y = torch.as_tensor(test.images[: args.n]), torch.as_tensor(test.labels[: args.n])
    tokens = twin.tokenize(list(test.texts[: args.n]))
    torch.manual_seed(0)
    if args.exact:
        model = example.JitteredEarlyFusion({**twin.config, "name": "shift + noise"})
        model.load_state_dict(twin.state_dict())
        model.eval()
        adv = pgd_every_shift(model, x, tokens, y, eps, args.exact, example.SHIFT, example.NOISE)
        twin_adv = pgd(twin, x, tokens, y, eps, args.exact, 1)
        print(f"shift + noise: clean {majority(model, x, tokens, y):.3f}, PGD-{args.exact} over every shift "
              f"{majority(model, adv, tokens, y):.3f}; twin PGD-{args.exact} {majority(twin, twin_adv, tokens, y, 1):.3f}")
        return
    twin_adv = pgd(twin, x, tokens, y, eps, args.steps, 1)
    print(f"twin: clean {majority(twin, x, tokens, y, 1):.3f}, PGD-{args.steps} {majority(twin, twin_adv, tokens, y, 1):.3f}")
    for name, config in (("shift + noise", {}), ("shift only", {"noise": 0.0}), ("noise only", {"shift": 0})):
        model = example.JitteredEarlyFusion({**twin.config, "name": name, **config})
        model.load_state_dict(twin.state_dict())
        model.eval()
        one = pgd(model, x, tokens, y, eps, args.steps, 1)
        eot = pgd(model, x, tokens, y, eps, args.eot_steps, args.draws)
        print(f"{name}: clean {majority(model, x, tokens, y):.3f}, twin's PGD images {majority(model, twin_adv, tokens, y):.3f}, "
              f"PGD-{args.steps} one draw {majority(model, one, tokens, y):.3f}, "
              f"PGD-{args.eot_steps} EOT-{args.draws} {majority(model, eot, tokens, y):.3f} (majority of 21)")
    for rows in (args.n, 20 * args.n):
        images = x.repeat(rows // args.n, 1, 1, 1).requires_grad_(True)
        batch = {k: v.repeat(rows // args.n, 1) for k, v in tokens.items()}
        torch.autograd.grad(twin(images, batch).sum(), images)
        start, runs = time.perf_counter(), 3
        for _ in range(runs):
            torch.autograd.grad(twin(images, batch).sum(), images)
        print(f"forward + backward, {rows} rows: {(time.perf_counter() - start) / runs / rows * 1000:.2f} ms per row")


if __name__ == "__main__":
    main()
