"""Runs a suite: data -> trained models -> cells -> attacks -> scores, one results row per cell."""
from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.attacks import Crafted, Target, craft
from benchmark.data import SplitArrays, load_dataset
from benchmark.errors import AttackError, MmrbError
from benchmark.grid import Cell, expand, expand_transfer
from benchmark.metrics import accuracy, f1_score, perturbation_linf, robustness_scores
from benchmark.results import ResultsWriter
from benchmark.suite import ModelSpec, Suite
from benchmark.tables import write_tables
from wrappers.estimators import ImageView
from wrappers.registry import model_entry
from wrappers.training import LabelledSet, obtain_trained, predict_logits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRecord:
    """What a run produced and what it ran on (the leaderboard's provenance columns)."""

    rows: list[dict[str, Any]]
    data_fingerprint: str
    results_path: Path
    tables: str = ""  # Markdown of the paper-shaped tables, also written next to results.csv


@dataclass(frozen=True)
class TrainedModel:
    """A trained model, the attack target on the test split, and its clean class probabilities."""

    spec: ModelSpec
    target: Target
    clean_prob: np.ndarray


def needs_text_resources(suite: Suite) -> bool:
    """Whether any attack of the suite perturbs text (and so needs WordNet and stopwords)."""
    attacks = suite.attacks + (suite.transfer.attacks if suite.transfer else [])
    return any(a.modality in ("text", "joint") or a.source == "textattack" for a in attacks)


def probabilities(model, images: np.ndarray, texts) -> np.ndarray:
    """Class probabilities of `model` on paired inputs (by position: the runner knows each row's text)."""
    return torch.softmax(predict_logits(model, images, texts), 1).numpy()


def run_suite(suite: Suite, out_dir: str | Path, cache_dir: str | Path, device: str = "cpu",
              progress: bool = True) -> RunRecord:
    """Execute every cell of `suite`; rows are appended to out_dir/results.csv as they finish."""
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    if needs_text_resources(suite):  # stop before any data or training work, not halfway through the grid
        from benchmark.data.text_resources import ensure_text_resources

        ensure_text_resources()
    spec = suite.dataset
    dataset = load_dataset(spec, cache_dir)
    train_samples, test_samples = dataset.split(suite.seed, spec.test_fraction)
    test_samples = test_samples[: suite.limit] if suite.limit else test_samples
    fingerprint = f"{dataset.fingerprint()}-{spec.image_size}px-split{suite.seed}-{spec.test_fraction}"
    train = SplitArrays.from_samples(train_samples, spec.image_size)
    test = SplitArrays.from_samples(test_samples, spec.image_size)
    train_set = LabelledSet(train.images, train.texts, train.labels, fingerprint)
    modalities_of = lambda name: model_entry(name).modalities  # noqa: E731
    cells, transfer = expand(suite, modalities_of), expand_transfer(suite, modalities_of)
    log.info("%s: %d cells + %d transfer cells, %d train / %d test samples", suite.name, len(cells), len(transfer),
             len(train.labels), len(test.labels))
    trained: dict[str, TrainedModel] = {}

    def get(model_spec: ModelSpec) -> TrainedModel:
        if model_spec.label not in trained:
            bar.set_postfix_str(f"training {model_spec.label}")
            model = obtain_trained(model_spec.name, model_spec.params, train_set, cache_dir, suite.seed).to(device)
            view = ImageView(model, test.images, test.texts, device=device) if "image" in model.modalities else None
            target = Target(model, test.images, test.texts, test.labels, view)
            trained[model_spec.label] = TrainedModel(model_spec, target, probabilities(model, test.images, test.texts))
        return trained[model_spec.label]

    results = ResultsWriter(out_dir / "results.csv")
    with results, tqdm(total=len(cells) + len(transfer), desc=suite.name, disable=not progress, unit="cell") as bar:
        for model_spec, model_cells in itertools.groupby(cells, key=lambda c: c.model.label):
            done: dict[tuple[str, float | None], dict] = {}  # (attack label, ε) -> row incl. adversarial probabilities
            for cell in model_cells:
                run = get(cell.model)
                bar.set_postfix_str(f"{model_spec} {cell.attack.label} eps={cell.epsilon}")
                row = _white_box_cell(suite, cell, run, done)
                done[cell.attack.label, cell.epsilon] = row
                results.write({k: v for k, v in row.items() if not k.startswith("_")})
                bar.update()
        for key, group in itertools.groupby(transfer, key=lambda c: (c.source.label, c.attack.label, c.epsilon)):
            group = list(group)
            bar.set_postfix_str(f"transfer {key[1]} eps={key[2]} from {key[0]}")
            for row in _transfer_cells(suite, group, get):
                results.write(row)
                bar.update()
    return RunRecord(results.rows, fingerprint, results.path, write_tables(results.rows, out_dir))


def enforce_budget(crafted: Crafted, clean: np.ndarray, epsilon: float | None) -> tuple[Crafted, float]:
    """L∞ threat model: an adversarial image that changed any pixel by more than ε (minimal-norm attacks such as
    HopSkipJump, FAB or CW may) does not count; its clean image is scored. Returns the fraction reverted."""
    if epsilon is None:
        return crafted, 0.0
    over = np.abs(crafted.images - clean).reshape(len(clean), -1).max(1) > epsilon + 1e-6
    if not over.any():
        return crafted, 0.0
    images = np.where(over[:, None, None, None], clean, crafted.images)
    return Crafted(images, crafted.texts, crafted.steps, crafted.params, crafted.queries), float(over.mean())


def _base_row(suite: Suite, cell: Cell, n: int) -> dict[str, Any]:
    attack = cell.attack
    return dict(suite=suite.name, model=cell.model.label, attack=attack.label, attack_source=attack.source,
                modality=attack.modality, epsilon=cell.epsilon, transfer_source=cell.source.label if cell.source else "",
                n=n, params=json.dumps(attack.params, sort_keys=True), compare_with=attack.compare_with or "", error="")


def _scores(run: TrainedModel, crafted: Crafted, adv_prob: np.ndarray, modality: str) -> dict[str, Any]:
    """Scores of one attacked cell, with the attacked branch's own scores for models that have branches."""
    target = run.target
    scores = robustness_scores(target.labels, run.clean_prob, adv_prob)
    scores.update(steps=crafted.steps, max_perturbation=perturbation_linf(target.images, crafted.images),
                  queries=float(np.mean(crafted.queries)) if crafted.queries is not None else None)
    model = target.model
    if hasattr(model, "branch_logits") and modality in ("image", "text"):
        branch = (probabilities(model.vision, crafted.images, None) if modality == "image"
                  else probabilities(model.text, None, crafted.texts)).argmax(1)
        scores.update(branch_robust_accuracy=accuracy(target.labels, branch), branch_robust_f1=f1_score(target.labels, branch))
    return scores


def _white_box_cell(suite: Suite, cell: Cell, run: TrainedModel, done: dict) -> dict[str, Any]:
    """Attack one cell and score it; an MmrbError becomes the row's `error` instead of ending the run."""
    attack, target = cell.attack, run.target
    row = _base_row(suite, cell, len(target.labels))
    start = time.perf_counter()
    try:
        if attack.name == "worst_case":
            crafted, adv_prob = _worst_case(attack.params["of"], cell.epsilon, done, target)
        else:
            crafted = craft(attack.source, attack.name, attack.params, target, cell.epsilon, suite.seed)
            crafted, row["over_budget"] = enforce_budget(crafted, target.images, cell.epsilon)
            adv_prob = run.clean_prob if attack.modality == "none" else probabilities(target.model, crafted.images, crafted.texts)
        row.update(_scores(run, crafted, adv_prob, attack.modality), _adv_prob=adv_prob, _images=crafted.images)
        if attack.compare_with:
            other = done.get((attack.compare_with, cell.epsilon))
            if other is not None and not other["error"]:
                row["agreement_gap"] = row["robust_accuracy"] - other["robust_accuracy"]
    except MmrbError as exc:
        log.error("%s / %s / eps=%s failed: %s", cell.model.label, attack.label, cell.epsilon, exc)
        row["error"] = str(exc)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _worst_case(labels: list[str], epsilon: float | None, done: dict, target: Target) -> tuple[Crafted, np.ndarray]:
    """Per-sample worst case over attacks already run (RobustBench/AutoAttack style): a sample is robust only
    if it survives all of them; its adversarial input is the one giving its true class the lowest probability."""
    parts = [done.get((label, epsilon)) for label in labels]
    missing = [label for label, part in zip(labels, parts) if part is None or part["error"]]
    if missing:
        raise AttackError(f"worst_case at eps={epsilon}: no successful result of {missing} for this model and ε")
    probs = np.stack([p["_adv_prob"] for p in parts])  # (attacks, n, classes)
    true_prob = probs[:, np.arange(len(target.labels)), target.labels]
    worst = true_prob.argmin(0)
    pick = np.arange(len(target.labels))
    images = np.stack([p["_images"] for p in parts])[worst, pick]
    return Crafted(images, list(target.texts), max(p["steps"] for p in parts), {"of": labels}), probs[worst, pick]


def _transfer_cells(suite: Suite, cells: list[Cell], get) -> list[dict[str, Any]]:
    """Craft once on the source model, score on every target (the white-box diagonal included)."""
    first = cells[0]
    source = get(first.source)
    start = time.perf_counter()
    try:
        crafted = craft(first.attack.source, first.attack.name, first.attack.params, source.target, first.epsilon, suite.seed)
        crafted, over_budget = enforce_budget(crafted, source.target.images, first.epsilon)
    except MmrbError as exc:
        log.error("transfer %s from %s failed: %s", first.attack.label, first.source.label, exc)
        return [{**_base_row(suite, c, len(source.target.labels)), "error": str(exc)} for c in cells]
    craft_seconds = time.perf_counter() - start
    rows = []
    for cell in cells:
        run = get(cell.model)
        start = time.perf_counter()
        adv_prob = probabilities(run.target.model, crafted.images, run.target.texts)
        row = {**_base_row(suite, cell, len(run.target.labels)), **_scores(run, crafted, adv_prob, "image"),
               "over_budget": over_budget}
        row["seconds"] = round(time.perf_counter() - start + craft_seconds / len(cells), 3)
        rows.append(row)
    return rows
