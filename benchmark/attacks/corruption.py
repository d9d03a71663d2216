"""mmrb's corruption track: ordinary degradations of radiographs and of their reports, at five severities each.

Image corruptions (MedMNIST-C / ImageNet-C style, chosen for radiographs): Gaussian and speckle noise, quantum
(Poisson) noise of a low-dose exposure, blur, motion blur (the patient moved or breathed), rotation (patient
positioning), contrast and brightness (exposure) and gamma in both directions (`*_up` / `*_down`: the physics is
two-sided; the unsuffixed kinds keep their earlier direction), JPEG, pixelation, a smooth bias field. None changes a
report. Report corruptions: typos, clinical abbreviations, dropped
sentences (the lowercased report has no section headers left) and dictation-style (speech recognition) substitutions.
`SEVERITIES[kind]` states each kind's amount at severities 1..5; a corruption is deterministic per (seed, kind,
severity) and independent of the model. A suite names it as `{source: mmrb, name: corruption, modality: image,
params: {kind: gaussian_noise, severity: 3}}` (`modality: text` for a report corruption); it has no ε.
"""
from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import convolve, gaussian_filter, rotate

from benchmark.attacks import Crafted, Target
from benchmark.attacks.registry import register_attack
from benchmark.data.report_terms import is_protected
from mmrb.core.errors import AttackError

#: kind -> its amount at severities 1..5 (the unit is the kind's own, see `image_corruption`/`report_corruption`).
SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.02, 0.04, 0.06, 0.09, 0.12),  # σ of additive noise, pixel units
    "speckle_noise": (0.05, 0.1, 0.15, 0.22, 0.3),  # σ of multiplicative noise
    "blur": (0.5, 1.0, 1.5, 2.0, 3.0),  # σ of the Gaussian blur, pixels
    "contrast": (0.8, 0.65, 0.5, 0.35, 0.2),  # factor on the deviation from each view's mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to every pixel
    "gamma": (1.2, 1.4, 1.7, 2.0, 2.5),  # exponent of x ** γ
    "jpeg": (80, 60, 40, 25, 10),  # JPEG quality
    "pixelate": (2, 3, 4, 6, 8),  # block side, pixels
    "bias_field": (0.1, 0.2, 0.3, 0.4, 0.5),  # largest |field − 1| of the multiplicative field
    "typos": (0.05, 0.1, 0.15, 0.2, 0.3),  # fraction of words with one character edit
    "abbreviations": (0.2, 0.4, 0.6, 0.8, 1.0),  # fraction of abbreviable terms abbreviated
    "dropped_sections": (0.1, 0.2, 0.35, 0.5, 0.7),  # fraction of sentences dropped (one is always kept)
    "dictation": (0.2, 0.4, 0.6, 0.8, 1.0),  # fraction of confusable terms replaced by a homophone
    # added later, after the report kinds: each kind's random stream is keyed by its position here
    "quantum_noise": (2000, 1000, 500, 250, 100),  # photons per pixel at full intensity (Poisson): fewer, noisier
    "motion_blur": (3, 5, 7, 9, 13),  # length in pixels of the straight motion path, in a random direction per study
    "rotation": (2, 4, 6, 9, 12),  # degrees, clockwise or anticlockwise at random per study
    "contrast_up": (1.25, 1.5, 1.8, 2.2, 2.8),  # factor on the deviation from each view's mean (a narrower window)
    "brightness_down": (0.05, 0.1, 0.15, 0.2, 0.3),  # subtracted from every pixel (under-exposure)
    "gamma_down": (1.2, 1.4, 1.7, 2.0, 2.5),  # x ** (1/γ): the image brightened
}
IMAGE_KINDS = ("gaussian_noise", "speckle_noise", "blur", "contrast", "brightness", "gamma", "jpeg", "pixelate",
               "bias_field", "quantum_noise", "motion_blur", "rotation", "contrast_up", "brightness_down", "gamma_down")
#: kind -> its other direction (the unsuffixed kinds are contrast down, brightness and gamma darkening up).
TWO_SIDED = {"contrast": "contrast_up", "brightness": "brightness_down", "gamma": "gamma_down"}
REPORT_KINDS = ("typos", "abbreviations", "dropped_sections", "dictation")

#: Clinical abbreviations a radiologist writes (term -> abbreviation).
ABBREVIATIONS = {
    "pneumothorax": "ptx", "pleural effusion": "pl eff", "effusion": "eff", "cardiomegaly": "cmg",
    "cardiomediastinal": "cm", "silhouette": "sil", "consolidation": "consol", "pulmonary": "pulm",
    "atelectasis": "atx", "opacity": "opac", "within normal limits": "wnl", "without": "w/o", "with": "w/",
    "bilateral": "b/l", "left": "l", "right": "r", "normal": "nl", "history": "hx", "unremarkable": "unrem",
    "vascularity": "vasc", "lower lobe": "ll", "upper lobe": "ul", "acute": "ac", "disease": "dz",
}
#: Speech-recognition confusions seen in dictated reports (term -> what the recogniser typed).
DICTATION = {
    "effusion": "a fusion", "pleural": "plural", "no": "know", "right": "write", "clear": "cleared",
    "mild": "mile", "lungs": "lung's", "there": "their", "focal": "vocal", "airspace": "air space",
    "heart": "hart", "mildly": "mainly", "stable": "staple", "intact": "in tact", "normal": "formal",
    "pneumothorax": "new mo thorax", "atelectasis": "at electasis", "opacity": "capacity", "acute": "a cute",
}

#: The confusions a report corruption may make: none of a protected word (a finding, its anatomy, a negation cue:
#: "no" -> "know" deletes a negation, "opacity" -> "capacity" a finding; benchmark.data.report_terms). The
#: abbreviations stay: each writes a term as the abbreviation the report rules read as that term.
SAFE_DICTATION = {term: typed for term, typed in DICTATION.items() if not any(is_protected(w) for w in term.split())}


def amount(kind: str, severity: int) -> float:
    """The stated amount of `kind` at `severity` (1..5)."""
    if kind not in SEVERITIES:
        raise AttackError(f"mmrb corruption: unknown kind {kind!r}; known: {', '.join(SEVERITIES)}")
    if severity not in range(1, 6):
        raise AttackError(f"mmrb corruption: severity {severity!r}; allowed: 1, 2, 3, 4, 5")
    return SEVERITIES[kind][severity - 1]


def _rng(seed: int, kind: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([seed, list(SEVERITIES).index(kind), severity])


def _per_view(images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([np.stack([fn(view) for view in sample]) for sample in images]).astype(images.dtype)


def _jpeg(view: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.round(view * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255


def _pixelate(view: np.ndarray, block: int) -> np.ndarray:
    h, w = view.shape
    padded = np.pad(view, ((0, -h % block), (0, -w % block)), mode="edge")
    means = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).mean(axis=(1, 3))
    return np.repeat(np.repeat(means, block, 0), block, 1)[:h, :w]


def bias_field(shape: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field 1 + strength·f, f a random quadratic surface scaled to max |f| = 1."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    c = rng.normal(size=6)
    surface = c[0] * x + c[1] * y + c[2] * x * y + c[3] * x ** 2 + c[4] * y ** 2 + c[5]
    return 1 + strength * surface / np.abs(surface).max()


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised straight-line kernel of `length` pixels at `angle` radians (length × length)."""
    kernel = np.zeros((length, length), dtype=np.float32)
    centre, steps = (length - 1) / 2, np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length)
    rows = np.clip(np.round(centre + steps * np.sin(angle)).astype(int), 0, length - 1)
    cols = np.clip(np.round(centre + steps * np.cos(angle)).astype(int), 0, length - 1)
    kernel[rows, cols] = 1
    return kernel / kernel.sum()


def image_corruption(images: np.ndarray, kind: str, severity: int, seed: int) -> np.ndarray:
    """`images` (n, views, H, W) in [0,1] corrupted by `kind` at `severity`, clipped to [0,1]."""
    a, rng = amount(kind, severity), _rng(seed, kind, severity)
    x = np.asarray(images, dtype=np.float32)
    if kind == "gaussian_noise":
        out = x + rng.normal(0, a, x.shape)
    elif kind == "speckle_noise":
        out = x + x * rng.normal(0, a, x.shape)
    elif kind == "blur":
        out = gaussian_filter(x, sigma=(0, 0, a, a))
    elif kind == "contrast":
        mean = x.mean(axis=(2, 3), keepdims=True)
        out = (x - mean) * a + mean
    elif kind == "brightness":
        out = x + a
    elif kind == "gamma":
        out = x ** a
    elif kind == "jpeg":
        out = _per_view(x, lambda v: _jpeg(v, int(a)))
    elif kind == "pixelate":
        out = _per_view(x, lambda v: _pixelate(v, int(a)))
    elif kind == "bias_field":
        out = np.stack([s * bias_field(x.shape[2:], a, rng) for s in x])
    elif kind == "quantum_noise":
        out = rng.poisson(np.clip(x, 0, 1) * a) / a
    elif kind == "motion_blur":
        out = np.stack([np.stack([convolve(v, motion_kernel(int(a), rng.uniform(0, np.pi)), mode="nearest") for v in s])
                        for s in x])
    elif kind == "rotation":
        out = np.stack([rotate(s, rng.choice((-1.0, 1.0)) * a, axes=(1, 2), reshape=False, order=1, mode="nearest")
                        for s in x])
    elif kind == "contrast_up":
        mean = x.mean(axis=(2, 3), keepdims=True)
        out = (x - mean) * a + mean
    elif kind == "brightness_down":
        out = x - a
    elif kind == "gamma_down":
        out = np.clip(x, 0, 1) ** (1 / a)
    else:
        raise AttackError(f"mmrb corruption: {kind!r} is a report corruption (modality: text); image kinds: "
                          f"{', '.join(IMAGE_KINDS)}")
    return np.clip(out, 0, 1).astype(images.dtype)


def _replace_terms(text: str, table: dict[str, str], fraction: float, rng: np.random.Generator) -> str:
    """Replace `fraction` of the occurrences of `table`'s terms (longest first, whole words) in `text`."""
    if not table:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in sorted(table, key=len, reverse=True)) + r")\b")
    found = list(pattern.finditer(text))
    chosen = set(rng.permutation(len(found))[: int(round(fraction * len(found)))].tolist())
    out, end = [], 0
    for i, match in enumerate(found):
        out.append(text[end:match.start()])
        out.append(table[match.group(1)] if i in chosen else match.group(1))
        end = match.end()
    return "".join(out) + text[end:]


def _typo(word: str, rng: np.random.Generator) -> str:
    """One character edit: swap two neighbours, drop one, or double one."""
    i = int(rng.integers(len(word) - 1))
    edit = int(rng.integers(3))
    if edit == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i + 1:] if edit == 1 else word[:i] + word[i] + word[i:]


def report_corruption(text: str, kind: str, severity: int, rng: np.random.Generator) -> str:
    """One report corrupted by `kind` at `severity` (rng: this report's stream)."""
    a = amount(kind, severity)
    if kind == "typos":
        words = text.split()
        eligible = [i for i, w in enumerate(words) if len(w) >= 4 and len(set(w)) > 1 and not is_protected(w)]
        for i in rng.permutation(eligible)[: int(round(a * len(words)))]:
            words[i] = _typo(words[i], rng)
        return " ".join(words)
    if kind == "abbreviations":
        return _replace_terms(text, ABBREVIATIONS, a, rng)
    if kind == "dictation":
        return _replace_terms(text, SAFE_DICTATION, a, rng)
    if kind == "dropped_sections":
        sentences = [s for s in re.split(r"(?<=\.)\s+", text) if s]
        drop = min(int(round(a * len(sentences))), len(sentences) - 1)
        gone = set(rng.permutation(len(sentences))[:drop].tolist())
        return " ".join(s for i, s in enumerate(sentences) if i not in gone)
    raise AttackError(f"mmrb corruption: {kind!r} is an image corruption (modality: image); report kinds: "
                      f"{', '.join(REPORT_KINDS)}")


def report_corruptions(texts: list[str], kind: str, severity: int, seed: int) -> list[str]:
    """Every report corrupted, each from its own stream of (seed, kind, severity)."""
    rng = _rng(seed, kind, severity)
    return [report_corruption(t, kind, severity, np.random.default_rng(rng.integers(2 ** 63))) for t in texts]


def corruption_problems(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A known kind and a severity 1..5, before any work."""
    problems = []
    if params.get("kind") not in SEVERITIES:
        problems.append(("params.kind", f"allowed: {', '.join(SEVERITIES)}; got {params.get('kind')!r}"))
    if params.get("severity") not in range(1, 6):
        problems.append(("params.severity", f"allowed: 1, 2, 3, 4, 5; got {params.get('severity')!r}"))
    return problems


@register_attack("corruption", bounded=False, params=("kind", "severity"), check=corruption_problems)
def corruption(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """A natural corruption of the images (image kinds) or of the reports (report kinds); no ε, no model queries."""
    kind, severity = params["kind"], int(params["severity"])
    if kind in REPORT_KINDS:
        return Crafted(target.images, report_corruptions(list(target.texts), kind, severity, seed), 0, dict(params))
    return Crafted(image_corruption(target.images, kind, severity, seed), list(target.texts), 0, dict(params))
