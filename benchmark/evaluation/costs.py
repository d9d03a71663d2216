"""The training cost of a run's models: training.csv beside results.csv, one row per (model, seed) with the wall
seconds its training took and, for a training defense (PGD-AT, TRADES), the seconds of the adversarial fine-tuning,
as the cached models' manifests record them (measured when the model was trained, on the machine that trained it;
empty for an entry that predates the record or a model handed over already trained). Input defenses train nothing:
their cost is 0 s of training."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmark.spec.suite import ModelSpec
from mmrb.core.io import atomic_write

COSTS_NAME = "training.csv"
COLUMNS = ("model", "seed", "defense", "train_seconds", "defense_seconds")


def training_costs(specs: Sequence[ModelSpec], seeds: Sequence[int], keys, cache_dir: Path) -> pd.DataFrame:
    """One row per (model label, seed): training and defense fine-tuning seconds from the cache's manifests."""
    from defenses.adversarial_training import finetuned_folder
    from defenses.registry import model_defenses
    from wrappers.training import model_folder, training_seconds

    rows = []
    for spec in specs:
        for seed in seeds:
            train = training_seconds(model_folder(cache_dir, spec.name, keys.trained(spec, seed)))
            defense, tuned = "", None
            if spec.defense is not None:
                defense = spec.defense.name
                tuned = (training_seconds(finetuned_folder(cache_dir, spec.name, defense, keys.model(spec, seed)))
                         if model_defenses()[defense].kind == "training" else 0.0)
            rows.append(dict(model=spec.label, seed=seed, defense=defense, train_seconds=train, defense_seconds=tuned))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_costs(specs: Sequence[ModelSpec], seeds: Sequence[int], keys, cache_dir: Path, folder: Path) -> Path:
    path = Path(folder) / COSTS_NAME
    atomic_write(path, training_costs(specs, seeds, keys, cache_dir).to_csv(index=False))
    return path
