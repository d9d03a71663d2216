"""The CLIP image-text encoder of mmrb's CLIP models: building it (open_clip architectures, the tiny one) and its
contrastive pre-training, cached by content."""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from mmrb.core.errors import ModelError
from wrappers.cache import code_digest, digest, write_atomically
from wrappers.numerics import canonical_numerics, numerics_identity

TINY_ARCH = "mmrb-tiny"
#: embed_dim 64; image tower: CLIP's ModifiedResNet (as RN50, one bottleneck per stage, width 16) at 64 px (or
#: the model's `image_size`); text tower: 2 transformer layers of width 32 over 64 BPE tokens. A ViT of the same
#: cost (patch 8, 2 layers of width 64) learned much weaker features from 800 generated pairs (linear probe 70 %
#: vs 79 % accuracy), so the tiny CLIP's image tower is a ResNet.
TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
    "text_cfg": {"context_length": 64, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
#: The X-ray normalisation of the Indiana data (Mozhegova et al., Sec. 3.5), on all three channels.
TINY_PREPROCESS_CFG: dict[str, Any] = {"size": 64, "mean": (0.61, 0.61, 0.61), "std": (0.24, 0.24, 0.24)}
CONFIG_FILE, WEIGHTS_FILE, HEAD_FILE = "open_clip_config.json", "open_clip_model.safetensors", "head.safetensors"
#: The paper's zero-shot prompts are "{label}" vs "No {label}" (You et al. 2023); abnormal = any finding.
DEFAULT_LABELS = ("cardiomegaly", "pleural effusion", "airspace opacity")

log = logging.getLogger("wrappers.clip")  # one logger for the CLIP models and their encoder


@dataclass(frozen=True)
class PretrainRecipe:
    """CLIP (continued) pre-training: AdamW (β 0.9/0.98, App. B.4), linear warm-up then cosine decay; 0 epochs = none."""

    epochs: int = 0
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.1
    warmup_epochs: int = 1

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "pretrain") -> PretrainRecipe:
        """A recipe from a config dict; unknown keys raise naming the allowed ones."""
        values = dict(values or {})
        allowed = {f.name for f in fields(cls)}
        bad = sorted(set(values) - allowed)
        if bad:
            raise ModelError(f"field '{where}': unknown key(s) {bad}; allowed: {sorted(allowed)}")
        return cls(**values)


def build_clip(arch: str, pretrained: str | None = None,
               image_size: int | None = None) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(OpenCLIP model, its tokenizer, its {model_cfg, preprocess_cfg}) for an architecture and weights source;
    `image_size` overrides the input size of a new model (OpenCLIP's force_image_size)."""
    import open_clip

    try:
        if arch == TINY_ARCH:
            if pretrained:
                raise ModelError(f"{TINY_ARCH} has no pretrained weights ({pretrained!r}); use local-dir:FOLDER")
            size = image_size or TINY_PREPROCESS_CFG["size"]
            model_cfg = {**TINY_MODEL_CFG, "vision_cfg": {**TINY_MODEL_CFG["vision_cfg"], "image_size": size}}
            model = open_clip.CLIP(**model_cfg)
            cfg = {"model_cfg": model_cfg, "preprocess_cfg": {**TINY_PREPROCESS_CFG, "size": size}}
        else:
            model = open_clip.create_model(arch, pretrained=pretrained or None, force_image_size=image_size)
            preprocess = open_clip.get_model_preprocess_cfg(model)
            cfg = {"model_cfg": _model_cfg(arch, image_size),
                   "preprocess_cfg": {k: v for k, v in preprocess.items() if k in ("size", "mean", "std")}}
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=cfg["model_cfg"]["text_cfg"]["context_length"]) \
            if arch == TINY_ARCH else open_clip.get_tokenizer(arch)
    except (RuntimeError, ValueError, FileNotFoundError, OSError) as exc:
        raise ModelError(f"CLIP {arch!r} (pretrained {pretrained!r}) cannot be built: {exc}. Use {TINY_ARCH}, an "
                         "OpenCLIP name (open_clip.list_models()) with a tag or a local checkpoint file, "
                         "hf-hub:ORG/NAME (needs the hub or its cache) or local-dir:FOLDER") from exc
    open_clip.set_model_preprocess_cfg(model, dict(cfg["preprocess_cfg"]))
    return model, tokenizer, cfg


def _model_cfg(arch: str, image_size: int | None = None) -> dict[str, Any]:
    """The OpenCLIP model config of `arch` (built-in name, local-dir: or hf-hub: folder), input size overridden."""
    import open_clip

    if arch.startswith("local-dir:"):
        cfg = json.loads((Path(arch.split(":", 1)[1]) / CONFIG_FILE).read_text())["model_cfg"]
    elif arch.startswith("hf-hub:"):
        from open_clip.factory import _get_hf_config

        cfg = _get_hf_config(arch.split(":", 1)[1])["model_cfg"]
    else:
        cfg = open_clip.get_model_config(arch)
    if image_size:
        cfg = {**cfg, "vision_cfg": {**cfg["vision_cfg"], "image_size": image_size}}
    return cfg


def save_clip(model: nn.Module, cfg: dict[str, Any], folder: Path) -> Path:
    """Write an OpenCLIP local-dir folder (config + safetensors weights) atomically; load it as local-dir:FOLDER."""
    def fill(tmp: Path) -> None:
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, default=list))
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))

    return write_atomically(Path(folder), fill)


class ClipEncoder(nn.Module):
    """An OpenCLIP model behind mmrb's image contract: (n, 2, H, W) in [0, 1] -> L2-normalised embeddings."""

    def __init__(self, arch: str, pretrained: str | None = None, image_size: int | None = None) -> None:
        super().__init__()
        self.clip, self.tokenizer, self.cfg = build_clip(arch, pretrained, image_size)
        pre = self.cfg["preprocess_cfg"]
        size = pre.get("size", self.cfg["model_cfg"]["vision_cfg"].get("image_size", 224))
        self.image_size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        return int(self.cfg["model_cfg"]["embed_dim"])

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Frontal view -> CLIP input size, 3 channels, normalised (differentiable: attacks go through it)."""
        x = images[:, :1] if images.dim() == 4 else images[:, None]
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings of (n, 2, H, W) (or (n, H, W)) images in [0, 1]: L2-normalised, or raw (`normalize`
        False: the projection's output as OpenCLIP's `encode_image` returns it)."""
        return self.clip.encode_image(self.prepare(images), normalize=normalize)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings of token ids."""
        return self.clip.encode_text(tokens, normalize=True)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Normalised embeddings of texts, batch by batch, without gradients."""
        return torch.cat([self.encode_text(self.tokenize(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)])

    @torch.no_grad()
    def embed_images(self, images: np.ndarray | torch.Tensor, batch_size: int = 128,
                     normalize: bool = True) -> torch.Tensor:
        """Embeddings of images (normalised unless `normalize` is False), batch by batch, in eval mode, without
        gradients."""
        was_training = self.training
        self.eval()
        images = torch.as_tensor(images, dtype=torch.float32)
        out = torch.cat([self.encode_image(images[i:i + batch_size], normalize)
                         for i in range(0, len(images), batch_size)])
        self.train(was_training)
        return out


def clip_score(encoder: ClipEncoder, images: np.ndarray | torch.Tensor, captions: Sequence[str]) -> np.ndarray:
    """Cosine similarity of each image with its caption (the paper's "CLIP score", Table 1), per sample."""
    return (encoder.embed_images(images) * encoder.embed_texts(captions)).sum(1).numpy()


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch (App. B.2, Eqs. 1-2), as OpenCLIP's ClipLoss computes it."""
    from open_clip import ClipLoss

    return ClipLoss()(image_emb, text_emb, logit_scale)


def pretrain_clip(encoder: ClipEncoder, images: np.ndarray, texts: Sequence[str], recipe: PretrainRecipe,
                  seed: int) -> list[float]:
    """Train both towers on image-caption pairs with the symmetric InfoNCE loss; mean loss per epoch."""
    images_t = torch.as_tensor(images, dtype=torch.float32)
    tokens = encoder.tokenize(texts)
    steps_per_epoch = max(1, -(-len(images_t) // recipe.batch_size))
    total, warmup = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + np.cos(np.pi * (s - warmup) / max(1, total - warmup))))
    generator = torch.Generator().manual_seed(seed)
    encoder.train()
    losses = []
    for _ in range(recipe.epochs):
        running = 0.0
        for idx in torch.randperm(len(images_t), generator=generator).split(recipe.batch_size):
            if len(idx) < 2:
                continue
            loss = contrastive_loss(encoder.encode_image(images_t[idx]), encoder.encode_text(tokens[idx]),
                                    encoder.clip.logit_scale.exp())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():  # CLIP clamps the temperature at 100 (Radford et al. 2021)
                encoder.clip.logit_scale.clamp_(0, np.log(100))
            running += loss.item() * len(idx)
        losses.append(running / len(images_t))
    encoder.eval()
    return losses


def pairs_fingerprint(images: np.ndarray, texts: Sequence[str]) -> str:
    """Digest of image-caption pairs (array bytes and texts): part of every pre-training cache key."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    h.update("\n".join(texts).encode())
    return h.hexdigest()[:16]


def cache_entry(folder: Path, required: str) -> bool:
    """Whether `folder` holds a complete entry; a folder without `required` is reported once and removed."""
    if (folder / required).exists():
        return True
    if folder.exists():
        log.warning("cache entry %s is incomplete (no %s); rebuilding it", folder, required)
        shutil.rmtree(folder, ignore_errors=True)
    return False


def obtain_pretrained_clip(arch: str, pretrained: str | None, images: np.ndarray, texts: Sequence[str],
                           recipe: PretrainRecipe, cache_dir: str | Path, seed: int, image_size: int | None = None) -> str:
    """`arch` pre-trained on the pairs with `recipe` as an OpenCLIP `local-dir:` spec, from the cache or trained
    and cached under `<cache>/clip/pretrained/`; with 0 epochs, `arch` itself (the weights as given)."""
    if recipe.epochs == 0:
        return arch
    key = digest({"arch": arch, "pretrained": pretrained, "image_size": image_size, "recipe": asdict(recipe), "seed": seed,
                  "pairs": pairs_fingerprint(images, texts), "code": code_digest(pretrain_clip, build_clip),
                  "numerics": numerics_identity("cpu")})
    folder = Path(cache_dir) / "clip" / "pretrained" / f"{arch.rsplit('/', 1)[-1].replace(':', '-')}-{key}"
    if cache_entry(folder, WEIGHTS_FILE):
        try:
            build_clip(f"local-dir:{folder}")
            return f"local-dir:{folder}"
        except Exception as exc:  # a damaged file can fail in any library's own way (safetensors, json, torch)
            log.warning("cache entry %s is corrupt (%s); rebuilding it", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    torch.manual_seed(seed)
    encoder = ClipEncoder(arch, pretrained, image_size)
    with canonical_numerics():  # the same weights whatever threads the caller runs with
        losses = pretrain_clip(encoder, images, texts, recipe, seed)
    log.info("pre-trained %s for %d epochs on %d pairs: InfoNCE %.3f -> %.3f", arch, recipe.epochs, len(texts),
             losses[0], losses[-1])
    save_clip(encoder.clip, encoder.cfg, folder)
    return f"local-dir:{folder}"
