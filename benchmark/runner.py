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

from benchmark.attacks import craft
from benchmark.data import SplitArrays, load_dataset
from benchmark.errors import AttackError, MmrbError
from benchmark.grid import Cell, expand
from benchmark.metrics import perturbation_linf, robustness_scores
from benchmark.results import ResultsWriter
from benchmark.suite import Suite
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


def run_suite(suite: Suite, out_dir: str | Path, cache_dir: str | Path, device: str = "cpu",
              progress: bool = True) -> RunRecord:
    """Execute every cell of `suite`; rows are appended to out_dir/results.csv as they finish."""
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    spec = suite.dataset
    dataset = load_dataset(spec, cache_dir)
    train_samples, test_samples = dataset.split(suite.seed, spec.test_fraction)
    test_samples = test_samples[: suite.limit] if suite.limit else test_samples
    fingerprint = f"{dataset.fingerprint()}-{spec.image_size}px-split{suite.seed}-{spec.test_fraction}"
    train = SplitArrays.from_samples(train_samples, spec.image_size)
    test = SplitArrays.from_samples(test_samples, spec.image_size)
    train_set = LabelledSet(train.images, train.texts, train.labels, fingerprint)
    cells = expand(suite, lambda name: model_entry(name).modalities)
    log.info("%s: %d cells, %d train / %d test samples", suite.name, len(cells), len(train.labels), len(test.labels))
    results = ResultsWriter(out_dir / "results.csv")
    with results, tqdm(total=len(cells), desc=suite.name, disable=not progress, unit="cell") as bar:
        for model_spec, model_cells in itertools.groupby(cells, key=lambda c: c.model):
            bar.set_postfix_str(f"training {model_spec.label}")
            model = obtain_trained(model_spec.name, model_spec.params, train_set, cache_dir, suite.seed).to(device)
            clean_prob = torch.softmax(predict_logits(model, test.images, test.texts), 1).numpy()
            view = ImageView(model, test.images, test.texts, device=device) if "image" in model.modalities else None
            for cell in model_cells:
                bar.set_postfix_str(f"{model_spec.label} {cell.attack.label} eps={cell.epsilon}")
                results.write(_score_cell(suite, cell, view, test, clean_prob))
                bar.update()
    return RunRecord(results.rows, fingerprint, results.path)


def _score_cell(suite: Suite, cell: Cell, view: ImageView | None, test: SplitArrays, clean_prob: np.ndarray) -> dict:
    """Attack one cell and score it; an MmrbError becomes the row's `error` instead of ending the run."""
    attack = cell.attack
    row: dict[str, Any] = dict(
        suite=suite.name, model=cell.model.label, attack=attack.label, attack_source=attack.source,
        modality=attack.modality, epsilon=cell.epsilon, transfer_source="", n=len(test.labels),
        params=json.dumps(attack.params, sort_keys=True), error="",
    )
    start = time.perf_counter()
    try:
        if attack.modality == "none":
            x_adv, adv_prob, steps = test.images, clean_prob, 0
        elif attack.modality == "image":
            crafted = craft(attack.source, attack.name, attack.params, view, test.images, test.labels, cell.epsilon, suite.seed)
            x_adv, steps = crafted.x_adv, crafted.steps
            # scored by position, straight through the model: the runner knows which text each row has
            adv_prob = torch.softmax(predict_logits(view.multimodal_model, x_adv, test.texts), 1).numpy()
        else:
            raise AttackError(f"attack {attack.name!r}: modality {attack.modality!r} has no estimator view yet; "
                              "only 'none' and 'image' run in this version")
        row.update(robustness_scores(test.labels, clean_prob, adv_prob), steps=steps,
                   max_perturbation=perturbation_linf(test.images, x_adv))
    except MmrbError as exc:
        log.error("%s / %s / eps=%s failed: %s", cell.model.label, attack.label, cell.epsilon, exc)
        row["error"] = str(exc)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row
