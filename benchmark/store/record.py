"""One result row of a run — a cell at one training seed — as the cell engine builds it, the run store commits it and
results.csv shows it, column for column in this order (docs/metrics.md). `COLUMNS` is the one list of result columns;
each field also says how `benchmark.evaluation.aggregate` combines it over a cell's training seeds."""
from __future__ import annotations

import numbers
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from mmrb.core.errors import MmrbError


class RecordError(MmrbError):
    """A result row that is not a `ResultRecord`: a column it lacks or does not have, or a value of the wrong kind."""


def _column(default: Any = None, seeds: str = "", of: str = "") -> Any:
    """A column with its `default` (MISSING: every row must give it) and how it is combined over a cell's training seeds
    (`seeds`): "group" (the cell it belongs to), "proportion" (of the count column `of`: the seed interval), "spread"
    (mean, spread and t half-width), "mean", "max"; "" for a column that is not combined."""
    return field(default=default, metadata={"seeds": seeds, "of": of})


_KEY = dict(default=MISSING, seeds="group")


@dataclass(frozen=True, kw_only=True)
class ResultRecord:
    """One row of results.csv: a cell (model, attack, ε, transfer source) at one training seed, its scores or its
    error. A score the cell does not have (a text attack's perturbation, a failed cell's figures) is None."""

    # the cell: suite, model and its defense, attack label / name in its library / source, ε, seed, steps, samples
    suite: str = _column(MISSING)
    model: str = _column(**_KEY)
    defense: str = _column("")
    attack: str = _column(**_KEY)
    attack_name: str = _column(MISSING)
    attack_source: str = _column(**_KEY)
    modality: str = _column(**_KEY)
    epsilon: float | None = _column(**_KEY)
    seed: int = _column(MISSING)
    steps: int | None = _column(seeds="mean")
    transfer_source: str = _column("", seeds="group")
    n: int = _column(MISSING)
    # accuracy on the n test samples: clean, under attack (after the convergence check), the attack as configured
    clean_accuracy: float | None = _column(seeds="proportion", of="n")
    robust_accuracy: float | None = _column(seeds="proportion", of="n")
    as_run_robust_accuracy: float | None = _column(seeds="proportion", of="n")
    # the escalating convergence check: rounds, cap hit while falling (1/0), largest steps, restarts, samples, seconds
    check_rounds: float | None = _column(seeds="mean")
    check_capped: float | None = _column(seeds="mean")
    check_steps: float | None = _column(seeds="max")
    check_restarts: float | None = _column(seeds="mean")
    check_attacked: float | None = _column(seeds="mean")
    check_seconds: float | None = _column(seeds="mean")
    # per class: samples, clean and attacked recall of the normal, then of the abnormal studies
    n_normal: int | None = _column(seeds="mean")
    clean_accuracy_normal: float | None = _column(seeds="proportion", of="n_normal")
    robust_accuracy_normal: float | None = _column(seeds="proportion", of="n_normal")
    n_abnormal: int | None = _column(seeds="mean")
    clean_accuracy_abnormal: float | None = _column(seeds="proportion", of="n_abnormal")
    robust_accuracy_abnormal: float | None = _column(seeds="proportion", of="n_abnormal")
    # the operating point (benchmark.evaluation.clinical): threshold, sensitivity and specificity, decisions flipped
    threshold: float | None = _column(seeds="mean")
    clean_sensitivity: float | None = _column(seeds="proportion", of="n_abnormal")
    clean_specificity: float | None = _column(seeds="proportion", of="n_normal")
    robust_sensitivity: float | None = _column(seeds="proportion", of="n_abnormal")
    robust_specificity: float | None = _column(seeds="proportion", of="n_normal")
    false_reassurance: int | None = _column(seeds="mean")
    false_alarm: int | None = _column(seeds="mean")
    # scores that are not proportions of n: F1 of the abnormal class, ROC AUC, attack success rate
    clean_f1: float | None = _column(seeds="spread")
    robust_f1: float | None = _column(seeds="spread")
    auc: float | None = _column(seeds="spread")
    robust_auc: float | None = _column(seeds="spread")
    attack_success_rate: float | None = _column(seeds="spread")
    # the attacked branch alone, queries per sample, the attack it is compared with and the gap to it
    branch_robust_accuracy: float | None = _column(seeds="proportion", of="n")
    branch_robust_f1: float | None = _column(seeds="spread")
    queries: float | None = _column(seeds="mean")
    compare_with: str = _column("")
    agreement_gap: float | None = _column(seeds="mean")
    # gradient health (clean rows), and a defended model's naive figure and masking (naive − adaptive)
    zero_gradient: float | None = _column(seeds="mean")
    nonfinite_gradient: float | None = _column(seeds="mean")
    zero_gradient_bpda: float | None = _column(seeds="mean")
    stochastic: float | None = _column(seeds="mean")
    naive_robust_accuracy: float | None = _column(seeds="proportion", of="n")
    masking: float | None = _column(seeds="mean")
    # what the adaptive pass differentiated in place of the defense (its declared stand-in; the same in every seed)
    stand_in: str = _column("")
    # the adaptive pass at full strength: largest steps and runs through the stand-in, samples the undefended twin's
    # transfer broke beyond them (benchmark.run.adaptive)
    adaptive_steps: float | None = _column(seeds="max")
    adaptive_restarts: float | None = _column(seeds="mean")
    twin_transfer_broken: float | None = _column(seeds="mean")
    # the text floor (image_replacement): share of the n decisions that some replacement image changes
    decisions_changed: float | None = _column(seeds="proportion", of="n")
    # a text or joint attack: share of the n adversarial reports that kept their label by the report rules
    # (benchmark.data.report_terms; the others were put back to their original report before scoring)
    label_kept: float | None = _column(seeds="proportion", of="n")
    # the figures of a combined attack's parts (JSON)
    sub_attacks: str | None = _column()
    # budget and cost: the largest L∞ change, the fraction over budget, seconds; parameters run (JSON); the error
    max_perturbation: float | None = _column(seeds="mean")
    over_budget: float | None = _column(seeds="mean")
    seconds: float | None = _column(seeds="mean")
    params: str = _column(MISSING)
    error: str = _column("")

    def __post_init__(self) -> None:
        for name, kind in _KINDS.items():
            value = getattr(self, name)
            if not isinstance(value, kind) and not (value is None and name in _OPTIONAL):
                raise RecordError(f"result column {name!r}: {value!r} is not {_SAYS[kind]}")

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ResultRecord:
        """The record of a row the run writes now: every column without a default given, no other."""
        unknown = [c for c in row if c not in _KINDS]
        if unknown:
            raise RecordError(f"unknown result column(s) {', '.join(map(repr, unknown))}; a result row has the columns "
                              "of benchmark.store.record.ResultRecord")
        missing = [c for c in REQUIRED if c not in row]
        if missing:
            raise RecordError(f"result row without column(s) {', '.join(map(repr, missing))} (every row of "
                              f"results.csv gives {', '.join(REQUIRED)})")
        return cls(**row)

    @classmethod
    def load(cls, row: Mapping[str, Any]) -> ResultRecord:
        """The record of a stored row, written by this mmrb or an older one: a column added since takes its default
        (`attack_name`: the attack's label, as the row's attack then was named), one since dropped is left out."""
        known = {c: v for c, v in row.items() if c in _KINDS}
        if "attack_name" not in known and "attack" in known:
            known["attack_name"] = known["attack"]
        return cls.of(known)

    def updated(self, values: Mapping[str, Any]) -> ResultRecord:
        """A copy with `values` set (a name that is not a column is refused, naming it)."""
        unknown = [c for c in values if c not in _KINDS]
        if unknown:
            raise RecordError(f"unknown result column(s) {', '.join(map(repr, unknown))}")
        return replace(self, **values)

    def as_row(self) -> dict[str, Any]:
        """Column -> value, in column order (what results.csv and the analysis frames read)."""
        return {name: getattr(self, name) for name in COLUMNS}


def _kind(hint: Any) -> type | tuple[type, ...]:
    """What a column's type hint allows (besides None): text, a whole number or any real number (NaN included)."""
    base = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    return {str: str, int: numbers.Integral, float: numbers.Real}[base]


_HINTS = typing.get_type_hints(ResultRecord)
_KINDS = {f.name: _kind(_HINTS[f.name]) for f in fields(ResultRecord)}
_OPTIONAL = {name for name, hint in _HINTS.items() if type(None) in typing.get_args(hint)}
_SAYS = {str: "text", numbers.Integral: "a whole number", numbers.Real: "a number"}

#: The columns of results.csv, in order.
COLUMNS = tuple(f.name for f in fields(ResultRecord))
#: Columns every committed row gives (the others have defaults).
REQUIRED = tuple(f.name for f in fields(ResultRecord) if f.default is MISSING)
#: Default of every other column (what an older row that lacks it reads as).
DEFAULTS = {f.name: f.default for f in fields(ResultRecord) if f.default is not MISSING}
#: Text columns (results.csv cannot tell their None from ""); the others are numbers.
TEXT = tuple(name for name, kind in _KINDS.items() if kind is str)
NUMERIC = tuple(name for name in COLUMNS if name not in TEXT)


def over_seeds(rule: str) -> tuple[str, ...]:
    """The columns combined over training seeds by `rule` ("group", "proportion", "spread", "mean", "max")."""
    return tuple(f.name for f in fields(ResultRecord) if f.metadata["seeds"] == rule)


def proportions() -> dict[str, str]:
    """Each accuracy-like column -> the count column it is a proportion of (n, n_normal or n_abnormal)."""
    return {f.name: f.metadata["of"] for f in fields(ResultRecord) if f.metadata["seeds"] == "proportion"}
