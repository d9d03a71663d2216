"""Adversarial caption rewrite without an LLM (Han et al. 2025, §3.1 and Fig. 3), with a pluggable rewriter.

The paper prompts LLaMA-3-8B with three objectives: (1) change the body part, (2) flip key words to their
opposite (left/right, no/present, normal/abnormal, increased/decreased, small/large), (3) change only a few
words. `RuleRewriter` does the same by rules, seeded: it swaps at most `max_words` whole words, one body-part
word first where there is one, then key words flipped to their opposite, and reports every change it made.

A user's own rewriter (an LLM) plugs in as any callable `(caption, rng) -> caption`, named in a suite as
`params: {rewriter: "package.module:object"}` (or `file.py:object`); a class is instantiated without arguments.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.attacks import Crafted, Target
from benchmark.attacks.registry import register_attack
from mmrb.core.errors import AttackError

#: (caption, rng) -> adversarial caption
Rewriter = Callable[[str, np.random.Generator], str]
PARAMS = ("max_words", "rewriter", "fraction")
WORD = re.compile(r"[A-Za-z]+")

#: Objective 1: chest anatomy -> another body region (single words, so word positions stay aligned).
BODY_PARTS = {
    "chest": "abdomen", "thorax": "pelvis", "thoracic": "lumbar", "lung": "liver", "lungs": "kidneys",
    "pulmonary": "renal", "heart": "liver", "cardiac": "hepatic", "cardiomediastinal": "hepatobiliary",
    "mediastinum": "retroperitoneum", "mediastinal": "retroperitoneal", "pleural": "peritoneal",
    "costophrenic": "costovertebral", "lobe": "segment", "lingula": "spleen", "spine": "pelvis", "rib": "femur",
}
_PAIRS = (("left", "right"), ("no", "present"), ("normal", "abnormal"), ("increased", "decreased"),
          ("small", "large"), ("without", "with"), ("mild", "severe"), ("negative", "positive"),
          ("upper", "lower"), ("clear", "opacified"), ("stable", "worsened"), ("enlarged", "shrunken"))
#: Objective 2: key words and their opposites, both ways.
OPPOSITES = {**{a: b for a, b in _PAIRS}, **{b: a for a, b in _PAIRS}}


@dataclass(frozen=True)
class Rewrite:
    """A rewritten caption and its changes: (index of the word among the caption's words, old word, new word)."""

    text: str
    changes: tuple[tuple[int, str, str], ...]


def _cased(word: str, like: str) -> str:
    """`word` in the case pattern of `like` (lower, Capitalised or UPPER)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word.capitalize() if like[:1].isupper() else word


class RuleRewriter:
    """The paper's three objectives by rules: one body-part word, then opposites, at most `max_words` words."""

    def __init__(self, max_words: int = 3, body_parts: dict[str, str] | None = None,
                 opposites: dict[str, str] | None = None) -> None:
        if max_words < 1:
            raise AttackError(f"caption_rewrite: max_words must be >= 1, got {max_words}")
        self.max_words = max_words
        self.body_parts = BODY_PARTS if body_parts is None else body_parts
        self.opposites = OPPOSITES if opposites is None else opposites

    def rewrite(self, caption: str, rng: np.random.Generator) -> Rewrite:
        """The rewritten caption and exactly the words changed."""
        words = list(WORD.finditer(caption))
        body = [i for i, m in enumerate(words) if m.group().lower() in self.body_parts]
        flips = [i for i, m in enumerate(words) if m.group().lower() in self.opposites and i not in body]
        chosen = [int(rng.choice(body))] if body else []
        rest = [i for i in body + flips if i not in chosen]
        chosen += [rest[j] for j in rng.permutation(len(rest))[: self.max_words - len(chosen)]]
        changes, text, shift = [], caption, 0
        for i in sorted(chosen):
            m = words[i]
            old = m.group()
            table = self.body_parts if old.lower() in self.body_parts else self.opposites
            new = _cased(table[old.lower()], old)
            text = text[: m.start() + shift] + new + text[m.end() + shift:]
            shift += len(new) - len(old)
            changes.append((i, old, new))
        return Rewrite(text, tuple(changes))

    def __call__(self, caption: str, rng: np.random.Generator) -> str:
        return self.rewrite(caption, rng).text


def load_rewriter(spec: str) -> Rewriter:
    """A rewriter named "package.module:object" or "path/file.py:object" (a class is instantiated)."""
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise AttackError(f"caption_rewrite: rewriter {spec!r} must be 'package.module:object' or 'file.py:object'")
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if loader is None or loader.loader is None:
                raise ImportError(f"no such file {module_name}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        obj = getattr(module, attr)
    except (ImportError, AttributeError, OSError) as exc:
        raise AttackError(f"caption_rewrite: cannot load rewriter {spec!r} ({exc})") from exc
    rewriter = obj() if isinstance(obj, type) else obj
    if not callable(rewriter):
        raise AttackError(f"caption_rewrite: rewriter {spec!r} is not callable as (caption, rng) -> caption")
    return rewriter


def rewrite_captions(captions: Sequence[str], seed: int, rewriter: Rewriter | None = None) -> list[str]:
    """Every caption rewritten, caption i with its own generator default_rng([seed, i]) (order-independent)."""
    rewriter = rewriter or RuleRewriter()
    return [str(rewriter(c, np.random.default_rng([seed, i]))) for i, c in enumerate(captions)]


@register_attack("caption_rewrite", modality="text", bounded=False, params=PARAMS, files=("rewriter",),
                 check=lambda params: _fraction_problems(params))
def craft(params: dict, target: Target, epsilon: float | None, seed: int) -> Crafted:
    """The `caption_rewrite` text attack of source mmrb: rewrites the report of every (or a `fraction` of) test sample."""
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise AttackError(f"mmrb caption_rewrite: unknown params {sorted(unknown)}; it takes: {', '.join(PARAMS)}")
    rewriter = load_rewriter(params["rewriter"]) if "rewriter" in params else RuleRewriter(params.get("max_words", 3))
    fraction = params.get("fraction", 1.0)
    texts = list(target.texts)
    picked = np.random.default_rng(seed).permutation(len(texts))[: round(fraction * len(texts))]
    rewritten = rewrite_captions([texts[i] for i in picked], seed, rewriter)
    for i, text in zip(picked, rewritten):
        texts[i] = text
    return Crafted(target.images, texts, 0, {"max_words": params.get("max_words", 3), "fraction": fraction,
                                              "rewriter": params.get("rewriter", "rule")})


def _fraction_problems(params: dict) -> list:
    from benchmark.attacks.text import fraction_problems

    return fraction_problems(params)
