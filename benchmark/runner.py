"""Runs a suite: data -> trained models -> cells -> attacks -> scores, one results row per cell and seed.

Each cell has a content key (`Keys.cell`) covering everything that decides its output. A finished cell is
committed to the run folder's store (`benchmark.results.RunStore`) before the next one starts, and what it
produced is kept in the attack cache (`benchmark.artifacts.ArtifactCache`): re-running into the same folder
skips committed cells, and re-running an unchanged suite anywhere loads instead of attacking.
"""
from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from benchmark import PROTOCOL_VERSION
from benchmark.artifacts import Artifact, ArtifactCache
from benchmark.attacks import Crafted, Target, craft, enforce_budget, pick_worst
from benchmark.attacks.probes import gradient_health
from benchmark.attacks.registry import traits
from benchmark.cascade import Cascade
from benchmark.convergence import escalate_attack
from benchmark.data import SplitArrays, load_dataset
from benchmark.grid import Cell, expand, expand_transfer
from benchmark.metrics import accuracy, f1_score, perturbation_linf, robustness_scores
from benchmark.preflight import check_models
from benchmark.results import CSV_NAME, RunStore, write_csv
from benchmark.suite import AttackSpec, ModelSpec, Suite
from benchmark.tables import write_tables
from benchmark.validate import check_suite
from mmrb.core.errors import AttackError, Interrupted, MmrbError
from wrappers.cache import code_digest, digest, library_version
from wrappers.estimators import ImageView
from wrappers.registry import model_entry
from wrappers.training import LabelledSet, model_key, obtain_trained, predict_proba

if TYPE_CHECKING:
    from benchmark.backends import Backend

log = logging.getLogger(__name__)
#: The convergence check's record in each checked row (`check_<field>`): rounds run, whether the cap was hit while
#: the figure still fell (1/0), the largest steps, the restarts, the samples attacked and the seconds it took.
CHECK_FIELDS = ("rounds", "capped", "steps", "restarts", "attacked", "seconds")


def _checked(cell: Cell) -> bool:
    """Whether the convergence check applies: an ε-bounded gradient attack on the image."""
    attack = cell.attack
    return cell.epsilon is not None and attack.modality == "image" and traits(attack.source, attack.name).gradient


@dataclass(frozen=True)
class RunRecord:
    """What a run produced and what it ran on (the leaderboard's provenance columns)."""

    rows: list[dict[str, Any]]
    data_fingerprint: str
    results_path: Path
    tables: str = ""  # Markdown of the paper-shaped tables, also written next to results.csv
    computed: int = 0  # cells this run scored (the others were already in the run store)
    loaded: int = 0  # of those, cells whose attack output came from the attack cache


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


@functools.lru_cache(maxsize=64)
def attack_code(source: str, name: str) -> dict[str, str]:
    """Versions of the attack libraries and a digest of the code that turns a suite entry into adversarial
    inputs (every module of benchmark.attacks and the attack's own plug-in module, as the attack registry lists them;
    the cascade, the convergence check, the image view): part of every cell key."""
    import benchmark.cascade
    import benchmark.convergence
    import wrappers.estimators
    from benchmark.attacks import registry

    return {**{lib: library_version(dist) for lib, dist in registry.library_distributions().items()},
            "code": code_digest(*registry.code_modules(source, name), wrappers.estimators, benchmark.convergence,
                                benchmark.cascade)}


def _attack_identity(attack: AttackSpec) -> dict[str, Any]:
    return {"source": attack.source, "name": attack.name, "modality": attack.modality, "params": attack.params}


class Keys:
    """Content keys of models and cells of one suite on one dataset."""

    def __init__(self, suite: Suite, fingerprint: str, sample_ids: list[str], device: str = "cpu") -> None:
        self.suite, self.fingerprint, self.device = suite, fingerprint, device  # device: part of every model's key
        self.samples = digest(sample_ids)
        self.attacks = {a.label: a for a in suite.attacks}  # label -> spec (worst_case parts, compare_with)
        self._models: dict[tuple[str, int], str] = {}

    def model(self, spec: ModelSpec, seed: int) -> str:
        if (spec.label, seed) not in self._models:
            self._models[spec.label, seed] = model_key(spec.name, spec.params, self.fingerprint, seed, self.device)
        return self._models[spec.label, seed]

    def craft(self, model: ModelSpec, attack: AttackSpec, epsilon: float | None, seed: int, check: bool = True) -> str:
        """Key of adversarial inputs crafted by `attack` on `model` (a white-box cell, or a transfer craft, which
        has no convergence check: `check=False`)."""
        if attack.name == "worst_case":
            parts = [self.craft(model, self.attacks[label], epsilon, seed) for label in attack.params["of"]]
            return digest({"worst_case": parts})
        return digest({"model": self.model(model, seed), "data": self.fingerprint, "samples": self.samples,
                       "attack": _attack_identity(attack), "epsilon": epsilon, "seed": seed,
                       "check": self.suite.convergence_check.model_dump() if check and self.suite.convergence_check
                       else None,
                       "protocol": PROTOCOL_VERSION, "attack_code": attack_code(attack.source, attack.name)}, length=32)

    def cell(self, cell: Cell) -> str:
        """Key of a cell: its craft, and for transfer cells the target model scoring it."""
        if cell.source is None:
            return self.craft(cell.model, cell.attack, cell.epsilon, cell.seed)
        return digest({"craft": self.craft(cell.source, cell.attack, cell.epsilon, cell.seed, check=False),
                       "target": self.model(cell.model, cell.seed)}, length=32)


def run_suite(suite: Suite, out_dir: str | Path, cache_dir: str | Path, device: str = "cpu",
              progress: bool = True, fresh: bool = False, backend: str | Backend | None = None,
              before: list[tuple[str, Callable[[], Any]]] = ()) -> RunRecord:
    """Execute every cell of `suite` not already committed in out_dir's run store (all of them with `fresh`);
    results.csv there is regenerated from the store after every cell. `backend` decides where cells run
    (`benchmark.backends`: in this process by default, or as Ray tasks); the store is written here only.
    `before`: (description, task) pairs run first, each a step of the run's progress bar (submit's trainings and
    floor check). Ctrl-C raises `Interrupted` (how many cells the folder keeps)."""
    from benchmark.backends import as_backend

    backend = as_backend(backend)
    backend.check(device)
    check_suite(suite)
    if needs_text_resources(suite):  # stop before any data or training work, not halfway through the grid
        from benchmark.data.text_resources import ensure_text_resources

        ensure_text_resources()
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    with RunStore(out_dir, fresh=fresh, suite=suite_identity(suite)) as store:
        try:
            return _run(suite, store, cache_dir.resolve(), device, progress, backend, before)
        except KeyboardInterrupt:
            raise Interrupted(store.folder, len(store.finished())) from None


def suite_identity(suite: Suite) -> dict[str, Any]:
    """What a run folder records of the suite that fills it (a folder holds one suite's results)."""
    source = str(suite.source or "")
    return {"name": suite.name, "source": "" if source.startswith("<") else source, "hash": suite.content_hash}


@dataclass(frozen=True)
class SuiteData:
    """A suite's data: the training set (with the fingerprint that keys models) and the scored test samples."""

    train_set: LabelledSet
    test: SplitArrays
    fingerprint: str


def prepare_data(suite: Suite, cache_dir: Path) -> SuiteData:
    """Load (or generate) the suite's dataset and split it by the suite's seed; `limit` caps the test samples."""
    spec = suite.dataset
    dataset = load_dataset(spec, cache_dir)
    train_samples, test_samples = dataset.split(suite.seed, spec.test_fraction)
    test_samples = test_samples[: suite.limit] if suite.limit else test_samples
    fingerprint = f"{dataset.fingerprint()}-{spec.image_size}px-split{suite.seed}-{spec.test_fraction}"
    train = SplitArrays.from_samples(train_samples, spec.image_size)
    test = SplitArrays.from_samples(test_samples, spec.image_size)
    return SuiteData(LabelledSet(train.images, train.texts, train.labels, fingerprint), test, fingerprint)


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to compute any cell of a run: the suite, its keys, its data, where the caches
    are and the device (a backend ships it to where cells run)."""

    suite: Suite
    keys: Keys
    data: SuiteData
    cache_dir: Path
    device: str

    def work(self) -> Work:
        return Work(self.suite, self.keys, self.data.test, self.data.train_set, self.cache_dir, self.device)


@dataclass(frozen=True)
class CellResult:
    """A computed cell: its row and whether its attack output came from the attack cache."""

    cell: Cell
    key: str
    row: dict[str, Any]
    loaded: bool


def compute(work: Work, cell: Cell, key: str) -> CellResult:
    """Score one cell with `work` (the one function every backend calls)."""
    before = work.loaded
    row = work.row(cell)
    return CellResult(cell, key, row, work.loaded > before)


def _run(suite: Suite, store: RunStore, cache_dir: Path, device: str, progress: bool, backend: Backend,
         before: list[tuple[str, Callable[[], Any]]] = ()) -> RunRecord:
    data = prepare_data(suite, cache_dir)
    modalities_of = lambda name: model_entry(name).modalities  # noqa: E731
    cells = expand(suite, modalities_of) + expand_transfer(suite, modalities_of)
    keys = Keys(suite, data.fingerprint, data.test.uids, device)
    cell_keys = [keys.cell(c) for c in cells]
    finished = store.finished()
    pending = [(c, k) for c, k in zip(cells, cell_keys) if k not in finished]
    if pending:  # every model on one batch before any training or attack (benchmark.preflight)
        check_models(suite, data, cache_dir)
    message = (f"{suite.name}: {len(cells)} cells ({len(suite.training_seeds)} training seeds), {len(data.train_set.labels)} "
               f"train / {len(data.test.labels)} test samples; {len(cells) - len(pending)} already committed in "
               f"{store.folder}, {len(pending)} to run ({backend.describe()})")
    log.info(message)
    if progress:
        print(message, file=sys.stderr)
    results_path, loaded, committed = store.folder / CSV_NAME, 0, set()
    plan = Plan(suite, keys, data, cache_dir, device)
    with tqdm(total=len(pending) + len(before), desc=suite.name, disable=not progress, unit="task") as bar:
        steps = Progress(bar)
        for text, task in before:
            steps.note(text)
            task()
            steps.task_done()
        for outcome in backend.execute(plan, pending, steps):
            if outcome.key in committed:  # a backend that ran a cell twice (a retried task) commits it once
                continue
            store.commit(outcome.key, outcome.row)
            committed.add(outcome.key)
            loaded += outcome.loaded
            write_csv(store.rows(cell_keys), results_path)
            steps.task_done()
    rows = store.rows(cell_keys)
    write_csv(rows, results_path)
    return RunRecord(rows, data.fingerprint, results_path, write_tables(rows, store.folder), computed=len(committed),
                     loaded=loaded)


class Progress:
    """The run's one progress bar: a step per pending cell (taken by the runner when it commits the cell), plus a
    step per task a backend runs besides its cells (the Ray backend's trainings and transfer crafts)."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def note(self, text: str) -> None:
        """What is running now (the bar's postfix)."""
        self._bar.set_postfix_str(text)

    def add_tasks(self, n: int) -> None:
        """`n` more steps: tasks other than cells that this run will wait for."""
        self._bar.total += n
        self._bar.refresh()

    def task_done(self) -> None:
        """One step done: a committed cell, or another task finished."""
        self._bar.update()


def describe(cell: Cell) -> str:
    source = f" from {cell.source.label}" if cell.source else ""
    return f"{cell.model.label} seed={cell.seed} {cell.attack.label} eps={cell.epsilon}{source}"


class Work:
    """Computes cells: loads or trains models lazily, loads artifacts from the attack cache or crafts them."""

    def __init__(self, suite: Suite, keys: Keys, test: SplitArrays, train_set: LabelledSet, cache_dir: Path,
                 device: str) -> None:
        self.suite, self.keys, self.test, self.train_set = suite, keys, test, train_set
        self.cache_dir, self.device = cache_dir, device
        self.artifacts = ArtifactCache(cache_dir / "attacks")
        self._models: dict[tuple[str, int], TrainedModel] = {}
        # a model that failed to train, or a transfer craft that failed, fails its cells without being retried
        self._failed_models: dict[tuple[str, int], Exception] = {}
        self._failed_crafts: dict[str, Exception] = {}
        self.loaded = 0  # cells whose artifact came from the attack cache

    def model(self, spec: ModelSpec, seed: int) -> TrainedModel:
        """The trained model of (spec, seed); only the current seed's models are kept in memory."""
        if (spec.label, seed) in self._failed_models:
            raise self._failed_models[spec.label, seed]
        if (spec.label, seed) not in self._models:
            for old in [k for k in self._models if k[1] != seed]:
                del self._models[old]
            try:
                model = obtain_trained(spec.name, spec.params, self.train_set, self.cache_dir, seed, self.device)
            except Exception as exc:
                self._failed_models[spec.label, seed] = exc
                raise
            test = self.test
            view = ImageView(model, test.images, test.texts, device=self.device) if "image" in model.modalities else None
            target = Target(model, test.images, test.texts, test.labels, view)
            self._models[spec.label, seed] = TrainedModel(spec, target, predict_proba(model, test.images, test.texts))
        return self._models[spec.label, seed]

    def failed(self, exc: Exception, model: tuple[ModelSpec, int] | None = None, craft: str | None = None) -> None:
        """Record a failure found elsewhere (a backend's training or craft task): the cells that need that model
        (spec, seed) or transfer craft (key) fail with it, as if it had happened here."""
        if model is not None:
            self._failed_models[model[0].label, model[1]] = exc
        if craft is not None:
            self._failed_crafts[craft] = exc

    def row(self, cell: Cell) -> dict[str, Any]:
        """Score one cell; any failure inside it (an mmrb error, or a library's own exception) becomes the row's
        `error` instead of ending the run."""
        row = _base_row(self.suite, cell, len(self.test.labels))
        try:
            artifact = self.artifact(cell, count=True)
            row.update(score(self.test.labels, artifact, cell.attack.modality))
            if cell.attack.compare_with and cell.source is None:
                row["agreement_gap"] = self._agreement_gap(cell, row["robust_accuracy"])
        except Exception as exc:  # mmrb's own errors and a library's alike become the row
            message = str(exc) if isinstance(exc, MmrbError) else f"{type(exc).__name__}: {exc}"
            log.error("%s failed: %s", describe(cell), message)
            row["error"] = message
        return row

    def _agreement_gap(self, cell: Cell, robust: float) -> float | None:
        other = Cell(cell.model, self.keys.attacks[cell.attack.compare_with], cell.epsilon, seed=cell.seed)
        try:
            other_artifact = self.artifact(other)
        except Exception:  # the other attack's own row carries its error
            return None
        return robust - accuracy(self.test.labels, other_artifact.adv_prob.argmax(1))

    def artifact(self, cell: Cell, count: bool = False) -> Artifact:
        """What the cell produced: from the attack cache, or computed now (and cached); `count` a cache hit."""
        key = self.keys.cell(cell)
        found = self.artifacts.load(key)
        self.loaded += count and found is not None
        if found is None:
            found = self._transfer(cell) if cell.source is not None else self._white_box(cell)
            self.artifacts.save(key, found)
        return found

    def _white_box(self, cell: Cell, check: bool = True) -> Artifact:
        """Craft and score a white-box cell; `check`: also run the escalating convergence check (not for transfer
        crafts, whose figures are scored on their targets)."""
        attack, run = cell.attack, self.model(cell.model, cell.seed)
        target, start = run.target, time.perf_counter()
        if attack.name == "worst_case":
            return self._worst_case(cell, run)
        crafted = craft(attack.source, attack.name, attack.params, target, cell.epsilon, cell.seed)
        crafted, over_budget = enforce_budget(crafted, target.images, cell.epsilon)
        if attack.modality == "none":
            adv_prob = run.clean_prob
        else:
            adv_prob = predict_proba(target.model, crafted.images, crafted.texts)
        as_run_prob, check_record = None, None
        if check and self.suite.convergence_check and _checked(cell):
            as_run_prob = adv_prob
            crafted, adv_prob, check_record = self._convergence_check(cell, target, crafted, adv_prob)
        model = target.model
        branch_prob = None
        if hasattr(model, "branches") and attack.modality in ("image", "text"):
            branch = model.branches()[attack.modality]
            branch_prob = predict_proba(branch, crafted.images if attack.modality == "image" else None, crafted.texts)
        changes_images = attack.modality in ("image", "joint")
        changes_texts = attack.modality in ("text", "joint")
        meta = dict(steps=crafted.steps, params=crafted.params, over_budget=over_budget,
                    max_perturbation=perturbation_linf(target.images, crafted.images),
                    seconds=round(time.perf_counter() - start, 3), check=check_record)
        if attack.modality == "none" and "image" in model.modalities:
            meta.update(gradient_health(model, target.images, target.texts, target.labels))
        return Artifact(run.clean_prob, adv_prob, crafted.images if changes_images else None,
                        list(crafted.texts) if changes_texts else None, branch_prob, crafted.queries, meta, as_run_prob)

    def _convergence_check(self, cell: Cell, target: Target, crafted: Crafted,
                           adv_prob: np.ndarray) -> tuple[Crafted, np.ndarray, dict[str, Any]]:
        """The cell's attack escalated on the samples it left standing (benchmark.convergence.escalate): the worst
        inputs found, their probabilities and the check's record (rounds, cap, budget, cost)."""
        attack = cell.attack
        cascade = Cascade(target, adv_prob, crafted.images, crafted.texts)
        record = escalate_attack(cascade, attack.source, attack.name, attack.params, cell.epsilon, cell.seed,
                                 attack.label, **self.suite.convergence_check.model_dump())
        return replace(crafted, images=cascade.images, texts=cascade.texts), cascade.probs, record

    def _worst_case(self, cell: Cell, run: TrainedModel) -> Artifact:
        """Per-sample worst case over attacks of the same model, seed and ε (RobustBench/AutoAttack style): a
        sample is robust only if it survives all of them; its adversarial input is the one giving its true class
        the lowest probability."""
        start = time.perf_counter()
        labels = cell.attack.params["of"]
        parts, missing = [], []
        for label in labels:
            try:
                parts.append(self.artifact(Cell(cell.model, self.keys.attacks[label], cell.epsilon, seed=cell.seed)))
            except Exception:
                missing.append(label)
        if missing:
            raise AttackError(f"worst_case at eps={cell.epsilon}: no successful result of {missing} for this model and ε")
        probs = np.stack([p.adv_prob for p in parts])  # (attacks, n, classes)
        images = pick_worst(probs, self.test.labels,
                            np.stack([p.images if p.images is not None else run.target.images for p in parts]))
        meta = dict(steps=max(p.meta["steps"] for p in parts), params={"of": labels},
                    over_budget=float(np.mean([p.meta.get("over_budget", 0.0) for p in parts])),
                    max_perturbation=perturbation_linf(run.target.images, images),
                    seconds=round(sum(p.meta["seconds"] for p in parts) + time.perf_counter() - start, 3))
        return Artifact(run.clean_prob, pick_worst(probs, self.test.labels, probs), images, None, None, None, meta)

    def transfer_craft(self, source: ModelSpec, attack: AttackSpec, epsilon: float | None, seed: int) -> Artifact:
        """The adversarial inputs `attack` crafts on `source`, once for all transfer targets (attack cache)."""
        key = self.keys.craft(source, attack, epsilon, seed, check=False)
        if key in self._failed_crafts:
            raise self._failed_crafts[key]
        crafted = self.artifacts.load(key)
        if crafted is None:
            try:
                crafted = self._white_box(Cell(source, attack, epsilon, seed=seed), check=False)
            except Exception as exc:
                self._failed_crafts[key] = exc
                raise
            self.artifacts.save(key, crafted)
        return crafted

    def _transfer(self, cell: Cell) -> Artifact:
        """Score on the target images crafted once on the source (the white-box diagonal included)."""
        crafted = self.transfer_craft(cell.source, cell.attack, cell.epsilon, cell.seed)
        run, start = self.model(cell.model, cell.seed), time.perf_counter()
        adv_prob = predict_proba(run.target.model, crafted.images, run.target.texts)
        meta = dict(crafted.meta, seconds=round(time.perf_counter() - start, 3), craft_seconds=crafted.meta["seconds"])
        return Artifact(run.clean_prob, adv_prob, None, None, None, None, meta)


def _base_row(suite: Suite, cell: Cell, n: int) -> dict[str, Any]:
    attack = cell.attack
    return dict(suite=suite.name, model=cell.model.label, attack=attack.label, attack_name=attack.name,
                attack_source=attack.source,
                modality=attack.modality, epsilon=cell.epsilon, seed=cell.seed,
                transfer_source=cell.source.label if cell.source else "", n=n,
                params=json.dumps(attack.params, sort_keys=True), compare_with=attack.compare_with or "", error="")


def score(labels: np.ndarray, artifact: Artifact, modality: str) -> dict[str, Any]:
    """The scores of one cell, from its artifact alone (no model needed: re-runs score cached cells)."""
    meta = artifact.meta
    scores = robustness_scores(labels, artifact.clean_prob, artifact.adv_prob)
    scores.update(steps=meta.get("steps"), max_perturbation=meta.get("max_perturbation"),
                  over_budget=meta.get("over_budget"), seconds=meta.get("seconds"),
                  queries=float(np.mean(artifact.queries)) if artifact.queries is not None else None,
                  zero_gradient=meta.get("zero_gradient"), nonfinite_gradient=meta.get("nonfinite_gradient"),
                  zero_gradient_bpda=meta.get("zero_gradient_bpda"), stochastic=meta.get("stochastic"))
    if artifact.as_run_prob is not None:
        scores["as_run_robust_accuracy"] = accuracy(labels, artifact.as_run_prob.argmax(1))
        check = meta.get("check") or {}
        scores.update({f"check_{k}": float(check[k]) if k in check and check[k] is not None else None
                       for k in CHECK_FIELDS})
    parts = (meta.get("params") or {}).get("parts") if isinstance(meta.get("params"), dict) else None
    if parts:
        scores["sub_attacks"] = json.dumps(parts, sort_keys=True)
    if artifact.branch_prob is not None:
        branch = artifact.branch_prob.argmax(1)
        scores.update(branch_robust_accuracy=accuracy(labels, branch), branch_robust_f1=f1_score(labels, branch))
    return scores


def describe_run(record: RunRecord) -> str:
    """One line for the user: rows, and how many cells this run computed."""
    return (f"results: {record.results_path} ({len(record.rows)} rows: {len(record.rows) - record.computed} resumed from "
            f"the run store, {record.computed} run now, {record.loaded} of them loaded from the attack cache)")

