"""Adaptive attacks against masked gradients (Athalye, Carlini & Wagner 2018): BPDA and EOT.

- BPDA, straight-through: `StraightThrough()` is a torch function mode under which every non-differentiable rounding
  step a model takes on a tensor that needs a gradient (`round`, `floor`, `ceil`, `trunc`, `sign`, function or
  method form) keeps its forward value but passes the gradient through as the identity: `x + (op(x) − x).detach()`;
  an input defense's NumPy step keeps its value and takes the gradient of the defense's declared stand-in
  (`defenses.input.base.through`: the exact median filter, differentiable JPEG, the identity for rounding and noise),
  whose own rounding steps this mode leaves alone.
  A model that quantises its image input (e.g. `torch.round(x * 255) / 255`: a zero input gradient) is then attacked
  through the gradient of its twin without the rounding. The forward values are unchanged, so a model without such
  steps is attacked exactly as before; which steps were passed through is counted (`seen`).
- EOT: `Adapted(module, draws)` averages the logits of `draws` forward passes of a randomised model (an expectation
  over its randomness) so that an attack follows the mean gradient rather than one draw's.
- `is_stochastic(model, images, texts)`: whether two forward passes on the same inputs differ (eval mode).

The standard evaluation (benchmark.attacks.standard) and mmrb's own PGD (benchmark.attacks.pgd) attack through
these by default; gradient health (benchmark.attacks.probes.gradient_health) reports the zero-gradient share with
and without BPDA, so a masked model whose masking BPDA cannot undo is listed unranked (benchmark.evaluation.soundness).
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from defenses.input.base import in_stand_in
from mmrb.core.draws import EOT_DRAWS  # noqa: F401  (re-exported: the attacks read it here)

#: `eot: auto`: draws chosen by whether the model is randomised (is_stochastic).
EOT_AUTO = "auto"
_ROUNDING = {torch.round: "round", torch.floor: "floor", torch.ceil: "ceil", torch.trunc: "trunc", torch.sign: "sign",
             torch.Tensor.round: "round", torch.Tensor.floor: "floor", torch.Tensor.ceil: "ceil",
             torch.Tensor.trunc: "trunc", torch.Tensor.sign: "sign"}


class StraightThrough(TorchFunctionMode):
    """BPDA with the identity as the backward pass of the rounding steps listed above (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self._defenses: list[contextlib.AbstractContextManager] = []

    def __enter__(self) -> StraightThrough:
        from defenses.input.base import straight_through

        manager = straight_through(self.seen)  # an input defense's NumPy step also passes the gradient through
        manager.__enter__()
        self._defenses.append(manager)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        self._defenses.pop().__exit__(*exc)
        return super().__exit__(*exc)

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = _ROUNDING.get(func)
        if name is not None and args and isinstance(args[0], torch.Tensor) and args[0].requires_grad \
                and not in_stand_in() and isinstance(out, torch.Tensor) and out.is_floating_point() and out.shape == args[0].shape:
            self.seen[name] += 1
            x = args[0]
            return x + (out - x).detach()
        return out


#: EOT's draws are evaluated as one batch (each input repeated per draw) of at most this many rows; more rows are
#: split into as few batches as fit. One forward of draws × n rows costs far less than `draws` forwards of n rows for
#: the small models of a CPU run, and a GPU fills with it (scripts/perf.py --eot prints the ratio).
EOT_BATCH_ROWS = 4096


def _repeat(value: Any, times: int) -> Any:
    """`value` with every tensor (also inside a dict of tensors: a tokenised text) repeated `times` along rows."""
    if isinstance(value, torch.Tensor):
        return value.repeat(times, *([1] * (value.dim() - 1)))
    if isinstance(value, dict):
        return {k: _repeat(v, times) for k, v in value.items()}
    return value


class Adapted(nn.Module):
    """`module` attacked adaptively: its forward under BPDA (StraightThrough) where `bpda`, the logits averaged over
    `draws` forward passes (EOT; 1 for a deterministic model).

    The draws run as one batch (the inputs repeated `draws` times, EOT_BATCH_ROWS at most per forward) when the
    module draws afresh per row; a module whose randomness is one draw per call (the repeated rows come out
    identical) is found out on the first batch and evaluated one call per draw from then on (`per_call`)."""

    def __init__(self, module: nn.Module, draws: int = 1, bpda: bool = True) -> None:
        super().__init__()
        self.module, self.draws, self.bpda = module, max(1, int(draws)), bpda
        self.seen: Counter[str] = Counter()
        self.per_call: bool | None = None  # unknown until the first batched forward

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:  # the model contract (modalities, tokenize, config) is the module's
            return getattr(self.__dict__["_modules"]["module"], name)

    def forward(self, *args: Any) -> torch.Tensor:
        mode = StraightThrough() if self.bpda else contextlib.nullcontext()
        with mode:
            logits = self._expectation(args)
        self.seen.update(getattr(mode, "seen", ()))
        return logits

    def _expectation(self, args: tuple[Any, ...]) -> torch.Tensor:
        if self.draws == 1:
            return self.module(*args)
        rows = next((len(a) for a in args if isinstance(a, torch.Tensor)), 0)
        if self.per_call or not rows:
            return torch.stack([self.module(*args) for _ in range(self.draws)]).mean(0)
        group = max(1, min(self.draws, EOT_BATCH_ROWS // rows))
        parts, left = [], self.draws
        while left:
            times = min(group, left)
            out = self.module(*(_repeat(a, times) for a in args)).reshape(times, rows, -1)
            if self.per_call is None and times > 1:
                self.per_call = bool(torch.equal(out[0], out[1]))  # one draw per call: the rows repeat it
                if self.per_call:
                    return torch.stack([out[0]] + [self.module(*args) for _ in range(self.draws - 1)]).mean(0)
            parts.append(out.sum(0))
            left -= times
        return torch.stack(parts).sum(0) / self.draws


def takes_rounding_steps(module: nn.Module, *args: Any) -> bool:
    """Whether `module(*args)` takes a rounding step BPDA passes through (probed once, under StraightThrough, with
    the first argument needing a gradient): attacking through BPDA changes nothing for a module that takes none, so
    the attacks skip the mode's per-operation cost there."""
    first, *rest = args
    mode = StraightThrough()
    with torch.enable_grad(), mode:
        module(first.detach().clone().requires_grad_(True), *rest)
    return bool(mode.seen)


def is_stochastic(model: nn.Module, images: np.ndarray | None, texts: Sequence[str] | None, rows: int = 8) -> bool:
    """Whether the model gives different outputs on the same inputs (a randomised defence; eval mode)."""
    from wrappers.training import predict_logits

    images = None if images is None else images[:rows]
    texts = None if texts is None else list(texts)[:rows]
    return not torch.equal(predict_logits(model, images, texts), predict_logits(model, images, texts))


def mark_randomised(model: nn.Module, images: np.ndarray | None, texts: Sequence[str] | None) -> bool:
    """Whether `model` is randomised, declaring it (`model.randomised = True`) when its forward draws afresh without
    saying so (a submitted model with random shifts or noise): from then on it is scored by the majority of draws
    (wrappers.training.predict_proba) and attacked with EOT, like a randomised defense."""
    if getattr(model, "randomised", False):
        return True
    if is_stochastic(model, images, texts):
        model.randomised = True
        return True
    return False
