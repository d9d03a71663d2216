"""The cell engine: computes one cell of a run — loads or trains its model, loads its artifact from the attack cache
or crafts it (running the convergence check, combining worst_case parts, scoring transfer crafts on their targets),
and scores it. Every backend calls `compute` on a `Work` built from the run's `Plan`, so a cell's figures do not
depend on where it ran. The run driver (`benchmark.run.runner`) decides which cells run and commits their rows.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.attacks import Crafted, Target, craft, enforce_budget, pick_worst
from benchmark.attacks.cascade import Cascade
from benchmark.attacks.convergence import escalate_attack
from benchmark.attacks.probes import gradient_health
from benchmark.attacks.registry import traits
from benchmark.data import SplitArrays
from benchmark.data.report_terms import keep_labels
from benchmark.evaluation.clinical import operating_scores, threshold_at_specificity
from benchmark.evaluation.metrics import accuracy, f1_score, perturbation_linf, robustness_scores
from benchmark.run.adaptive import adaptive_pass, defended, needs_adaptive
from benchmark.run.keys import Keys
from benchmark.spec.grid import Cell
from benchmark.spec.suite import AttackSpec, ModelSpec, Suite
from benchmark.store.artifacts import Artifact, ArtifactCache
from benchmark.store.record import COLUMNS, ResultRecord
from defenses.adaptive import mark_randomised
from mmrb.core.errors import AttackError, MmrbError
from wrappers.estimators import ImageView
from wrappers.registry import ModelEntry
from wrappers.training import LabelledSet, obtain_trained, predict_proba

log = logging.getLogger(__name__)
#: The convergence check's record in each checked row (`check_<field>`): rounds run, whether the cap was hit while
#: the figure still fell (1/0), the largest steps, the restarts, the samples attacked and the seconds it took.
CHECK_FIELDS = tuple(c.removeprefix("check_") for c in COLUMNS if c.startswith("check_"))


def escalation_of(attack: AttackSpec) -> tuple[str, str, dict[str, Any]] | None:
    """The attack the convergence check escalates for `attack` (source, name, params), None where none applies: a
    gradient image attack itself; a joint attack's image part, against its adversarial reports held fixed — the
    `joint` attack's own image attack where it is a gradient attack, mmrb's PGD at the attack's steps for a gradient
    joint attack whose image step is its own (Co-Attack, SGA: their extra loss terms are left out of the re-runs)."""
    if attack.modality == "image":
        return (attack.source, attack.name, attack.params) if traits(attack.source, attack.name).gradient else None
    if attack.modality != "joint":
        return None
    if attack.source == "mmrb" and attack.name == "joint":
        part = dict(attack.params.get("image") or {})
        source = part.get("source", "art")
        return (source, part["name"], part.get("params", {})) if "name" in part and traits(source, part["name"]).gradient \
            else None
    if traits(attack.source, attack.name).gradient:
        return "mmrb", "pgd", {"steps": int(attack.params.get("steps", 10)), "random_start": True}
    return None


def _checked(cell: Cell) -> bool:
    """Whether the convergence check applies: an ε-bounded gradient attack on the image, or a joint attack's image
    part (`escalation_of`)."""
    return cell.epsilon is not None and escalation_of(cell.attack) is not None


@dataclass(frozen=True)
class TrainedModel:
    """A trained model, the attack target on the test split, and its clean class probabilities."""

    spec: ModelSpec
    target: Target
    clean_prob: np.ndarray
    threshold: float | None = None  # on P(abnormal), set on the clean held-out samples (benchmark.evaluation.clinical)
    #: the undefended twin (a defended model: the same weights without an input defense, or the same-seed base model
    #: of a training defense), loaded when the adaptive pass asks for it; None for an undefended model
    twin: Callable[[], Any] | None = None


def needs_text_resources(suite: Suite) -> bool:
    """Whether any attack of the suite perturbs text (and so needs WordNet and stopwords)."""
    attacks = suite.attacks + (suite.transfer.attacks if suite.transfer else [])
    return any(a.modality in ("text", "joint") or a.source == "textattack" for a in attacks)


@dataclass(frozen=True)
class SuiteData:
    """A suite's data: the training set (with the fingerprint that keys models) and the scored test samples."""

    train_set: LabelledSet
    test: SplitArrays
    fingerprint: str
    calibration: SplitArrays | None = None  # clean held-out samples that set the operating threshold (benchmark.evaluation.clinical)


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to compute any cell of a run: the suite, its keys, its data, where the caches
    are, the device, and the model entries the driver resolved (a backend ships it to where cells run)."""

    suite: Suite
    keys: Keys
    data: SuiteData
    cache_dir: Path
    device: str
    models: dict[str, ModelEntry]

    def work(self) -> Work:
        return Work(self)


@dataclass(frozen=True)
class CellResult:
    """A computed cell: its row and whether its attack output came from the attack cache."""

    cell: Cell
    key: str
    row: ResultRecord  # a mapping of its columns (a backend's error row) is made one
    loaded: bool

    def __post_init__(self) -> None:
        if not isinstance(self.row, ResultRecord):
            object.__setattr__(self, "row", ResultRecord.of(self.row))


def compute(work: Work, cell: Cell, key: str) -> CellResult:
    """Score one cell with `work` (the one function every backend calls)."""
    before = work.loaded
    row = work.row(cell, key)
    return CellResult(cell, key, row, work.loaded > before)


def describe(cell: Cell) -> str:
    source = f" from {cell.source.label}" if cell.source else ""
    return f"{cell.model.label} seed={cell.seed} {cell.attack.label} eps={cell.epsilon}{source}"


class Work:
    """Computes cells: loads or trains models lazily, loads artifacts from the attack cache or crafts them."""

    def __init__(self, plan: Plan) -> None:
        self.plan, self.suite, self.keys = plan, plan.suite, plan.keys
        self.test, self.train_set = plan.data.test, plan.data.train_set
        self.cache_dir, self.device = plan.cache_dir, plan.device
        self.artifacts = ArtifactCache(plan.cache_dir / "attacks")
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
            def base() -> Any:
                return obtain_trained(spec.name, spec.params, self.train_set, self.cache_dir, seed, self.device,
                                      entry=self.plan.models.get(spec.name))

            twin = None
            try:
                model = base()
                if spec.defense is not None:
                    from defenses.defended import defend
                    from defenses.registry import build_model_defense

                    model = defend(model, build_model_defense(spec.defense.name, spec.defense.params, seed),
                                   self.train_set, self.cache_dir, self.keys.model(spec, seed), seed)
                    twin = (lambda inner=model.model: inner) if defended(model) else base  # a training defense: reload
            except Exception as exc:
                self._failed_models[spec.label, seed] = exc
                raise
            test = self.test
            mark_randomised(model, test.images, test.texts)  # scored by the majority of draws if it draws afresh
            view = ImageView(model, test.images, test.texts, device=self.device) if "image" in model.modalities else None
            threshold = self._threshold(model)
            target = Target(model, test.images, test.texts, test.labels, view, corpus=self.train_set.texts,
                            threshold=threshold)
            self._models[spec.label, seed] = TrainedModel(spec, target, predict_proba(model, test.images, test.texts),
                                                          threshold, twin)
        return self._models[spec.label, seed]

    def _threshold(self, model: Any) -> float | None:
        """The operating threshold of the suite's specificity, on the clean held-out samples only."""
        calibration = self.plan.data.calibration
        if self.suite.operating_point is None or calibration is None:
            return None
        p_abnormal = predict_proba(model, calibration.images, calibration.texts)[:, 1]
        return threshold_at_specificity(calibration.labels, p_abnormal, self.suite.operating_point)

    def failed(self, exc: Exception, model: tuple[ModelSpec, int] | None = None, craft: str | None = None) -> None:
        """Record a failure found elsewhere (a backend's training or craft task): the cells that need that model
        (spec, seed) or transfer craft (key) fail with it, as if it had happened here."""
        if model is not None:
            self._failed_models[model[0].label, model[1]] = exc
        if craft is not None:
            self._failed_crafts[craft] = exc

    def row(self, cell: Cell, key: str | None = None) -> ResultRecord:
        """Score one cell (its artifact stored under `key`, the driver's, where given); any failure inside it (an mmrb
        error, or a library's own exception) becomes the row's `error` instead of ending the run."""
        row = ResultRecord.of(base_row(self.suite, cell, len(self.test.labels)))
        try:
            artifact = self.artifact(cell, count=True, key=key)
            row = row.updated(score(self.test.labels, artifact, cell.attack.modality))
            threshold = self.model(cell.model, cell.seed).threshold if self.suite.operating_point else None
            if threshold is not None:
                row = row.updated(operating_scores(self.test.labels, artifact.clean_prob[:, 1],
                                                   artifact.adv_prob[:, 1], threshold))
            if cell.attack.compare_with and cell.source is None:
                row = row.updated({"agreement_gap": self._agreement_gap(cell, row.robust_accuracy)})
        except Exception as exc:  # mmrb's own errors and a library's alike become the row
            message = str(exc) if isinstance(exc, MmrbError) else f"{type(exc).__name__}: {exc}"
            log.error("%s failed: %s", describe(cell), message)
            row = row.updated({"error": message})
        return row

    def _agreement_gap(self, cell: Cell, robust: float) -> float | None:
        other = self.keys.combined(cell)[-1]  # compare_with comes last
        try:
            other_artifact = self.artifact(other)
        except Exception:  # the other attack's own row carries its error
            return None
        return robust - accuracy(self.test.labels, other_artifact.adv_prob.argmax(1))

    def artifact(self, cell: Cell, count: bool = False, key: str | None = None) -> Artifact:
        """What the cell produced: from the attack cache, or computed now (and cached); `count` a cache hit. `key`:
        the key the driver computed when the run began, so that the artifact is where the driver (the run store, the
        per-sample evidence) looks for it even if a source file changed on disk since (the attack code digest reads
        the files); computed here where not given."""
        key = key or self.keys.cell(cell)
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
        if attack.combined:
            return self._worst_case(cell, run)
        crafted = craft(attack.source, attack.name, attack.params, target, cell.epsilon, cell.seed)
        crafted, over_budget = enforce_budget(crafted, target.images, cell.epsilon)
        labels_kept = None
        if attack.modality in ("text", "joint") and crafted.texts is not None:  # a label-changing edit is not robustness
            texts, labels_kept = keep_labels(list(target.texts), list(crafted.texts))
            crafted = replace(crafted, texts=texts)
        if attack.modality == "none":
            adv_prob = run.clean_prob
        else:
            adv_prob = predict_proba(target.model, crafted.images, crafted.texts)
        as_run_prob, check_record = None, None
        if check and self.suite.convergence_check and _checked(cell):
            as_run_prob = adv_prob
            crafted, adv_prob, check_record = self._convergence_check(cell, target, crafted, adv_prob)
        adaptive = None
        if check and needs_adaptive(target.model, run.twin) and attack.modality in ("image", "joint") \
                and traits(attack.source, attack.name).gradient:  # naive figure kept; the adaptive one counts
            crafted, adv_prob, adaptive = adaptive_pass(attack, cell.epsilon, cell.seed, self.suite.convergence_check or None,
                                                        target, crafted, adv_prob, self.device, twin=run.twin)
        model = target.model
        branch_prob = None
        if hasattr(model, "branches") and attack.modality in ("image", "text"):
            branch = model.branches()[attack.modality]
            branch_prob = predict_proba(branch, crafted.images if attack.modality == "image" else None, crafted.texts)
        changes_images = attack.modality in ("image", "joint")
        changes_texts = attack.modality in ("text", "joint")
        meta = dict(steps=crafted.steps, params=crafted.params, over_budget=over_budget,
                    max_perturbation=perturbation_linf(target.images, crafted.images),
                    seconds=round(time.perf_counter() - start, 3), check=check_record, adaptive=adaptive,
                    label_kept=labels_kept)
        if attack.modality == "none" and "image" in model.modalities:
            meta.update(gradient_health(model, target.images, target.texts, target.labels))
        return Artifact(run.clean_prob, adv_prob, crafted.images if changes_images else None,
                        list(crafted.texts) if changes_texts else None, branch_prob, crafted.queries, meta, as_run_prob)

    def _convergence_check(self, cell: Cell, target: Target, crafted: Crafted,
                           adv_prob: np.ndarray) -> tuple[Crafted, np.ndarray, dict[str, Any]]:
        """The cell's attack escalated on the samples it left standing (benchmark.attacks.convergence.escalate): the worst
        inputs found, their probabilities and the check's record (rounds, cap, budget, cost)."""
        attack = cell.attack
        source, name, params = escalation_of(attack)
        if attack.modality == "joint":  # the image part escalated against the adversarial reports, held fixed
            target = target.with_texts(crafted.texts)
        cascade = Cascade(target, adv_prob, crafted.images, crafted.texts)
        record = escalate_attack(cascade, source, name, params, cell.epsilon, cell.seed,
                                 attack.label, **self.suite.convergence_check.model_dump())
        return replace(crafted, images=cascade.images, texts=cascade.texts), cascade.probs, record

    def _worst_case(self, cell: Cell, run: TrainedModel) -> Artifact:
        """Per-sample worst case over attacks of the same model, seed and ε (RobustBench/AutoAttack style): a
        sample is robust only if it survives all of them; its adversarial input is the one giving its true class
        the lowest probability."""
        start = time.perf_counter()
        labels = cell.attack.combined
        parts, missing = [], []
        for label, part in zip(labels, self.keys.combined(cell)):
            try:
                parts.append(self.artifact(part))
            except Exception:
                missing.append(label)
        if missing:
            raise AttackError(f"{cell.attack.name} at eps={cell.epsilon}: no successful result of {missing} for this model and ε")
        probs = np.stack([p.adv_prob for p in parts])  # (attacks, n, classes)
        images = pick_worst(probs, self.test.labels,
                            np.stack([p.images if p.images is not None else run.target.images for p in parts]))
        meta = dict(steps=max(p.meta["steps"] for p in parts), params=dict(cell.attack.params),
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
        """Score on the target the inputs crafted once on the source (the white-box diagonal included): the perturbed
        images and/or reports, the clean ones for what the attack left alone."""
        crafted = self.transfer_craft(cell.source, cell.attack, cell.epsilon, cell.seed)
        run, start = self.model(cell.model, cell.seed), time.perf_counter()
        adv_prob = predict_proba(run.target.model, run.target.images if crafted.images is None else crafted.images,
                                 run.target.texts if crafted.texts is None else crafted.texts)
        meta = dict(crafted.meta, seconds=round(time.perf_counter() - start, 3), craft_seconds=crafted.meta["seconds"])
        return Artifact(run.clean_prob, adv_prob, None, None, None, None, meta)


def base_row(suite: Suite, cell: Cell, n: int) -> dict[str, Any]:
    """The identity columns of a cell's row (`ResultRecord.of` makes it a record; the cell engine fills in the
    scores, or the error)."""
    attack = cell.attack
    return dict(suite=suite.name, model=cell.model.label, defense=cell.model.defense.label if cell.model.defense else "",
                attack=attack.label, attack_name=attack.name,
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
                  zero_gradient_bpda=meta.get("zero_gradient_bpda"), stochastic=meta.get("stochastic"),
                  label_kept=meta.get("label_kept"))
    if artifact.as_run_prob is not None:
        scores["as_run_robust_accuracy"] = accuracy(labels, artifact.as_run_prob.argmax(1))
        check = meta.get("check") or {}
        scores.update({f"check_{k}": float(check[k]) if k in check and check[k] is not None else None
                       for k in CHECK_FIELDS})
    parts = (meta.get("params") or {}).get("parts") if isinstance(meta.get("params"), dict) else None
    if parts:
        scores["sub_attacks"] = json.dumps(parts, sort_keys=True)
    if isinstance(meta.get("params"), dict) and meta["params"].get("decisions_changed") is not None:  # the text floor
        scores["decisions_changed"] = float(meta["params"]["decisions_changed"])
    adaptive = meta.get("adaptive")
    if adaptive:
        scores.update(naive_robust_accuracy=adaptive["naive_robust_accuracy"], stand_in=adaptive.get("stand_in", ""),
                      adaptive_steps=adaptive.get("adaptive_steps"), adaptive_restarts=adaptive.get("adaptive_restarts"),
                      twin_transfer_broken=adaptive.get("twin_broken"),
                      masking=adaptive["naive_robust_accuracy"] - scores["robust_accuracy"])
    if artifact.branch_prob is not None:
        branch = artifact.branch_prob.argmax(1)
        scores.update(branch_robust_accuracy=accuracy(labels, branch), branch_robust_f1=f1_score(labels, branch))
    return scores


