"""Submissions: a model card -> checks -> the leaderboard protocol -> one immutable entry.

`mmrb submit CARD.yaml` reads the card, resolves its entry point (a registered name, `package.module:factory` or
`file.py:factory` relative to the card), loads final weights if the submitter trained the model (safetensors, or a
state dict that `torch.load(weights_only=True)` reads: a submission is never unpickled), checks the model on a
batch and its clean accuracy against the protocol's floor, runs the protocol suite (`suites/leaderboard.yaml`) on it
and writes `<board>/v<PROTOCOL_VERSION>/entries/<name>.json` (schema: `benchmark.board.entry.Entry`). Re-submitting the same
card, code and weights is a no-op; an entry is never overwritten."""
from __future__ import annotations

import functools
import json
import logging
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import benchmark
from benchmark import default_cache
from benchmark.board.entry import CELL_FIELDS, ENTRY_VERSION, Entry, is_floor, read_entry
from benchmark.spec.suite import Suite, load_suite
from benchmark.submission.card import Card, SubmissionError, load_card
from benchmark.submission.protocol_text import write_protocol
from mmrb.core.errors import ModelError
from mmrb.core.io import atomic_write

if TYPE_CHECKING:
    from benchmark.run.backends import Backend

log = logging.getLogger(__name__)
PROTOCOL_SUITE = Path(__file__).resolve().parents[2] / "suites" / "leaderboard.yaml"
@dataclass(frozen=True)
class Outcome:
    """What a submission did: the entry's path, whether it was written now, and a line for the user."""

    path: Path
    written: bool
    message: str


def submit(card_path: str | Path, board: str | Path = "leaderboard", protocol: str | Path | None = None,
           cache: str | Path | None = None, device: str = "cpu", progress: bool = False,
           out: str | Path | None = None, backend: str | Backend | None = None) -> Outcome:
    """Run the leaderboard protocol on the card's model and write its entry (see the module docstring). `backend`:
    where the protocol's cells run (`benchmark.run.backends`; the entry check before them runs here)."""
    from benchmark.api import with_models
    from benchmark.run.backends import as_backend
    from benchmark.run.runner import prepare_data, run_suite
    from wrappers.cache import code_digest, digest, file_digest
    from wrappers.registry import registered

    card_path, board = Path(card_path), Path(board)
    cache = Path(cache) if cache is not None else default_cache()
    card = load_card(card_path)
    suite = load_protocol(protocol)
    backend = as_backend(backend)
    backend.check(device)
    entry, weights_path = resolve_card(card, card_path)
    code = code_digest(entry.cls, entry.factory)
    weights = file_digest(weights_path) if weights_path else None
    submission = digest({"card": card.model_dump(), "code": code, "weights": weights,
                         "protocol": benchmark.PROTOCOL_VERSION, "suite": suite.content_hash})
    path = entry_path(board, card.name)
    existing = read_entry(path) if path.exists() else None
    if existing is not None:
        if existing.get("digests", {}).get("submission") == submission:
            return Outcome(path, False, f"{card.name}: already on the leaderboard with these weights and this code "
                                        f"(protocol {benchmark.PROTOCOL_VERSION}): {path}; nothing to do")
        raise SubmissionError(f"{card_path}: field 'name': an entry {card.name!r} already exists in protocol "
                              f"{benchmark.PROTOCOL_VERSION} with other code, weights or card ({path}, submitted "
                              f"{existing.get('provenance', {}).get('date', '?')}); entries are immutable: give the "
                              f"card a new name (e.g. {card.name}-v2)")
    check_protocol_folder(path.parent, suite)
    with registered(entry):
        run = with_models(suite, [card.name], only_given=True)
        if card.defense is not None:  # the card's model behind (or fine-tuned by) its defense, under the card's name
            from benchmark.spec.suite import ModelSpec

            spec = ModelSpec(name=card.name, label=card.name, defense=card.defense)
            targets = {"transfer": run.transfer.model_copy(update={"targets": [spec]})} if run.transfer else {}
            run = run.model_copy(update={"models": [spec], **targets})
        if progress:  # before any work: what will run and roughly how long
            print(plan_message(card, entry, run), file=sys.stderr, flush=True)
        data = prepare_data(suite, cache)
        check_protocol_folder(path.parent, suite, data.fingerprint)
        check_submission(card, card_path, suite, data, cache, device)
        out = Path(out) if out is not None else cache / "submissions" / f"v{benchmark.PROTOCOL_VERSION}" / card.name
        # the trainings and the floor check are the first steps of the run's one progress bar, before any attack
        accuracies: dict[int, float] = {}
        before = [(f"training {card.name} seed {seed}", functools.partial(_clean_accuracy, card.name, data, cache,
                                                                           seed, device, accuracies))
                  for seed in suite.training_seeds]
        before.append(("clean-accuracy floor", lambda: check_floor(card, card_path, suite, data, accuracies)))
        record = run_suite(run, out, cache, device=device, progress=progress, backend=backend, before=before)
    failed = [r for r in record.rows if r["error"]]
    if failed:
        first = failed[0]
        raise SubmissionError(f"{card_path}: {len(failed)} protocol cell(s) failed, no entry written (results kept in "
                              f"{record.results_path}; fix and submit again: finished cells are reused). First: "
                              f"{first['attack']} ε={first['epsilon']} seed {first['seed']}: {first['error']}")
    document = make_entry(card, entry, suite, record, {"submission": submission, "code": code, "weights": weights})
    write_entry(path, document.model_dump(mode="json"))
    write_protocol(path.parents[1], suite, benchmark.PROTOCOL_VERSION)  # what the protocol runs, for the board
    rank = document.rank
    figure = "unranked (no image input)" if rank is None else \
        f"{100 * rank.robust_accuracy:.1f} % [{100 * rank.ci_low:.1f}, {100 * rank.ci_high:.1f}]"
    return Outcome(path, True, f"{card.name}: entry written to {path}; {suite.leaderboard.rank_by.attack} at "
                               f"ε={suite.leaderboard.rank_by.epsilon:.4g}: {figure}")


def load_protocol(protocol: str | Path | None) -> Suite:
    """The protocol suite (default suites/leaderboard.yaml); it must have a `leaderboard:` section."""
    path = Path(protocol) if protocol is not None else PROTOCOL_SUITE
    suite = load_suite(path)
    if suite.leaderboard is None:
        raise SubmissionError(f"{path}: not a leaderboard protocol: add a 'leaderboard:' section with rank_by "
                              f"{{attack, epsilon}} and min_clean_accuracy (see suites/leaderboard.yaml)")
    return suite


def resolve_card(card: Card, card_path: Path):
    """The registry entry of the card's model (under the card's name) and the path of its weights, if any."""
    from wrappers.registry import model_entry, resolve_reference

    base = card_path.parent
    reference = card.entry_point
    try:
        entry = resolve_reference(reference, base) if ":" in reference else model_entry(reference)
    except ModelError as exc:
        raise SubmissionError(f"{card_path}: field 'entry_point': {exc}") from None
    if reference != card.name:
        try:
            taken = model_entry(card.name)
        except ModelError:
            taken = None
        if taken is not None and taken.factory is not entry.factory:
            raise SubmissionError(f"{card_path}: field 'name': {card.name!r} is the name of another registered model "
                                  f"({taken.origin}); choose another name")
    entry = replace(entry, name=card.name, origin=f"card {card_path.name}")
    weights_path = None
    if card.weights:
        weights_path = (base / card.weights) if not Path(card.weights).is_absolute() else Path(card.weights)
        if not weights_path.is_file():
            raise SubmissionError(f"{card_path}: field 'weights': {weights_path} does not exist")
        model = entry.factory()
        load_submitted_weights(model, weights_path, card_path)
        entry = replace(entry, instance=model, trained=True)
    return entry, weights_path


def load_submitted_weights(model, path: Path, card_path: Path) -> None:
    """Load final weights without ever unpickling: safetensors, or torch.load(weights_only=True)."""
    import pickle

    import torch

    from wrappers.training import load_weights

    if path.suffix == ".safetensors":
        try:
            load_weights(model, path)
        except ModelError as exc:
            raise SubmissionError(f"{card_path}: field 'weights': {exc}") from None
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SubmissionError(
            f"{card_path}: field 'weights': {path} holds pickled Python objects, which mmrb never loads from a "
            f"submission (torch.load(weights_only=True) refused: {str(exc).splitlines()[0]}). Save only the tensors: "
            f"safetensors.torch.save_model(model, 'model.safetensors') or torch.save(model.state_dict(), 'model.pt')"
        ) from None
    except Exception as exc:
        raise SubmissionError(f"{card_path}: field 'weights': {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SubmissionError(f"{card_path}: field 'weights': {path} is not a state dict (name -> tensor)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SubmissionError(f"{card_path}: field 'weights': {path} does not fit the model: "
                              f"{str(exc).splitlines()[0]}") from None


def plan_message(card: Card, entry, run: Suite) -> str:
    """What a submission will run (trainings, cells) and roughly how long, printed before any work."""
    from benchmark.spec.grid import expand, expand_transfer

    modalities_of = lambda name: entry.modalities  # noqa: E731  (only the card's model is in the run)
    cells = len(expand(run, modalities_of)) + len(expand_transfer(run, modalities_of))
    seeds = len(run.training_seeds)
    return (f"{card.name}: the leaderboard protocol {run.name} ({run.source}): {seeds} trainings (one per training seed, "
            f"{'by mmrb' if card.trained_by == 'mmrb' else 'none: the weights are final'}), then {cells} cells; "
            f"roughly {max(1, round(cells * SECONDS_PER_CELL / 60))} min on 2 CPU cores for a small model "
            f"that keeps half its test samples under attack (early_fusion: ≈ 38 min), less for one that keeps none, "
            f"longer for a large one")


#: Measured under protocol 6: early_fusion (54 cells, 6 transfer crafts, 53 % robust under the standard evaluation) 38 min
#: on 2 CPU cores with --backend ray, most of it the standard evaluation, alone and in the joint attack.
SECONDS_PER_CELL = 42


def check_submission(card: Card, card_path: Path, suite: Suite, data, cache: Path, device: str) -> None:
    """Before any training or attack: the model returns finite (n, 2) logits on a batch of the test split."""
    from wrappers.protocol import check_model
    from wrappers.registry import model_entry
    from wrappers.training import build_model

    test, batch = data.test, slice(0, 8)
    try:
        given = model_entry(card.name).instance  # final weights (trained_by submitter), else build it untrained
        model = given if given is not None else build_model(card.name, {}, data.train_set, cache, suite.training_seeds[0])
        check_model(model, test.images[batch], test.texts[batch], where=f"{card_path}: model {card.name!r}")
    except ModelError as exc:
        raise SubmissionError(str(exc) if str(exc).startswith(str(card_path)) else f"{card_path}: {exc}") from None


def _clean_accuracy(name: str, data, cache: Path, seed: int, device: str, into: dict[int, float]) -> None:
    """Train (or load) the model of one training seed and record its clean accuracy on the test split."""
    from benchmark.evaluation.metrics import accuracy
    from wrappers.training import obtain_trained, predict_proba

    model = obtain_trained(name, {}, data.train_set, cache, seed, device)
    into[seed] = accuracy(data.test.labels, predict_proba(model, data.test.images, data.test.texts).argmax(1))


def majority_rate(labels: np.ndarray) -> tuple[float, str]:
    """The accuracy of always predicting the majority class of `labels`, and that class's name."""
    from benchmark.evaluation.metrics import CLASS_NAMES

    abnormal = float(np.mean(np.asarray(labels) == 1))
    return (abnormal, CLASS_NAMES[1]) if abnormal >= 0.5 else (1 - abnormal, CLASS_NAMES[0])


def check_floor(card: Card, card_path: Path, suite: Suite, data, accuracies: dict[int, float]) -> None:
    """The mean clean accuracy over the training seeds must reach the protocol's floor
    (leaderboard.min_clean_accuracy) and beat the majority-class rate of the protocol's test split (what a model
    predicting one class for every sample scores), before any attack."""
    values = [accuracies[seed] for seed in suite.training_seeds]
    mean, floor = float(np.mean(values)), suite.leaderboard.min_clean_accuracy
    majority, label = majority_rate(data.test.labels)
    seeds = f"seeds {suite.training_seeds}: {', '.join(f'{100 * a:.1f}' for a in values)}"
    if mean < floor:
        raise SubmissionError(
            f"{card_path}: model {card.name!r} has clean accuracy {100 * mean:.1f} % ({seeds}) on the protocol's test "
            f"set, below the floor {100 * floor:.0f} % ({suite.source}: leaderboard.min_clean_accuracy); no attack was "
            f"run. Check its training recipe (config['recipe']) or its weights")
    if mean <= majority + 1e-9:
        raise SubmissionError(
            f"{card_path}: model {card.name!r} has clean accuracy {100 * mean:.1f} % ({seeds}) on the protocol's test "
            f"set, not above its majority-class rate {100 * majority:.1f} % ({label}: what predicting '{label}' for "
            f"every sample scores; the floor is the higher of leaderboard.min_clean_accuracy and this rate); no "
            f"attack was run. Check its training recipe (config['recipe']) or its weights")


def entry_path(board: Path, name: str) -> Path:
    return Path(board) / f"v{benchmark.PROTOCOL_VERSION}" / "entries" / f"{name}.json"


def check_protocol_folder(folder: Path, suite: Suite, fingerprint: str | None = None) -> None:
    """Entries of one protocol version come from one protocol suite and one dataset: refuse to mix."""
    for other in sorted(folder.glob("*.json")) if folder.exists() else []:
        provenance = read_entry(other).get("provenance", {})
        if provenance.get("suite_hash") != suite.content_hash:
            raise SubmissionError(
                f"{suite.source}: the protocol suite differs from the one the entries of protocol "
                f"{benchmark.PROTOCOL_VERSION} were made with ({other.name}: suite hash {provenance.get('suite_hash')}, "
                f"this file {suite.content_hash}); restore it, or bump benchmark.PROTOCOL_VERSION to start a new "
                f"protocol version (old entries stay in their own folder)")
        if fingerprint is not None and provenance.get("data_fingerprint") != fingerprint:
            raise SubmissionError(f"{suite.source}: the protocol data differ from those of {other} "
                                  f"({provenance.get('data_fingerprint')} vs {fingerprint})")


def make_entry(card: Card, entry, suite: Suite, record, digests: dict[str, Any]) -> Entry:
    """The entry document from a finished protocol run."""
    from benchmark.attacks.registry import traits
    from benchmark.evaluation.aggregate import aggregate_run
    from benchmark.evaluation.soundness import cell_label, flags_by_cell
    from benchmark.evaluation.tables import soundness_table
    from mmrb.core.provenance import git_commit, now, package_versions

    cells = aggregate_run(record)
    flags = soundness_table(cells)
    marks = flags_by_cell(flags)
    cells["flags"] = [";".join(marks.get((r.model, cell_label(r.attack, r.epsilon, r.transfer_source)), []))
                      for r in cells.itertuples()]
    documents = [{k: _json_value(r.get(k)) for k in CELL_FIELDS} for r in cells.to_dict("records")]
    for cell in documents:
        cell["transfer_source"] = cell["transfer_source"] or ""
        cell["probe"] = traits(cell["attack_source"] or "mmrb", cell["attack_name"] or "").probe
        cell["not_converged"] = None if cell["not_converged"] is None else bool(cell["not_converged"])
    rank_by = suite.leaderboard.rank_by
    rank = next((c for c in documents if c["attack"] == rank_by.attack and not c["transfer_source"]
                 and c["epsilon"] is not None and abs(c["epsilon"] - rank_by.epsilon) < 1e-9), None)
    clean = next((c for c in documents if c["modality"] == "none"), None)
    floor = next((c for c in documents if is_floor(c)), None)
    return Entry.model_validate({
        "entry_version": ENTRY_VERSION,
        "name": card.name,
        "protocol_version": benchmark.PROTOCOL_VERSION,
        "card": card.model_dump(),
        "model": {"family": entry.family, "modalities": sorted(entry.modalities)},
        "digests": digests,
        "provenance": {"suite": suite.name, "suite_hash": suite.content_hash, "data_fingerprint": record.data_fingerprint,
                       "split_seed": suite.seed, "seeds": suite.training_seeds, "packages": package_versions(),
                       "mmrb_version": benchmark.__version__, "mmrb_commit": git_commit(),
                       "date": now()},
        "rank": None if rank is None else {"attack": rank_by.attack, "epsilon": rank_by.epsilon,
                                           "robust_accuracy": rank["robust_accuracy"],
                                           "ci_low": rank["robust_accuracy_ci_low"],
                                           "ci_high": rank["robust_accuracy_ci_high"],
                                           "not_converged": rank["not_converged"], **naive_figure(documents, rank)},
        "clean": None if clean is None else {"accuracy": clean["clean_accuracy"], "ci_low": clean["clean_accuracy_ci_low"],
                                             "ci_high": clean["clean_accuracy_ci_high"]},
        "floor": None if floor is None else {"robust_accuracy": floor["robust_accuracy"],
                                             "ci_low": floor["robust_accuracy_ci_low"],
                                             "ci_high": floor["robust_accuracy_ci_high"]},
        "flags": [{"flag": f.flag, "cells": f.cells, "detail": f.detail} for f in flags.itertuples(index=False)],
        "cells": documents,
        **extras(record, suite, documents, rank),
    })


def naive_figure(documents: list[dict[str, Any]], rank: dict[str, Any]) -> dict[str, Any]:
    """For a defended model (docs/defenses.md): the figure a non-adaptive evaluation would have published at the rank
    ε — the lowest naive figure of the gradient attacks at that ε (the rank cell's own where it has one; the standard
    evaluation adapts by itself) — and the attack that gave it; {} for an undefended model."""
    naive = [c for c in documents if c.get("naive_robust_accuracy") is not None and not c["transfer_source"]
             and c["epsilon"] is not None and abs(c["epsilon"] - rank["epsilon"]) < 1e-9]
    if not naive:
        return {}
    cell = rank if rank.get("naive_robust_accuracy") is not None else min(naive, key=lambda c: c["naive_robust_accuracy"])
    return {"naive_robust_accuracy": cell["naive_robust_accuracy"], "naive_attack": cell["attack"]}


def extras(record, suite: Suite, documents: list[dict[str, Any]], rank: dict[str, Any] | None) -> dict[str, Any]:
    """The entry's per-sample evidence, corruption errors and operating point, where the run produced them."""
    from benchmark.evaluation.aggregate import aggregate
    from benchmark.evaluation.corruption_summary import corruption_figure
    from benchmark.evaluation.evidence import entry_evidence

    model = (record.rows or [{}])[0].get("model", "")
    rank_by = suite.leaderboard.rank_by
    out: dict[str, Any] = {}
    found = entry_evidence(Path(record.results_path).parent, model, rank_by.attack, rank_by.epsilon)
    if found is not None and rank is not None:
        out["evidence"] = found
    corruption = corruption_figure(aggregate(record.rows), model, suite.corruption_baseline)
    if corruption is not None:
        out["corruption"] = corruption
    reliance = entry_reliance(Path(record.results_path).parent, record.rows, model, rank_by.epsilon)
    if reliance is not None:
        out["reliance"] = reliance
    from benchmark.submission.operating import operating_block

    return {**out, **(operating_block(suite, documents, rank) or {})}


def entry_reliance(folder: Path, rows: list[dict[str, Any]], model: str, epsilon: float) -> dict[str, Any] | None:
    """The model's modality-reliance index from the per-sample evidence in the run `folder` (benchmark.evaluation.reliance)
    at the rank ε, else the largest ε of its joint cells; None for a model without both modalities' cells."""
    from benchmark.evaluation.evidence import read_samples
    from benchmark.evaluation.reliance import at_epsilon, reliance_table

    table = reliance_table(read_samples(folder), rows)
    row = at_epsilon(table[table["model"] == model].to_dict("records") if not table.empty else [], epsilon)
    if row is None:
        return None
    counts = {k: int(row[k]) for k in ("only_joint", "missed", "pairs", "seeds")}
    return {"epsilon": float(row["epsilon"]), "definition": "only_joint", "index": float(row["reliance"]),
            "low": float(row["low"]), "high": float(row["high"]), **counts, "said": row["said"] or None}


def _json_value(value: Any) -> Any:
    """NaN/None -> None, numpy scalars -> Python numbers (an entry is plain JSON)."""
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    return value


def write_entry(path: Path, document: dict[str, Any]) -> None:
    """Write an entry atomically; an existing entry is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # fails if the entry appeared meanwhile: immutable
        atomic_write(path, json.dumps(document, indent=1, sort_keys=False, allow_nan=False) + "\n", exclusive=True)
    except FileExistsError:
        raise SubmissionError(f"{path}: an entry with this name was written meanwhile; entries are immutable") from None
