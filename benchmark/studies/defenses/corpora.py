"""The data of a defense comparison and its CLIPs: per seed, a general CLIP pre-trained on a corpus disjoint from the
noisy one (CT-like pairs, with or without chest pairs of another generator seed), then, per noise type and ratio γ,
that CLIP continued on the downstream-domain corpus with a share γ of
its pairs made noisy.

Noise types (a share γ of the pairs, nested: the 10 % pairs are among the 30 % ones):
- `image`: the image replaced by a feature-space PGD image within ε whose general-CLIP features point at a CT-like
  target image (Han et al. 2025, §3.1);
- `caption`: the report rewritten by rules (a few words swapped; `benchmark.attacks.caption`);
- `random`: uniform noise within the same ε on the image (the paper's random-noise baseline, Table 3);
- `mismatch`: the report swapped for another pair's (the positive control: with γ up to 80 % the CLIP learns
  little of the chest domain, and clean downstream accuracy must fall measurably).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.studies.defenses.spec import CorpusSpec, DefenseSuite, SplitSpec
from mmrb.core.errors import SuiteError

NOISE_STREAM = 1729  # the rng stream that orders the pairs turning noisy


@dataclass(frozen=True)
class Split:
    """Images (n, 2, H, W) in [0, 1], report texts and labels (1 = abnormal) of one generated split."""

    images: np.ndarray
    texts: list[str]
    labels: np.ndarray
    fingerprint: str

    def take(self, index: np.ndarray, tag: str) -> Split:
        return Split(self.images[index], [self.texts[i] for i in index], self.labels[index], f"{self.fingerprint}-{tag}")


@dataclass(frozen=True)
class Data:
    """Everything a comparison runs on: the general and the noisy corpus, the targets, the downstream splits."""

    base: Split
    noisy: Split
    target_images: np.ndarray
    target_captions: list[str]
    train: Split
    validation: Split
    tests: dict[str, Split]  # "ID", "OOD"

    @property
    def fingerprint(self) -> str:
        from wrappers.cache import digest

        return digest([s.fingerprint for s in (self.base, self.noisy, self.train, self.validation, *self.tests.values())]
                      + [len(self.target_captions)])


def generated(spec: SplitSpec | CorpusSpec, image_size: int, cache_dir: Path) -> Split:
    """Every sample of one generator run (train and test parts together), shifted where the spec says so."""
    from benchmark.data import SplitArrays, synthetic_folder
    from benchmark.data.indiana import load_indiana
    from benchmark.data.synth_domains import shift_images, shift_reports

    dataset = load_indiana(synthetic_folder(cache_dir, spec.n, spec.data_seed))
    train, test = dataset.split(0)
    arrays = SplitArrays.from_samples(train + test, image_size)
    images, texts = arrays.images, list(arrays.texts)
    shift = getattr(spec, "shift", 0.0)
    if shift:
        images, texts = shift_images(images, spec.data_seed, shift), shift_reports(texts)
    return Split(images, texts, arrays.labels, f"{dataset.fingerprint()}-all-{image_size}px-shift{shift}")


def load_data(suite: DefenseSuite, cache_dir: Path) -> Data:
    """Generate (once, into the cache) and load every split; the validation part is a seeded share of training."""
    from benchmark.data.synth_domains import target_domain

    seeds = {"base": suite.base.data_seed, "noisy": suite.noisy.data_seed, "train": suite.data.train.data_seed,
             "ID test": suite.data.id.data_seed, "OOD test": suite.data.ood.data_seed}
    if len(set(seeds.values())) != len(seeds):
        raise SuiteError(f"defenses suite {suite.name!r}: the corpora and splits must come from different generator "
                         f"seeds (data_seed), so that none shares a sample with another; got {seeds}")
    size = suite.image_size
    target_images, target_captions = target_domain(suite.base.target_n, suite.base.data_seed, size)
    train_all = generated(suite.data.train, size, cache_dir)
    order = np.random.default_rng([suite.data.train.data_seed, 7]).permutation(len(train_all.labels))
    held = int(round(suite.data.validation * len(order)))
    return Data(generated(suite.base, size, cache_dir), generated(suite.noisy, size, cache_dir), target_images,
                target_captions, train_all.take(np.sort(order[held:]), "train"),
                train_all.take(np.sort(order[:held]), "validation"),
                {"ID": generated(suite.data.id, size, cache_dir), "OOD": generated(suite.data.ood, size, cache_dir)})


def general_clip(data: Data, suite: DefenseSuite, cache_dir: Path, seed: int) -> str:
    """The general CLIP of a seed (the DataComp stand-in, pre-trained from that seed's initialisation): the CT-like
    pairs, plus the base chest corpus unless `base.chest` is false (then the chest domain is first seen in the noisy
    phase, as in Han et al.)."""
    from wrappers.clip_encoder import PretrainRecipe, obtain_pretrained_clip

    images, texts = data.target_images[:, 0], list(data.target_captions)
    if suite.base.chest:
        images, texts = np.concatenate([data.base.images[:, 0], images]), list(data.base.texts) + texts
    return obtain_pretrained_clip(suite.clip, None, images, texts, PretrainRecipe.from_dict(suite.base.recipe, "base.recipe"),
                                  cache_dir, seed, suite.image_size)


def noise_order(n: int, seed: int) -> np.ndarray:
    """The order in which pairs turn noisy for a seed: the first ⌊γ·n⌋ are the noisy ones at ratio γ."""
    return np.random.default_rng([seed, NOISE_STREAM]).permutation(n)


def noisy_corpus(data: Data, general: str, suite: DefenseSuite, kind: str, seed: int) -> tuple[np.ndarray, list[str]]:
    """The corpus with its largest share of `kind` noise for `seed` (smaller shares take a prefix of the order)."""
    corpus, attack = data.noisy, suite.noise_attack
    ratio = max(next(n for n in suite.noise if n.type == kind).ratios)
    order = noise_order(len(corpus.texts), seed)
    picked = order[: int(ratio * len(order))]
    rng = np.random.default_rng([seed, NOISE_STREAM, 1])
    images, texts = corpus.images.copy(), list(corpus.texts)
    if kind == "image":
        from benchmark.attacks.feature import FeaturePGD
        from wrappers.clip_encoder import ClipEncoder

        surrogate = ClipEncoder(general).eval().requires_grad_(False)
        goal = torch.as_tensor(data.target_images[rng.integers(0, len(data.target_captions), size=len(picked))])
        pgd = FeaturePGD(surrogate.encode_image, attack.epsilon, steps=attack.steps, seed=seed)
        x = torch.as_tensor(corpus.images[picked])
        images[picked] = torch.cat([pgd(x[i:i + 64], goal[i:i + 64]) for i in range(0, len(picked), 64)]).numpy()
    elif kind == "random":
        noise = rng.uniform(-attack.epsilon, attack.epsilon, size=images[picked].shape).astype(np.float32)
        images[picked] = np.clip(images[picked] + noise, 0.0, 1.0)
    elif kind == "caption":
        from benchmark.attacks.caption import RuleRewriter, load_rewriter, rewrite_captions

        rewriter = load_rewriter(attack.rewriter) if attack.rewriter else RuleRewriter(attack.max_words)
        for i, text in zip(picked, rewrite_captions([texts[i] for i in picked], seed, rewriter)):
            texts[i] = text
    elif kind == "mismatch":  # each picked pair takes the report of another picked pair (a derangement)
        cycle = rng.permutation(picked)  # pair cycle[k] takes the report of cycle[k - 1]
        for i, j in zip(cycle, np.roll(cycle, 1)):
            texts[i] = corpus.texts[j]
    else:
        raise SuiteError(f"unknown noise type {kind!r}")
    return images, texts


def noisy_clip(data: Data, general: str, suite: DefenseSuite, cache_dir: Path, seed: int, kind: str, ratio: float,
               memo: dict[tuple[str, int], tuple[np.ndarray, list[str]]]) -> str:
    """The general CLIP continued on the noisy corpus with a share `ratio` of `kind` noise for `seed` (cached);
    kind "none": on the clean corpus. `memo` keeps each seed's most noisy corpus per kind between calls."""
    from wrappers.clip_encoder import PretrainRecipe, obtain_pretrained_clip

    corpus = data.noisy
    images, texts = corpus.images, list(corpus.texts)
    if kind != "none":
        if (kind, seed) not in memo:
            memo[kind, seed] = noisy_corpus(data, general, suite, kind, seed)
        most_images, most_texts = memo[kind, seed]
        picked = noise_order(len(corpus.texts), seed)[: int(ratio * len(corpus.texts))]
        images = corpus.images.copy()
        images[picked] = most_images[picked]
        for i in picked:
            texts[i] = most_texts[i]
    recipe = PretrainRecipe.from_dict(suite.noisy.recipe, "noisy.recipe")
    return obtain_pretrained_clip(general, None, images[:, 0], texts, recipe, cache_dir, seed)


def grid(suite: DefenseSuite) -> list[tuple[str, float]]:
    """Every (noise type, γ) of the suite, the clean CLIP ("none", 0.0) first."""
    return [("none", 0.0)] + [(n.type, r) for n in suite.noise for r in n.ratios]
