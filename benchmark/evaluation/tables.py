"""Result tables: the paper's (Table 1, attacks × models; Tables 2–3, transfer matrices), robust accuracy with
per-class figures and the convergence verdict, the per-modality attribution (clean / image / text / joint /
floor), and the soundness flags.

Every figure is the mean over training seeds [its 95 % interval, inside the metric's range] (benchmark.evaluation.
aggregate; how each interval is made: `interval_legend`)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.evaluation.aggregate import aggregate, with_interval
from benchmark.evaluation.baselines import baseline_table, below_constant, below_text_only, operating_table
from benchmark.evaluation.corruption_summary import corruption_rows, corruption_table, rank_comparison
from benchmark.evaluation.evidence import TRANSFER_NAME, read_samples
from benchmark.evaluation.joint_pairs import joint_comparison_markdown
from benchmark.evaluation.reliance import reliance_table, shown
from mmrb.core.stats import mean_interval


def _frame(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else aggregate(rows)


def _pct(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * float(value):.0f}"


def accuracy_cell(row: pd.Series) -> str:
    """`mean [low, high] · N normal / A abnormal`, with the attack's own figure where the convergence check lowered it."""
    text = with_interval(row, "robust_accuracy")
    if "robust_accuracy_normal" in row and pd.notna(row.get("robust_accuracy_normal")):
        text += f" · N {_pct(row['robust_accuracy_normal'])} / A {_pct(row.get('robust_accuracy_abnormal'))}"
    if row.get("not_converged") is True:
        text += f" ‡ (as run: {100 * row['as_run_robust_accuracy']:.1f})"
    if pd.notna(row.get("naive_robust_accuracy", float("nan"))):  # a defended model: the adaptive figure counts
        text += f" · naive {100 * row['naive_robust_accuracy']:.1f} (masking {100 * row['masking']:+.1f})"
    if row.get("blind") is True:  # an image_ignored flag names the cell (mark_blind)
        text += " ⊘"
    return text


def mark_blind(frame: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """The frame with `blind` True on the cells an `image_ignored` flag names (robust because the image no longer
    decides: `accuracy_cell` marks them ⊘)."""
    from benchmark.evaluation.flags import BLIND_FLAG
    from benchmark.evaluation.soundness import cell_label, flags_by_cell

    marks = flags_by_cell(flags)
    return frame.assign(blind=[BLIND_FLAG in marks.get((r.model, cell_label(r.attack, r.epsilon, r.transfer_source)), [])
                               for r in frame.itertuples()])


def accuracy_table(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy per attack (rows) and model (columns), with the per-class recalls (N normal, A abnormal)."""
    frame = _frame(rows)
    frame = frame[frame["transfer_source"].fillna("") == ""] if len(frame) else frame
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(row=frame.apply(_attack_name, axis=1), cell=frame.apply(accuracy_cell, axis=1))
    table = frame.pivot_table(index=["modality", "row"], columns="model", values="cell", aggfunc="last",
                              sort=False).fillna("–")
    table.index = [f"{row} [{modality}]" for modality, row in table.index]
    return table


def floor_labels(frame: pd.DataFrame) -> list[str]:
    """Labels of the text floor's attacks (registry probe "floor") in an aggregated frame."""
    return _labels_of(frame, "floor")


def noise_labels(frame: pd.DataFrame) -> list[str]:
    """Labels of the random-noise probes (registry probe "noise") in an aggregated frame."""
    return _labels_of(frame, "noise")


def _labels_of(frame: pd.DataFrame, probe: str) -> list[str]:
    from benchmark.attacks.registry import traits

    if frame.empty or "attack_name" not in frame:
        return []
    pairs = frame[["attack_source", "attack_name", "attack"]].drop_duplicates() if "attack_source" in frame else \
        frame[["attack_name", "attack"]].assign(attack_source="mmrb").drop_duplicates()
    return sorted({r.attack for r in pairs.itertuples() if traits(r.attack_source, r.attack_name).probe == probe})


def attribution_table(rows: Iterable[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Per-modality attribution for each multimodal model: clean accuracy, the lowest robust accuracy of any
    image attack at each ε, of any text attack, of any joint attack, and the text floor (no image can go
    below it) — the paper's modality analysis, with intervals."""
    frame = _frame(rows)
    if frame.empty:
        return pd.DataFrame()
    frame = frame[frame["transfer_source"].fillna("") == ""]
    probes = set(floor_labels(frame)) | set(noise_labels(frame))
    out = {}
    for model, group in frame.groupby("model", sort=False):
        floors = group[group["attack"].isin(floor_labels(frame))]
        if floors.empty:
            continue
        attacks = group[~group["attack"].isin(probes)]
        entry = {"clean": with_interval(attacks[attacks["modality"] == "none"].iloc[0], "robust_accuracy")
                 if (attacks["modality"] == "none").any() else "–"}
        image = attacks[attacks["modality"] == "image"]
        for eps, at_eps in image.groupby("epsilon", sort=True):
            entry[f"image ε={float(eps):.4g}"] = _lowest(at_eps)
        for modality in ("text", "joint"):
            entry[modality] = _lowest(attacks[attacks["modality"] == modality])
        entry["floor"] = _lowest(floors)
        changed = floors["decisions_changed"].max() if "decisions_changed" in floors else float("nan")
        entry["image decides"] = "–" if pd.isna(changed) else f"{100 * changed:.1f} % of decisions"
        out[model] = entry
    return pd.DataFrame.from_dict(out, orient="index").fillna("–")


def _lowest(group: pd.DataFrame) -> str:
    if group.empty:
        return "–"
    row = group.loc[group["robust_accuracy"].idxmin()]
    return f"{with_interval(row, 'robust_accuracy')} ({row['attack']})"


def _attack_name(row: pd.Series) -> str:
    eps = row["epsilon"]
    return row["attack"] if pd.isna(eps) or eps == "" else f"{row['attack']}, ε={float(eps):.4g}"




def markdown(frame: pd.DataFrame, index_name: str) -> str:
    """A pandas frame of strings as a Markdown table (`DataFrame.to_markdown`, its index as the first column named
    `index_name`; "–" where a cell is missing)."""
    frame = frame.astype(object).where(frame.notna(), "–").map(str)
    return frame.rename_axis(index_name).reset_index().to_markdown(index=False, disable_numparse=True)


def attack_table(rows: Iterable[dict[str, Any]], metric: str = "robust_f1") -> pd.DataFrame:
    """Table 1: one row per attack (clean, image, text, joint), one column per model; the attacked branch's
    score in brackets where the model has branches (the paper's LateFusion figures)."""
    frame = _frame(rows)
    frame = frame[frame["transfer_source"].fillna("") == ""] if len(frame) else frame
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(row=frame.apply(_attack_name, axis=1))
    branch = "branch_" + metric
    cell = frame.apply(lambda r: with_interval(r, metric) + (f" ({with_interval(r, branch)})" if branch in r and pd.notna(r[branch])
                                                             else ""), axis=1)
    table = frame.assign(cell=cell).pivot_table(index=["modality", "row"], columns="model", values="cell",
                                                 aggfunc="last", sort=False).fillna("–")
    table.index = [f"{row} [{modality}]" for modality, row in table.index]
    return table


def transfer_matrices(rows: Iterable[dict[str, Any]], metric: str = "robust_f1") -> dict[str, pd.DataFrame]:
    """Tables 2–3: for each transfer attack and ε, rows = black-box target, columns = generator (source)."""
    frame = _frame(rows)
    if frame.empty or (frame["transfer_source"].fillna("") == "").all():
        return {}
    frame = frame[frame["transfer_source"].fillna("") != ""]
    out = {}
    for name, group in frame.groupby(frame.apply(_attack_name, axis=1), sort=False):
        group = group.assign(cell=group.apply(lambda r: with_interval(r, metric), axis=1))
        out[name] = group.pivot_table(index="model", columns="transfer_source", values="cell", aggfunc="last",
                                      sort=False).fillna("–")
    return out


def transfer_gains(rows: Iterable[dict[str, Any]], samples: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """What each transfer attack adds over the first one the suite lists (e.g. SGA over PGD) and each later joint
    attack over the first joint attack listed (e.g. SGA over the sequential joint attack: the text attack held equal):
    per target (rows) and source (columns), attack − reference robust accuracy in points, paired on the same (seed,
    sample) pairs of samples_transfer.csv (`samples`) with the two-level bootstrap interval (mmrb.core.paired), or by
    training seed alone (the seed t-interval, marked †) where a cell has no per-sample evidence; both inside
    [−100, 100]. Negative: the attack transfers better. Keyed 'ATTACK − REFERENCE, ε=…'."""
    frame = pd.DataFrame([r for r in rows if r.get("transfer_source") and not r.get("error")])
    if frame.empty or frame["attack"].nunique() < 2:
        return {}
    labels = list(dict.fromkeys(frame["attack"]))
    joint = [a for a in labels if (frame.loc[frame["attack"] == a, "modality"] == "joint").any()]
    pairs = [(label, labels[0]) for label in labels[1:]]
    if joint and joint[0] != labels[0]:
        pairs += [(label, joint[0]) for label in joint[1:]]
    keys = ["model", "transfer_source", "seed", "epsilon"]
    out = {}
    for label, reference in pairs:
        base = frame[frame["attack"] == reference].set_index(keys)["robust_accuracy"]
        other = frame[frame["attack"] == label].set_index(keys)["robust_accuracy"]
        paired = (other - base).dropna().reset_index()
        for epsilon, group in paired.groupby("epsilon", sort=True):
            cells = {(model, source): _gain(d["robust_accuracy"].to_numpy(dtype=float), samples, model, source, label,
                                            reference, float(epsilon))
                     for (model, source), d in group.groupby(["model", "transfer_source"], sort=False)}
            table = pd.Series(cells).rename_axis(["model", "transfer_source"])
            out[f"{label} − {reference}, ε={float(epsilon):.4g}"] = table.unstack("transfer_source").fillna("–")
    return out


def _gain(per_seed: np.ndarray, samples: pd.DataFrame | None, model: str, source: str, attack: str, reference: str,
          epsilon: float) -> str:
    """One transfer gain in points: paired over (seed, sample) where both attacks' evidence is there, else over seeds
    (†)."""
    from benchmark.evaluation.evidence import correct_matrix
    from mmrb.core.paired import paired_test

    if samples is not None and len(samples):
        here = samples[(samples["transfer_source"] == source) & samples["seed"].isin(
            set(samples.loc[samples["attack"] == attack, "seed"]) & set(samples.loc[samples["attack"] == reference, "seed"]))]
        a, b = correct_matrix(here, model, attack, epsilon), correct_matrix(here, model, reference, epsilon)
        if a.size and a.shape == b.shape:
            r = paired_test(a.astype(float), b.astype(float))
            return f"{100 * r.difference:+.1f} [{100 * r.low:+.1f}, {100 * r.high:+.1f}]"
    mean, half = mean_interval(per_seed)
    return f"{100 * mean:+.1f} [{100 * max(-1.0, mean - half):+.1f}, {100 * min(1.0, mean + half):+.1f}] †"


def soundness_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The soundness flags of an aggregated frame (benchmark.evaluation.soundness), one row per flag."""
    from benchmark.evaluation.soundness import COLUMNS, soundness_flags

    if frame.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    return soundness_flags(frame, noise_labels(frame), floor_labels(frame))


def reliance_markdown(samples: pd.DataFrame | None, rows: Iterable[dict[str, Any]] | pd.DataFrame = ()) -> str:
    """The modality-reliance index per multimodal model and ε (benchmark.evaluation.reliance) from the run's per-sample
    evidence as Markdown; '' where no model has the cells."""
    table = reliance_table(samples, rows)
    if table.empty:
        return ""
    out = pd.DataFrame({"model": table["model"], "ε": table["epsilon"].map(lambda e: f"{e:.4g}"),
                        "only the joint attack breaks (%) [95 % bootstrap]": [shown(r) for _, r in table.iterrows()],
                        "pairs": [f"{o} of {p}" for o, p in zip(table["only_joint"], table["pairs"])],
                        "joint misses (pairs a single attack breaks)": table["missed"], "seeds": table["seeds"],
                        "joint attack(s)": table["joint_attacks"]})
    return out.to_markdown(index=False)


def write_tables(rows: list[dict[str, Any]], out_dir: str | Path, baseline: str | None = None,
                 labels: Any = None) -> str:
    """Write aggregate.csv, flags.csv, accuracy.md, table1.md, clinical.md, transfer.md and transfer_*.csv to out_dir;
    return the Markdown shown to the user. `baseline`: the model normalising the mCE; `labels`: the test labels (the
    constant baselines)."""
    from benchmark.evaluation.defense_table import defense_table

    out_dir = Path(out_dir)
    samples = read_samples(out_dir)
    frame = aggregate(rows, samples)
    flags = soundness_table(frame)
    if not frame.empty:
        flags = pd.concat([flags, below_text_only(frame), below_constant(frame, labels)], ignore_index=True)
    frame.to_csv(out_dir / "aggregate.csv", index=False)
    flags.to_csv(out_dir / "flags.csv", index=False)
    parts = []
    accuracy = accuracy_table(mark_blind(frame, flags) if len(frame) else frame)
    if not accuracy.empty:
        parts += [interval_legend(frame), "",
                  "## Robust accuracy (%) per attack: mean over training seeds [95 % interval] · per class "
                  "(N normal / A abnormal recall) · gradient attacks after the escalating convergence check · ‡ not "
                  "converged: the check hit its cap while the figure still fell (the figure as run in brackets) · a "
                  "defended model: the adaptive figure (BPDA/EOT), then the naive one and the masking (naive − "
                  "adaptive) · ⊘ robust because the image no longer decides (flag image_ignored)", "",
                  markdown(accuracy, "attack [modality]"), ""]
    attribution = attribution_table(frame)
    if not attribution.empty:
        parts += ["## Per-modality attribution: robust accuracy (%), lowest over the attacks of each modality; "
                  "floor = no image can change the prediction; image decides = the share of decisions some replacement "
                  "image changes", "", markdown(attribution, "model"), ""]
    defenses = defense_table(rows, samples)
    if not defenses.empty:
        parts += ["## Defenses: adaptive robust accuracy (%; BPDA/EOT for input defenses: the ranked figure), the naive "
                  "one (mean over seeds [t-interval cut to 0–100]), and the paired difference to the undefended model "
                  "on the same (seed, sample) pairs [95 % bootstrap] (†: over training seeds only); p: the larger of "
                  "McNemar clustered by sample and the bootstrap, each Holm-corrected over this table", "",
                  defenses.to_markdown(index=False), ""]
    reliance, compared = reliance_markdown(samples, rows), joint_comparison_markdown(samples)
    if compared:
        parts += ["## Joint attacks compared: each against the first joint attack of the run, on the same (seed, "
                  "sample) pairs — two-level bootstrap over seeds and samples, McNemar clustered by sample, both "
                  "Holm-adjusted over this table (negative: stronger than the reference)", "", compared, ""]
    if reliance:
        parts += ["## Modality reliance: the share of (seed, sample) pairs that only the joint attack breaks — no image "
                  "attack at the same ε and no text attack (report corruptions are not attacks) — with its two-level "
                  "bootstrap interval over seeds and samples", "", reliance, ""]
    parts += ["## Soundness flags", "", markdown(flags.set_index("flag"), "flag") if len(flags) else "none raised", ""]
    (out_dir / "accuracy.md").write_text("\n".join(parts))
    clinical = clinical_parts(frame, baseline, labels)
    if clinical:
        (out_dir / "clinical.md").write_text("\n".join(clinical))
        parts += clinical
    table = attack_table(frame)
    if not table.empty:
        table1 = ["## Robust F1 of the abnormal class (%) per attack — attacked branch alone in brackets; "
                  "mean over training seeds [95 % interval]", "", markdown(table, "attack [modality]"), ""]
        (out_dir / "table1.md").write_text("\n".join(table1))
        parts += table1
    matrices = transfer_matrices(frame)
    transfer_parts = []
    for i, (name, matrix) in enumerate(matrices.items()):
        matrix.to_csv(out_dir / f"transfer_{i}.csv")
        transfer_parts += [f"## Transfer: {name} — robust F1 (%), mean [95 % interval: over training seeds, t, cut to 0–100]; "
                           "rows black-box target, "
                           "columns generator", "",
                           markdown(matrix, "black-box \\ generator"), ""]
    for name, gain in transfer_gains(rows, read_samples(out_dir, TRANSFER_NAME)).items():
        transfer_parts += [f"## Transfer gain: {name} — robust accuracy difference (pt) [95 % interval]: paired on the "
                           "same (seed, sample) pairs, two-level bootstrap (†: paired by training seed only, t-interval "
                           "cut to ±100); negative: the attack transfers better than the reference; rows black-box "
                           "target, columns generator", "", markdown(gain, "black-box \\ generator"), ""]
    if transfer_parts:
        (out_dir / "transfer.md").write_text("\n".join(transfer_parts))
    return "\n".join(parts + transfer_parts)


def interval_legend(frame: pd.DataFrame) -> str:
    """How this page's intervals are made and how many seeds and samples back them."""
    from mmrb.core.paired import seed_correction

    if frame.empty:
        return ""
    seeds, n = sorted(set(frame["seeds"].astype(int))), sorted(set(frame["n"].astype(int)))
    boot = int((frame.get("interval", pd.Series(dtype=str)) == "bootstrap").sum())
    k = seeds[-1]
    return (f"Intervals: 95 %, never outside the metric's range, printed as mean [low, high]. {boot} of {len(frame)} cells "
            f"(every white-box cell with per-sample evidence): the two-level bootstrap over {'/'.join(map(str, seeds))} "
            f"training seed(s) × {'/'.join(map(str, n))} test samples (mmrb.core.paired), its seed part widened × "
            f"{seed_correction(k):.2f} for {k} seeds (as wide as their t-interval). The others (transfer cells, cells "
            "without evidence): accuracy the seed t-interval combined with the test set's Wilson interval, F1 / AUC / "
            "attack success the seed t-interval, cut to the range. aggregate.csv names each cell's (`interval`).")


def reference_attack(frame: pd.DataFrame) -> tuple[str, float | None] | None:
    """The adversarial reference of the rank comparison: the image attack (not a corruption or probe) with the lowest
    mean robust accuracy at the smallest ε."""
    probes = set(floor_labels(frame)) | set(noise_labels(frame))
    attacks = frame[(frame["modality"] == "image") & (frame["attack_name"] != "corruption") & ~frame["attack"].isin(probes)
                    & (frame["transfer_source"].fillna("") == "")]
    if attacks.empty:
        return None
    eps = attacks["epsilon"].min()
    at = attacks[attacks["epsilon"] == eps] if pd.notna(eps) else attacks
    label = at.groupby("attack")["robust_accuracy"].mean().idxmin()
    return label, (float(eps) if pd.notna(eps) else None)


def clinical_parts(frame: pd.DataFrame, baseline: str | None, labels: Any) -> list[str]:
    """The corruption table and its rank comparison, the operating-point table and the baselines (Markdown)."""
    if frame.empty:
        return []
    parts = []
    corruption = corruption_table(frame, baseline)
    if not corruption.empty:
        severities = sorted(set(corruption_rows(frame)["severity"]))
        parts += [f"## Corruption error (%): 1 − accuracy, mean over the severities run ({', '.join(map(str, severities))}) "
                  "and the training seeds; mCE: Σ error / Σ error of the baseline, mean over kinds — image kinds "
                  f"against {baseline or 'a baseline (none named: set corruption_baseline)'}, report kinds against the "
                  "text-only model; relative mCE: the same on the error added over clean (100 = the baseline; lower "
                  "is better)", "", markdown(corruption, "corruption [modality]"), ""]
        reference = reference_attack(frame)
        ranks = rank_comparison(frame, baseline, *reference) if reference else pd.DataFrame()
        if not ranks.empty:
            parts += ["## Rank under image and report corruptions vs under the strongest image attack (a model it "
                      "cannot reach keeps its clean accuracy)", "", markdown(ranks, "model"), ""]
    operating = operating_table(frame)
    if not operating.empty:
        parts += ["## Operating point: threshold at the suite's specificity on clean held-out samples; sensitivity and "
                  "specificity (%) at it, and decisions flipped per seed (abnormal→normal: false reassurance)", "",
                  markdown(operating, "model, attack"), ""]
    table = baseline_table(frame, labels)
    if not table.empty:
        parts += ["## Baselines: every model beside the constant classifiers and the single-modality models (%)", "",
                  markdown(table, "model"), ""]
    return parts
