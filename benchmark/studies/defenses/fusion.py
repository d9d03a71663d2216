"""`mmrb compare-defenses` on a run suite whose models carry defenses (`defense:` on a suite model, e.g.
suites/fusion_defenses.yaml): the suite runs as `mmrb run` runs it (run store, resume, attack cache, the adaptive pass
on every defended model), then this module writes the comparison in the shape of the head study's (docs/defenses.md):

- tables.md: per undefended model, one row per defense (the undefended model first): clean and adaptive robust
  accuracy in every condition with 95 % intervals over seeds × test samples (`mmrb.core.paired`), the naive figure
  and the masking beside each adaptive one, per-class recall (normal / abnormal) in every condition, and the training
  cost in seconds (the model's own training and the defense's fine-tuning, from training.csv); where the suite has the
  text floor (image_replacement), beside them the floor, its drop from clean and the share of decisions the image
  still changes, and "robust because blind" where the `image_ignored` flag is raised (benchmark.evaluation.soundness);
- verdicts.md: paired tests between every two defenses of a model (the undefended model included) in every
  condition, on the same seeds and samples, with Holm's correction over the whole family and each comparison's
  minimal detectable difference; a higher figure whose model carries `image_ignored` in that condition is reported as
  "robust because blind", not as a defense that holds;
- robust_vs_epsilon_<model>.png: the adaptive robust accuracy against ε per defense.

Everything is read from the run folder (results.csv, samples.csv, training.csv), so the reports can be re-rendered
without a model call (`write_fusion_reports`).
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.evaluation.costs import COSTS_NAME
from benchmark.evaluation.evidence import SAMPLES_NAME
from benchmark.evaluation.flags import BLIND_FLAG, BLIND_SAYS
from benchmark.evaluation.soundness import cell_label
from benchmark.store.results import CSV_NAME, read_results
from benchmark.studies.defenses.report import paired_table
from mmrb.core import paired
from mmrb.core.stats import format_interval, mean_interval

NONE = "none"  # the defense column of the undefended model


def is_run_suite(path: str | Path) -> bool:
    """Whether the YAML file at `path` is a run suite (`models:` and `attacks:`) rather than a head-defense study
    (False also for a file that cannot be read: the study's loader then says why)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "models" in data and "attacks" in data


def check_defended(suite: Any, path: str | Path) -> None:
    """Refuse, before any work, a run suite in which no model carries a defense: there is nothing to compare."""
    from mmrb.core.errors import SuiteError

    if not any(m.defense is not None for m in suite.models):
        raise SuiteError(f"{path}: field 'models': no model carries a defense, so there is nothing to compare; give "
                         "a model one, e.g. {name: early_fusion, defense: {name: jpeg, params: {quality: 50}}} "
                         "(docs/defenses.md), or run the suite with `mmrb run`")


def _runs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    results = read_results(folder / CSV_NAME)  # a run folder an older mmrb wrote reads too
    results = results[(results["error"] == "") & (results["transfer_source"] == "")]
    samples = pd.read_csv(folder / SAMPLES_NAME, dtype={"sample_id": str, "model": str, "attack": str})
    costs = pd.read_csv(folder / COSTS_NAME, dtype={"model": str, "defense": str})
    return results, samples, costs


def _base(label: str, defense: str) -> str:
    suffix = f"+{defense}"
    return label[: -len(suffix)] if defense and label.endswith(suffix) else label


def _groups(results: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """Undefended model -> [(defense, model label)], the undefended model first, in suite order; only models that
    have at least one defended variant."""
    found: dict[str, list[tuple[str, str]]] = {}
    for label, defense in results[["model", "defense"]].astype(str).drop_duplicates().itertuples(index=False):
        found.setdefault(_base(label, defense), []).append((defense or NONE, label))
    return {base: sorted(members, key=lambda m: m[0] != NONE) for base, members in found.items()
            if any(d != NONE for d, _ in members)}


def _conditions(results: pd.DataFrame) -> list[tuple[str, float | None]]:
    """(attack, ε) of the white-box image and clean cells: clean first, then each attack in suite order by ε (the text
    floor has its own columns)."""
    results = results[~results["attack"].isin(_floors(results))]
    keys = results[["attack", "epsilon", "modality"]].drop_duplicates()
    out = [(r.attack, None if pd.isna(r.epsilon) else float(r.epsilon)) for r in keys.itertuples()]
    return sorted(out, key=lambda k: (k[0] != "none", list(results["attack"]).index(k[0]), k[1] or 0.0))


def _floors(results: pd.DataFrame) -> list[str]:
    """Labels of the text floor's cells (the registry's probe "floor")."""
    from benchmark.evaluation.tables import floor_labels

    return floor_labels(results) if len(results) else []


def blind_cells(results: pd.DataFrame) -> dict[str, set[str]]:
    """Model label -> the cells (soundness.cell_label) its `image_ignored` flag names: robust because the image no
    longer decides (the figure within its interval of the text floor, at most 1 decision in 100 changed by the image)."""
    from benchmark.evaluation.aggregate import aggregate
    from benchmark.evaluation.tables import soundness_table

    flags = soundness_table(aggregate(results.to_dict("records")))
    return {row.model: set(str(row.cells).split(", ")) for row in flags[flags["flag"] == BLIND_FLAG].itertuples()}


def _floor_columns(results: pd.DataFrame, samples: pd.DataFrame, label: str, blind: set[str]) -> dict[str, str]:
    """Beside the robust figures: the text floor and its drop from clean (95 % intervals over seeds × samples, the
    drop paired per sample), the share of decisions some replacement image changes (mean and the seeds' range: only
    the seeds' shares are stored), and the cells flagged `image_ignored`."""
    floors = _floors(results)
    if not floors:
        return {}
    rows = results[(results["model"] == label) & (results["attack"] == floors[0])]
    right, _ = correct(samples, label, floors[0], None)
    clean = results.loc[results["modality"] == "none", "attack"]
    clean_right = correct(samples, label, clean.iloc[0], None)[0] if len(clean) else np.empty(0)
    drop = _interval(clean_right - right) if clean_right.shape == right.shape else "–"
    return {"text floor": _interval(right), "drop clean → floor (pt)": drop,
            "image decides (% of decisions)": _seed_range(rows["decisions_changed"]),
            "robust because blind": ", ".join(sorted(c.replace(" ε=", "@") for c in blind - set(floors))) or "–"}


def _floor_note(results: pd.DataFrame) -> str:
    if not _floors(results):
        return ("no text floor in this suite, so nothing says whether a gain comes from ignoring the image (add "
                "{source: mmrb, name: image_replacement})")
    return ("the text floor (each image replaced by the others: no image attack goes below it), its drop from clean (95 % "
            "interval over seeds × samples, paired per sample) and the share of decisions the image still changes (mean, "
            f"and the range over seeds); robust because blind: the cells flagged {BLIND_FLAG} "
            f"({BLIND_SAYS}: the figure within its interval of the floor, at most 1 decision in 100 changed by the image)")


def _name(attack: str, epsilon: float | None) -> str:
    return "clean" if attack == "none" else f"{attack}@{epsilon:.4g}"


def correct(samples: pd.DataFrame, model: str, attack: str, epsilon: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(seeds × samples) booleans: the model's decision under the attack was right (sorted by seed, sample id), and
    the samples' labels in that order."""
    rows = samples[(samples["model"] == model) & (samples["attack"] == attack)]
    if epsilon is not None:
        rows = rows[np.isclose(rows["epsilon"].astype(float), epsilon)]
    rows = rows.assign(right=rows["adversarial_prediction"] == rows["label"])
    table = rows.pivot_table(index="seed", columns="sample_id", values="right", aggfunc="first")
    labels = rows.drop_duplicates("sample_id").set_index("sample_id")["label"]
    table = table.sort_index().sort_index(axis=1)
    return table.to_numpy(dtype=float), labels.loc[table.columns].to_numpy()


def _interval(values: np.ndarray) -> str:
    if values.size == 0:
        return "–"
    interval = paired.mean_interval(values, replicates=1000)
    return format_interval(interval.mean, interval.low, interval.high)


def _t(values: pd.Series) -> str:
    values = values.dropna().to_numpy(dtype=float)
    if not len(values):
        return "–"
    mean, half = mean_interval(values)
    return format_interval(mean, halfwidth=half)


def _seed_range(values: pd.Series) -> str:
    """'21.7 (seeds 7.5–47.5)': the mean of per-seed shares and their range, in percent (no interval: three seeds give
    none that stays inside [0, 100] honestly)."""
    values = values.dropna().to_numpy(dtype=float)
    if not len(values):
        return "–"
    return f"{100 * values.mean():.1f} (seeds {100 * values.min():.1f}–{100 * values.max():.1f})"


def _seconds(values: pd.Series) -> str:
    values = values.dropna().to_numpy(dtype=float)
    return "–" if not len(values) else f"{values.mean():.0f}"


def accuracy_tables(results: pd.DataFrame, samples: pd.DataFrame, costs: pd.DataFrame,
                    blind: dict[str, set[str]] | None = None) -> str:
    """Per undefended model: accuracy with intervals, naive vs adaptive, per class, the text floor beside them (where
    the suite has it; `blind`: blind_cells), and the training cost."""
    parts = []
    conditions = _conditions(results)
    blind = blind_cells(results) if blind is None else blind
    for base, members in _groups(results).items():
        accuracy, masking, per_class = {}, {}, {}
        for defense, label in members:
            rows = results[results["model"] == label]
            accuracy[defense], masking[defense], per_class[defense] = {}, {}, {}
            for attack, epsilon in conditions:
                right, labels = correct(samples, label, attack, epsilon)
                name = _name(attack, epsilon)
                accuracy[defense][name] = _interval(right)
                for k, cls in ((0, "normal"), (1, "abnormal")):
                    per_class[defense][f"{name} {cls}"] = _interval(right[:, labels == k])
                if attack == "none":
                    continue
                cell = rows[(rows["attack"] == attack) & np.isclose(rows["epsilon"].astype(float), epsilon)]
                naive = cell["naive_robust_accuracy"] if "naive_robust_accuracy" in cell else pd.Series(dtype=float)
                masking[defense][f"{name} adaptive"] = _t(cell["robust_accuracy"])
                masking[defense][f"{name} naive"] = _t(naive) if naive.notna().any() else "= adaptive"
                gap = (naive - cell["robust_accuracy"]) if naive.notna().any() else pd.Series(dtype=float)
                masking[defense][f"{name} masking (pt)"] = "–" if gap.dropna().empty else f"{100 * gap.mean():+.1f}"
            accuracy[defense].update(_floor_columns(results, samples, label, blind.get(label, set())))
            cost = costs[costs["model"] == label]
            accuracy[defense]["model training (s)"] = _seconds(cost["train_seconds"])
            accuracy[defense]["defense training (s)"] = _seconds(cost["defense_seconds"]) if defense != NONE else "–"
        parts.append(f"## {base}\n\nAccuracy (%) with 95 % intervals over seeds × test samples; under attack the "
                     f"adaptive figure (the one that counts and is ranked); {_floor_note(results)}; training cost: "
                     "mean seconds per seed.\n\n" + _markdown(accuracy))
        parts.append(f"### {base}: naive beside adaptive\n\nMean [95 % seed t-interval, in 0–100] (%); masking = naive − adaptive "
                     "(points a non-adaptive evaluation would have credited the defense with).\n\n" + _markdown(masking))
        parts.append(f"### {base}: per class\n\nRecall (%) of each class, 95 % intervals over seeds × samples.\n\n"
                     + _markdown(per_class))
    return "\n\n".join(parts) if parts else "(no model of this suite carries a defense)"


def _markdown(table: dict[str, dict[str, str]]) -> str:
    return pd.DataFrame.from_dict(table, orient="index").rename_axis("defense").reset_index().to_markdown(index=False)


def verdict_table(results: pd.DataFrame, samples: pd.DataFrame, alpha: float = 0.05,
                  blind: dict[str, set[str]] | None = None) -> tuple[str, pd.DataFrame]:
    """Every two defenses of a model (the undefended one included), in every condition: A − B [95 % interval] on
    the same seeds and samples, p, Holm-adjusted p over the whole family, the MDD and the verdict ("robust because
    blind" where the higher one's model carries `image_ignored` in that condition; `blind`: blind_cells)."""
    found, left_out, sides = [], [], []
    conditions = _conditions(results)
    blind = blind_cells(results) if blind is None else blind
    for base, members in _groups(results).items():
        for (da, la), (db, lb) in combinations(members, 2):
            for attack, epsilon in conditions:
                a, _ = correct(samples, la, attack, epsilon)
                b, _ = correct(samples, lb, attack, epsilon)
                if a.size == 0 or a.shape != b.shape:
                    left_out.append(f"{da} − {db} ({_name(attack, epsilon)})")
                    continue
                found.append({"model": base, "comparison": f"{da} − {db}", "condition": _name(attack, epsilon),
                              "result": paired.paired_test(a, b, seed=len(found)), "names": (da, db)})
                sides.append([(d, cell_label(attack, epsilon) in blind.get(label, ())) for d, label in ((da, la), (db, lb))])
    if not found:
        return "(no comparison: no model of this suite carries a defense)", pd.DataFrame()
    table = paired_table(found, alpha, same_decision=True)
    table["verdict"] = [blind_verdict(verdict, pair) for verdict, pair in zip(table["verdict"], sides)]
    note = (f"\n\n{len(left_out)} comparisons left out: samples.csv lacks one side's per-sample decisions for some "
            f"seeds (a failed cell, or its attack-cache entry is gone): {'; '.join(left_out[:6])}"
            f"{' …' if len(left_out) > 6 else ''}") if left_out else ""
    return table.to_markdown(index=False) + note, table


def blind_verdict(verdict: str, sides: list[tuple[str, bool]]) -> str:
    """The verdict, or "robust because blind: …" where the higher side ((name, flagged image_ignored) pairs) is a model
    whose image no longer decides: its gain is not a defense of the image."""
    for name, flagged in sides:
        if flagged and verdict == f"{name} higher":
            return f"robust because blind: {name} higher, but {BLIND_SAYS} ({BLIND_FLAG})"
    return verdict


def plot_curves(results: pd.DataFrame, out: Path) -> list[Path]:
    """Adaptive robust accuracy (mean over seeds) against ε per defense, one figure per undefended model and
    attack; ε = 0 is the clean accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    attacks = [a for a, _ in _conditions(results) if a != "none"]
    for base, members in _groups(results).items():
        fig, axes = plt.subplots(1, max(1, len(dict.fromkeys(attacks))), figsize=(4.5 * len(dict.fromkeys(attacks)), 3.5),
                                 squeeze=False, sharey=True)
        for ax, attack in zip(axes[0], dict.fromkeys(attacks)):
            for defense, label in members:
                rows = results[results["model"] == label]
                clean = rows[rows["attack"] == "none"]["robust_accuracy"]
                curve = rows[rows["attack"] == attack].groupby("epsilon")["robust_accuracy"].apply(
                    lambda s: mean_interval(s.to_numpy(dtype=float)))
                xs = [0.0, *curve.index]
                ys = [100 * mean_interval(clean.to_numpy(dtype=float))[0], *[100 * m for m, _ in curve]]
                ax.plot(xs, ys, marker="o", label=defense)
            ax.set(title=f"{base}: {attack} (adaptive)", xlabel="ε (L∞)")
        axes[0][0].set_ylabel("accuracy (%)")
        axes[0][-1].legend(fontsize=8)
        fig.tight_layout()
        path = out / f"robust_vs_epsilon_{base}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_fusion_reports(folder: str | Path) -> dict[str, Path]:
    """tables.md, verdicts.md and the curves of a finished run folder of a suite with defended models."""
    folder = Path(folder)
    results, samples, costs = _runs(folder)
    from mmrb.core.io import atomic_write

    tables, blind = folder / "tables.md", blind_cells(results)
    atomic_write(tables, "# Defense comparison: accuracy\n\n" + accuracy_tables(results, samples, costs, blind) + "\n")
    text, _ = verdict_table(results, samples, blind=blind)
    verdicts = folder / "verdicts.md"
    atomic_write(verdicts, "# Defense comparison: paired tests\n\nA − B in points on the same seeds and test samples "
                 "(a bootstrap over seeds × samples, its seed part widened for few seeds); two tests, each "
                 "Holm-adjusted over every row — McNemar clustered by sample and the bootstrap's — separable only when "
                 "both reject (p, p (Holm): the larger of the two); MDD: the smallest difference this run would detect "
                 "at 80 % power at α/rows. \"Robust because blind\": the "
                 f"higher figure is that of a model flagged {BLIND_FLAG} in that condition ({BLIND_SAYS}: within its "
                 "interval of the text floor, at most 1 decision in 100 changed by replacing the image), not a defense "
                 "that holds.\n\n" + text + "\n")
    return {"tables": tables, "verdicts": verdicts, **{p.stem: p for p in plot_curves(results, folder)}}
