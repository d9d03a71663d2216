"""How the image view keeps each image with its own report: every image an attack queries is bound to the test
sample it came from (by a fingerprint and its L-infinity distance), so the model sees that sample's text."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mmrb.core.errors import ContextError

FINGERPRINT_BUDGET = 2e9
#: Slack for float rounding: an attack's projection may land a hair beyond ε (float32 arithmetic).
EPS_SLACK = 1e-4
#: Placeholder probes: images whose every pixel equals one of these values (the ends of the view's pixel range,
#: within PLACEHOLDER_TOL). ART constructors probe the model with such an image (np.ones) before seeing any sample.
PLACEHOLDER_VALUES = (0.0, 1.0)
PLACEHOLDER_TOL = 1e-6
#: Loss gradients at numpy inputs kept per view (least recently used first out): the clean batches of FGSM cells.
GRADIENT_CACHE = 8


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

    def indices(self, images: torch.Tensor, placeholders: bool = True) -> torch.Tensor:
        """Index of the bound sample each row of `images` belongs to; ContextError if ambiguous.

        Placeholder rule: an all-ones or all-zeros image (PLACEHOLDER_VALUES; ART's AutoPGD,
        AutoConjugateGradient and BrendelBethge constructors predict np.ones to see whether the model outputs
        probabilities) that lies beyond the radius of every bound image is no sample's image and holds no
        sample's content, so it has no text of its own to miss; it is answered with the text of the nearest
        bound image. Every other row beyond the radius, constant images of other grey levels included,
        raises ContextError; `placeholders=False` refuses placeholders too.
        """
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
        # Second fast path (subsets, shuffled rows: Square, AutoPGD): guess by the nearest coarse fingerprint (4×4
        # per channel, cheap), then keep the guesses that lie within the radius at full resolution (provably right).
        guess = linf_distances(self._coarse(queries), self._coarse(anchors)).argmin(1)
        if bool(((queries - anchors[guess]).abs().amax(1) < self.radius).all()):
            return guess
        best, idx = linf_distances(queries, anchors).min(dim=1)
        far = best >= self.radius
        if placeholders and far.any():
            flat = images.detach().flatten(1)
            for value in PLACEHOLDER_VALUES:
                far &= ~((flat - value).abs() <= PLACEHOLDER_TOL).all(1)
        if far.any():
            row = int(far.nonzero()[0])
            raise ContextError(
                f"row {row} of a query of {len(images)} is {float(best[row]):.4f} (L∞) from the nearest of the "
                f"{len(self)} bound images, beyond the unambiguous radius {self.radius:.4f}, so its text cannot be "
                "told for sure. The attack left its ε-ball (ε above ImageView.max_epsilon) or queries fresh images "
                "(decision-based and minimal-norm attacks such as HopSkipJump or DeepFool): run it with "
                "view.run_attack(attack, x, y), which attacks groups of samples whose queries stay matched and "
                "one sample at a time otherwise. To score what run_attack returned, name each row's bound sample: "
                "view.predict(x_adv, rows=range(len(x_adv))) (x_adv aligned with the bound images). To query "
                "images other than the bound ones, bind a view to them: ImageView(model, images, texts)."
            )
        return idx

    def _coarse(self, prints: torch.Tensor) -> torch.Tensor:
        """Fingerprints average-pooled to 4×4 per channel (a guess of the nearest sample, checked afterwards)."""
        if self.side <= 4:
            return prints
        channels = prints.shape[1] // (self.side * self.side)
        return F.adaptive_avg_pool2d(prints.view(len(prints), channels, self.side, self.side), 4).flatten(1)

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
