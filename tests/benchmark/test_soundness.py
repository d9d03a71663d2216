"""Soundness flags: each raised by a constructed case and not by its clean counter-case, on hand-built
aggregated frames and on real models and attacks (a quantised model, an under-stepped PGD)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmark.evaluation.soundness import FLAGS, cell_label, flags_by_cell, soundness_flags
from mmrb.core.errors import MmrbError

NOISE, FLOOR = ["random_noise"], ["image_replacement"]
#: Clean recalls of a model that learned (seed mean and worst seed), on 40 normal + 80 abnormal test samples.
LEARNED = {"clean_accuracy_normal": 0.8, "clean_accuracy_abnormal": 0.9, "n_normal": 40, "n_abnormal": 80,
           "worst_seed_min_recall": 0.75, "worst_seed_balanced_accuracy": 0.8}
#: A PGD cell whose escalating convergence check hit its cap while the figure still fell.
CAPPED = {"not_converged": True, "as_run_robust_accuracy": 0.5, "check_rounds": 4, "check_steps": 160, "check_restarts": 10}


def cell(attack: str, eps: float | None, acc: float, half: float = 0.05, model: str = "m", source: str = "art",
         modality: str = "image", transfer: str = "", **extra: Any) -> dict[str, Any]:
    """One aggregated row with a symmetric interval of ±`half`."""
    return dict(model=model, attack=attack, attack_source=source, modality=modality, epsilon=eps,
                transfer_source=transfer, robust_accuracy=acc, robust_accuracy_ci_low=max(0.0, acc - half),
                robust_accuracy_ci_high=min(1.0, acc + half), **extra)


def sound_rows() -> list[dict[str, Any]]:
    """A sound evaluation: accuracy falls with ε, converged PGD, white box beats black box and transfer, the
    floor reached at ε = 1, libraries agree, healthy gradients, noise far weaker than every attack."""
    return [
        cell("none", None, 0.9, source="mmrb", modality="none", zero_gradient=0.0, nonfinite_gradient=0.0,
             zero_gradient_bpda=0.0, stochastic=0.0, **LEARNED),
        cell("FGSM", 0.03, 0.75), cell("FGSM", 0.2, 0.5),
        cell("PGD", 0.03, 0.7), cell("PGD", 0.2, 0.3, as_run_robust_accuracy=0.32, not_converged=False, check_rounds=2,
             check_steps=40, check_restarts=3), cell("PGD", 1.0, 0.1),
        cell("PGD_ta", 0.2, 0.31, source="torchattacks", compare_with="PGD", agreement_gap=0.01),
        cell("Square", 0.2, 0.45, source="torchattacks"),
        cell("PGD", 0.2, 0.6, transfer="other"),
        cell("random_noise", 0.03, 0.88, source="mmrb"), cell("random_noise", 0.2, 0.85, source="mmrb"),
        cell("image_replacement", None, 0.1, source="mmrb"),
        cell("synonym_swap", None, 0.6, source="mmrb", modality="text"),
    ]


def flags_of(rows: list[dict[str, Any]], **kwargs: Any) -> pd.DataFrame:
    return soundness_flags(pd.DataFrame(rows), NOISE, FLOOR, **kwargs)


def edited(changes: dict[str, dict[str, Any]], extra: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The sound rows with some cells changed (keyed by their label) and some added."""
    rows = []
    for row in sound_rows():
        label = cell_label(row["attack"], row["epsilon"], row["transfer_source"])
        row = {**row, **changes.get(label, {})}
        if "robust_accuracy" in changes.get(label, {}):
            acc = row["robust_accuracy"]
            row.update(robust_accuracy_ci_low=max(0.0, acc - 0.05), robust_accuracy_ci_high=min(1.0, acc + 0.05))
        rows.append(row)
    return rows + list(extra)


def test_a_sound_evaluation_raises_no_flag():
    flags = flags_of(sound_rows())
    assert list(flags.columns) == ["flag", "model", "cells", "detail"]
    assert flags.empty, flags.to_string()


# (case, rows, flag, cells it must name)
RAISED = [
    ("accuracy rises from ε=0.03 to ε=0.2 beyond both intervals",
     edited({"FGSM ε=0.2": {"robust_accuracy": 0.9}}), "rising_with_eps", "FGSM ε=0.03, FGSM ε=0.2"),
    ("the escalating check hit its cap while the figure still fell",
     edited({"PGD ε=0.2": CAPPED}), "rising_with_steps", "PGD ε=0.2"),
    ("Square below both white-box gradient cells",
     edited({"Square ε=0.2": {"robust_accuracy": 0.1}}), "black_box_stronger",
     "Square ε=0.2, FGSM ε=0.2, PGD ε=0.2, PGD_ta ε=0.2"),
    ("a transfer attack below every white-box cell",
     edited({"PGD ε=0.2 from other": {"robust_accuracy": 0.1}}), "black_box_stronger",
     "PGD ε=0.2 from other, FGSM ε=0.2, PGD ε=0.2, PGD_ta ε=0.2"),
    ("a black-box attack named by the caller",
     edited({}, [cell("QueryOnly", 0.2, 0.1)]), "black_box_stronger",
     "QueryOnly ε=0.2, FGSM ε=0.2, PGD ε=0.2, PGD_ta ε=0.2"),
    ("PGD at ε=1 stays at 30 % above a 10 % floor",
     edited({"PGD ε=1": {"robust_accuracy": 0.3}}), "floor_not_reached", "PGD ε=1, image_replacement"),
    ("torchattacks 5 pp above ART",
     edited({"PGD_ta ε=0.2": {"agreement_gap": 0.05}}), "library_disagreement", "PGD_ta ε=0.2, PGD ε=0.2"),
    ("a quarter of the clean samples have zero input gradients",
     edited({"none": {"zero_gradient": 0.25}}), "masked_gradients", "none"),
    ("zero input gradients that BPDA leaves zero",
     edited({"none": {"zero_gradient": 0.25, "zero_gradient_bpda": 0.25}}), "masking_unresolved", "none"),
    ("zero input gradients of unknown cause (BPDA not measured)",
     edited({"none": {"zero_gradient": 1.0, "zero_gradient_bpda": np.nan}}), "masking_unresolved", "none"),
    ("outputs that differ between two passes", edited({"none": {"stochastic": 1.0}}), "randomised_model", "none"),
    ("non-finite input gradients",
     edited({"none": {"nonfinite_gradient": 0.01}}), "masked_gradients", "none"),
    ("noise within PGD's interval",
     edited({"random_noise ε=0.2": {"robust_accuracy": 0.33}}), "noise_as_strong",
     "FGSM ε=0.2, PGD ε=0.2, PGD_ta ε=0.2, Square ε=0.2, random_noise ε=0.2"),
    ("a class recall of 0 %: one class only",
     edited({"none": {"clean_accuracy_normal": 0.0, "clean_accuracy_abnormal": 1.0, "worst_seed_min_recall": 0.0,
                      "worst_seed_balanced_accuracy": 0.5}}), "constant_prediction", "none"),
    ("recalls 100 % and 3.8 % (issue 34's image model): nearly one class",
     edited({"none": {"clean_accuracy_normal": 1.0, "clean_accuracy_abnormal": 0.038, "worst_seed_min_recall": 0.038,
                      "worst_seed_balanced_accuracy": 0.519}}), "constant_prediction", "none"),
    ("sound seed mean, one seed predicting one class",
     edited({"none": {"worst_seed_min_recall": 0.02, "worst_seed_balanced_accuracy": 0.51}}), "constant_prediction",
     "none"),
    ("both classes recognised, balanced accuracy 57 % (chance reaches 58.0 % on 40 + 80)",
     edited({"none": {"clean_accuracy_normal": 0.34, "clean_accuracy_abnormal": 0.8, "worst_seed_min_recall": 0.3,
                      "worst_seed_balanced_accuracy": 0.57}}), "chance_level", "none"),
    ("noise within FGSM's interval, above PGD's",
     edited({"random_noise ε=0.03": {"robust_accuracy": 0.78}}), "noise_as_strong", "FGSM ε=0.03, random_noise ε=0.03"),
]


@pytest.mark.parametrize("case, rows, flag, cells", RAISED, ids=[case for case, *_ in RAISED])
def test_each_flag_is_raised_by_its_constructed_case(case, rows, flag, cells):
    flags = flags_of(rows, black_box_attacks=["QueryOnly"])
    raised = flags[flags["flag"] == flag]
    assert list(raised["cells"]) == [cells], flags.to_string()
    assert set(raised["model"]) == {"m"}
    assert flag in FLAGS


# (case, rows): just inside each flag's limit, so no flag is raised
NOT_RAISED = [
    ("a larger ε higher, but the intervals touch", edited({}, [cell("BIM", 0.03, 0.3), cell("BIM", 0.2, 0.4)])),
    ("a high cell at a larger ε from another transfer source", edited({}, [cell("PGD", 1.0, 0.85, transfer="third")])),
    ("the check lowered the figure and converged before its cap",
     edited({"PGD ε=0.2": {"as_run_robust_accuracy": 0.6, "check_rounds": 4}})),
    ("Square overlaps the strongest white-box cell", edited({"Square ε=0.2": {"robust_accuracy": 0.22}})),
    ("a low diagonal transfer cell is white box", edited({}, [cell("PGD", 0.2, 0.2, transfer="m")])),
    ("an unnamed query attack counts as white box when not listed", edited({}, [cell("QueryOnly", 0.2, 0.2)])),
    ("a weak attack below the large-ε threshold", edited({}, [cell("FGSM", 0.4, 0.45)])),
    ("an attack at ε=1 whose interval reaches the floor", edited({"PGD ε=1": {"robust_accuracy": 0.15}})),
    ("libraries 2 pp apart (the limit)", edited({"PGD_ta ε=0.2": {"agreement_gap": -0.02}})),
    ("noise just above FGSM's interval", edited({"random_noise ε=0.2": {"robust_accuracy": 0.56}})),
    ("a class recall of 10 % (the floor), balanced accuracy 55 % above chance on 400 + 800 (52.5 %)",
     edited({"none": {"clean_accuracy_normal": 0.10, "clean_accuracy_abnormal": 1.0, "worst_seed_min_recall": 0.10,
                      "worst_seed_balanced_accuracy": 0.55, "n_normal": 400, "n_abnormal": 800}})),
    ("balanced accuracy 58 %, just above chance on 40 + 80 samples",
     edited({"none": {"clean_accuracy_normal": 0.36, "clean_accuracy_abnormal": 0.8, "worst_seed_min_recall": 0.36,
                      "worst_seed_balanced_accuracy": 0.58}})),
    ("recalls without the worst-seed columns (results written before them)",
     edited({"none": {"worst_seed_min_recall": np.nan, "worst_seed_balanced_accuracy": np.nan}})),
]


@pytest.mark.parametrize("case, rows", NOT_RAISED, ids=[case for case, _ in NOT_RAISED])
def test_clean_counter_cases_raise_nothing(case, rows):
    flags = flags_of(rows)
    assert flags.empty, flags.to_string()


def test_each_model_is_judged_on_its_own_cells():
    """The same cells on a second model with a bad floor flag only that model."""
    rows = sound_rows() + [{**r, "model": "n"} for r in edited({"PGD ε=1": {"robust_accuracy": 0.3}})]
    flags = flags_of(rows)
    assert flags[["flag", "model"]].values.tolist() == [["floor_not_reached", "n"]]


def test_detail_names_both_numbers_of_a_convergence_failure():
    flags = flags_of(edited({"PGD ε=0.2": CAPPED}))
    detail = flags.loc[flags["flag"] == "rising_with_steps", "detail"].item()
    assert "50.0 % as run" in detail and "30.0 % after the check" in detail and "160 steps" in detail


def test_flags_by_cell_marks_every_named_cell():
    flags = flags_of(edited({"FGSM ε=0.2": {"robust_accuracy": 0.9}, "none": {"zero_gradient": 0.5}}))
    marks = flags_by_cell(flags)
    assert marks[("m", "FGSM ε=0.03")] == ["rising_with_eps"]
    assert marks[("m", "none")] == ["masked_gradients"]
    assert "noise_as_strong" in marks[("m", "FGSM ε=0.2")]  # 0.85 noise within 0.9 ± 0.05
    assert ("m", "PGD ε=0.2") not in marks


def test_cell_labels_read_like_the_tables():
    assert cell_label("PGD", 0.2) == "PGD ε=0.2"
    assert cell_label("PGD", 8 / 255, "early_fusion") == "PGD ε=0.03137 from early_fusion"
    assert cell_label("none", float("nan")) == "none"
    assert cell_label("worst of a, b") == "worst of a,b"


def test_aggregated_columns_are_required():
    with pytest.raises(MmrbError, match="robust_accuracy_ci_low"):
        soundness_flags(pd.DataFrame([{"model": "m", "attack": "PGD", "modality": "image", "epsilon": 0.2,
                                       "robust_accuracy": 0.3}]), NOISE, FLOOR)


# --- with real models and attacks -------------------------------------------------------------------------------

def measured_cell(attack: str, eps: float | None, acc: float, n: int, **extra: Any) -> dict[str, Any]:
    """An aggregated row for one seed: the accuracy with its Wilson interval (benchmark.evaluation.metrics.seed_interval)."""
    from benchmark.evaluation.metrics import seed_interval

    interval = seed_interval([acc], n)
    return dict(model="m", attack=attack, attack_source="art", modality="image", epsilon=eps, transfer_source="",
                robust_accuracy=acc, robust_accuracy_ci_low=interval["ci_low"],
                robust_accuracy_ci_high=interval["ci_high"], **extra)


def test_a_quantised_model_raises_masked_gradients(trained, test_split):
    """torch.round before the linear layer: every input gradient is exactly zero; a trained model's are not."""
    from benchmark.attacks.probes import gradient_health
    from tests.attacks.test_probes import LinearImageModel

    x, texts, y = test_split.images, list(test_split.texts), test_split.labels
    side = x.shape[-1]
    quantised = gradient_health(LinearImageModel(side, transform=quantise), x, texts, y)
    healthy = gradient_health(trained("early_fusion"), x, texts, y)
    print(f"quantised: {quantised}, early_fusion: {healthy}")
    assert quantised["zero_gradient"] == 1.0 and healthy["zero_gradient"] == 0.0
    assert quantised["zero_gradient_bpda"] == 0.0  # BPDA passes the rounding straight through
    for health, raised in ((quantised, ["masked_gradients"]), (healthy, [])):
        row = measured_cell("none", None, 0.9, len(y), **health) | {"modality": "none", "attack_source": "mmrb"}
        assert list(flags_of([row])["flag"]) == raised


def quantise(images):
    """A non-differentiable step: 16 grey levels (torch.round has a zero derivative everywhere)."""
    import torch

    return torch.round(images * 16) / 16


@pytest.mark.slow
def test_an_under_stepped_pgd_raises_rising_with_steps(trained, test_split):
    """ART PGD with one small step at ε = 0.2 on the trained early_fusion (40 samples), escalated with a cap of one round:
    the figure still falls at the cap, flagged; the default schedule (2 to 4 rounds) converges, not flagged."""
    import torch

    from benchmark.attacks import Target, craft
    from benchmark.attacks.cascade import Cascade
    from benchmark.attacks.convergence import accepted_params, escalate
    from benchmark.attacks.registry import info
    from benchmark.evaluation.aggregate import publish_converged
    from wrappers.estimators import ImageView
    from wrappers.training import predict_proba

    torch.set_num_threads(1)
    model = trained("early_fusion")
    x, texts, y = test_split.images[:40], list(test_split.texts[:40]), test_split.labels[:40]
    target = Target(model, x, texts, y, ImageView(model, x, texts))
    pgd = "ProjectedGradientDescent"
    weak = {"max_iter": 1, "eps_step": 0.01}  # one small step: far from converged at ε = 0.2

    def escalated(**spec: Any) -> dict[str, Any]:
        crafted = craft("art", pgd, weak, target, 0.2, seed=0)
        probs = predict_proba(model, crafted.images, texts)
        cascade = Cascade(target, probs, crafted.images)
        record = escalate(cascade, lambda p, sub, s: craft("art", pgd, p, sub, 0.2, s), accepted_params("art", pgd), info("art", pgd),
                          weak, 0.2, 0, **spec)
        row = measured_cell("PGD", 0.2, cascade.robust_accuracy(), len(y),
                            as_run_robust_accuracy=float((probs.argmax(1) == y).mean()),
                            **{f"check_{k}": float(v) for k, v in record.items() if v is not None})
        return publish_converged(row)

    capped, converged = escalated(max_rounds=1, min_rounds=1), escalated()
    print(f"early_fusion PGD-1 ε=0.2 on {len(y)} samples: as run {capped['as_run_robust_accuracy']:.3f}; one round "
          f"{capped['robust_accuracy']:.3f}; escalated {converged['robust_accuracy']:.3f} in {converged['check_rounds']:.0f} "
          f"rounds")
    assert list(flags_of([capped])["flag"]) == ["rising_with_steps"]
    assert flags_of([converged]).empty
    assert converged["robust_accuracy"] <= capped["robust_accuracy"] < capped["as_run_robust_accuracy"]


def test_noise_and_floor_flags_from_real_probes(trained, test_split):
    """The probes on the trained early_fusion (40 samples; the floor with PGD-20 at ε = 1 as `extra`): an attack
    that moves pixels by only 0.01 although its budget is 0.5 stays above the floor and is no stronger than
    noise of size 0.5; PGD-20 at ε = 0.2 beats noise and PGD-20 at ε = 1 reaches the floor: no flag there."""
    import torch

    from benchmark.attacks import Target, craft
    from benchmark.attacks.probes import image_replacement, random_noise
    from wrappers.estimators import ImageView
    from wrappers.training import predict_logits

    torch.set_num_threads(1)
    model = trained("early_fusion")
    x, texts, y = test_split.images[:40], list(test_split.texts[:40]), test_split.labels[:40]
    target = Target(model, x, texts, y, ImageView(model, x, texts))

    def acc(images: np.ndarray) -> float:
        return float((predict_logits(model, images, texts).argmax(1).numpy() == y).mean())

    def pgd(eps: float, **params: Any) -> np.ndarray:
        return craft("art", "ProjectedGradientDescent", params, target, eps, seed=0).images

    unbounded = pgd(1.0, max_iter=20)
    measured = {"replacement_only": acc(image_replacement({}, target, None, 0).images),
                "floor": acc(image_replacement({"extra": unbounded}, target, None, 0).images),
                "noise_0.2": acc(random_noise({}, target, 0.2, 0).images),
                "noise_0.5": acc(random_noise({}, target, 0.5, 0).images),
                "pgd_0.2": acc(pgd(0.2, max_iter=20)), "pgd_1": acc(unbounded),
                "timid_0.5": acc(pgd(0.5, max_iter=1, eps_step=0.01))}
    print("early_fusion, 40 samples:", {k: round(v, 3) for k, v in measured.items()})
    n = len(y)
    rows = [measured_cell("image_replacement", None, measured["floor"], n),
            measured_cell("random_noise", 0.2, measured["noise_0.2"], n),
            measured_cell("random_noise", 0.5, measured["noise_0.5"], n),
            measured_cell("PGD", 0.2, measured["pgd_0.2"], n), measured_cell("PGD", 1.0, measured["pgd_1"], n),
            measured_cell("PGD_timid", 0.5, measured["timid_0.5"], n)]
    flags = flags_of(rows)
    assert sorted(flags["flag"]) == ["floor_not_reached", "noise_as_strong"], flags.to_string()
    assert set(flags["cells"]) == {"PGD_timid ε=0.5, image_replacement", "PGD_timid ε=0.5, random_noise ε=0.5"}


def test_a_frame_read_back_from_csv_gives_the_same_flags(tmp_path):
    """aggregate.csv read back: empty ε and transfer source come back as NaN, optional columns as NaN."""
    rows = edited({"PGD ε=0.2": CAPPED, "none": {"zero_gradient": 0.5}})
    pd.DataFrame(rows).to_csv(tmp_path / "aggregate.csv", index=False)
    read = soundness_flags(pd.read_csv(tmp_path / "aggregate.csv"), NOISE, FLOOR)
    pd.testing.assert_frame_equal(read, flags_of(rows))
    assert sorted(read["flag"]) == ["masked_gradients", "rising_with_steps"]


def test_chance_bound_is_what_a_guesser_reaches():
    """The bound holds 95 % of the balanced accuracies of a model that guesses "abnormal" half the time."""
    from benchmark.evaluation.soundness import chance_bound

    rng = np.random.default_rng(0)
    n0, n1 = 40, 80
    draws = (rng.binomial(n0, 0.5, 20_000) / n0 + rng.binomial(n1, 0.5, 20_000) / n1) / 2
    assert abs(np.mean(draws <= chance_bound(n0, n1)) - 0.95) < 0.02
    assert chance_bound(400, 800) < chance_bound(n0, n1) < 0.6
