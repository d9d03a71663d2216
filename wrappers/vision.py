"""Two-view (frontal + lateral) SE-ResNet image classifiers built with timm."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models import register_model as timm_register
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from mmrb.core.errors import ModelError
from wrappers.configs import VISION_KEYS, resolve_config
from wrappers.registry import register_model

#: Normalisation of the Indiana X-rays, computed on the training set by Mozhegova et al. (Sec. 3.5).
XRAY_MEAN, XRAY_STD = 0.61, 0.24


# timm reads `default_cfgs` of the registering module; the cfg is what pretrained_cfg_overlay patches.
default_cfgs = generate_default_cfgs({"mmrb_tiny_seresnet": {"num_classes": 0, "input_size": (1, 64, 64)}})


@timm_register
def mmrb_tiny_seresnet(pretrained: bool = False, **kwargs) -> ResNet:
    """A 4-stage SE-ResNet (one SE BasicBlock per stage, 16-128 channels) that trains on 2 CPU cores."""
    args = dict(
        block=BasicBlock,
        layers=(1, 1, 1, 1),
        channels=(16, 32, 64, 128),
        stem_width=16,
        block_args=dict(attn_layer="se"),
    )
    return build_model_with_cfg(ResNet, "mmrb_tiny_seresnet", pretrained, **dict(args, **kwargs))



def create_backbone(arch: str, pretrained: bool = False, checkpoint_path: str | None = None) -> nn.Module:
    """A timm feature extractor (no classifier) on 1-channel input.

    `checkpoint_path` loads weights from a local timm checkpoint file through timm's own pretrained
    path (the same code that downloads hub weights), so offline and online loading are one route.
    """
    overlay = None
    if checkpoint_path is not None:
        path = Path(checkpoint_path)
        if not path.is_file():
            raise ModelError(f"vision checkpoint_path {str(path)!r} does not exist; give a timm .pth/.safetensors file")
        overlay, pretrained = {"file": str(path), "num_classes": 0}, True
    try:
        return timm.create_model(
            arch, pretrained=pretrained, pretrained_cfg_overlay=overlay, num_classes=0, in_chans=1
        )
    except RuntimeError as exc:  # timm raises RuntimeError for unknown archs and unreachable hubs
        raise ModelError(f"vision arch {arch!r}: {exc}") from exc


class TwoViewEncoder(nn.Module):
    """Frontal and lateral X-ray (channels 0 and 1 of a [0,1] image) -> concatenated features.

    Separate backbones per view by default, as the paper's "three extraction models"
    (Mozhegova et al., Sec. 3.2.3.1); `shared_backbone=True` uses one for both.
    """

    def __init__(self, arch: str, pretrained: bool = False, checkpoint_path: str | None = None,
                 shared_backbone: bool = False) -> None:
        super().__init__()
        self.frontal = create_backbone(arch, pretrained, checkpoint_path)
        self.lateral = self.frontal if shared_backbone else create_backbone(arch, pretrained, checkpoint_path)
        self.feature_dim = 2 * self.frontal.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 2:
            raise ModelError(f"images must be (batch, 2, H, W) with frontal and lateral views, got {tuple(images.shape)}")
        x = (images - XRAY_MEAN) / XRAY_STD
        return torch.cat([self.frontal(x[:, :1]), self.lateral(x[:, 1:])], dim=1)


class VisionClassifier(nn.Module):
    """Image-only model M_I: two-view SE-ResNet features -> linear head (normal / abnormal)."""

    family = "vision"
    modalities = frozenset({"image"})

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.encoder = TwoViewEncoder(config["arch"], config["pretrained"], config["checkpoint_path"],
                                      config["shared_backbone"])
        self.head = nn.Linear(self.encoder.feature_dim, 2)

    def tokenize(self, texts) -> None:
        """Image-only: there is no text context."""
        return None

    def forward(self, images: torch.Tensor, text: dict | None = None) -> torch.Tensor:
        return self.head(self.encoder(images))


#: This family's built-in models: name -> (family, modalities, preset, training recipe: TrainRecipe fields), read by
#: wrappers.registry from this file's text, without importing it (no torch).
BUILTIN_MODELS = {
    "vision_only": ("vision", "image", "tiny", {"lr": 1e-3, "epochs": 10, "batch_size": 32, "scheduler": "plateau"}),
    "vision_only_paper": ("vision", "image", "paper",  # Mozhegova et al. (2025), Sec. 4.1
                          {"lr": 1e-4, "epochs": 13, "batch_size": 128, "scheduler": "plateau"}),
}


def _register(name: str, preset: str) -> None:
    @register_model(name, VisionClassifier, preset, VISION_KEYS)
    def factory(**overrides) -> VisionClassifier:
        return VisionClassifier({"name": name, **resolve_config("vision", preset, overrides, VISION_KEYS)})


for _name, (_family, _modalities, _preset, _recipe) in BUILTIN_MODELS.items():
    _register(_name, _preset)
