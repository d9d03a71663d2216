"""`mmrb compare-defenses`: Han et al. (2025) end to end on generated data — noisy CLIP pre-training, then
LP / MLP / RAN / NMTune (any registered defense) on frozen features, scored in and out of domain, clean and
under attack, over several seeds.

A general CLIP (stand-in for the public DataComp CLIP, one for all seeds) is pre-trained on the chest pairs plus
the target domain's pairs; it is the surrogate of the feature attack. Per seed and for each noise type (image: feature PGD towards a
target-domain image; caption: rule-based rewrite) and ratio γ, a share γ of the chest pairs (nested: the 5 %
pairs are among the 10 % ones) is replaced by attacked pairs and the general CLIP is further pre-trained on
them (stand-in for ROCOv2, §4.2). Downstream, each defense is fit on frozen image features of a fresh sample of
the same generator (ID, stand-in for ChestX-ray14) and tested on it and on a shifted generator (OOD, stand-in
for CheXpert), clean and under each attack of the suite. Outputs: results.csv (one row per seed × noise × γ ×
method × domain × attack, with provenance), tables.md (Tables 6/10 shape, mean ± 95 % t-interval over seeds),
zeroshot.md (Table 4 shape), clip_scores.md (Table 1 shape), directions.md (the paper's two claims as paired
differences over seeds), accuracy_vs_noise_*.png, provenance.json.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from benchmark.defenses_report import (
    clip_score_table,
    defense_tables,
    direction_table,
    plot_accuracy,
    zero_shot_table,
)
from mmrb.core.errors import SuiteError
from mmrb.core.provenance import provenance as make_provenance

log = logging.getLogger(__name__)
PACKAGES = ("torch", "open_clip", "adversarial-robustness-toolbox", "numpy")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PretrainSpec(_Strict):
    """The pre-training corpus (generated Indiana-format frontal images + reports) and the CLIP recipes."""

    n: int = Field(600, ge=8)
    data_seed: int = 0
    target_n: int = Field(200, ge=0, description="target-domain pairs added to the general CLIP's corpus")
    base_seed: int = Field(0, description="one general CLIP for all seeds, as the paper's one public CLIP")
    clip: str = "mmrb-tiny"
    clip_pretrained: str | None = None
    base: dict[str, Any] = {"epochs": 30}
    finetune: dict[str, Any] = {"epochs": 8}


class NoiseSpec(_Strict):
    """Noise types and ratios γ of the pre-training corpus, and the attacks that make the noisy pairs."""

    types: list[Literal["image", "caption"]] = ["image", "caption"]
    ratios: list[float] = [0.0, 0.05, 0.1, 0.2, 0.3]
    epsilon: float = Field(8 / 255, gt=0, le=1)
    steps: int = Field(10, ge=1)
    max_words: int = Field(3, ge=1)
    rewriter: str | None = None


class DomainSpec(_Strict):
    """One downstream generated dataset: size, generator seed, OOD shift strength (0 = in-distribution)."""

    n: int = Field(600, ge=8)
    data_seed: int = 1
    shift: float = Field(0.0, ge=0)


class AttackSpec(_Strict):
    """An attack of the catalogue run on every defended classifier at the suite's ε."""

    label: str
    source: Literal["art", "torchattacks", "mmrb"] = "art"
    name: str
    params: dict[str, Any] = {}
    epsilon: float | None = Field(None, gt=0, le=1, description="this attack's L∞ budget (default: the suite's)")


class DefenseSuite(_Strict):
    """A `compare-defenses` suite (suites/defenses.yaml)."""

    name: str = ""
    seeds: list[int] = [0, 1, 2]
    threads: int = Field(1, ge=1)
    image_size: int = Field(64, ge=16)
    pretrain: PretrainSpec = PretrainSpec()
    noise: NoiseSpec = NoiseSpec()
    id: DomainSpec = DomainSpec(n=600, data_seed=1)
    ood: DomainSpec = DomainSpec(n=300, data_seed=2, shift=1.0)
    defenses: list[str] = ["lp", "mlp", "nmtune", "ran"]
    head_recipe: dict[str, Any] = {}
    attacks: list[AttackSpec] = [AttackSpec(label="PGD", name="ProjectedGradientDescent", params={"max_iter": 10}),
                                 AttackSpec(label="feature", source="mmrb", name="feature_pgd", params={"steps": 10})]
    epsilon: float = Field(8 / 255, gt=0, le=1)
    limit: int | None = Field(None, ge=1, description="score at most this many test samples per domain")
    zero_shot_labels: list[str] | None = None
    content_hash: str = ""


def load_defense_suite(path: str | Path) -> DefenseSuite:
    """Validate a compare-defenses YAML file; errors name the file and the field."""
    from wrappers.cache import digest

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: cannot read the suite ({exc})") from exc
    try:
        suite = DefenseSuite(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise SuiteError(f"{path}: invalid defenses suite / {problems}") from None
    from defenses import list_defenses

    unknown = [d for d in suite.defenses if d not in list_defenses()]
    if unknown:
        raise SuiteError(f"{path}: field 'defenses': unknown {unknown}; registered: {', '.join(list_defenses())}")
    if any(not 0 <= r < 1 for r in suite.noise.ratios):
        raise SuiteError(f"{path}: field 'noise.ratios': each ratio γ must be in [0, 1); got {suite.noise.ratios}")
    if len({a.label for a in suite.attacks}) != len(suite.attacks) or "clean" in {a.label for a in suite.attacks}:
        raise SuiteError(f"{path}: field 'attacks': labels must be unique and not 'clean'")
    return suite.model_copy(update={"name": suite.name or path.stem, "content_hash": digest(raw)})


@dataclass(frozen=True)
class Split:
    """Images (n, 2, H, W) in [0, 1], report texts and labels (1 = abnormal) of one generated split."""

    images: np.ndarray
    texts: list[str]
    labels: np.ndarray
    fingerprint: str


@dataclass(frozen=True)
class Data:
    """Everything a comparison runs on: pre-training pairs, target domain, ID train/test, OOD test."""

    pretrain: Split
    target_images: np.ndarray
    target_captions: list[str]
    id_train: Split
    id_test: Split
    ood_test: Split

    @property
    def fingerprint(self) -> str:
        from wrappers.cache import digest

        return digest([s.fingerprint for s in (self.pretrain, self.id_train, self.id_test, self.ood_test)]
                      + [len(self.target_captions)])


def load_data(suite: DefenseSuite, cache_dir: Path) -> Data:
    """Generate (once, into the cache) and load the chest datasets; draw the target domain and the OOD shift."""
    from benchmark.data import SplitArrays, synthetic_folder
    from benchmark.data.indiana import load_indiana
    from benchmark.data.synth_domains import shift_images, shift_reports, target_domain

    def split(n: int, data_seed: int, part: str, shift: float = 0.0) -> Split:
        dataset = load_indiana(synthetic_folder(cache_dir, n, data_seed))
        train, test = dataset.split(0)
        samples = {"all": train + test, "train": train, "test": test}[part]
        arrays = SplitArrays.from_samples(samples, suite.image_size)
        images, texts = arrays.images, arrays.texts
        if shift:
            images, texts = shift_images(images, data_seed, shift), shift_reports(texts)
        return Split(images, texts, arrays.labels,
                     f"{dataset.fingerprint()}-{part}-{suite.image_size}px-shift{shift}")

    target_images, target_captions = target_domain(suite.pretrain.target_n, suite.pretrain.data_seed, suite.image_size)
    return Data(split(suite.pretrain.n, suite.pretrain.data_seed, "all"), target_images, target_captions,
                split(suite.id.n, suite.id.data_seed, "train", suite.id.shift),
                split(suite.id.n, suite.id.data_seed, "test", suite.id.shift),
                split(suite.ood.n, suite.ood.data_seed, "all", suite.ood.shift))


def noisy_pairs(data: Data, base_spec: str, suite: DefenseSuite, seed: int) -> dict[str, tuple[np.ndarray, list[str], np.ndarray]]:
    """Per noise type, the most noisy corpus (images, captions) and the order in which pairs turn noisy: the first
    ⌊γ·N⌋ pairs of that order are the attacked ones at ratio γ (nested sets, crafted once)."""
    from benchmark.attacks.caption import RuleRewriter, load_rewriter, rewrite_captions
    from benchmark.attacks.feature import FeaturePGD
    from wrappers.clip_encoder import ClipEncoder

    pairs = data.pretrain
    rng = np.random.default_rng([seed, 1729])
    order = rng.permutation(len(pairs.texts))
    most = order[: int(max(suite.noise.ratios) * len(order))]
    out: dict[str, tuple[np.ndarray, list[str], np.ndarray]] = {}
    if "image" in suite.noise.types:
        surrogate = ClipEncoder(base_spec).eval().requires_grad_(False)
        targets = rng.integers(0, len(data.target_captions), size=len(most)) if len(data.target_captions) else None
        if targets is None:
            raise SuiteError("pretrain.target_n must be > 0 for image noise: the feature attack needs target images")
        attack = FeaturePGD(surrogate.encode_image, suite.noise.epsilon, steps=suite.noise.steps, seed=seed)
        images = pairs.images.copy()
        x = torch.as_tensor(pairs.images[most])
        goal = torch.as_tensor(data.target_images[targets])
        images[most] = torch.cat([attack(x[i:i + 64], goal[i:i + 64]) for i in range(0, len(most), 64)]).numpy()
        out["image"] = (images, list(pairs.texts), order)
    if "caption" in suite.noise.types:
        rewriter = load_rewriter(suite.noise.rewriter) if suite.noise.rewriter else RuleRewriter(suite.noise.max_words)
        texts = list(pairs.texts)
        for i, text in zip(most, rewrite_captions([texts[i] for i in most], seed, rewriter)):
            texts[i] = text
        out["caption"] = (pairs.images, texts, order)
    return out


def pretrain_grid(data: Data, suite: DefenseSuite, cache_dir: Path, seed: int) -> tuple[str, dict[tuple[str, float], str]]:
    """The general CLIP and, per (noise type, γ), the CLIP further pre-trained on that noisy corpus (all cached)."""
    from wrappers.clip_encoder import PretrainRecipe, obtain_pretrained_clip

    spec = suite.pretrain
    base_images = np.concatenate([data.pretrain.images[:, 0], data.target_images[:, 0]])
    base = obtain_pretrained_clip(spec.clip, spec.clip_pretrained, base_images,
                                  list(data.pretrain.texts) + list(data.target_captions),
                                  PretrainRecipe.from_dict(spec.base, "pretrain.base"), cache_dir, spec.base_seed,
                                  suite.image_size)
    finetune = PretrainRecipe.from_dict(spec.finetune, "pretrain.finetune")
    corpora = noisy_pairs(data, base, suite, seed)
    clean_images, clean_texts = data.pretrain.images, list(data.pretrain.texts)
    grid: dict[tuple[str, float], str] = {}
    for kind, (noisy_images, noisy_texts, order) in corpora.items():
        for ratio in suite.noise.ratios:
            picked = order[: int(ratio * len(order))]
            images, texts = clean_images.copy(), list(clean_texts)
            images[picked] = noisy_images[picked]
            for i in picked:
                texts[i] = noisy_texts[i]
            grid[kind, ratio] = obtain_pretrained_clip(base, None, images[:, 0], texts, finetune, cache_dir, seed)
    return base, grid


def score(model: Any, split: Split, attacks: Sequence[AttackSpec], epsilon: float, seed: int,
          shared: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Accuracy and AUC of `model` on `split`, clean and under each attack (feature-attack images are shared
    between the heads of one CLIP: they depend on the encoder only)."""
    from benchmark.attacks import Target, craft
    from benchmark.metrics import accuracy, roc_auc
    from wrappers.estimators import ImageView
    from wrappers.training import predict_proba

    def row(label: str, images: np.ndarray, extra: dict[str, Any]) -> dict[str, Any]:
        prob = predict_proba(model, images, None)
        return {"attack": label, "accuracy": accuracy(split.labels, prob.argmax(1)),
                "auc": roc_auc(split.labels, prob[:, 1]), **extra}

    rows = [row("clean", split.images, {})]
    target = Target(model, split.images, split.texts, split.labels, ImageView(model, split.images, split.texts))
    for attack in attacks:
        head_free = attack.source == "mmrb" and attack.name == "feature_pgd"
        if head_free and attack.label in shared:
            images, extra = shared[attack.label]
        else:
            crafted = craft(attack.source, attack.name, dict(attack.params), target, attack.epsilon or epsilon, seed)
            images = crafted.images
            extra = {k: v for k, v in crafted.params.items() if k.startswith(("clip_score", "target_similarity"))}
            if head_free:
                shared[attack.label] = (images, extra)
        rows.append(row(attack.label, images, extra))
    return rows


def zero_shot_rows(clip_spec: str, data: Data, labels: Sequence[str] | None) -> list[dict[str, Any]]:
    """Zero-shot accuracy and AUC of one CLIP on ID and OOD tests (the paper's Table 4)."""
    import wrappers
    from benchmark.metrics import accuracy, roc_auc
    from wrappers.training import predict_proba

    overrides = {"clip": clip_spec, "pretrain": {"epochs": 0}, **({"labels": list(labels)} if labels else {})}
    model = wrappers.create_model("clip_zeroshot", **overrides)
    model.trained.fill_(True)
    rows = []
    for domain, split in (("ID", data.id_test), ("OOD", data.ood_test)):
        prob = predict_proba(model, split.images, None)
        rows.append({"domain": domain, "accuracy": accuracy(split.labels, prob.argmax(1)), "auc": roc_auc(split.labels, prob[:, 1])})
    return rows


def _limited(split: Split, limit: int | None) -> Split:
    if limit is None or limit >= len(split.labels):
        return split
    return Split(split.images[:limit], split.texts[:limit], split.labels[:limit], f"{split.fingerprint}-limit{limit}")


def run_comparison(suite: DefenseSuite, cache_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """All rows of the comparison (one per seed × noise type × γ × method × domain × attack), as a DataFrame."""
    from wrappers.clip import defended_model
    from wrappers.training import LabelledSet

    torch.set_num_threads(suite.threads)
    cache_dir = Path(cache_dir)
    data = load_data(suite, cache_dir)
    train = LabelledSet(data.id_train.images, data.id_train.texts, data.id_train.labels, data.id_train.fingerprint)
    tests = {"ID": _limited(data.id_test, suite.limit), "OOD": _limited(data.ood_test, suite.limit)}
    rows: list[dict[str, Any]] = []
    check_defenses(suite, data)
    start = time.time()
    for seed in suite.seeds:
        _, grid = pretrain_grid(data, suite, cache_dir, seed)
        for (kind, ratio), clip_spec in grid.items():
            for zs in zero_shot_rows(clip_spec, data, suite.zero_shot_labels):
                rows.append({"seed": seed, "noise": kind, "ratio": ratio, "method": "zero_shot", "attack": "clean", **zs})
            shared: dict[str, dict[str, Any]] = {domain: {} for domain in tests}
            for method in suite.defenses:
                model = defended_model(method, clip=clip_spec, pretrain={"epochs": 0}, head_recipe=suite.head_recipe)
                model.train_on(train, cache_dir, seed)
                for domain, split in tests.items():
                    for r in score(model, split, suite.attacks, suite.epsilon, seed, shared[domain]):
                        rows.append({"seed": seed, "noise": kind, "ratio": ratio, "method": method, "domain": domain, **r})
            if progress:
                print(f"  seed {seed} · {kind} noise γ={ratio:g}: done ({time.time() - start:.0f} s)", flush=True)
    return pd.DataFrame(rows)


def check_defenses(suite: DefenseSuite, data: Data) -> None:
    """Before any pre-training: each defense's model (on the suite's CLIP architecture, untrained) returns finite
    (n, 2) logits on a batch of the ID test split (benchmark.preflight)."""
    from benchmark.preflight import BATCH, check_built
    from wrappers.clip import defended_model

    split = data.id_test
    for method in suite.defenses:
        model = defended_model(method, clip=suite.pretrain.clip, pretrain={"epochs": 0}, head_recipe=suite.head_recipe,
                               image_size=suite.image_size)
        check_built(model, split.images[:BATCH], split.texts[:BATCH], f"defenses suite {suite.name!r}: defense {method!r}")


def provenance(suite: DefenseSuite, data_fingerprint: str) -> dict[str, Any]:
    """What the outputs of one comparison record about how they were produced (as the leaderboard's entries)."""
    return make_provenance(suite=suite.name, suite_hash=suite.content_hash, data_fingerprint=data_fingerprint,
                           seeds=list(suite.seeds), packages=PACKAGES)


def compare_defenses(suite: DefenseSuite, out: str | Path, cache_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Run the comparison and write results.csv, the tables, the plots and provenance.json into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    frame = run_comparison(suite, cache_dir, progress)
    meta = provenance(suite, load_data(suite, Path(cache_dir)).fingerprint)
    meta["seconds"] = round(time.time() - start, 1)
    frame.assign(**{k: v for k, v in meta.items() if k != "seeds"}).to_csv(out / "results.csv", index=False)
    write_reports(frame, suite, meta, out)
    return frame


def write_reports(frame: pd.DataFrame, suite: DefenseSuite, meta: dict[str, Any], out: Path) -> None:
    """Tables, plots and provenance.json from the rows of a comparison (re-renderable from results.csv)."""
    attacks = [a.label for a in suite.attacks]
    header = (f"suite `{suite.name}` ({meta['suite_hash']}) · data `{meta['data_fingerprint']}` · seeds {meta['seeds']} · "
              f"protocol {meta['protocol_version']} · commit `{meta['git_commit']}` · {meta['date']} · "
              f"{meta['seconds']:.0f} s\n{meta['packages']}\n\nmean ± half-width of the 95 % t-interval over seeds, in %; "
              f"attacks at ε = " + ", ".join(f"{a.epsilon or suite.epsilon:.4g} ({a.label})" for a in suite.attacks) + "\n\n")
    (out / "tables.md").write_text(header + defense_tables(frame, attacks) + "\n")
    (out / "zeroshot.md").write_text(header + zero_shot_table(frame) + "\n")
    (out / "directions.md").write_text(header.replace("in %", "in percentage points, paired by seed")
                                        + direction_table(frame, suite.defenses, attacks) + "\n")
    (out / "clip_scores.md").write_text(header + clip_score_table(frame) + "\n")
    plot_accuracy(frame, out)
    (out / "provenance.json").write_text(json.dumps(meta, indent=2))
