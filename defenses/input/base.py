"""What an input defense is, and how an adaptive attack sees through it (BPDA).

An input defense transforms a model's input before the model sees it: the image (ART's preprocessing defences) or
the report (a canonicaliser). Its transform is not differentiable (it runs in NumPy, or rounds), so an attack that
takes the gradient of the defended model naively gets none through it: the defense is a black box to the gradient,
and the robust accuracy it reports is inflated by gradient masking (Athalye, Carlini & Wagner 2018).

`through(fn, x, name, stand_in)` applies such a transform to a tensor: normally its gradient is zero (the naive
view: the defense masks the gradient); while `straight_through(counter)` is active (mmrb's BPDA,
`defenses.adaptive.StraightThrough` enters it), it is BPDA in the sense of Athalye et al. (2018, §4.1): the forward
pass is the real defense's, the backward pass its stand-in's, `y = real(x).detach() + s(x) − s(x).detach()`, and
`counter[name]` counts the passages.

Each defense declares, in its own file, the best gradient it allows (`gradient`) and the torch function that gives it
(`stand_in`): "exact" (a torch version with the same forward: the median filter; or an exact gradient: additive
noise), "approximation" (a differentiable stand-in: JPEG), "straight-through" (rounding: the identity gradient),
"identity" (the last resort: nothing better is known), "none" (it does not act on the image). A stand-in's own
rounding steps keep their gradient (`defenses.adaptive.StraightThrough` leaves them alone: `in_stand_in`).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

_BPDA: contextvars.ContextVar[Counter | None] = contextvars.ContextVar("mmrb_bpda", default=None)
_STAND_IN: contextvars.ContextVar[bool] = contextvars.ContextVar("mmrb_stand_in", default=False)
#: How an adaptive attack may differentiate a defense, best first.
GRADIENTS = ("exact", "approximation", "straight-through", "identity", "none")


@contextlib.contextmanager
def straight_through(counter: Counter) -> Iterator[None]:
    """While active, `through` passes gradients through input defenses as the identity (and counts them)."""
    token = _BPDA.set(counter)
    try:
        yield
    finally:
        _BPDA.reset(token)


def in_stand_in() -> bool:
    """Whether a defense's stand-in is being computed (its rounding steps keep their own gradient)."""
    return _STAND_IN.get()


def through(fn: Callable[[np.ndarray], np.ndarray], x: torch.Tensor, name: str,
            stand_in: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """`fn` applied to `x` (as float32 NumPy), back as a tensor on `x`'s device: without a gradient path, or under
    `straight_through` with the gradient of `stand_in` (default: the identity) and `fn`'s value (BPDA)."""
    import torch

    y = torch.as_tensor(np.ascontiguousarray(fn(x.detach().cpu().numpy().astype(np.float32))), dtype=x.dtype,
                        device=x.device)
    counter = _BPDA.get()
    if counter is not None and x.requires_grad:
        counter[name] += 1
        if stand_in is None:
            return x + (y - x).detach()
        token = _STAND_IN.set(True)
        try:
            s = stand_in(x)
        finally:
            _STAND_IN.reset(token)
        return y + (s - s.detach())  # the real forward, the stand-in's backward
    return x * 0 + y if x.requires_grad else y  # connected to x, with a zero gradient: what a naive attack sees


class InputDefense:
    """Base of input defenses: `images(x)` transforms (n, views, H, W) image tensors in [0, 1], `texts(reports)`
    transforms report strings; each defense overrides the one it defends. `randomised`: a fresh draw per call (an
    adaptive attack averages over draws: EOT). `gradient` (one of GRADIENTS) and `stand_in(x)`: how an adaptive
    attack differentiates it (the identity unless the defense knows better); `stand_in_name` says what it is."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "input"
    modality: ClassVar[str] = "image"
    randomised: ClassVar[bool] = False
    gradient: ClassVar[str] = "identity"
    stand_in_name: ClassVar[str] = "identity"

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed, self.params = seed, params

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def texts(self, reports: Sequence[str]) -> list[str]:
        return list(reports)

    def stand_in(self, x: torch.Tensor) -> torch.Tensor:
        """A differentiable torch function whose gradient BPDA takes for the defense's (its value is not used)."""
        return x

    def stand_in_label(self) -> str:
        """What an adaptive attack differentiates in place of the defense: `median filter (exact)`, `identity`."""
        return self.gradient if self.stand_in_name == self.gradient else f"{self.stand_in_name} ({self.gradient})"

    def describe(self) -> str:
        return self.name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items())) + "]" if self.params else "")


def per_view(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Apply a single-channel image transform to each view of (n, views, H, W) images (ART's JPEG and smoothing
    take 1 or 3 channels; the views are separate grey images)."""

    def apply(x: np.ndarray) -> np.ndarray:
        n, views, h, w = x.shape
        return fn(x.reshape(n * views, 1, h, w)).reshape(n, views, h, w)

    return apply
