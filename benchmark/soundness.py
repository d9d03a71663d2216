"""The Carlini et al. (2019) evaluation checklist, automated on aggregated results: each flag names the cells
that raised it, so a reader sees which published numbers an attack could still lower.

Works on `benchmark.aggregate.aggregate` output (one row per model, attack, attack source, modality, ε and
transfer source, with `robust_accuracy` and its 95 % interval) plus optional columns: `agreement_gap` and
`compare_with`, `check_robust_accuracy` (the same attack re-run stronger), `zero_gradient` and
`nonfinite_gradient` (benchmark.attacks.probes.gradient_health, on the model's clean row). The probes
(`random_noise`, `image_replacement`) appear as ordinary rows; their attack labels are passed in.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.errors import MmrbError

FLAGS = ("rising_with_eps", "rising_with_steps", "black_box_stronger", "floor_not_reached",
         "library_disagreement", "masked_gradients", "noise_as_strong", "constant_prediction")
#: Flags that leave a leaderboard entry unranked (listed with the flag's detail as the reason).
UNRANKING_FLAGS = ("constant_prediction",)
COLUMNS = ("flag", "model", "cells", "detail")
REQUIRED = ("model", "attack", "modality", "epsilon", "robust_accuracy", "robust_accuracy_ci_low",
            "robust_accuracy_ci_high")
OPTIONAL = ("attack_source", "transfer_source", "compare_with", "agreement_gap", "check_robust_accuracy",
            "zero_gradient", "nonfinite_gradient", "unconverged_robust_accuracy", "clean_accuracy")
#: Attack names (case-insensitive substrings) that query only the model's outputs: score- or decision-based.
BLACK_BOX_NAMES = ("square", "hopskipjump", "boundary", "zoo", "simba", "geoda", "signopt", "pixel", "threshold")
#: Sources whose image attacks are single white-box attacks (mmrb's own are composites or feature-space).
WHITE_BOX_SOURCES = ("art", "torchattacks")
CELL_SEPARATOR = ", "
#: Float slack for "beyond the interval": bounds that touch up to rounding do not raise a flag.
TOL = 1e-9


def cell_label(attack: str, epsilon: float | None = None, transfer_source: str = "") -> str:
    """How a flag names a cell, e.g. "ProjectedGradientDescent ε=0.2 from early_fusion"; the key of
    `flags_by_cell` (a ", " inside a name is written "," so that lists of labels stay readable)."""
    label = str(attack)
    if epsilon is not None and pd.notna(epsilon) and epsilon != "":
        label += f" ε={float(epsilon):.4g}"
    if transfer_source and pd.notna(transfer_source):
        label += f" from {transfer_source}"
    return label.replace(CELL_SEPARATOR, ",")


def _label(row: pd.Series) -> str:
    return cell_label(row["attack"], row["epsilon"], row["transfer_source"])


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _with_interval(row: pd.Series) -> str:
    return f"{_pct(row['robust_accuracy'])} [{100 * row['robust_accuracy_ci_low']:.1f}, " \
           f"{100 * row['robust_accuracy_ci_high']:.1f}]"


def _prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with numeric ε and accuracies, "" for missing transfer sources, and every optional column."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise MmrbError(f"soundness flags need aggregated results (benchmark.aggregate.aggregate); the frame lacks "
                        f"column(s) {', '.join(missing)}")
    frame = frame.copy()
    for column in OPTIONAL:
        if column not in frame.columns:
            frame[column] = np.nan
    for column in ("epsilon", "robust_accuracy", "robust_accuracy_ci_low", "robust_accuracy_ci_high",
                   "agreement_gap", "check_robust_accuracy", "zero_gradient", "nonfinite_gradient",
                   "unconverged_robust_accuracy", "clean_accuracy"):
        frame[column] = pd.to_numeric(frame[column].replace("", np.nan), errors="coerce")
    for column in ("transfer_source", "attack_source", "compare_with"):
        frame[column] = frame[column].fillna("").astype(str)
    frame["eps_key"] = frame["epsilon"].round(9)
    return frame.reset_index(drop=True)


def _is_black_box(attack: str, black_box_attacks: Sequence[str]) -> bool:
    lowered = attack.lower()
    return attack in black_box_attacks or any(name in lowered for name in BLACK_BOX_NAMES)


def _flag(flag: str, model: str, cells: Iterable[str], detail: str) -> dict[str, str]:
    return {"flag": flag, "model": model, "cells": CELL_SEPARATOR.join(dict.fromkeys(cells)), "detail": detail}


def soundness_flags(frame: pd.DataFrame, noise_attacks: Sequence[str], floor_attacks: Sequence[str],
                    large_eps: float = 0.5, gap_pp: float = 0.02,
                    black_box_attacks: Sequence[str] = ()) -> pd.DataFrame:
    """One row per raised flag (columns flag, model, cells, detail); `noise_attacks` / `floor_attacks`: the
    labels of the random_noise / image_replacement rows; `black_box_attacks`: labels of black-box attacks
    besides those named like one (BLACK_BOX_NAMES)."""
    data = _prepared(frame)
    probes = set(noise_attacks) | set(floor_attacks)
    attacks = data[~data["attack"].isin(probes)]
    image = attacks[(attacks["modality"] == "image") & attacks["eps_key"].notna()]
    rows = [*_rising_with_eps(attacks), *_rising_with_steps(attacks),
            *_black_box_stronger(image, tuple(black_box_attacks)),
            *_floor_not_reached(image, data[data["attack"].isin(floor_attacks)], large_eps),
            *_library_disagreement(data, gap_pp), *_masked_gradients(data),
            *_noise_as_strong(image, data[data["attack"].isin(noise_attacks)])]
    rows += _constant_prediction(data)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def flags_by_cell(flags: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """(model, cell label) -> the flags naming that cell, for tables to mark it (labels: `cell_label`)."""
    out: dict[tuple[str, str], list[str]] = {}
    for row in flags.itertuples(index=False):
        for cell in str(row.cells).split(CELL_SEPARATOR):
            names = out.setdefault((row.model, cell), [])
            if row.flag not in names:
                names.append(row.flag)
    return out


def _rising_with_eps(attacks: pd.DataFrame) -> list[dict[str, str]]:
    """A larger ε whose interval lies wholly above a smaller ε's: the attack stalled or lost its way."""
    out = []
    bounded = attacks[attacks["eps_key"].notna()]
    for (model, *_), group in bounded.groupby(["model", "attack", "attack_source", "modality", "transfer_source"],
                                               sort=False):
        group = group.sort_values("eps_key")
        for i, small in enumerate(group.itertuples(index=False)):
            for large in group.iloc[i + 1:].itertuples(index=False):
                if large.eps_key > small.eps_key and large.robust_accuracy_ci_low > small.robust_accuracy_ci_high + TOL:
                    s, lg = pd.Series(small._asdict()), pd.Series(large._asdict())
                    out.append(_flag("rising_with_eps", model, [_label(s), _label(lg)],
                                     f"robust accuracy rises from {_with_interval(s)} at ε={small.epsilon:.4g} to "
                                     f"{_with_interval(lg)} at ε={large.epsilon:.4g}"))
    return out


def _rising_with_steps(attacks: pd.DataFrame) -> list[dict[str, str]]:
    """The same attack re-run stronger lowers robust accuracy: aggregate.publish_converged's `not_converged`
    verdict where the frame has one (paired drop beyond the test-set half-width), else a drop beyond half the
    cell's interval width."""
    out = []
    for _, row in attacks[attacks["check_robust_accuracy"].notna()].iterrows():
        as_run = row["unconverged_robust_accuracy"] if pd.notna(row.get("unconverged_robust_accuracy")) \
            else row["robust_accuracy"]  # publish_converged swaps the published figure for the stronger one
        drop = as_run - row["check_robust_accuracy"]
        verdict = str(row.get("not_converged", "")).lower()
        if verdict in ("true", "false"):
            raised, limit = verdict == "true", "the test-set half-width"
        else:
            half = (row["robust_accuracy_ci_high"] - row["robust_accuracy_ci_low"]) / 2
            raised, limit = drop > half + TOL, f"the ±{100 * half:.1f} pp interval"
        if raised:
            out.append(_flag("rising_with_steps", row["model"], [_label(row)],
                             f"not converged: {_pct(as_run)} as run, {_pct(row['check_robust_accuracy'])} "
                             f"re-run stronger (−{100 * drop:.1f} pp, more than {limit})"))
    return out


def _black_box_stronger(image: pd.DataFrame, black_box_attacks: tuple[str, ...]) -> list[dict[str, str]]:
    """A transfer or black-box cell below every white-box gradient cell on the same model and ε, beyond the
    intervals: the gradients mislead the white-box attacks (masking)."""
    out = []
    for (model, _), group in image.groupby(["model", "eps_key"], sort=False):
        own = group["transfer_source"].isin(["", model])
        black = group["attack"].map(lambda a: _is_black_box(a, black_box_attacks))
        white = group[own & ~black & group["attack_source"].isin(WHITE_BOX_SOURCES)]
        if white.empty:
            continue
        lowest_white = white["robust_accuracy_ci_low"].min()
        best = white.loc[white["robust_accuracy"].idxmin()]
        for _, row in group[~own | black].iterrows():
            if row["robust_accuracy_ci_high"] < lowest_white - TOL:
                kind = "transfer" if row["transfer_source"] else "black-box"
                out.append(_flag("black_box_stronger", model, [_label(row), *map(_label, (r for _, r in white.iterrows()))],
                                 f"{kind} {_with_interval(row)} is below every white-box gradient cell (strongest: "
                                 f"{_label(best)} {_with_interval(best)})"))
    return out


def _floor_not_reached(image: pd.DataFrame, floors: pd.DataFrame, large_eps: float) -> list[dict[str, str]]:
    """An image attack at a large ε that stays above the model's text floor beyond its interval."""
    out = []
    for model, group in image[(image["transfer_source"] == "") & (image["eps_key"] >= large_eps - 1e-9)].groupby(
            "model", sort=False):
        model_floors = floors[(floors["model"] == model) & (floors["transfer_source"] == "")]
        if model_floors.empty:
            continue
        floor = model_floors.loc[model_floors["robust_accuracy"].idxmin()]
        for _, row in group.iterrows():
            if row["robust_accuracy_ci_low"] > floor["robust_accuracy"] + TOL:
                out.append(_flag("floor_not_reached", model, [_label(row), _label(floor)],
                                 f"{_with_interval(row)} at ε={row['epsilon']:.4g}, above the text floor "
                                 f"{_pct(floor['robust_accuracy'])} that image replacement reaches"))
    return out


def _library_disagreement(data: pd.DataFrame, gap_pp: float) -> list[dict[str, str]]:
    """Two libraries' runs of the same attack differ by more than `gap_pp` (a fraction: 0.02 = 2 pp)."""
    out = []
    for _, row in data[data["agreement_gap"].abs() > gap_pp + TOL].iterrows():
        other = cell_label(row["compare_with"], row["epsilon"], row["transfer_source"]) if row["compare_with"] else ""
        out.append(_flag("library_disagreement", row["model"], [_label(row)] + ([other] if other else []),
                         f"{row['attack']} − {row['compare_with'] or 'its comparison'} = {100 * row['agreement_gap']:+.1f} pp "
                         f"(allowed ±{100 * gap_pp:g} pp)"))
    return out


def _masked_gradients(data: pd.DataFrame) -> list[dict[str, str]]:
    """Zero or non-finite input gradients at clean inputs: gradient attacks cannot see the model."""
    out = []
    bad = data[(data["zero_gradient"] > 0) | (data["nonfinite_gradient"] > 0)]
    for model, group in bad.groupby("model", sort=False):
        out.append(_flag("masked_gradients", model, map(_label, (r for _, r in group.iterrows())),
                         f"input gradient at clean inputs exactly zero for {_pct(group['zero_gradient'].fillna(0).max())} and "
                         f"non-finite for {_pct(group['nonfinite_gradient'].fillna(0).max())} of the samples"))
    return out


def _noise_as_strong(image: pd.DataFrame, noise: pd.DataFrame) -> list[dict[str, str]]:
    """Random sign noise of the same size within an attack's interval of it, or below: the attack is no better
    than noise. One flag per noise row, naming every such attack."""
    out = []
    own = image[image["transfer_source"] == ""]
    for _, probe in noise[(noise["transfer_source"] == "") & noise["eps_key"].notna()].iterrows():
        same = own[(own["model"] == probe["model"]) & (own["eps_key"] == probe["eps_key"])]
        weak = same[probe["robust_accuracy"] <= same["robust_accuracy_ci_high"] + TOL]
        # noise that leaves the clean accuracy compared with an attack that leaves it too says nothing: a model
        # can be robust at a small ε. Flag only attacks that the noise matches in an effect they both have.
        weak = weak[~(weak["robust_accuracy"] >= weak["clean_accuracy"] - TOL)]  # unknown clean accuracy: kept
        if not weak.empty:
            attacks = "; ".join(f"{r['attack']} {_with_interval(r)}" for _, r in weak.iterrows())
            out.append(_flag("noise_as_strong", probe["model"], [*map(_label, (r for _, r in weak.iterrows())),
                                                                  _label(probe)],
                             f"random noise of size ε={probe['epsilon']:.4g} leaves {_pct(probe['robust_accuracy'])}, "
                             f"within or below the interval of {attacks}"))
    return out


def _constant_prediction(data: pd.DataFrame) -> list[dict[str, str]]:
    """On clean data (the `none` cells) a class is never recognised: its recall is 0 % (and the other's 100 %,
    for a model that predicts one class only). Its accuracy is then the class balance, not what it learned."""
    out = []
    clean = data[(data["modality"] == "none") & (data["transfer_source"] == "")]
    for _, row in clean.iterrows():
        recalls = {name: pd.to_numeric(row.get(f"clean_accuracy_{name}"), errors="coerce")
                   for name in ("normal", "abnormal")}
        never = [name for name, value in recalls.items() if pd.notna(value) and value <= TOL]
        if never:
            shown = ", ".join(f"{name} {_pct(value)}" for name, value in recalls.items() if pd.notna(value))
            out.append(_flag("constant_prediction", row["model"], [_label(row)],
                             f"clean recall of class {' and '.join(never)} is 0 % (recall: {shown}): the model "
                             f"(nearly) always predicts one class; its {_pct(row['robust_accuracy'])} clean accuracy "
                             f"is the class balance"))
    return out
