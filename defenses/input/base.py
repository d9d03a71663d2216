"""What an input defense is, and how an adaptive attack sees through it (BPDA).

An input defense transforms a model's input before the model sees it: the image (ART's preprocessing defences) or
the report (a canonicaliser). Its transform is not differentiable (it runs in NumPy, or rounds), so an attack that
takes the gradient of the defended model naively gets none through it: the defense is a black box to the gradient,
and the robust accuracy it reports is inflated by gradient masking (Athalye, Carlini & Wagner 2018).

`through(fn, x, name)` applies such a transform to a tensor: normally its gradient is zero (the naive view: the
defense masks the gradient); while `straight_through(counter)` is active (mmrb's BPDA, `defenses.adaptive.StraightThrough`
enters it), the output keeps its value but passes the gradient through as the identity (BPDA's straight-through
estimator), and `counter[name]` counts the passages.
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


@contextlib.contextmanager
def straight_through(counter: Counter) -> Iterator[None]:
    """While active, `through` passes gradients through input defenses as the identity (and counts them)."""
    token = _BPDA.set(counter)
    try:
        yield
    finally:
        _BPDA.reset(token)


def through(fn: Callable[[np.ndarray], np.ndarray], x: torch.Tensor, name: str) -> torch.Tensor:
    """`fn` applied to `x` (as float32 NumPy), back as a tensor on `x`'s device: without a gradient path, or with the
    identity as its gradient under `straight_through`."""
    import torch

    y = torch.as_tensor(np.ascontiguousarray(fn(x.detach().cpu().numpy().astype(np.float32))), dtype=x.dtype,
                        device=x.device)
    counter = _BPDA.get()
    if counter is not None and x.requires_grad:
        counter[name] += 1
        return x + (y - x).detach()
    return x * 0 + y if x.requires_grad else y  # connected to x, with a zero gradient: what a naive attack sees


class InputDefense:
    """Base of input defenses: `images(x)` transforms (n, views, H, W) image tensors in [0, 1], `texts(reports)`
    transforms report strings; each defense overrides the one it defends. `randomised`: a fresh draw per call (an
    adaptive attack averages over draws: EOT)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "input"
    modality: ClassVar[str] = "image"
    randomised: ClassVar[bool] = False

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.seed, self.params = seed, params

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def texts(self, reports: Sequence[str]) -> list[str]:
        return list(reports)

    def describe(self) -> str:
        return self.name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items())) + "]" if self.params else "")


def per_view(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Apply a single-channel image transform to each view of (n, views, H, W) images (ART's JPEG and smoothing
    take 1 or 3 channels; the views are separate grey images)."""

    def apply(x: np.ndarray) -> np.ndarray:
        n, views, h, w = x.shape
        return fn(x.reshape(n * views, 1, h, w)).reshape(n, views, h, w)

    return apply
