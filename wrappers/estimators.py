"""ART estimators over a multimodal model: the image view, with each sample's text bound as context.

ART and torchattacks never call a model with the array they were given: they slice it into
batches, pass only the rows still unbroken (Square, AutoPGD) or query many candidates of one sample
(HopSkipJump, Boundary). So the text of a row cannot be found by its position. `ContextBinding`
finds it by content: each queried image belongs to the bound clean image nearest in L∞, which is
provably the right one while the query lies within `radius` (half the smallest L∞ distance between
two bound images) of it. Queries farther out raise `ContextError` instead of silently pairing an
image with another patient's report. `ImageView.run_attack(attack, x, y)` runs any ART evasion attack
so that this never happens: it attacks groups of samples wider than twice the attack's budget, and one
sample at a time (any query is then that sample's) for attacks without a budget or whose queries leave
the radius. All-ones and all-zeros images far from every bound image are placeholder probes (ART's
AutoPGD constructor predicts np.ones), not queries about a sample (see `ContextBinding.indices`).
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier
from torch import nn

from mmrb.core.errors import ContextError, ModelError
from wrappers.binding import (
    EPS_SLACK,
    GRADIENT_CACHE,
    ContextBinding,
    fingerprint,
)


#: Fingerprints are images average-pooled so that binding n samples costs about this many
#: operations (n² · D). Pooling never increases an L∞ distance (a mean of differences is bounded by
#: their max), so every radius and match computed on fingerprints is a conservative bound on the
#: full-resolution one; small images are not pooled at all.
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


def query_budget(attack: Any) -> float | None:
    """L∞ bound on how far every query of the ART `attack` lies from its input row, or None if it has none.

    Projected L1/L2/L∞ attacks (FGSM and the PGD family incl. BIM and MIM, AutoPGD, AutoConjugateGradient,
    Square) only query points of their `eps`-ball, and an L1/L2 ball lies inside the L∞ ball of the same
    radius; AutoAttack has one if all its attacks do. Decision-based and minimal-norm attacks (HopSkipJump,
    Boundary, DeepFool, Carlini-Wagner, ...) and budgets in other units (Wasserstein) have none.
    """
    from art.attacks import evasion

    if isinstance(attack, evasion.AutoAttack):
        budgets = [query_budget(a) for a in attack.attacks]
        return None if not budgets or None in budgets else max(budgets)
    projected = (evasion.FastGradientMethod, evasion.ProjectedGradientDescent, evasion.AutoProjectedGradientDescent,
                 evasion.AutoConjugateGradient, evasion.SquareAttack)
    if not isinstance(attack, projected):
        return None
    try:
        norm = float(getattr(attack, "norm", math.inf))
        eps = float(np.max(attack.eps))
    except (TypeError, ValueError):
        return None
    return eps if norm in (1.0, 2.0, math.inf) and math.isfinite(eps) else None


#: ART modules whose `compute_success` result feeds only an INFO log line ("Success rate of attack"): evaluated eagerly,
#: it costs two predicts of every sample per generate (≈ 7 % of PGD-10, ≈ 40 % of FGSM).
_LOG_ONLY_SUCCESS = ("art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch",
                     "art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy")


@contextlib.contextmanager
def _success_rate_only_when_logged(attack: Any) -> Iterator[None]:
    """While ART's loggers do not print INFO, its PGD modules (and FGSM's, for an FGSM whose success rate is only
    logged: no random restarts, not minimal) get a `compute_success` that returns NaN instead of predicting every
    sample twice for a log line nobody sees. ART itself is not modified; the function is restored on exit."""
    import importlib
    import logging

    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    names = list(_LOG_ONLY_SUCCESS)
    if type(attack) is FastGradientMethod and not attack.minimal and attack.num_random_init <= 1:
        names.append("art.attacks.evasion.fast_gradient")
    elif not isinstance(attack, (FastGradientMethod, ProjectedGradientDescent)):
        yield
        return
    modules = [importlib.import_module(name) for name in names]
    if any(logging.getLogger(m.__name__).isEnabledFor(logging.INFO) for m in modules):
        yield
        return
    saved = [m.compute_success for m in modules]
    for module in modules:
        module.compute_success = lambda *args, **kwargs: float("nan")
    try:
        yield
    finally:
        for module, original in zip(modules, saved):
            module.compute_success = original


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
            preprocessing=None,  # normalisation is inside the model: nothing for ART to apply (or to copy)
        )
        self._gradients: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()
        self.gradient_hits = 0  # loss gradients served from GRADIENT_CACHE (FGSM at several ε on the same inputs)
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

    def run_attack(self, attack: Any, x: np.ndarray, y: np.ndarray | None = None, **kwargs: Any) -> np.ndarray:
        """Run an ART evasion attack built on this view on `x`, every model query with its own sample's text.

        `x` are images this view is bound to (all of them, or any subset in any order: rows are told by
        content); x_adv comes back aligned with x. `y` (labels or one-hot, one row per row of x) and any
        keyword argument with one row per row of x (mask, x_adv_init) are sliced per group; others are passed
        as they are. Samples are attacked in groups wider than twice the attack's query budget
        (`query_budget`: `attack.eps` of projected attacks), all in one call when ε is below
        `max_epsilon`; attacks without a budget (HopSkipJump, DeepFool, ...) run one sample at a time, and a
        group whose queries still leave the matching radius is redone one sample at a time. Example::

            view = ImageView(model, images, texts)
            x_adv = view.run_attack(ProjectedGradientDescent(view, eps=8 / 255, max_iter=10), images, labels)
        """
        estimator = getattr(attack, "estimator", None)
        if getattr(estimator, "model", None) is not self._view:
            raise ContextError(f"{type(attack).__name__} is not built on this view: build it as "
                               f"{type(attack).__name__}(view, ...) and call view.run_attack(attack, x, y)")
        x = np.asarray(x)
        if y is not None and len(y) != len(x):
            raise ContextError(f"y has {len(y)} rows but x has {len(x)}: give one label per image")
        per_row = {k for k, v in kwargs.items() if isinstance(v, np.ndarray) and v.ndim == x.ndim and len(v) == len(x)}

        def craft(rows: list[int]) -> np.ndarray:
            extra = {k: v[rows] if k in per_row else v for k, v in kwargs.items()}
            return attack.generate(x=x[rows], y=None if y is None else np.asarray(y)[rows], **extra)

        with _success_rate_only_when_logged(attack):
            return self.craft_in_groups(x, query_budget(attack), craft)

    def craft_in_groups(self, x: np.ndarray, epsilon: float | None,
                        craft: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """Adversarial images for `x` (images this view is bound to), crafted by `craft(rows)` -> adversarial
        x[rows], each call with only those rows' samples bound, so that every query within `epsilon` (L∞) of
        its row finds its own text. epsilon=None (queries anywhere): one row at a time. A group whose queries
        leave the matching radius is redone one row at a time. The one grouping code path of run_attack and
        the benchmark's adapters."""
        n = len(x)
        if self._all is None:  # no text to look up: any query is fine
            return np.asarray(craft(list(range(n))))
        samples, offset = self._samples_of(x)
        budget = None if epsilon is None else epsilon + offset
        x_adv: np.ndarray | None = None

        def put(rows: list[int], images: np.ndarray) -> None:
            nonlocal x_adv
            images = np.asarray(images)
            if x_adv is None:
                x_adv = np.empty((n, *images.shape[1:]), dtype=images.dtype)
            x_adv[rows] = images

        for group in self._all.subset(samples).groups(budget):
            try:
                with self.bound_to([samples[r] for r in group]):
                    put(group, craft(group))
            except ContextError:
                for r in group:
                    with self.bound_to([samples[r]]):
                        put([r], craft([r]))
        return x_adv if x_adv is not None else np.empty_like(x)

    def _samples_of(self, x: np.ndarray) -> tuple[list[int], float]:
        """The bound sample of each row of x, and the largest fingerprint L∞ distance of a row from it."""
        images = torch.as_tensor(np.asarray(x))
        try:
            idx = self._all.indices(images, placeholders=False)
        except ContextError:
            raise ContextError(
                f"run_attack attacks the images this view is bound to ({len(self._all)} of them; any subset, in any "
                f"order), but a row of x is none of them: it lies beyond the matching radius {self._all.radius:.4f} "
                "(L∞) of every bound image. To attack other images, bind a view to them and "
                "build the attack on it: view = ImageView(model, images, texts); view.run_attack(Attack(view, ...), "
                "images, labels)."
            ) from None
        anchors = self._all.anchors[idx]
        offset = float((fingerprint(images, self._all.side) - anchors).abs().amax()) if len(x) else 0.0
        return idx.tolist(), offset

    def loss_gradient(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, training_mode: bool = False,
                      **kwargs: Any) -> np.ndarray | torch.Tensor:
        """Gradient of the cross-entropy loss w.r.t. the images only (the model's parameters are frozen): one forward
        and one `torch.autograd.grad`, tensors in and out for ART's PyTorch attacks (no numpy round trip). For numpy
        inputs the gradient is also kept, keyed by the bytes of (x, y) and the bound samples, for the next
        GRADIENT_CACHE calls: FGSM (or any attack starting from the clean-input gradient) at k ε values computes it
        once. Anything unusual (training mode, extra arguments) goes to ART's own implementation."""
        if training_mode or kwargs or self.preprocessing_operations:
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)
        key = None
        if isinstance(x, np.ndarray):
            key = self._gradient_key(x, y)
            if key in self._gradients:
                self._gradients.move_to_end(key)
                self.gradient_hits += 1
                return self._gradients[key].copy()
        tensor = torch.as_tensor(x, device=self._device)
        images = tensor.detach().to(torch.float32).requires_grad_(True)
        labels = torch.as_tensor(y, device=self._device)
        labels = labels.argmax(1) if labels.ndim == 2 else labels.long()
        loss = F.cross_entropy(self._view(images), labels)  # = ART's CrossEntropyLoss (mean), as its loss_gradient
        (grad,) = torch.autograd.grad(loss, images)
        grad = grad.to(tensor.dtype)
        if key is None:
            return grad
        out = grad.cpu().numpy()
        self._gradients[key] = out.copy()
        while len(self._gradients) > GRADIENT_CACHE:
            self._gradients.popitem(last=False)
        return out

    def _gradient_key(self, x: np.ndarray, y: np.ndarray | torch.Tensor) -> bytes:
        """Content key of a gradient: the inputs, the labels and which samples are bound (their texts)."""
        h = hashlib.blake2b(digest_size=20)
        for part in (np.ascontiguousarray(x), np.ascontiguousarray(np.asarray(y))):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(part.data)
        h.update(str(id(self._view.binding)).encode())
        return h.digest()

    def predict(self, x: np.ndarray, batch_size: int | None = None, training_mode: bool = False,
                rows: Sequence[int] | None = None, **kwargs) -> np.ndarray:
        """Logits of `x`. Each row's text is the bound sample its image is nearest to, unless `rows` names it: the
        index of each row's bound sample (e.g. `view.predict(x_adv, rows=range(len(x)))` after `x_adv =
        view.run_attack(attack, x, y)` on all bound images in order). Minimal-norm attacks (HopSkipJump, FAB, CW,
        DeepFool) may return images beyond the matching radius, which only `rows` can score."""
        if rows is None or self._all is None:
            return super().predict(x, batch_size=batch_size or self.default_batch_size, training_mode=training_mode,
                                   **kwargs)
        index = torch.as_tensor(list(rows), dtype=torch.long)
        if len(index) != len(x) or (len(index) and (index.min() < 0 or index.max() >= len(self._all))):
            raise ContextError(f"rows: give one index of a bound sample (0 to {len(self._all) - 1}) per row of x "
                               f"({len(x)} rows, {len(index)} indices)")
        images, size, out = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32), batch_size or self.default_batch_size, []
        with torch.no_grad():
            for start in range(0, len(images), size):
                part = index[start:start + size]
                context = {k: v[part].to(self._device) for k, v in self._all.context.items()}
                out.append(self.multimodal_model(images[start:start + size].to(self._device), context).cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, self.nb_classes), dtype=np.float32)
