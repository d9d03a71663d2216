"""Adversarial fine-tuning of a trained model's image input (a suite model's `defense: pgd_at` or `trades`).

- **PGD-AT** (Madry et al. 2018): each mini-batch is replaced by its PGD adversarial images (torchattacks `PGD`, random
  start, `steps` steps of 2.5·ε/steps, L∞ budget ε) and the model is trained on them with cross-entropy.
- **TRADES** (Zhang et al. 2019): loss CE(f(x), y) + β · KL(f(x) ‖ f(x_adv)), x_adv by torchattacks `TPGD` (PGD on
  that KL term).

Each image is attacked with its own report bound to it (the model reads both); the fine-tuning starts from the
trained model and updates the image branch (`part: image`, the default: the parameters of `model.vision` where the
model has one) or every parameter (`part: all`), with Adam at `lr` for `epochs` epochs. The result is cached like
any trained model, under the defended model's content key (benchmark.run.keys: the defense, its parameters and this
file's code are in it).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmrb.core.errors import ModelError


class _Bound(nn.Module):
    """`model` with the texts of one batch bound: images -> logits, the shape torchattacks attacks."""

    def __init__(self, model: nn.Module, text: Any) -> None:
        super().__init__()
        self.model, self.text = model, text

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, self.text)


class AdversarialTraining:
    """Base of the training defenses: the recipe from the suite, `fit(model, data, seed)` fine-tunes in place."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "training"
    modality: ClassVar[str] = "image"
    randomised: ClassVar[bool] = False

    def __init__(self, seed: int = 0, epsilon: float = 8 / 255, steps: int = 7, epochs: int = 3, lr: float = 1e-4,
                 part: str = "image", **extra: Any) -> None:
        if part not in ("image", "all"):
            raise ModelError(f"defense {self.name}: part must be 'image' (the image branch) or 'all'; got {part!r}")
        if not 0 < float(epsilon) <= 1 or int(steps) < 1 or int(epochs) < 1:
            raise ModelError(f"defense {self.name}: need 0 < epsilon <= 1, steps >= 1, epochs >= 1")
        self.seed, self.epsilon, self.steps, self.epochs, self.lr, self.part = seed, float(epsilon), int(steps), \
            int(epochs), float(lr), part
        self.params = {"epsilon": epsilon, "steps": steps, "epochs": epochs, "lr": lr, "part": part, **extra}

    def describe(self) -> str:
        return self.name + "[" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items())) + "]"

    def attack(self, bound: nn.Module):
        raise NotImplementedError

    def loss(self, model: nn.Module, images: torch.Tensor, adversarial: torch.Tensor, text: Any,
             labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, model: nn.Module, data: Any, seed: int, batch_size: int = 32) -> dict[str, float]:
        """Fine-tune `model` on adversarial versions of `data` (a wrappers.training.LabelledSet); the seconds it took
        and the last epoch's mean loss."""
        start = time.perf_counter()
        torch.manual_seed(seed)
        trainable = model.vision.parameters() if self.part == "image" and hasattr(model, "vision") else model.parameters()
        params = list(trainable)
        model.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=self.lr)
        images = torch.as_tensor(data.images, dtype=torch.float32)
        labels = torch.as_tensor(data.labels, dtype=torch.long)
        tokens = model.tokenize(list(data.texts)) if "text" in model.modalities else None
        generator = torch.Generator().manual_seed(seed)
        last = math.nan
        for _ in range(self.epochs):
            total = 0.0
            for idx in torch.randperm(len(labels), generator=generator).split(batch_size):
                if len(idx) < 2:
                    continue
                text = None if tokens is None else {k: v[idx] for k, v in tokens.items()}
                model.eval()  # craft on the model as it predicts (BatchNorm statistics frozen)
                adversarial = self.attack(_Bound(model, text))(images[idx], labels[idx]).detach()
                model.train()
                loss = self.loss(model, images[idx], adversarial, text, labels[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            last = total / len(labels)
        model.eval().requires_grad_(False)
        return {"seconds": round(time.perf_counter() - start, 2), "loss": last}


class PgdAT(AdversarialTraining):
    """PGD adversarial training (Madry et al. 2018) of the image input."""

    name = "pgd_at"

    def attack(self, bound: nn.Module):
        import torchattacks

        return torchattacks.PGD(bound, eps=self.epsilon, alpha=2.5 * self.epsilon / self.steps, steps=self.steps,
                                random_start=True)

    def loss(self, model, images, adversarial, text, labels):
        return F.cross_entropy(model(adversarial, text), labels)


class Trades(AdversarialTraining):
    """TRADES (Zhang et al. 2019): clean cross-entropy plus β times the KL divergence to the adversarial output."""

    name = "trades"

    def __init__(self, seed: int = 0, beta: float = 6.0, **params: Any) -> None:
        super().__init__(seed, beta=beta, **params)
        self.beta = float(beta)

    def attack(self, bound: nn.Module):
        import torchattacks

        return torchattacks.TPGD(bound, eps=self.epsilon, alpha=2.5 * self.epsilon / self.steps, steps=self.steps)

    def loss(self, model, images, adversarial, text, labels):
        clean = model(images, text)
        kl = F.kl_div(F.log_softmax(model(adversarial, text), 1), F.softmax(clean, 1), reduction="batchmean")
        return F.cross_entropy(clean, labels) + self.beta * kl


def obtain_finetuned(model: nn.Module, defense: AdversarialTraining, data: Any, cache_dir: str | Path, key: str,
                     seed: int) -> nn.Module:
    """`model` (trained) fine-tuned by `defense` on `data`: loaded from the cache when an entry with the defended
    model's content `key` exists and verifies, else fine-tuned (under the canonical numerical setting) and cached."""
    import logging
    import shutil

    from mmrb.core.io import build_lock
    from wrappers.numerics import canonical_numerics
    from wrappers.training import load_verified, save_checkpoint

    cache_dir = Path(cache_dir)
    folder = finetuned_folder(cache_dir, model.config.get("name", "model"), defense.name, key)
    with build_lock(cache_dir, folder.name), canonical_numerics():
        if folder.exists():
            try:
                return load_verified(model, folder, cache_dir).eval()
            except ModelError as exc:
                logging.getLogger(__name__).warning("cache entry %s cannot be used (%s); fine-tuning again", folder, exc)
                shutil.rmtree(folder, ignore_errors=True)
        record = defense.fit(model, data, seed)
        logging.getLogger(__name__).info("%s: %s fine-tuning took %.1f s (loss %.3f)", model.config.get("name"),
                                         defense.name, record["seconds"], record["loss"])
        save_checkpoint(model, folder, key, cache_dir, seconds=record["seconds"])
    return model.eval()


def finetuned_folder(cache_dir: str | Path, name: str, defense: str, key: str) -> Path:
    """The cache folder of the model `name` fine-tuned by the training defense `defense`, with content `key`."""
    from wrappers.training import cache_folder_name

    return Path(cache_dir) / "models" / f"{cache_folder_name(name)}-{defense}-{key}"
