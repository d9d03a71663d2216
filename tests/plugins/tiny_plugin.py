"""Source of the tiny plug-in models the plug-in and submission tests write into their own folders.

`TinyGated` is a real (tiny) gated fusion: pooled image features and a bag of hashed words, mixed by a learned
gate; it trains in a second on CPU."""
SOURCE = '''
import zlib

import torch
from torch import nn

import mmrb


class TinyGated(nn.Module):
    family = "tiny_gated"
    modalities = frozenset({"image", "text"})

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.vision = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(32, 16))
        self.words = nn.Embedding(512, 16)
        self.gate = nn.Linear(32, 16)
        self.head = nn.Linear(16, 2)

    def tokenize(self, texts):
        ids = torch.zeros(len(texts), 48, dtype=torch.long)
        for i, text in enumerate(texts):
            words = [zlib.crc32(w.encode()) % 511 + 1 for w in text.lower().split()][:48]
            ids[i, :len(words)] = torch.tensor(words, dtype=torch.long)
        return {"input_ids": ids}

    def forward(self, images, text):
        ids = text["input_ids"]
        mask = (ids > 0).float().unsqueeze(-1)
        f_text = (self.words(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        f_image = self.vision(images * 4 - 2)
        gate = torch.sigmoid(self.gate(torch.cat([f_image, f_text], 1)))
        return self.head(gate * f_image + (1 - gate) * f_text)


@mmrb.register_model(NAME, TinyGated, config_keys=())
def make(**overrides) -> TinyGated:
    return TinyGated({"name": NAME, "recipe": {"lr": 0.02, "epochs": EPOCHS, "batch_size": 32}, **overrides})


def annotated(**overrides) -> TinyGated:
    return TinyGated({"name": "annotated", "recipe": {"lr": 0.02, "epochs": EPOCHS, "batch_size": 32}, **overrides})
'''


def write_plugin(folder, module: str, name: str, epochs: int = 6):
    """Write a plug-in module `module`.py into `folder` registering TinyGated as `name`; returns its path."""
    path = folder / f"{module}.py"
    path.write_text(f"NAME = {name!r}\nEPOCHS = {epochs}\n" + SOURCE)
    return path


def tiny_suite(**fields) -> dict:
    """A small suite on generated data (64 test samples at 16 px) that runs in seconds."""
    suite = {"name": "plugins", "dataset": {"name": "indiana_synth", "n": 200, "seed": 1, "image_size": 16},
             "attacks": [{"name": "none"}, {"source": "art", "name": "FastGradientMethod", "label": "FGSM"}],
             "epsilons": [0.03], "seeds": [0], "convergence_check": False, "limit": 40}
    suite.update(fields)
    return suite
