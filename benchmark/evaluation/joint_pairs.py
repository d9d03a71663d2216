"""Joint attacks compared with each other on the same (seed, sample) pairs of a run's per-sample evidence
(samples.csv): which collaborative attack is stronger, by how much, with paired intervals and tests."""
from __future__ import annotations

import pandas as pd

from benchmark.evaluation.evidence import correct_matrix
from mmrb.core.paired import family, paired_test, verdict


def joint_comparison(samples: pd.DataFrame | None) -> pd.DataFrame:
    """Which joint attack is stronger, per multimodal model and ε: each joint attack against the first joint attack of
    the run (its robust accuracy minus the reference's, in the same (seed, sample) pairs), with the two-level
    bootstrap interval, the clustered McNemar and bootstrap p-values Holm-adjusted over the table
    (`mmrb.core.paired.family`). Negative: the attack is stronger than the reference."""
    columns = ["model", "epsilon", "attack", "reference", "difference", "low", "high", "attack_only", "reference_only",
               "p_holm", "verdict"]
    if samples is None or samples.empty:
        return pd.DataFrame(columns=columns)
    found, results = [], []
    for (model, epsilon), group in samples[samples["modality"] == "joint"].groupby(["model", "epsilon"], sort=False):
        attacks = list(dict.fromkeys(group["attack"]))
        for attack in attacks[1:]:
            seeds = set(group.loc[group["attack"] == attack, "seed"]) & set(group.loc[group["attack"] == attacks[0], "seed"])
            if not seeds:
                continue
            common = group[group["seed"].isin(seeds)]
            result = paired_test(correct_matrix(common, model, attack), correct_matrix(common, model, attacks[0]))
            found.append({"model": model, "epsilon": float(epsilon), "attack": attack, "reference": attacks[0],
                          "difference": result.difference, "low": result.low, "high": result.high,
                          "attack_only": result.a_only, "reference_only": result.b_only})
            results.append(result)
    for entry, decision in zip(found, family(results)):
        entry["p_holm"] = decision.p
        entry["verdict"] = verdict(decision, names=(entry["reference"], entry["attack"])).replace(" higher", " stronger")
    return pd.DataFrame(found, columns=columns)


def joint_comparison_markdown(samples: pd.DataFrame | None) -> str:
    """Each joint attack against the run's first joint attack (benchmark.evaluation.reliance.joint_comparison) as
    Markdown; '' where no model has two joint attacks."""
    compared = joint_comparison(samples)
    if compared.empty:
        return ""
    return pd.DataFrame({
        "model": compared["model"], "ε": compared["epsilon"].map(lambda e: f"{e:.4g}"),
        "attack − reference": compared["attack"] + " − " + compared["reference"],
        "robust accuracy difference (pt) [95 % bootstrap]": [
            f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            for d, lo, hi in zip(compared["difference"], compared["low"], compared["high"])],
        "right only under attack / reference": [f"{a} / {b}" for a, b in zip(compared["attack_only"],
                                                                                compared["reference_only"])],
        "verdict": compared["verdict"]}).to_markdown(index=False)
