"""ART estimators over a multimodal model: the image view, with each sample's text bound as context.

ART and torchattacks never call a model with the array they were given: they slice it into
batches, pass only the rows still unbroken (Square, AutoPGD) or query many candidates of one sample
(HopSkipJump, Boundary). So the text of a row cannot be found by its position. `ContextBinding`
finds it by content: each queried image belongs to the bound clean image nearest in L∞, which is
provably the right one while the query lies within `radius` (half the smallest L∞ distance between
two bound images) of it. Queries farther out raise `ContextError` instead of silently pairing an
image with another patient's report; bind one sample at a time (`ImageView.bound_to`) for attacks
that query arbitrary images.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier
from torch import nn

from benchmark.errors import ContextError, ModelError

#: Fingerprints are images average-pooled so that binding n samples costs about this many
#: operations (n² · D). Pooling never increases an L∞ distance (a mean of differences is bounded by
#: their max), so every radius and match computed on fingerprints is a conservative bound on the
#: full-resolution one; small images are not pooled at all.
FINGERPRINT_BUDGET = 2e9
#: Slack for float rounding: an attack's projection may land a hair beyond ε (float32 arithmetic).
EPS_SLACK = 1e-4


def fingerprint_side(n: int, channels: int, side: int) -> int:
    """Largest side <= `side` at which n samples' pairwise distances fit FINGERPRINT_BUDGET."""
    return max(8, min(side, int((FINGERPRINT_BUDGET / max(n * n * channels, 1)) ** 0.5)))


def fingerprint(images: torch.Tensor, side: int) -> torch.Tensor:
    """(n, C, H, W) -> (n, C·side²) average-pooled, flattened images used to match rows to samples."""
    images = images.float()
    if images.shape[-1] != side or images.shape[-2] != side:
        images = F.adaptive_avg_pool2d(images, side)
    return images.flatten(1)


def linf_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """Pairwise L∞ distances between the rows of a (n, D) and b (m, D), computed in chunks."""
    if len(a) == 0:
        return a.new_zeros((0, len(b)))
    return torch.cat([(a[i:i + chunk, None, :] - b[None]).abs().amax(-1) for i in range(0, len(a), chunk)])


class ContextBinding:
    """Per-sample context (token ids) bound to clean images; rows are matched by nearest clean image."""

    def __init__(self, anchors: torch.Tensor, context: dict[str, torch.Tensor], side: int,
                 distances: torch.Tensor | None = None) -> None:
        sizes = {len(anchors)} | {len(v) for v in context.values()}
        if len(sizes) != 1:
            raise ContextError(f"images and text context disagree in length: {sorted(sizes)}")
        self.anchors, self.context, self.side = anchors, context, side
        if distances is None:
            distances = linf_distances(anchors, anchors)
            distances.fill_diagonal_(float("inf"))
        self.distances = distances
        self.radius = float(distances.min()) / 2 if len(anchors) > 1 else float("inf")

    @classmethod
    def from_images(cls, images: torch.Tensor, context: dict[str, torch.Tensor]) -> ContextBinding:
        """Bind `context` row i to clean image i."""
        side = fingerprint_side(len(images), images.shape[1], min(images.shape[-2:]))
        return cls(fingerprint(images, side), context, side)

    def __len__(self) -> int:
        return len(self.anchors)

    def indices(self, images: torch.Tensor) -> torch.Tensor:
        """Index of the bound sample each row of `images` belongs to; ContextError if ambiguous."""
        if len(self) == 1 or len(images) == 0:
            return torch.zeros(len(images), dtype=torch.long, device=images.device)
        anchors = self.anchors.to(images.device)
        queries = fingerprint(images.detach(), self.side)
        # Fast path: attacks mostly pass a contiguous run of the bound samples, in order. If every row
        # lies within the radius of its guessed sample, that sample is its unique nearest one.
        start = int(linf_distances(queries[:1], anchors).argmin())
        guess = torch.arange(start, start + len(queries), device=images.device)
        if guess[-1] < len(anchors) and bool(((queries - anchors[guess]).abs().amax(1) < self.radius).all()):
            return guess
        best, idx = linf_distances(queries, anchors).min(dim=1)
        far = best >= self.radius
        if far.any():
            row = int(far.nonzero()[0])
            raise ContextError(
                f"row {row} of a query of {len(images)} is {float(best[row]):.4f} (L∞) from the nearest of the "
                f"{len(self)} bound images, beyond the unambiguous radius {self.radius:.4f}. The attack left the "
                "ε-ball or queries fresh images (decision-based attacks): attack the groups of "
                "ImageView.attack_groups(ε) one at a time under ImageView.bound_to(group)."
            )
        return idx

    def lookup(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The context rows that belong to `images`, on their device."""
        idx = self.indices(images).cpu()
        return {k: v[idx].to(images.device) for k, v in self.context.items()}

    def subset(self, index: Sequence[int]) -> ContextBinding:
        """A binding of only some samples (e.g. one, for decision-based attacks)."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return ContextBinding(self.anchors[idx], {k: v[idx] for k, v in self.context.items()}, self.side,
                              self.distances[idx][:, idx])

    def groups(self, epsilon: float | None) -> list[list[int]]:
        """Partition of the samples into groups whose radius exceeds ε (all of them if it already does).

        Attacking group by group keeps every query of an ε-bounded attack provably matched;
        ε=None (an unbounded, decision-based attack) gives one sample per group.
        """
        if epsilon is None:
            return [[i] for i in range(len(self))]
        if epsilon + EPS_SLACK < self.radius:
            return [list(range(len(self)))]
        close = (self.distances <= 2 * (epsilon + EPS_SLACK)).numpy()
        groups: list[list[int]] = []
        for i in range(len(self)):
            home = next((g for g in groups if not close[i, g].any()), None)
            if home is None:
                groups.append([i])
            else:
                home.append(i)
        return groups


class ImageViewModule(nn.Module):
    """nn.Module of images only: looks up each row's bound text, then runs the multimodal model."""

    def __init__(self, model: nn.Module, binding: ContextBinding | None) -> None:
        super().__init__()
        self.model = model
        self.binding = binding

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float()
        context = self.binding.lookup(images) if self.binding is not None else None
        return self.model(images, context)


class ImageView(PyTorchClassifier):
    """ART classifier over the image input of a (multimodal) model; texts are fixed per sample.

    Inputs are (n, 2, H, W) images in [0, 1] (frontal, lateral); normalisation is inside the model,
    so ε is in pixel units as in the paper. The model is put in eval mode and its parameters are
    frozen: gradients flow to the image only.
    """

    def __init__(self, model: nn.Module, images: np.ndarray, texts: Sequence[str] | None = None,
                 device: str | None = None, batch_size: int = 64) -> None:
        if "image" not in model.modalities:
            raise ModelError(f"model {model.config['name']!r} has no image input; an image view needs one")
        model.eval().requires_grad_(False)
        if device is None:  # follow the model: ART moves the module to the estimator's device
            device = str(next(iter(model.parameters()), torch.empty(0)).device)
        binding = None
        if "text" in model.modalities:
            if texts is None or len(texts) != len(images):
                raise ContextError(f"model {model.config['name']!r} reads text: give one text per image "
                                   f"({len(images)} images, {0 if texts is None else len(texts)} texts)")
            binding = ContextBinding.from_images(torch.as_tensor(images), model.tokenize(texts))
        super().__init__(
            model=ImageViewModule(model, binding), loss=nn.CrossEntropyLoss(), input_shape=tuple(images.shape[1:]),
            nb_classes=2, clip_values=(0.0, 1.0), device_type="gpu" if device.startswith("cuda") else "cpu",
        )
        self.multimodal_model = model
        self.default_batch_size = batch_size
        self._view = self.model  # ART keeps the module we passed as .model
        self._all = binding

    @property
    def binding(self) -> ContextBinding | None:
        return self._view.binding

    @property
    def max_epsilon(self) -> float:
        """Largest L∞ budget under which every row is provably matched to its own text."""
        return float("inf") if self.binding is None else self.binding.radius - EPS_SLACK

    def attack_groups(self, n: int, epsilon: float | None) -> list[list[int]]:
        """Groups of the n bound samples to attack one at a time so that every query finds its own text."""
        if self.binding is None:
            return [list(range(n))]
        if len(self._all) != n:
            raise ContextError(f"{n} inputs given, but {len(self._all)} samples are bound to this view")
        return self._all.groups(epsilon)

    @contextlib.contextmanager
    def bound_to(self, index: Sequence[int]) -> Iterator[ImageView]:
        """Temporarily bind only the samples `index` of the view's samples (one sample: any query image gets
        its text). Indices always refer to all bound samples, also when calls nest."""
        previous = self._view.binding
        if self._all is not None:
            self._view.binding = self._all if len(index) == len(self._all) else self._all.subset(index)
        try:
            yield self
        finally:
            self._view.binding = previous

    def predict(self, x: np.ndarray, batch_size: int | None = None, training_mode: bool = False, **kwargs) -> np.ndarray:
        return super().predict(x, batch_size=batch_size or self.default_batch_size, training_mode=training_mode, **kwargs)
