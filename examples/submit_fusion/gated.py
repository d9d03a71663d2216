"""A gated fusion model for the mmrb leaderboard: a learned per-feature gate mixes the image and the report.

z = g ⊙ W_i·f_image + (1 − g) ⊙ W_t·f_text, g = σ(W_g·[f_image ⊕ f_text]); logits = head(z). The encoders are
mmrb's own (`mmrb.TwoViewEncoder`: frontal + lateral SE-ResNet; `mmrb.TextEncoder`: BERT [CLS]), so mmrb trains it
with the recipe below on the protocol's data, once per training seed.
"""
from __future__ import annotations

import torch
from torch import nn

import mmrb


class GatedFusion(nn.Module):
    family = "gated_fusion"
    modalities = frozenset({"image", "text"})

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.vision = mmrb.TwoViewEncoder(config["arch"])
        self.text = mmrb.TextEncoder(config["text_encoder"], config["max_length"])
        hidden = config["hidden"]
        self.image_proj = nn.Linear(self.vision.feature_dim, hidden)
        self.text_proj = nn.Linear(self.text.feature_dim, hidden)
        self.gate = nn.Linear(self.vision.feature_dim + self.text.feature_dim, hidden)
        self.head = nn.Linear(hidden, 2)

    def tokenize(self, texts):
        return self.text.tokenize(texts)

    def forward(self, images: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        f_image, f_text = self.vision(images), self.text(text)
        gate = torch.sigmoid(self.gate(torch.cat([f_image, f_text], dim=1)))
        return self.head(gate * self.image_proj(f_image) + (1 - gate) * self.text_proj(f_text))


@mmrb.register_model("gated_fusion", GatedFusion, config_keys=("arch", "text_encoder", "max_length", "hidden"))
def gated_fusion(**overrides) -> GatedFusion:
    """The factory takes every key of the config it builds (a saved checkpoint is rebuilt from its config)."""
    config = {"name": "gated_fusion", "arch": "mmrb_tiny_seresnet", "text_encoder": "tiny_bert", "max_length": 64,
              "hidden": 64, "recipe": {"lr": 5e-4, "epochs": 8, "batch_size": 32}}
    return GatedFusion({**config, **overrides})
