"""Training recipes and the trained-model cache (safetensors + JSON config + manifest, keyed by content)."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from mmrb.core.draws import SCORING_DRAWS
from mmrb.core.errors import ModelError
from wrappers.cache import build_lock, code_digest, digest, file_digest, write_atomically
from wrappers.configs import PRESETS, TEXT_KEYS, VISION_KEYS, TrainRecipe
from wrappers.numerics import canonical_numerics, current_numerics, numerics_identity
from wrappers.registry import ModelEntry, create_model, model_entry
from wrappers.text import TINY_BERT, TextEncoder, make_tiny_bert, tiny_bert_from

log = logging.getLogger(__name__)

#: Bump when a change to training makes cached checkpoints stale.
TRAINING_VERSION = "5"  # 5: trained under canonical_numerics (1 thread, deterministic), its identity in the key
CONFIG_FILE, WEIGHTS_FILE, TEXT_DIR, MANIFEST_FILE = "config.json", "model.safetensors", "text_encoder", "manifest.json"


@dataclass(frozen=True)
class LabelledSet:
    """Training data: (n, 2, H, W) images in [0, 1], n report texts, n labels (1 = abnormal)."""

    images: np.ndarray
    texts: Sequence[str]
    labels: np.ndarray
    fingerprint: str


def _digest(obj: Any) -> str:
    return digest(obj)


def tiny_bert_folder(texts: Sequence[str], cache_dir: Path, seed: int) -> Path:
    """The tiny BERT (random init + WordPiece trained on `texts`) for this corpus, built once and cached."""
    folder = cache_dir / "text_encoders" / f"{TINY_BERT}-{_digest([list(texts), seed, code_digest(make_tiny_bert)])}"
    if not (folder / "config.json").exists():
        with build_lock(cache_dir, folder.name):
            if not (folder / "config.json").exists():
                write_atomically(folder, lambda tmp: make_tiny_bert(texts, tmp, seed=seed))
    return folder


def model_key(name: str, overrides: dict[str, Any], data_fingerprint: str, seed: int, device: str = "cpu",
              entry: ModelEntry | None = None) -> str:
    """Content key of a trained model: everything that decides its weights. The resolved config is a function of
    the name, the overrides and the code of the factory, class and presets, so the key hashes those: the
    source of every module defining the model (transitively, see `code_digest`), this training module, the
    library versions (torch's among them), the data fingerprint, the seed, and what of the numerical setting
    cannot be made canonical (`numerics_identity(device)`: the device type, the CPU's instruction set or the GPU;
    the threads are canonical, see `canonical_numerics`). Editing a factory's default retrains."""
    entry = entry or model_entry(name)
    code = code_digest(entry.cls, entry.factory, sys.modules[__name__])
    key = {"name": name, "overrides": overrides, "data": data_fingerprint, "seed": seed, "v": TRAINING_VERSION, "code": code,
           "numerics": numerics_identity(device)}
    if entry.instance is not None and entry.trained:  # a model object with final weights: they are what it is
        key.update(weights=state_digest(entry.instance), trained=True)
    elif entry.instance is not None:  # one mmrb trains: the weights it starts from, seeded (not the object's own)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            key.update(weights=state_digest(entry.factory()), trained=False)
    return _digest(key)


def state_digest(model: nn.Module) -> str:
    """sha256 of a module's state (names, shapes, dtypes and bytes of every tensor)."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_folder_name(name: str) -> str:
    """A model name as a folder name ('mypkg.gated:gated_fusion' -> 'mypkg.gated-gated_fusion')."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"


def build_model(name: str, overrides: dict[str, Any], data: LabelledSet, cache_dir: Path, seed: int = 0,
                entry: ModelEntry | None = None) -> nn.Module:
    """The model `name` as training starts it (seeded), its "tiny_bert" text encoder built from `data`'s reports:
    the preset's named in the config as a folder, any other model's through `tiny_bert_from`. `entry`: the model's
    registry entry as the run resolved it (default: looked up by `name`)."""
    entry = entry or model_entry(name)
    resolved = dict(overrides)
    preset_encoder = PRESETS.get(entry.preset, {}).get("text_encoder")
    if "text" in entry.modalities and resolved.get("text_encoder", preset_encoder) == TINY_BERT:
        resolved["text_encoder"] = str(tiny_bert_folder(data.texts, cache_dir, seed))
    torch.manual_seed(seed)
    with tiny_bert_from(lambda: tiny_bert_folder(data.texts, cache_dir, seed)):
        return entry.factory(**resolved)  # the resolved entry, not a lookup by name (a worker has no provided ones)


def obtain_trained(name: str, overrides: dict[str, Any], data: LabelledSet, cache_dir: str | Path,
                   seed: int = 0, device: str = "cpu", entry: ModelEntry | None = None) -> nn.Module:
    """The model `name` trained on `data` with its recipe, on `device`: loaded from the cache when an entry with
    its content key exists and verifies (weights digest and resolved config), else trained and cached.
    An entry that cannot be read is reported once, naming its folder, and rebuilt. Training runs under
    `canonical_numerics()` (one torch thread, deterministic algorithms; the caller's settings are restored after),
    so the weights are the same whatever threads the caller (a backend, a Ray task) runs with."""
    cache_dir = Path(cache_dir)
    entry = entry or model_entry(name)
    if entry.instance is not None and entry.trained:  # final weights handed over: used as they are
        return entry.instance.to(device).eval()
    key = model_key(name, overrides, data.fingerprint, seed, device, entry)
    folder = model_folder(cache_dir, name, key)
    with build_lock(cache_dir, folder.name), canonical_numerics():  # trained once even when processes share the cache
        return _load_or_train(entry, name, overrides, data, cache_dir, seed, device, key, folder)


def _load_or_train(entry: ModelEntry, name: str, overrides: dict[str, Any], data: LabelledSet, cache_dir: Path,
                   seed: int, device: str, key: str, folder: Path) -> nn.Module:
    model = build_model(name, overrides, data, cache_dir, seed, entry)
    if folder.exists():
        try:
            return load_verified(model, folder, cache_dir).to(device).eval()
        except ModelError as exc:
            log.warning("cache entry %s cannot be used (%s); retraining %s", folder, exc, name)
            model = build_model(name, overrides, data, cache_dir, seed, entry)
    start = time.perf_counter()
    if hasattr(model, "train_on"):  # models with their own training (CLIP: pre-train, freeze, fit the head)
        log.info("training %s (%s) with its own train_on on %s", name, entry.family, device)
        model.train_on(data, cache_dir, seed)
        save_checkpoint(model, folder, key, cache_dir, seconds=time.perf_counter() - start)
        return model.to(device).eval()
    recipe = TrainRecipe(**model.config.get("recipe", {}))
    log.info("training %s (%s) for %d epochs on %s", name, entry.family, recipe.epochs, device)
    branches = 0.0  # the branches' own training cost, as recorded, in place of the time spent obtaining them here
    if hasattr(model, "uses_trained_branches") and model.uses_trained_branches(recipe):  # a fusion model (wrappers.fusion)
        obtaining = time.perf_counter()
        vision, text = (obtain_trained(cfg["name"], {k: overrides[k] for k in keys if k in overrides}, data, cache_dir, seed)
                        for cfg, keys in zip(model.branch_configs(), (VISION_KEYS, TEXT_KEYS)))
        start += time.perf_counter() - obtaining
        branches = sum(training_seconds(model_folder(cache_dir, cfg["name"], model_key(
            cfg["name"], {k: overrides[k] for k in keys if k in overrides}, data.fingerprint, seed))) or 0.0
            for cfg, keys in zip(model.branch_configs(), (VISION_KEYS, TEXT_KEYS)))
        model.load_branches(vision, text)
    model.to(device)
    torch.manual_seed(seed)  # dropout draws the same numbers whether the branches were loaded or trained above
    if hasattr(model, "fit_recipe"):  # the model says what its recipe trains (late fusion: the head; ensemble: nothing)
        model.fit_recipe(data, recipe, seed)
    else:
        fit(model, batch_logits(model, data), data.labels, recipe, seed)
    save_checkpoint(model, folder, key, cache_dir, seconds=time.perf_counter() - start + branches)
    return model.eval()


def model_folder(cache_dir: str | Path, name: str, key: str) -> Path:
    """The cache folder of the trained model `name` with content `key`."""
    return Path(cache_dir) / "models" / f"{cache_folder_name(name)}-{key}"


def training_seconds(folder: str | Path) -> float | None:
    """The wall seconds the cached model in `folder` took to train (its branches' recorded training included), as
    its manifest records them; None for an entry that is absent or predates the record."""
    try:
        value = json.loads((Path(folder) / MANIFEST_FILE).read_text()).get("train_seconds")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def batch_logits(model: nn.Module, data: LabelledSet) -> Callable[[torch.Tensor], torch.Tensor]:
    """idx -> logits of `model` on those rows of `data` (texts tokenized once)."""
    images = torch.as_tensor(data.images, dtype=torch.float32) if "image" in model.modalities else None
    tokens = model.tokenize(data.texts) if "text" in model.modalities else None
    device = model_device(model)
    return lambda idx: model(None if images is None else images[idx].to(device),
                             None if tokens is None else {k: v[idx].to(device) for k, v in tokens.items()})


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a model without any)."""
    return next(iter(model.parameters()), torch.empty(0)).device


def fit(module: nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor], labels: np.ndarray,
        recipe: TrainRecipe, seed: int) -> list[float]:
    """Adam + cross-entropy on `module`'s trainable parameters over shuffled mini-batches; mean loss per epoch.
    Then the BatchNorm statistics are recomputed on the training data (`recalibrate_batchnorm`)."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1) if recipe.scheduler == "plateau" else None
    labels = torch.as_tensor(labels, dtype=torch.long, device=model_device(module))
    generator = torch.Generator().manual_seed(seed)
    losses = []
    module.train()
    for _ in range(recipe.epochs):
        total = 0.0
        for idx in torch.randperm(len(labels), generator=generator).split(recipe.batch_size):
            loss = nn.functional.cross_entropy(logits_of(idx), labels[idx.to(labels.device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(labels))
        if scheduler is not None:
            scheduler.step(losses[-1])
    recalibrate_batchnorm(module, logits_of, len(labels), recipe.batch_size)
    module.eval()
    return losses


class _Rows(nn.Module):
    """`logits_of` as a module of row indices, for `torch.optim.swa_utils.update_bn` (which calls model(batch))."""

    def __init__(self, module: nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.module, self.logits_of = module, logits_of

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits_of(idx)


def recalibrate_batchnorm(module: nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor], n: int,
                          batch_size: int) -> None:
    """Recompute the running statistics of `module`'s trained BatchNorm layers as exact averages over one pass of the
    `n` training rows, with the final weights (precise BN, as SWA's `update_bn` does after averaging).

    The running statistics training leaves are an exponential average over the last few batches, taken while the
    weights still moved: on the tests' 320 studies the tiny image model predicted one class in eval mode at 4 of 6
    seeds (AVX2 kernels; 2 of 6 with torch's default ones) although it fitted its training batches; recomputed, it
    learned at 12 of 12 (70-79 % clean, 80 test studies, majority 66 %). Frozen BatchNorm layers (a pretrained
    encoder that is not trained) keep theirs: then nothing is recomputed."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers or not all(p.requires_grad for layer in layers for p in layer.parameters()):
        return
    torch.optim.swa_utils.update_bn(torch.arange(n).split(batch_size), _Rows(module, logits_of))


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray | None, texts: Sequence[str] | None,
                   batch_size: int = 64) -> torch.Tensor:
    """Logits of `model` on paired images/texts, in eval mode, batch by batch, on the model's device; returned on
    the CPU."""
    model.eval()
    device = model_device(model)
    n = len(images) if images is not None else len(texts)
    tokens = model.tokenize(texts) if "text" in model.modalities else None
    out = []
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        image = None if images is None or "image" not in model.modalities else \
            torch.as_tensor(images[sl], dtype=torch.float32).to(device)
        out.append(model(image, None if tokens is None else {k: v[sl].to(device) for k, v in tokens.items()}).cpu())
    return torch.cat(out)




def predict_proba(model: nn.Module, images: np.ndarray | None, texts: Sequence[str] | None,
                  draws: int | None = None) -> np.ndarray:
    """Class probabilities (n, 2) of `model` on paired images/texts (by position), as a numpy array. A randomised
    model (`model.randomised`: a randomised defense, or a forward found to draw afresh) is scored by the majority of
    `draws` (default `SCORING_DRAWS`) forward passes: the share of draws voting each class, so its argmax is the
    majority decision and a lucky draw does not count as robust."""
    draws = draws or (SCORING_DRAWS if getattr(model, "randomised", False) else 1)
    if draws == 1:
        return torch.softmax(predict_logits(model, images, texts), 1).numpy()
    votes = sum(torch.nn.functional.one_hot(predict_logits(model, images, texts).argmax(1), 2).double()
                for _ in range(draws))
    return (votes / draws).numpy()


def save_checkpoint(model: nn.Module, folder: str | Path, key: str = "", cache_dir: Path | None = None,
                    seconds: float | None = None) -> Path:
    """Write config.json + model.safetensors (+ the text encoder's tokenizer/config folder) and a manifest with
    the content key, the resolved config, the weights' sha256, the numerical setting it was trained under (torch
    threads, deterministic algorithms, torch version; see `canonical_numerics`) and the training's wall `seconds`
    (provenance, not part of the key), atomically (a killed run leaves no half entry)."""

    def fill(tmp: Path) -> None:
        config = dict(model.config)
        encoders = [m for m in model.modules() if isinstance(m, TextEncoder)]
        if encoders:
            encoders[0].save_pretrained(tmp / TEXT_DIR)
            config["text_encoder"] = TEXT_DIR
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
        save_model(model, str(tmp / WEIGHTS_FILE))
        manifest = {"key": key, "config": _portable(model.config, cache_dir), "weights_sha256": file_digest(tmp / WEIGHTS_FILE),
                    "numerics": current_numerics(model_device(model))}  # provenance
        if seconds is not None:
            manifest["train_seconds"] = round(float(seconds), 2)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))

    return write_atomically(Path(folder), fill)


def _portable(config: dict, cache_dir: Path | None) -> Any:
    """The config as JSON values, with the cache folder written as `<cache>` (a moved cache stays valid)."""
    text = json.dumps(config, sort_keys=True, default=str)
    if cache_dir is not None:
        text = text.replace(json.dumps(str(cache_dir))[1:-1], "<cache>")
    return json.loads(text)


def load_verified(model: nn.Module, folder: Path, cache_dir: Path | None = None) -> nn.Module:
    """Load the cached weights into `model` (built exactly as training would build it), after checking the
    entry: manifest readable, weights' sha256 as recorded, resolved config equal to the model's. ModelError
    names what does not hold."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        recorded = manifest["weights_sha256"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"no readable {MANIFEST_FILE} ({exc.__class__.__name__})") from None
    try:
        actual = file_digest(folder / WEIGHTS_FILE)
    except OSError as exc:
        raise ModelError(f"{WEIGHTS_FILE} cannot be read ({exc.strerror})") from None
    if actual != recorded:
        raise ModelError(f"{WEIGHTS_FILE} is damaged (sha256 {actual[:12]}…, recorded {recorded[:12]}…)")
    if manifest.get("config") != _portable(model.config, cache_dir):
        raise ModelError("its resolved config differs from the model's")
    return load_weights(model, folder / WEIGHTS_FILE)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load a safetensors file into `model`; ModelError (naming the file) if it is malformed or does not fit."""
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise ModelError(f"{path}: cannot be loaded ({exc})") from None
    if missing or unexpected:
        raise ModelError(f"{path}: weights do not fit {model.config.get('name')!r} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


def load_checkpoint(folder: str | Path) -> nn.Module:
    """Rebuild a model saved by `save_checkpoint` (offline: the text encoder comes from the folder)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder / CONFIG_FILE}: cannot read checkpoint config ({exc})") from exc
    name = config.pop("name")
    config.pop("preset", None)
    if config.get("text_encoder") == TEXT_DIR:
        config["text_encoder"] = str(folder / TEXT_DIR)
    if "pretrained" in config:  # the weights come from the checkpoint, not the hub or a timm file
        config.update(pretrained=False, checkpoint_path=None)
    return load_weights(create_model(name, **config), folder / WEIGHTS_FILE).eval()
