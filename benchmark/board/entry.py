"""A leaderboard entry: the one immutable JSON document `mmrb submit` writes per model, at
`<board>/v<protocol_version>/entries/<name>.json` (a folder named without the "v" is read too).

`Entry` is its schema: `benchmark.submission.submit` builds entries through it and the board reads them through it. Figures are
fractions in [0, 1]; any figure may be null. The clean cell has modality "none"; the text floor cell is the attack
the registry marks as probe "floor" (image_replacement, ε null), named by the cell's `probe` (entries of version 1,
written before cells carried it, are read with the probes of that time: `V1_PROBES`); the standard evaluation's cells have attack_name
"standard". An attack may repeat at several ε (its robustness curve). A not-converged cell's robust_accuracy is
already the stronger re-run's figure (marked ‡)."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmrb.core.errors import MmrbError
from mmrb.core.modality import Input, Modality

ENTRY_VERSION = 2  # 2: every cell names its soundness-probe role (`probe`), so the board needs no attack registry
#: The probes of mmrb's registry when version-1 entries were written (they did not record the role): history, frozen.
V1_PROBES = {("mmrb", "random_noise"): "noise", ("mmrb", "image_replacement"): "floor"}


def probe_of(cell: dict) -> str | None:
    """A cell's soundness-probe role as its entry recorded it ("floor": the text floor; "noise": random noise), None
    for an attack. Probes are left out of the per-modality "best attack" figures."""
    return cell.get("probe") or None


def is_floor(cell: dict) -> bool:
    """Whether a cell is an entry's text floor."""
    return probe_of(cell) == "floor"

Figure = float | None  # a fraction in [0, 1], or null where it could not be measured
Count = int | float | None  # older entries wrote some counts as floats


class BoardError(MmrbError):
    """An entry file cannot be read, or the page cannot be rendered."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelFacts(_Block):
    family: str
    modalities: list[Input] = Field(min_length=1)


class Digests(_Block):
    submission: str
    code: str
    weights: str | None = None


class Provenance(_Block):
    suite: str
    suite_hash: str
    data_fingerprint: str
    split_seed: int
    seeds: list[int]
    packages: str
    mmrb_version: str
    mmrb_commit: str
    date: str = Field(description="UTC, e.g. 2026-11-23T18:00:00Z")


class RankFigure(_Block):
    """The rank metric: robust accuracy under the protocol's ranking attack at its ranking ε."""

    attack: str
    epsilon: float
    robust_accuracy: Figure = None
    ci_low: Figure = None
    ci_high: Figure = None
    not_converged: bool | None = None  # absent: read from the cell of `attack` at `epsilon`
    naive_robust_accuracy: Figure = None  # a defended model: the naive figure beside the adaptive one ranked
    naive_attack: str | None = None  # the attack whose naive figure that is (benchmark.submission.submit.naive_figure)


class CleanFigure(_Block):
    accuracy: Figure = None
    ci_low: Figure = None
    ci_high: Figure = None


class FloorFigure(_Block):
    robust_accuracy: Figure = None
    ci_low: Figure = None
    ci_high: Figure = None


class Flag(_Block):
    flag: str
    cells: str = ""
    detail: str = ""


class Cell(BaseModel):
    """One (attack, ε, transfer source) cell aggregated over the training seeds. Fields of older mmrb versions
    (e.g. check_robust_accuracy) are kept as they are: cells.csv lists them after these."""

    model_config = ConfigDict(extra="allow")

    attack: str
    attack_name: str
    attack_source: str = ""
    modality: Modality
    epsilon: float | None = None
    transfer_source: str = ""
    n: Count = None
    seeds: Count = None
    clean_accuracy: Figure = None
    clean_accuracy_ci_low: Figure = None
    clean_accuracy_ci_high: Figure = None
    robust_accuracy: Figure = None
    robust_accuracy_std: Figure = None
    robust_accuracy_ci_low: Figure = None
    robust_accuracy_ci_high: Figure = None
    robust_accuracy_normal: Figure = None
    robust_accuracy_normal_ci_low: Figure = None
    robust_accuracy_normal_ci_high: Figure = None
    robust_accuracy_abnormal: Figure = None
    robust_accuracy_abnormal_ci_low: Figure = None
    robust_accuracy_abnormal_ci_high: Figure = None
    n_normal: Count = None
    n_abnormal: Count = None
    as_run_robust_accuracy: Figure = None
    not_converged: bool | None = None
    check_rounds: Count = None
    check_steps: Count = None
    check_restarts: Count = None
    flags: str = Field("", description="soundness flags raised on this cell, ';'-separated")
    robust_f1: Figure = None
    robust_f1_hw: Figure = None  # entries before bounded intervals: the seed t half-width
    robust_f1_ci_low: Figure = None
    robust_f1_ci_high: Figure = None
    auc: Figure = None
    auc_ci_low: Figure = None
    auc_ci_high: Figure = None
    robust_auc: Figure = None
    robust_auc_ci_low: Figure = None
    robust_auc_ci_high: Figure = None
    attack_success_rate: Figure = None
    attack_success_rate_ci_low: Figure = None
    attack_success_rate_ci_high: Figure = None
    interval: str | None = Field(None, description="how the intervals were made: bootstrap (seeds × samples) or seeds")
    steps: Count = None
    queries: Count = None
    threshold: Figure = None  # the operating threshold on P(abnormal), mean over seeds
    clean_sensitivity: Figure = None
    clean_sensitivity_ci_low: Figure = None
    clean_sensitivity_ci_high: Figure = None
    clean_specificity: Figure = None
    clean_specificity_ci_low: Figure = None
    clean_specificity_ci_high: Figure = None
    robust_sensitivity: Figure = None  # at the operating threshold (benchmark.evaluation.clinical); absent in older entries
    robust_sensitivity_ci_low: Figure = None
    robust_sensitivity_ci_high: Figure = None
    robust_specificity: Figure = None
    robust_specificity_ci_low: Figure = None
    robust_specificity_ci_high: Figure = None
    false_reassurance: Count = None
    false_alarm: Count = None
    naive_robust_accuracy: Figure = None  # a defended model (docs/defenses.md): the naive attack's figure; the
    masking: Figure = None  # adaptive one is robust_accuracy; masking = naive − adaptive
    probe: str | None = Field(None, description="the attack's soundness-probe role (the registry's `probe` trait)")
    decisions_changed: Figure = None  # the text floor's cell: share of decisions some replacement image changes


#: The fields of a cell, in the order cells.csv lists them.
CELL_FIELDS = tuple(Cell.model_fields)


class BrokenSample(_Block):
    """A test sample an attack broke (clean right, attacked wrong): what the samples browser shows."""

    sample_id: str
    seed: int
    attack: str
    kind: str = Field("", description="what it shows: rank cell, text attack, joint attack (or what stood in)")
    label: int
    clean_prediction: int
    adversarial_prediction: int
    report: str = ""
    adversarial_report: str = ""
    images: dict[str, str] = Field(default_factory=dict, description="clean, adversarial, difference: PNG data URIs")


class Evidence(_Block):
    """Per-sample evidence of the rank cell (benchmark.evaluation.evidence): the paired test of adjacent entries reads it."""

    samples: str = Field(description="digest of the scored sample ids, in order: entries compare only on the same samples")
    rank_correct: dict[str, str] = Field(description="training seed -> '1'/'0' per sample: the rank cell's decision right")
    broken: list[BrokenSample] = []


class Corruption(_Block):
    """The corruption track: per kind the error summed over the severities the protocol runs (mean over seeds), each
    kind's modality (protocol ≥ 7; older entries: image kinds by name) and the clean error (the relative mCE)."""

    baseline: str | None = None
    errors: dict[str, float]
    mean_ce: float
    modalities: dict[str, str] = Field(default_factory=dict)
    severities: Count = None
    clean_error: Figure = None


class Reassurance(_Block):
    """The targeted false-reassurance attack (abnormal → normal at the threshold): sensitivity under it, with its
    interval, and the abnormal studies it made the model miss (mean per seed)."""

    attack: str
    robust_sensitivity: Figure = None
    robust_sensitivity_ci_low: Figure = None
    robust_sensitivity_ci_high: Figure = None
    missed: Figure = None


class OperatingPoint(_Block):
    """The rank cell at the decision threshold set on `calibration_n` clean held-out studies at `specificity`
    (protocol ≥ 7: the threshold, clean and robust figures with intervals, and the false-reassurance attack)."""

    specificity: float
    threshold: Figure = None
    calibration_n: Count = None
    clean_sensitivity: Figure = None
    clean_sensitivity_ci_low: Figure = None
    clean_sensitivity_ci_high: Figure = None
    clean_specificity: Figure = None
    clean_specificity_ci_low: Figure = None
    clean_specificity_ci_high: Figure = None
    robust_sensitivity: Figure = None
    robust_sensitivity_ci_low: Figure = None
    robust_sensitivity_ci_high: Figure = None
    robust_specificity: Figure = None
    robust_specificity_ci_low: Figure = None
    robust_specificity_ci_high: Figure = None
    false_reassurance: Figure = None
    false_alarm: Figure = None
    reassurance: Reassurance | None = None


class Reliance(_Block):
    """The modality-reliance index (benchmark.evaluation.reliance) at `epsilon`. Protocol ≥ 6 (`definition:
    only_joint`): the share of (seed, sample) pairs that only the joint attack breaks, with its two-level bootstrap
    interval (`low`, `high`), the counts and, for a saturated case, the words (`said`). Earlier entries: the joint
    attack's drop minus the larger single-modality drop, mean over seeds ± the seed t half-width."""

    epsilon: float
    definition: str = "drop"
    index: Figure = None
    low: Figure = None
    high: Figure = None
    halfwidth: Figure = None
    only_joint: Count = None
    missed: Count = None
    pairs: Count = None
    said: str | None = None
    joint_drop: Figure = None
    single_drop: Figure = None
    seeds: Count = None


class Entry(_Block):
    """One model's entry in one protocol version's leaderboard."""

    entry_version: int
    name: str = Field(min_length=1, description="unique per protocol version")
    protocol_version: str = Field(description="names the folder: <board>/v3/entries/<name>.json for protocol 3")
    card: dict[str, Any] = Field(description="the model card as submitted (benchmark.submission.card.Card)")
    model: ModelFacts
    digests: Digests
    provenance: Provenance
    rank: RankFigure | None = Field(description="null: no rank figure (a model without image input)")
    clean: CleanFigure | None
    floor: FloorFigure | None
    flags: list[Flag] = []
    cells: list[Cell] = []
    evidence: Evidence | None = None  # absent in entries made before the per-sample evidence
    corruption: Corruption | None = None
    operating_point: OperatingPoint | None = None
    reliance: Reliance | None = None  # absent in entries made before the index was recorded (the board then computes
    # a point estimate from the cells' seed means)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, document: Any) -> Any:
        """A version-1 entry read as version 2: its cells' probe roles from `V1_PROBES` (nothing else changed)."""
        if isinstance(document, dict) and document.get("entry_version") == 1:
            cells = [{**c, "probe": V1_PROBES.get((c.get("attack_source") or "mmrb", c.get("attack_name")))}
                     if isinstance(c, dict) else c for c in document.get("cells") or []]
            document = {**document, "entry_version": ENTRY_VERSION, "cells": cells}
        return document

    @field_validator("entry_version")
    @classmethod
    def _readable_version(cls, version: int) -> int:
        if version != ENTRY_VERSION:
            raise ValueError(f"is {version}; this mmrb reads versions 1 to {ENTRY_VERSION} (upgrade mmrb for newer "
                             "entries)")
        return version

    @field_validator("protocol_version", mode="before")
    @classmethod
    def _version_text(cls, version: Any) -> Any:
        return str(version) if isinstance(version, int) and not isinstance(version, bool) else version


FIX = ("entries are written by `mmrb submit` and never edited: restore the file from git, or submit the model "
       "again (schema: benchmark.board.entry.Entry)")


def read_entry(path: str | Path) -> dict[str, Any]:
    """The entry document at `path`, validated by `Entry`; a BoardError naming the file, each bad field and the fix."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BoardError(f"{path}: not a readable JSON entry: {exc}; {FIX}") from None
    try:
        return Entry.model_validate(document).model_dump(exclude_unset=True)
    except ValidationError as exc:
        problems = "\n".join(_problem(error) for error in exc.errors())
        raise BoardError(f"{path}: not a valid leaderboard entry\n{problems}\n({FIX})") from None


def _problem(error: dict[str, Any]) -> str:
    """One line of a validation error: the dotted field, what is wrong, and what was found."""
    field = ".".join(map(str, error["loc"])) or "(document)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field; check its spelling"
    elif not error["type"].startswith("value_error"):
        message += f" (found {error['input']!r})"[:200]
    return f"  field '{field}': {message}"


def load_entries(directory: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every entry under directory/v<protocol_version>/entries/*.json (or <protocol_version>/entries/), by protocol
    version, newest version first, with the outside evaluations of each applied (benchmark.submission.evaluations)."""
    from benchmark.board.evaluations import apply_evaluations

    board: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(directory).glob("*/entries/*.json")):
        entry = read_entry(path)
        version, folder = entry["protocol_version"], path.parent.parent.name
        if folder not in (version, f"v{version}"):
            raise BoardError(f"{path}: field 'protocol_version' is {version!r} but the entry lies in the folder "
                             f"{folder!r} (entries of protocol P lie in vP/entries/)")
        entries = board.setdefault(version, [])
        if any(e["name"] == entry["name"] for e in entries):
            raise BoardError(f"{path}: another entry of protocol {version} is already named {entry['name']!r}; "
                             "names are unique per protocol version")
        entries.append(entry)
    for version, entries in board.items():
        apply_evaluations(Path(directory), version, entries)
    return {version: board[version] for version in sorted(board, key=_version_key, reverse=True)}


def _version_key(version: str) -> tuple:
    """Natural order of protocol versions: "10" after "9", "3a" after "3"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.findall(r"\d+|\D+", version))
