"""Running a comparison: one unit of work per (seed, noise type, γ, defense), each committed to the run store of
`mmrb run` (benchmark.store.results.CellStore) the moment it is done, so a comparison killed at any point (kill -9
included) resumes into the same folder without recomputing a finished unit; CLIPs come from the content-addressed
cache; one progress bar."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from benchmark.studies.defenses import corpora
from benchmark.studies.defenses.heads import check_defenses, classifier, defense_head_class, fit_searched
from benchmark.studies.defenses.scoring import attack_rows, clean_rows, spectrum_share
from benchmark.studies.defenses.spec import DefenseEntry, DefenseSuite
from mmrb.core.provenance import provenance as make_provenance

log = logging.getLogger(__name__)
PACKAGES = ("torch", "open_clip_torch", "adversarial-robustness-toolbox", "numpy", "scipy")
STUDY_VERSION = 2  # bump when a unit's rows change meaning (keys then differ: a one-time recompute)


def unit_key(suite: DefenseSuite, data_fingerprint: str, seed: int, kind: str, ratio: float, entry: DefenseEntry) -> str:
    """Content key of one unit: what decides its rows (the suite's recipes, data, attacks and search, the unit)."""
    import benchmark.studies.defenses.scoring as scoring_module
    from benchmark.run.keys import attack_code
    from benchmark.studies.defenses import heads as heads_module
    from wrappers.cache import code_digest, digest

    recipe = suite.model_dump(include={"clip", "image_size", "base", "noisy", "noise_attack", "data", "search", "attacks",
                                       "attack_limit", "convergence_check", "spectrum_k"})
    return digest({"v": STUDY_VERSION, "recipe": recipe, "data": data_fingerprint, "seed": seed, "noise": kind,
                   "ratio": ratio, "defense": entry.model_dump(),
                   "code": code_digest(scoring_module, heads_module, corpora),
                   "attacks": [attack_code(a.source, a.name, a.params) for a in suite.attacks]})


def run_study(suite: DefenseSuite, out: Path, cache_dir: Path, fresh: bool = False, progress: bool = True,
              base: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every unit of the comparison (resumed from `out`'s run store); the rows as a frame and the run's metadata."""
    from tqdm import tqdm

    from benchmark.store.results import CellStore

    torch.set_num_threads(suite.threads)
    start = time.time()
    data = corpora.load_data(suite, cache_dir)
    check_defenses(suite.defenses, suite.clip, suite.image_size, data.tests["ID"].images, data.tests["ID"].texts,
                   f"defenses suite {suite.name!r}", base)
    units = [(seed, kind, ratio, entry) for seed in suite.seeds for kind, ratio in corpora.grid(suite)
             for entry in suite.defenses]
    keys = [unit_key(suite, data.fingerprint, *unit) for unit in units]
    out.mkdir(parents=True, exist_ok=True)
    with CellStore(out, fresh, {"name": suite.name, "source": "compare-defenses", "hash": suite.content_hash}) as store:
        done = store.finished() & set(keys)
        pending = [(u, k) for u, k in zip(units, keys) if k not in done]
        if progress:
            print(f"{suite.name}: {len(units)} units ({len(suite.seeds)} seeds × {len(corpora.grid(suite))} CLIPs × "
                  f"{len(suite.defenses)} defenses); {len(done)} already committed in {out}, {len(pending)} to run",
                  flush=True)
        memo: dict = {}
        loaded: dict[tuple[int, str, float], dict[str, Any]] = {}
        with tqdm(total=len(pending), disable=not progress, desc=suite.name, unit="unit") as bar:
            for (seed, kind, ratio, entry), key in pending:
                bar.set_postfix_str(f"seed {seed} · {kind} γ={ratio:g} · {entry.label}")
                if (seed, kind, ratio) not in loaded:
                    loaded.clear()  # one CLIP in memory at a time
                    general = corpora.general_clip(data, suite, cache_dir, seed)
                    spec = corpora.noisy_clip(data, general, suite, cache_dir, seed, kind, ratio, memo)
                    loaded[seed, kind, ratio] = _clip_state(spec, data, suite)
                rows = _unit_rows(loaded[seed, kind, ratio], data, suite, seed, entry, base)
                common = {"seed": seed, "noise": kind, "ratio": ratio, "method": entry.label}
                store.commit(key, {"suite": suite.name, "rows": [{**common, **r} for r in rows]})
                bar.update()
        rows = [r for stored in store.rows(keys) for r in stored["rows"]]
    meta = make_provenance(suite=suite.name, suite_hash=suite.content_hash, data_fingerprint=data.fingerprint,
                           seeds=list(suite.seeds), packages=PACKAGES)
    meta.update(seconds=round(time.time() - start, 1), computed=len(pending), loaded=len(done))
    return pd.DataFrame(rows), meta


def _clip_state(spec: str, data: corpora.Data, suite: DefenseSuite) -> dict[str, Any]:
    """One CLIP's frozen raw features of every split, its zero-shot scores and its feature spectrum."""
    from wrappers.clip_encoder import ClipEncoder

    encoder = ClipEncoder(spec).eval().requires_grad_(False)
    splits = {"train": data.train, "validation": data.validation, **data.tests}
    raw = {name: encoder.embed_images(split.images, normalize=False) for name, split in splits.items()}
    spectrum = spectrum_share(raw["ID"], suite.spectrum_k)
    return {"spec": spec, "raw": raw, "spectrum": spectrum, "zero_shot": _zero_shot(spec, data)}


def _zero_shot(spec: str, data: corpora.Data) -> dict[str, float]:
    """Zero-shot accuracy of the CLIP on each test set (the paper's Table 4)."""
    import wrappers
    from wrappers.training import predict_proba

    model = wrappers.create_model("clip_zeroshot", clip=spec, pretrain={"epochs": 0})
    model.trained.fill_(True)
    return {domain: float((predict_proba(model, split.images, None).argmax(1) == split.labels).mean())
            for domain, split in data.tests.items()}


def _unit_rows(state: dict[str, Any], data: corpora.Data, suite: DefenseSuite, seed: int, entry: DefenseEntry,
               base: Path | None) -> list[dict[str, Any]]:
    """One defense on one CLIP: searched and fit, scored clean on every test set and under every attack."""
    cls = defense_head_class(entry.name, base)
    normalised = cls.features == "normalised"
    features = {name: torch.nn.functional.normalize(f, dim=1) if normalised else f for name, f in state["raw"].items()}
    labels = {"train": data.train.labels, "validation": data.validation.labels}
    fitted = fit_searched(entry, features, labels, suite.search, seed, base)
    head = fitted.head
    rows = clean_rows(head, features, data.tests)
    if suite.attacks:
        model = classifier(state["spec"], head)
        for attack in suite.attacks:
            rows += attack_rows(model, attack, data.tests, suite, seed)
    shared = {"lr": fitted.lr, "epochs": fitted.epochs, "validation_accuracy": fitted.validation_accuracy,
              "fit_seconds": fitted.seconds, "spectrum": state["spectrum"],
              "zero_shot": json.dumps(state["zero_shot"], sort_keys=True)}
    return [{**r, **shared} for r in rows]
