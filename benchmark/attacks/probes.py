"""Probes that keep an evaluation honest (Carlini et al. 2019, "On evaluating adversarial robustness"):
random sign noise of size ε (an attack must beat it), image replacement (each multimodal model's text
floor: what no image attack can go below) and the health of input gradients at the clean inputs.

`random_noise` and `image_replacement` take the craft signature (params, target, epsilon, seed) -> Crafted;
both score every candidate by position (row i with text i), never through the image view's matching.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.attacks import Crafted, Target, craft
from benchmark.attacks.cascade import Part
from benchmark.attacks.registry import register_attack
from mmrb.core.errors import AttackError

#: Second word of the noise generator's seed, default_rng([seed, NOISE_STREAM]): keeps its draws apart
#: from the other streams seeded with the same cell seed.
NOISE_STREAM = 0x6E6F6973
#: Rows per forward pass when scoring many candidate images.
BATCH_ROWS = 512


def _device(model: torch.nn.Module) -> torch.device:
    """The model's own device (CPU for a model without parameters)."""
    return next(iter(model.parameters()), torch.empty(0)).device


def _tokens(model: torch.nn.Module, texts: list[str], device: torch.device) -> dict[str, torch.Tensor] | None:
    """The texts tokenized once, on the model's device (None for a model without text input)."""
    if "text" not in model.modalities:
        return None
    tokens = model.tokenize(list(texts))
    return None if tokens is None else {k: v.to(device) for k, v in tokens.items()}


def _rows(tokens: dict[str, torch.Tensor] | None, index: torch.Tensor) -> dict[str, torch.Tensor] | None:
    return None if tokens is None else {k: v[index] for k, v in tokens.items()}


def true_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Logit of the true class minus the largest other logit: negative exactly when the sample is wrong;
    monotone in the true class's probability and free of softmax saturation."""
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - others.amax(1)


def _margins_by_position(model: torch.nn.Module, images: torch.Tensor, tokens: dict[str, torch.Tensor] | None,
                         labels: torch.Tensor, batch_rows: int) -> torch.Tensor:
    """True-class margin of row i of `images` with text i, batch by batch (no gradients)."""
    out = []
    for start in range(0, len(images), batch_rows):
        index = torch.arange(start, min(start + batch_rows, len(images)), device=images.device)
        out.append(true_margin(model(images[index], _rows(tokens, index)), labels[index]))
    return torch.cat(out)


def _check_images(target: Target, probe: str) -> None:
    if "image" not in target.model.modalities:
        name = getattr(target.model, "config", {}).get("name", type(target.model).__name__)
        raise AttackError(f"{probe} perturbs images, but model {name!r} has no image input; "
                          "list the probe only for models with an image input")


def _int_param(params: dict, name: str, default: int, probe: str) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AttackError(f"{probe}: params.{name} must be a positive integer, got {value!r}")
    return int(value)


def _reject_unknown(params: dict, accepted: tuple[str, ...], probe: str) -> None:
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise AttackError(f"{probe} has no parameter(s) {', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}")


@register_attack("random_noise", probe="noise", params=("draws", "batch_size"))
def random_noise(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Per sample the worst of `draws` uniform random sign noises x + ε·s (s ∈ {−1, +1} per pixel, clipped
    to [0, 1]): an attack that is no stronger than this has not found the model's weakness."""
    _reject_unknown(params, ("draws", "batch_size"), "random_noise")
    draws = _int_param(params, "draws", 10, "random_noise")
    batch_rows = _int_param(params, "batch_size", BATCH_ROWS, "random_noise")
    if epsilon is None or not np.isfinite(epsilon) or epsilon < 0:
        raise AttackError(f"random_noise needs an image budget ε >= 0, got {epsilon!r}; give the attack epsilons")
    _check_images(target, "random_noise")
    model = target.model.eval()
    device = _device(model)
    clean = np.asarray(target.images, dtype=np.float32)
    rng = np.random.default_rng([seed, NOISE_STREAM])
    labels = torch.as_tensor(np.asarray(target.labels), dtype=torch.long, device=device)
    tokens = _tokens(model, list(target.texts), device)
    best_images, best = clean.copy(), torch.full((len(clean),), float("inf"))
    with torch.no_grad():
        for _ in range(draws):
            signs = rng.integers(0, 2, size=clean.shape, dtype=np.int8) * 2 - 1
            noisy = np.clip(clean + np.float32(epsilon) * signs, 0.0, 1.0).astype(np.float32)
            margin = _margins_by_position(model, torch.from_numpy(noisy).to(device), tokens, labels, batch_rows).cpu()
            better = margin < best
            best = torch.where(better, margin, best)
            best_images[better.numpy()] = noisy[better.numpy()]
    return Crafted(best_images, list(target.texts), 0, {"draws": draws}, np.full(len(clean), draws))


@register_attack("image_replacement", probe="floor", bounded=False, params=("extra", "batch_size", "escalate"),
                 calls=(("extra", "art"),))
def image_replacement(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """The text floor: per sample (its text kept) the image, among every test image, a blank (all 0) and a
    saturated (all 1) image and the optional `extra` adversarial images, that gives its true class the
    lowest probability. Its robust accuracy is the share of samples whose correct prediction no tried image
    changes: the lowest any image attack can reach as far as these images know, so an upper bound on the
    true floor. The sample's own clean image is among the candidates: a sample wrong when clean stays wrong.
    How much the image still decides: `params["decisions_changed"]`, the share of samples whose decision some
    candidate changes (right with one image, wrong with another, either way; with two classes exactly a changed
    decision) or an `extra` image breaks; near 0 for a model that no longer looks at its image.

    A cascade (benchmark.attacks.cascade): the candidate pool first (cheap), then each `extra` attack only on the samples the
    pool left standing, escalated like the convergence check (benchmark.attacks.convergence.escalate) until it stops
    breaking samples, unless `escalate: false`.

    params: `extra`: an (n, 2, H, W) array (row i tried for sample i only), an attack entry {source, name, params,
    epsilon (default 1.0)} crafted here on the target (e.g. mmrb's pgd at ε = 1), or a list of those; `escalate`
    (true); `batch_size`: rows per forward pass. ε is not used: replacement images are unbounded.
    """
    from benchmark.attacks.cascade import Cascade
    from wrappers.training import predict_proba

    _reject_unknown(params, ("extra", "batch_size", "escalate"), "image_replacement")
    batch_rows = _int_param(params, "batch_size", BATCH_ROWS, "image_replacement")
    _check_images(target, "image_replacement")
    model = target.model.eval()
    device = _device(model)
    clean = torch.as_tensor(np.asarray(target.images), dtype=torch.float32, device=device)
    labels = torch.as_tensor(np.asarray(target.labels), dtype=torch.long, device=device)
    tokens = _tokens(model, list(target.texts), device)
    pool = torch.cat([clean, torch.zeros_like(clean[:1]), torch.ones_like(clean[:1])])
    with torch.no_grad():
        margins = _margins_against_pool(model, pool, tokens, labels, batch_rows)
        chosen = pool[margins.to(device).min(1).indices].cpu().numpy()
    right = (margins > 0).numpy()  # (n, m): the decision with candidate image j is right
    cascade = Cascade(target, predict_proba(model, chosen, target.texts), chosen)
    cascade.parts.append(Part("pool", len(chosen), int((~cascade.robust).sum()), int(cascade.robust.sum()), 0.0,
                              float(len(chosen) * len(pool))))
    cascade.charge(float(len(pool)))
    extras = _extras(params.get("extra"), target)
    for i, extra in enumerate(extras):
        if isinstance(extra, np.ndarray):
            # the attacked samples are exactly the survivors at call time
            cascade.run(f"extra{i}", lambda sub, rows=extra: Crafted(rows[cascade.survivors()], list(sub.texts), 0,
                                                                      queries=np.ones(len(sub.texts))))
            continue
        _run_extra(cascade, extra, seed, bool(params.get("escalate", True)))
    # a decision the image changes: the candidates disagree on it, or an extra image broke one they all left right
    changed = (right.any(1) != right.all(1)) | (right.all(1) & ~cascade.robust)
    return cascade.crafted(0, {"candidates": len(pool), "extra": len(extras),
                               "decisions_changed": float(changed.mean()) if len(changed) else float("nan")})


def _extras(extra: Any, target: Target) -> list[np.ndarray | dict]:
    """`extra` as a list of (n, 2, H, W) arrays and attack entries (checked)."""
    if extra is None:
        return []
    out = []
    for item in extra if isinstance(extra, (list, tuple)) else [extra]:
        if isinstance(item, dict):
            if "name" not in item:
                raise AttackError("image_replacement: params.extra entries need {source, name, params, epsilon}")
            out.append(item)
            continue
        array = np.asarray(item, dtype=np.float32)
        if array.shape != np.shape(target.images):
            raise AttackError(f"image_replacement: params.extra has shape {array.shape}; it needs one image per "
                              f"test sample, shape {np.shape(target.images)}")
        out.append(array)
    return out


def _run_extra(cascade, entry: dict, seed: int, escalated: bool) -> None:
    """An extra attack on the survivors of `cascade`, then escalated (gradient attacks) while it still breaks samples."""
    from benchmark.attacks.convergence import escalate_attack
    from benchmark.attacks.registry import traits

    source, name, attack_params = entry.get("source", "art"), entry["name"], dict(entry.get("params", {}))
    epsilon = float(entry.get("epsilon", 1.0))
    cascade.run(name, lambda sub: craft(source, name, attack_params, sub, epsilon, seed))
    if escalated and traits(source, name).gradient:
        escalate_attack(cascade, source, name, attack_params, epsilon, seed)


def _margins_against_pool(model: torch.nn.Module, pool: torch.Tensor, tokens: dict[str, torch.Tensor] | None,
                          labels: torch.Tensor, batch_rows: int) -> torch.Tensor:
    """(n, m) true-class margins of sample i's text with candidate image j. An image-only model is run once per
    candidate; a model whose images and texts go only through its `vision` and `text` branches (the fusion
    models) once per candidate and per text, its branch outputs then recombined for every pair (checked against
    the full model on the pairs it ran); any other model on all n·m pairs."""
    if tokens is None:
        logits = torch.cat([model(pool[i:i + batch_rows], None) for i in range(0, len(pool), batch_rows)])
        n, m = len(labels), len(pool)
        return true_margin(logits.repeat(n, 1), labels.repeat_interleave(m)).view(n, m).cpu()
    fast = _branch_margins(model, pool, tokens, labels, batch_rows)
    return fast if fast is not None else _pair_margins(model, pool, tokens, labels, batch_rows)


def _pair_margins(model: Callable, pool: torch.Tensor, tokens: dict[str, torch.Tensor] | None,
                  labels: torch.Tensor, batch_rows: int) -> torch.Tensor:
    """(n, m) margins from the full model on every (text i, image j) pair, blocks of samples at a time."""
    n, m = len(labels), len(pool)
    per_block = max(1, batch_rows // m)
    out = []
    for start in range(0, n, per_block):
        samples = torch.arange(start, min(start + per_block, n), device=pool.device)
        rows = samples.repeat_interleave(m)
        images = pool.repeat(len(samples), 1, 1, 1)
        out.append(true_margin(model(images, _rows(tokens, rows)), labels[rows]).view(len(samples), m))
    return torch.cat(out).cpu()


class _Recorded(torch.nn.Module):
    """Stands in for a branch: the output recorded for row `index` (the branch's last argument)."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, *args: Any) -> torch.Tensor:
        index = args[-1]["row"] if isinstance(args[-1], dict) else args[-1]
        return self.outputs[index]


def _branch_margins(model: torch.nn.Module, pool: torch.Tensor, tokens: dict[str, torch.Tensor],
                    labels: torch.Tensor, batch_rows: int) -> torch.Tensor | None:
    """(n, m) margins from recorded branch outputs, or None where the model does not split into `vision` and
    `text` branches that alone see its inputs (checked: the recombined pairs must equal the full model's)."""
    branches = {name: getattr(model, name, None) for name in ("vision", "text")}
    if not all(isinstance(b, torch.nn.Module) for b in branches.values()):
        return None
    n, m = len(labels), len(pool)
    recorded: dict[str, list[torch.Tensor]] = {"vision": [], "text": []}
    hooks = [branch.register_forward_hook(lambda module, args, out, name=name: recorded[name].append(out))
             for name, branch in branches.items()]
    paired_text = torch.arange(m, device=pool.device) % n  # candidate j < n with its own text; blank, saturated with 0, 1
    try:
        full = torch.cat([model(pool[i:i + batch_rows], _rows(tokens, paired_text[i:i + batch_rows]))
                          for i in range(0, m, batch_rows)])
    finally:
        for hook in hooks:
            hook.remove()
    if not all(all(isinstance(o, torch.Tensor) for o in outs) for outs in recorded.values()):
        return None
    outputs = {name: torch.cat(outs) for name, outs in recorded.items()}
    if len(outputs["vision"]) != m or len(outputs["text"]) != m:
        return None  # a branch ran more or less than once per row
    originals = dict(branches)
    try:
        for name, out in (("vision", outputs["vision"]), ("text", outputs["text"][:n])):
            setattr(model, name, _Recorded(out))
        check = model(torch.arange(m, device=pool.device), {"row": paired_text})
        if check.shape != full.shape or not torch.allclose(check, full, rtol=1e-4, atol=1e-4):
            return None
        per_block = max(1, (batch_rows * 64) // m)  # recombining is cheap: larger blocks
        out = []
        for start in range(0, n, per_block):
            samples = torch.arange(start, min(start + per_block, n), device=pool.device)
            rows = samples.repeat_interleave(m)
            logits = model(torch.arange(m, device=pool.device).repeat(len(samples)), {"row": rows})
            out.append(true_margin(logits, labels[rows]).view(len(samples), m))
        return torch.cat(out).cpu()
    except Exception:  # the model used its inputs outside the branches: score every pair in full
        return None
    finally:
        for name, branch in originals.items():
            setattr(model, name, branch)


def gradient_health(model: torch.nn.Module, images: np.ndarray, texts: list[str] | None, labels: np.ndarray,
                    batch_size: int = 64) -> dict[str, float]:
    """Fractions of samples whose cross-entropy input gradient at the clean input (row i with text i) is
    exactly zero everywhere or has a non-finite entry: either makes gradient attacks blind (masking). The zero share
    is also measured under BPDA (`zero_gradient_bpda`: rounding steps passed straight through,
    defenses.adaptive): masking that BPDA undoes is answered by the adaptive attacks; masking it leaves is
    not. `stochastic`: 1 when two forward passes on the same inputs differ (a randomised model: EOT applies).
    NaN for a model without image input. The model's mode and parameters' requires_grad are restored."""
    from defenses.adaptive import StraightThrough, is_stochastic

    if "image" not in model.modalities:
        return {"zero_gradient": float("nan"), "nonfinite_gradient": float("nan"), "zero_gradient_bpda": float("nan"),
                "stochastic": float("nan")}
    with frozen(model):
        device = _device(model)
        tokens = _tokens(model, list(texts) if texts is not None else [], device)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=device)
        zero = nonfinite = zero_bpda = 0
        for start in range(0, len(images), batch_size):
            index = torch.arange(start, min(start + batch_size, len(images)), device=device)
            x = torch.as_tensor(images[start:start + len(index)], dtype=torch.float32, device=device)
            grad = _input_gradient(model, x, _rows(tokens, index), y[index])
            zero += int((grad == 0).all(1).sum())
            nonfinite += int((~torch.isfinite(grad)).any(1).sum())
            with StraightThrough():
                grad = _input_gradient(model, x, _rows(tokens, index), y[index])
            zero_bpda += int((grad == 0).all(1).sum())
        stochastic = is_stochastic(model, images, texts)
    n = len(images)
    return {"zero_gradient": zero / n, "nonfinite_gradient": nonfinite / n, "zero_gradient_bpda": zero_bpda / n,
            "stochastic": float(stochastic)}


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model in eval mode with its parameters frozen (gradients flow to the inputs only); its mode and each
    parameter's requires_grad are restored on exit."""
    was_training, requires = model.training, [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        model.train(was_training)
        for p, flag in zip(model.parameters(), requires):
            p.requires_grad_(flag)


def _input_gradient(model: Callable, x: torch.Tensor, tokens: dict[str, torch.Tensor] | None,
                    y: torch.Tensor) -> torch.Tensor:
    """(b, D) gradient of the summed cross-entropy w.r.t. the images (zeros where the loss ignores them)."""
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x, tokens), y, reduction="sum")
    if not loss.requires_grad:  # the output does not depend on the images at all
        return torch.zeros_like(x).flatten(1)
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return (torch.zeros_like(x) if grad is None else grad).flatten(1)
