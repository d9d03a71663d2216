"""The Carlini et al. (2019) evaluation checklist, automated on aggregated results: each flag names the cells
that raised it, so a reader sees which published numbers an attack could still lower.

Works on `benchmark.evaluation.aggregate.aggregate` output (one row per model, attack, attack source, modality, ε and
transfer source, with `robust_accuracy` and its 95 % interval) plus optional columns: `agreement_gap` and
`compare_with`, `as_run_robust_accuracy` and `not_converged` (the escalating convergence check), `zero_gradient` and
`nonfinite_gradient` (benchmark.attacks.probes.gradient_health, on the model's clean row), `decisions_changed` (the
text floor's rows: how much the image still decides). The probes (`random_noise`, `image_replacement`) appear as
ordinary rows; their attack labels are passed in.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.attacks.registry import AttackInfo, traits
from benchmark.evaluation.flags import BLIND_FLAG, BLIND_SAYS, BLIND_SHARE, FLAGS, UNRANKING_FLAGS  # noqa: F401  (re-exported)
from benchmark.store.record import COLUMNS as RESULT_COLUMNS
from benchmark.store.record import NUMERIC, TEXT
from mmrb.core.draws import EOT_DRAWS, SCORING_DRAWS
from mmrb.core.errors import MmrbError

#: A class recall on clean data below this (at any training seed) marks a (nearly) one-class model.
RECALL_FLOOR = 0.10
#: One-sided normal quantile of the chance-level check (95 %).
CHANCE_Z = 1.645
COLUMNS = ("flag", "model", "cells", "detail")
#: What benchmark.evaluation.aggregate adds to a cell's result columns that the flags read: the 95 % interval, the
#: convergence verdict, the worst training seed's clean recalls.
AGGREGATED = ("robust_accuracy_ci_low", "robust_accuracy_ci_high", "not_converged", "worst_seed_min_recall",
              "worst_seed_balanced_accuracy")
REQUIRED = ("model", "attack", "modality", "epsilon", "robust_accuracy", "robust_accuracy_ci_low",
            "robust_accuracy_ci_high")
#: Every other column a flag may read (benchmark.store.record.ResultRecord's, then AGGREGATED): NaN where absent.
OPTIONAL = tuple(c for c in (*RESULT_COLUMNS, *AGGREGATED) if c not in REQUIRED)
_NUMBERS = (*NUMERIC, *(c for c in AGGREGATED if c != "not_converged"))
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
    """A copy with every optional column, the numeric ones as numbers (ε, accuracies) and the text ones as text ("" for
    a missing transfer source)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise MmrbError(f"soundness flags need aggregated results (benchmark.evaluation.aggregate.aggregate); the frame lacks "
                        f"column(s) {', '.join(missing)}")
    frame = frame.reindex(columns=[*frame.columns, *(c for c in OPTIONAL if c not in frame.columns)])
    frame = frame.assign(**{c: pd.to_numeric(frame[c].replace("", np.nan), errors="coerce") for c in _NUMBERS},
                         **{c: frame[c].fillna("").astype(str) for c in TEXT})
    frame["eps_key"] = frame["epsilon"].round(9)
    return frame.reset_index(drop=True)


def _traits(row: pd.Series) -> AttackInfo:
    """The registry traits of a row's attack (by its name in the library, else its label)."""
    return traits(row.get("attack_source", ""), row.get("attack_name") or row["attack"])


def _flag(flag: str, model: str, cells: Iterable[str], detail: str) -> dict[str, str]:
    return {"flag": flag, "model": model, "cells": CELL_SEPARATOR.join(dict.fromkeys(cells)), "detail": detail}


def soundness_flags(frame: pd.DataFrame, noise_attacks: Sequence[str], floor_attacks: Sequence[str],
                    large_eps: float = 0.5, gap_pp: float = 0.02,
                    black_box_attacks: Sequence[str] = ()) -> pd.DataFrame:
    """One row per raised flag (columns flag, model, cells, detail); `noise_attacks` / `floor_attacks`: the
    labels of the random_noise / image_replacement rows; `black_box_attacks`: labels of black-box attacks
    besides those the attack registry knows as black-box."""
    data = _prepared(frame)
    probes = set(noise_attacks) | set(floor_attacks)
    attacks = data[~data["attack"].isin(probes)]
    image = attacks[(attacks["modality"] == "image") & attacks["eps_key"].notna()]
    rows = [*_rising_with_eps(attacks), *_rising_with_steps(attacks),
            *_black_box_stronger(image, tuple(black_box_attacks)),
            *_floor_not_reached(image, data[data["attack"].isin(floor_attacks)], large_eps),
            *_library_disagreement(data, gap_pp), *_masked_gradients(data), *_randomised(data),
            *_noise_as_strong(image, data[data["attack"].isin(noise_attacks)]),
            *_image_ignored(image, data[data["attack"].isin(floor_attacks)])]
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
    """The escalating convergence check hit its cap while the figure was still falling (aggregate.publish_converged's
    `not_converged`): more steps and restarts might lower it further."""
    out = []
    capped = attacks[attacks["not_converged"].astype(str).str.lower() == "true"]
    for _, row in capped.iterrows():
        steps = f"up to {row['check_steps']:.0f} steps, " if pd.notna(row["check_steps"]) else ""
        out.append(_flag("rising_with_steps", row["model"], [_label(row)],
                         f"not converged: the escalating check hit its cap ({row['check_rounds']:.0f} rounds, {steps}"
                         f"{row['check_restarts']:.0f} restarts on the samples still robust) while the figure still fell: "
                         f"{_pct(row['as_run_robust_accuracy'])} as run, {_pct(row['robust_accuracy'])} after the check"))
    return out


def _black_box_stronger(image: pd.DataFrame, black_box_attacks: tuple[str, ...]) -> list[dict[str, str]]:
    """A transfer or black-box cell below every white-box gradient cell on the same model and ε, beyond the
    intervals: the gradients mislead the white-box attacks (masking)."""
    out = []
    for (model, _), group in image.groupby(["model", "eps_key"], sort=False):
        own = group["transfer_source"].isin(["", model])
        known = group.apply(_traits, axis=1)
        black = group["attack"].isin(black_box_attacks) | known.map(lambda t: t.black_box)
        white = group[own & ~black & known.map(lambda t: t.white_box)]
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


def _image_ignored(image: pd.DataFrame, floors: pd.DataFrame) -> list[dict[str, str]]:
    """Robust because blind: at some ε the strongest own image attack's interval holds the model's text floor, and
    replacing the image changes at most `BLIND_SHARE` of the decisions (the floor's `decisions_changed`, the largest
    over its floor cells): the figure is that of a model that no longer looks at its image, not of one that withstands
    image attacks. Names every own image cell at such an ε and the floor; does not unrank (flags.BLIND_FLAG)."""
    out = []
    own = image[(image["transfer_source"] == "") & image["robust_accuracy"].notna()]
    for model, group in own.groupby("model", sort=False):
        found = floors[(floors["model"] == model) & (floors["transfer_source"] == "") & floors["decisions_changed"].notna()]
        if found.empty or found["decisions_changed"].max() > BLIND_SHARE + TOL:
            continue
        floor, changed = found.loc[found["robust_accuracy"].idxmin()], found["decisions_changed"].max()
        named, said = [], []
        for _, at_eps in group.groupby("eps_key", sort=True):
            strongest = at_eps.loc[at_eps["robust_accuracy"].idxmin()]
            if strongest["robust_accuracy_ci_low"] - TOL <= floor["robust_accuracy"] <= strongest["robust_accuracy_ci_high"] + TOL:
                named += [_label(r) for _, r in at_eps.iterrows()]
                said.append(f"{_label(strongest)} {_with_interval(strongest)}")
        if named:
            clean = f" (clean {_pct(floor['clean_accuracy'])})" if pd.notna(floor["clean_accuracy"]) else ""
            out.append(_flag(BLIND_FLAG, model, [*named, _label(floor)],
                             f"{BLIND_SAYS}: the strongest image attack per ε ({'; '.join(said)}) lies within its interval of "
                             f"the text floor {_pct(floor['robust_accuracy'])}{clean}, and replacing the image changes "
                             f"{_pct(changed)} of the decisions (at most {_pct(BLIND_SHARE)})"))
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
    """Zero or non-finite input gradients at clean inputs: gradient attacks cannot see the model (`masked_gradients`).
    Where BPDA (defenses.adaptive: rounding steps passed straight through) restores a gradient, the adaptive
    attacks (the standard evaluation, mmrb's pgd) see through it and the flag says so; where it does not, or the
    gradient is non-finite, `masking_unresolved` is raised too: no white-box figure of the model can be trusted and
    the leaderboard lists it unranked (UNRANKING_FLAGS)."""
    out = []
    bad = data[(data["zero_gradient"] > 0) | (data["nonfinite_gradient"] > 0)]
    for model, group in bad.groupby("model", sort=False):
        cells = list(map(_label, (r for _, r in group.iterrows())))
        zero, nonfinite = group["zero_gradient"].fillna(0).max(), group["nonfinite_gradient"].fillna(0).max()
        bpda = group["zero_gradient_bpda"].max()
        known = pd.notna(bpda)
        resolved = known and bpda == 0 and nonfinite == 0
        answer = ("BPDA (straight-through rounding) restores it on every sample: the standard evaluation and mmrb's "
                  "pgd attack through it" if resolved else
                  f"BPDA leaves it zero on {_pct(bpda)}" if known else "BPDA was not measured")
        out.append(_flag("masked_gradients", model, cells,
                         f"input gradient at clean inputs exactly zero for {_pct(zero)} and non-finite for "
                         f"{_pct(nonfinite)} of the samples; {answer}"))
        if not resolved:
            out.append(_flag("masking_unresolved", model, cells,
                             f"gradient attacks are blind to this model ({answer}; non-finite for {_pct(nonfinite)}): "
                             "its white-box figures are upper bounds that no adaptive attack here could check, so it is "
                             "not ranked; make the input pipeline differentiable, or submit a stronger evaluation "
                             "(mmrb evaluate-entry)"))
    return out


def _randomised(data: pd.DataFrame) -> list[dict[str, str]]:
    """Outputs that differ between two passes on the same inputs: a randomised model, attacked with EOT."""
    out = []
    for model, group in data[data["stochastic"] > 0].groupby("model", sort=False):
        out.append(_flag("randomised_model", model, map(_label, (r for _, r in group.iterrows())),
                         "two forward passes on the same inputs differ: its gradient attacks are followed by an "
                         f"adaptive pass with EOT ({EOT_DRAWS} draws per step) at full strength, and every figure is "
                         f"the majority decision of {SCORING_DRAWS} draws (a lucky draw does not count as robust)"))
    return out


def _noise_as_strong(image: pd.DataFrame, noise: pd.DataFrame) -> list[dict[str, str]]:
    """Random sign noise of the same size within an attack's interval of it, or below: the attack is no better
    than noise. One flag per noise row, naming every such attack."""
    out = []
    own = image[image["transfer_source"] == ""]
    if "attack_name" in own:  # an attack aimed at the operating threshold is not scored by its argmax accuracy
        own = own[own["attack_name"] != "operating_point"]
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


def chance_bound(n_normal: float, n_abnormal: float) -> float:
    """The balanced accuracy a model without skill stays at or below with 95 % probability on `n_normal` +
    `n_abnormal` test samples: 0.5 + z · sqrt((1/n_normal + 1/n_abnormal) / 16), the largest spread (a guesser that
    says "abnormal" half the time)."""
    return 0.5 + CHANCE_Z * float(np.sqrt((1 / n_normal + 1 / n_abnormal) / 16))


def _constant_prediction(data: pd.DataFrame) -> list[dict[str, str]]:
    """On clean data (the `none` cells), at the seed mean or at any training seed: a class recall below
    `RECALL_FLOOR` (`constant_prediction`: the model (nearly) always predicts the other class, so its accuracy is the
    class balance), else a balanced accuracy within what a model without skill reaches (`chance_level`,
    `chance_bound`). Both leave the model unranked: its figures measure no learned decision."""
    out = []
    clean = data[(data["modality"] == "none") & (data["transfer_source"] == "")]
    for _, row in clean.iterrows():
        recalls = {name: pd.to_numeric(row.get(f"clean_accuracy_{name}"), errors="coerce")
                   for name in ("normal", "abnormal")}
        if any(pd.isna(value) for value in recalls.values()):
            continue
        shown = ", ".join(f"{name} {_pct(value)}" for name, value in recalls.items())
        worst_recall = np.nanmin([min(recalls.values()), row["worst_seed_min_recall"]])
        balanced = float(np.mean(list(recalls.values())))
        worst_balanced = np.nanmin([balanced, row["worst_seed_balanced_accuracy"]])
        seeds = "" if worst_recall == min(recalls.values()) else " at one of its training seeds"
        if worst_recall < RECALL_FLOOR - TOL:
            out.append(_flag("constant_prediction", row["model"], [_label(row)],
                             f"a clean class recall is {_pct(worst_recall)}{seeds}, below {_pct(RECALL_FLOOR)} "
                             f"(seed-mean recall: {shown}): the model (nearly) always predicts one class; its "
                             f"{_pct(row['robust_accuracy'])} clean accuracy is mostly the class balance"))
            continue
        if pd.isna(row["n_normal"]) or pd.isna(row["n_abnormal"]) or min(row["n_normal"], row["n_abnormal"]) < 1:
            continue
        bound = chance_bound(row["n_normal"], row["n_abnormal"])
        if worst_balanced <= bound + TOL:
            seeds = "" if worst_balanced == balanced else " at one of its training seeds"
            out.append(_flag("chance_level", row["model"], [_label(row)],
                             f"clean balanced accuracy {_pct(worst_balanced)}{seeds} is within chance (a model "
                             f"without skill reaches up to {_pct(bound)} on {int(row['n_normal'])} + "
                             f"{int(row['n_abnormal'])} test samples, 95 %); seed-mean recall: {shown}"))
    return out
