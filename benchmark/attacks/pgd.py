"""mmrb's own L∞ PGD (`source: mmrb, name: pgd`): the attack behind the text floor and the adaptive evaluations.

What no library attack here does at once:
- **texts by position**: row i is always scored with text i (no matching of queried images to samples), so ε may be
  as large as 1 (the floor's unbounded attack) and any batch composition is valid;
- **early stop within a run**: a sample leaves the batch once an iterate misclassifies it (that iterate is its
  adversarial input), so the steps are spent on the samples still standing; restarts run only on those too;
- **random starts per sample**: the start of a sample is drawn from a generator seeded by (seed, restart, the sample's
  content), so a sample gets the same run whatever else shares its batch (a cascade gives the full run's figure);
- **adaptive by default**: the forward runs under BPDA for rounding steps (defenses.adaptive), and with
  `eot` > 1 the loss is the mean over that many forward passes of a randomised model (EOT).

params: `steps` (100), `restarts` (1), `step_size` (2.5·ε/steps), `random_start` (true: the first restart too starts
at a random point of the ε-ball), `loss` ("margin": the true-class logit minus the other's, free of softmax
saturation; or "ce"), `eot` (1), `bpda` (true), `batch_size` (128), `early_stop` (true; false: every sample runs
every step of every restart, as transfer attacks do — the baseline SGA's transfer gain is measured against). Per
sample, the input with the lowest true-class margin over all iterates and restarts is returned.
"""
from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.attacks import Crafted, Problem, Target
from benchmark.attacks.probes import frozen, true_margin
from benchmark.attacks.registry import register_attack
from defenses.adaptive import StraightThrough, takes_rounding_steps
from mmrb.core.errors import AttackError
from wrappers.training import model_device

DEFAULTS: dict[str, Any] = {"steps": 100, "restarts": 1, "step_size": None, "random_start": True, "loss": "margin",
                            "eot": 1, "bpda": True, "batch_size": 128, "early_stop": True}
LOSSES = ("margin", "ce")
#: Second word of the random-start generator's seed (keeps its draws apart from other streams of the same seed).
START_STREAM = 0x70676400


def check(params: dict[str, Any]) -> list[Problem]:
    """Problems of pgd's parameters, before any work."""
    problems = []
    for key in ("steps", "restarts", "eot", "batch_size"):
        value = params.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((f"params.{key}", f"a positive integer; got {value!r}"))
    size = params.get("step_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0):
        problems.append(("params.step_size", f"a positive number (default 2.5·ε/steps); got {size!r}"))
    if params.get("loss", "margin") not in LOSSES:
        problems.append(("params.loss", f"one of {', '.join(LOSSES)}; got {params.get('loss')!r}"))
    for key in ("random_start", "bpda", "early_stop"):
        if not isinstance(params.get(key, True), bool):
            problems.append((f"params.{key}", f"true or false; got {params.get(key)!r}"))
    return problems


def _starts(images: np.ndarray, epsilon: float, seed: int, restart: int) -> np.ndarray:
    """Per sample, a uniform draw from the ε-ball seeded by (seed, restart, a checksum of the sample's image)."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        rng = np.random.default_rng([seed, START_STREAM, restart, zlib.crc32(image.tobytes())])
        out[i] = rng.uniform(-epsilon, epsilon, size=image.shape)
    return np.clip(images + out, 0.0, 1.0).astype(np.float32)


@register_attack("pgd", gradient=True, params=tuple(DEFAULTS), defaults=DEFAULTS, steps="steps", step_size="step_size",
                 random_start=("random_start", True), check=lambda params: check(params))
def craft(params: dict[str, Any], target: Target, epsilon: float | None, seed: int,
          margin: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = true_margin,
          attacked: np.ndarray | None = None) -> Crafted:
    """Run PGD on every sample of `target` (module docstring); raises AttackError on bad parameters. For attacks built
    on it: `margin(logits, labels)` is what PGD drives below 0 (negative: the sample is wrong; the true-class margin by
    default) and `attacked` (booleans) the samples it may perturb (the rest are returned clean)."""
    problems = check(params)  # (unknown parameters: the registry refuses them before this runs)
    if problems:
        raise AttackError("mmrb pgd: " + "; ".join(f"{field}: {message}" for field, message in problems))
    if epsilon is None or not np.isfinite(epsilon) or epsilon <= 0:
        raise AttackError(f"mmrb pgd needs an image budget ε > 0, got {epsilon!r}; give the attack epsilons")
    model = target.model
    if "image" not in model.modalities:
        raise AttackError("mmrb pgd perturbs images, but the model has no image input")
    p = {**DEFAULTS, **params}
    steps, size = int(p["steps"]), float(p["step_size"] or 2.5 * epsilon / p["steps"])
    clean = np.asarray(target.images, dtype=np.float32)
    labels_all = np.asarray(target.labels)
    n = len(clean)
    device = model_device(model)
    tokens = model.tokenize(list(target.texts)) if "text" in model.modalities else None
    best = clean.copy()
    best_margin = np.full(n, np.inf)
    if attacked is not None:
        best_margin[~np.asarray(attacked, dtype=bool)] = -np.inf  # never attacked: counts as done
    queries = np.zeros(n, dtype=np.int64)
    seen: dict[str, int] = {}
    with frozen(model):
        if p["bpda"] and n:  # BPDA only where the model takes a rounding step (probed once): no per-op cost elsewhere
            rows = slice(0, min(n, 4))
            p["bpda"] = takes_rounding_steps(model, torch.as_tensor(clean[rows], device=device),
                                             None if tokens is None else {k: v[rows].to(device) for k, v in tokens.items()})
        for restart in range(int(p["restarts"])):
            standing = np.flatnonzero(best_margin >= 0) if p["early_stop"] else np.flatnonzero(best_margin > -np.inf)
            if not len(standing):
                break
            start = _starts(clean[standing], epsilon, seed, restart) if (p["random_start"] or restart) \
                else clean[standing]
            for b in range(0, len(standing), int(p["batch_size"])):
                rows = standing[b:b + int(p["batch_size"])]
                found, found_margin, used = _run(model, clean[rows], start[b:b + len(rows)], labels_all[rows],
                                                 None if tokens is None else {k: v[rows] for k, v in tokens.items()},
                                                 epsilon, steps, size, p, device, seen, margin)
                better = found_margin < best_margin[rows]
                best[rows[better]] = found[better]
                best_margin[rows[better]] = found_margin[better]
                queries[rows] += used
    settings = {k: v for k, v in p.items() if k != "batch_size"}
    return Crafted(best, list(target.texts), steps, {**settings, "step_size": size, "bpda_steps": seen}, queries)


def _run(model: torch.nn.Module, clean: np.ndarray, start: np.ndarray, labels: np.ndarray,
         tokens: dict[str, torch.Tensor] | None, epsilon: float, steps: int, size: float, p: dict[str, Any],
         device: torch.device, seen: dict[str, int],
         margin: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = true_margin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One restart on one batch, with early stop unless `p["early_stop"]` is false: (best input, its margin, forward
    passes) per row."""
    x0 = torch.as_tensor(clean, device=device)
    x = torch.as_tensor(start, device=device).clone()
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    tok = None if tokens is None else {k: v.to(device) for k, v in tokens.items()}
    best, best_margin = x.clone(), torch.full((len(x),), float("inf"), device=device)
    active = torch.arange(len(x), device=device)
    used = np.zeros(len(x), dtype=np.int64)
    for step in range(steps + 1):
        xa = x[active].clone().requires_grad_(step < steps)
        sub_tokens = None if tok is None else {k: v[active] for k, v in tok.items()}
        with torch.enable_grad():
            mode, draws = StraightThrough() if p["bpda"] else None, int(p["eot"])
            with mode if mode is not None else contextlib.nullcontext():
                logits = [model(xa, sub_tokens) for _ in range(draws)]
            for name, count in (mode.seen.items() if mode is not None else ()):
                seen[name] = seen.get(name, 0) + count
            used[active.cpu().numpy()] += draws
            m = torch.stack([margin(z.detach(), y[active]) for z in logits]).mean(0)
            better = m < best_margin[active]
            best[active[better]] = xa.detach()[better]
            best_margin[active[better]] = m[better]
            # early stop: a misclassified iterate is this sample's adversarial input
            keep = m >= 0 if p["early_stop"] else torch.ones_like(m, dtype=torch.bool)
            if step == steps or not bool(keep.any()):
                break
            if p["loss"] == "ce":
                loss = torch.stack([F.cross_entropy(z, y[active], reduction="sum") for z in logits]).mean()
            else:
                loss = -torch.stack([margin(z, y[active]) for z in logits]).mean(0).sum()
            (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            moved = xa.detach() + size * grad.sign()
            moved = torch.min(torch.max(moved, x0[active] - epsilon), x0[active] + epsilon).clamp(0.0, 1.0)
            x[active] = moved
            active = active[keep]
    return best.cpu().numpy(), best_margin.cpu().numpy(), used
