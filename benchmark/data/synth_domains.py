"""Two more generated domains for the CLIP experiments (Han et al. 2025, §4.1 and §4.4).

- `target_domain`: axial abdominal CT-like slices with captions, a body region and a look (dark background,
  round body outline, organs) unlike the chest X-rays. It stands in for MEDICAT, the source of the target
  images of the feature-space attack.
- `shift_domain`: the chest X-ray domain moved out of distribution (another contrast, gamma and noise level,
  and other report wording). It stands in for CheXpert as the OOD test of classifiers trained on the
  in-distribution task (ChestX-ray14 in the paper).

Both are pure functions of their seed; every sample draws from its own `default_rng([seed, tag, i])`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from benchmark.data.synth import _blob, _blur, _ellipse, _pick

TARGET_FINDINGS = ("liver lesion", "kidney stone", "ascites", "splenomegaly")
_TARGET_TAG, _SHIFT_TAG = 7001, 7002

#: Report wording of the OOD domain: the same findings in other words (applied as whole-word regexes).
REPORT_SHIFT = (
    (r"\bpleural effusion\b", "pleural fluid"), (r"\beffusion\b", "fluid collection"),
    (r"\bcardiomegaly\b", "enlarged cardiac silhouette"), (r"\bopacity\b", "density"),
    (r"\bconsolidation\b", "airspace filling"), (r"\bthe lungs are clear\b", "clear lungs"),
    (r"\bno acute\b", "without acute"), (r"\bpneumothorax\b", "collapsed lung"), (r"\bheart\b", "cardiac shadow"),
)


def _target_caption(rng: np.random.Generator, findings: Sequence[str]) -> str:
    """A CT report sentence naming the drawn findings (or none)."""
    lead = _pick(rng, ("axial ct of the abdomen", "contrast enhanced ct abdomen", "ct abdomen and pelvis"))
    if not findings:
        return f"{lead} shows no acute abdominal abnormality. normal liver, spleen and kidneys."
    parts = {"liver lesion": "a hypodense lesion in the right hepatic lobe",
             "kidney stone": f"a calculus in the {_pick(rng, ('left', 'right'))} kidney",
             "ascites": "free fluid in the abdomen", "splenomegaly": "an enlarged spleen"}
    return f"{lead} shows " + " and ".join(parts[f] for f in findings) + "."


def _target_image(rng: np.random.Generator, size: int, findings: Sequence[str]) -> np.ndarray:
    """One axial slice in [0, 1]: body disc, liver, spleen, kidneys, vertebra, aorta, bowel gas, findings."""
    t = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    x, y = np.meshgrid(t, t)
    x, y = x + rng.normal(0, 0.03), y + rng.normal(0, 0.03)
    edge = max(0.02, 1.5 / size)
    body = _ellipse(x, y, 0.0, 0.05, 0.9 * rng.uniform(0.9, 1.05), 0.7 * rng.uniform(0.9, 1.05), edge)
    spleen_r = 0.2 if "splenomegaly" in findings else 0.12
    organs = (0.25 * _ellipse(x, y, -0.35, -0.05, 0.38, 0.3, edge) + 0.22 * _ellipse(x, y, 0.45, -0.1, spleen_r, 0.2, edge)
              + 0.3 * sum(_ellipse(x, y, s * 0.32, 0.3, 0.1, 0.14, edge) for s in (-1, 1)))
    bone = 0.6 * _ellipse(x, y, 0.0, 0.48, 0.12, 0.11, edge) + 0.4 * _ellipse(x, y, 0.0, 0.15, 0.05, 0.05, edge)
    gas = sum(_blob(x, y, *rng.uniform((-0.2, -0.4), (0.4, 0.1)), rng.uniform(0.03, 0.07)) for _ in range(5))
    density = 0.35 * body + organs * body + bone - 0.3 * np.minimum(gas, 1.0) * body
    if "liver lesion" in findings:
        density -= 0.18 * _blob(x, y, -0.4 + rng.normal(0, 0.05), -0.05 + rng.normal(0, 0.05), 0.06)
    if "kidney stone" in findings:
        density += 0.6 * _blob(x, y, _pick(rng, (-1, 1)) * 0.32, 0.3, 0.02)
    if "ascites" in findings:
        density += 0.12 * (body - _ellipse(x, y, 0.0, 0.05, 0.75, 0.55, 4 * edge)).clip(0, 1)
    img = _blur(np.clip(density, 0, 1), 0.6 * size / 128) + rng.normal(0, 0.02, size=(size, size))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def target_domain(n: int, seed: int, size: int) -> tuple[np.ndarray, list[str]]:
    """n abdominal CT-like slices as (n, 2, size, size) in [0, 1] (the slice in both channels) and their captions."""
    images, captions = np.empty((n, 2, size, size), dtype=np.float32), []
    for i in range(n):
        rng = np.random.default_rng([seed, _TARGET_TAG, i])
        k = int(rng.integers(0, 3))
        findings = [TARGET_FINDINGS[j] for j in sorted(rng.choice(len(TARGET_FINDINGS), size=k, replace=False))]
        images[i] = _target_image(rng, size, findings)
        captions.append(_target_caption(rng, findings))
    return images, captions


def shift_images(images: np.ndarray, seed: int, strength: float = 1.0) -> np.ndarray:
    """The X-rays with another exposure: lower contrast, gamma > 1, a brightness offset and more noise.

    `strength` 0 returns the images unchanged, 1 is the default OOD shift."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        rng = np.random.default_rng([seed, _SHIFT_TAG, i])
        contrast = 1.0 - strength * rng.uniform(0.25, 0.4)
        gamma = 1.0 + strength * rng.uniform(0.3, 0.6)
        shifted = np.clip(0.5 + contrast * (image - 0.5) + strength * 0.05, 0.0, 1.0) ** gamma
        shifted = shifted + rng.normal(0.0, strength * 0.04, size=image.shape)
        out[i] = np.clip(shifted, 0.0, 1.0)
    return out.astype(np.float32)


def shift_reports(texts: Sequence[str]) -> list[str]:
    """The reports in the OOD wording (`REPORT_SHIFT`), so text features see other templates too."""
    shifted = []
    for text in texts:
        for pattern, replacement in REPORT_SHIFT:
            text = re.sub(pattern, replacement, text)
        shifted.append(text)
    return shifted
