"""Tests of the suite -> cells expansion: counts, per-attack budgets, order, and which attacks apply."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from benchmark.spec.grid import applies, expand
from benchmark.spec.suite import AttackSpec, Suite, load_suite
from wrappers.registry import model_entry

SMOKE = Path(__file__).resolve().parents[2] / "suites" / "smoke.yaml"
IMAGE, TEXT, BOTH = frozenset({"image"}), frozenset({"text"}), frozenset({"image", "text"})


def registered_modalities(name: str) -> frozenset[str]:
    return model_entry(name).modalities


def make_suite(models, attacks, epsilons=(0.1, 0.2)) -> Suite:
    return Suite.model_validate(dict(name="t", models=list(models), attacks=list(attacks), epsilons=list(epsilons)))


# --- smoke.yaml ----------------------------------------------------------------------------------------------


IMAGE_CORRUPTIONS = ["gaussian_noise", "blur", "contrast", "jpeg", "quantum_noise", "motion_blur", "rotation",
                     "brightness_down"]  # the default suite's subset, severity 3
REPORT_CORRUPTIONS = ["typos", "dictation"]


def test_smoke_grid_has_77_cells_per_seed_and_3_seeds():
    cells = expand(load_suite(SMOKE), registered_modalities)
    per_model = Counter(c.model.name for c in cells)
    # image models: 8 attack cells + the false-reassurance attack + 8 image corruptions (+ 2 report corruptions when
    # they read text)
    assert per_model == {"vision_only": 51, "text_only": 9, "early_fusion": 57, "late_fusion": 57, "ensemble_fusion": 57}
    assert len(cells) == 77 * 3 and Counter(c.seed for c in cells) == {0: 77, 1: 77, 2: 77}


def test_smoke_text_only_gets_the_clean_cell_and_the_report_corruptions():
    cells = [c for c in expand(load_suite(SMOKE), registered_modalities) if c.model.name == "text_only"]
    assert [(c.attack.name, c.attack.params.get("kind"), c.seed) for c in cells] == [
        cell for s in (0, 1, 2) for cell in [("none", None, s), *[("corruption", k, s) for k in REPORT_CORRUPTIONS]]]


def test_smoke_image_model_cells_in_order():
    suite = load_suite(SMOKE)
    cells = [c for c in expand(suite, registered_modalities) if c.model.name == "early_fusion"]
    eps = suite.epsilons
    assert [(c.attack.name, c.epsilon, c.seed) for c in cells] == [cell for seed in (0, 1, 2) for cell in (
        ("none", None, seed),
        *[("FastGradientMethod", e, seed) for e in eps],
        *[("ProjectedGradientDescent", e, seed) for e in eps],
        *[("random_noise", e, seed) for e in eps],
        ("image_replacement", None, seed),  # the floor has no budget: one cell
        ("operating_point", 0.0313725, seed),  # the false-reassurance attack, at 8/255 only
        *[("corruption", None, seed) for _ in IMAGE_CORRUPTIONS + REPORT_CORRUPTIONS],  # no ε: a fixed severity
    )]


def test_without_seeds_the_split_seed_trains():
    suite = make_suite(["vision_only"], [{"name": "FGM"}], epsilons=[0.1])
    assert suite.training_seeds == [0] and [c.seed for c in expand(suite, lambda name: IMAGE)] == [0]
    with pytest.raises(ValidationError, match="distinct"):
        Suite.model_validate(dict(name="t", models=["vision_only"], attacks=[{"name": "FGM"}], seeds=[1, 1]))


def test_models_are_the_outer_loop():
    cells = expand(load_suite(SMOKE), registered_modalities)
    order = [c.model.name for c in cells]
    # each model's cells are contiguous and models come in suite order
    assert list(dict.fromkeys(order)) == ["vision_only", "text_only", "early_fusion", "late_fusion",
                                          "ensemble_fusion"]
    assert order == sorted(order, key=list(dict.fromkeys(order)).index)


# --- budgets -------------------------------------------------------------------------------------------------


def test_per_attack_epsilons_override_the_suite_budgets():
    suite = make_suite(["vision_only"], [{"name": "FGM"}, {"name": "PGD", "epsilons": [0.5]}], epsilons=[0.1, 0.2])
    cells = expand(suite, lambda name: IMAGE)
    assert [(c.attack.name, c.epsilon) for c in cells] == [("FGM", 0.1), ("FGM", 0.2), ("PGD", 0.5)]


def test_clean_and_text_attacks_have_one_cell_without_budget():
    suite = make_suite(["early_fusion"], [{"name": "none"}, {"name": "synonym_swap", "source": "mmrb", "modality": "text"}],
                       epsilons=[0.05, 0.1])
    cells = expand(suite, lambda name: BOTH)
    assert [(c.attack.modality, c.epsilon) for c in cells] == [("none", None), ("text", None)]
    with pytest.raises(ValidationError, match="no image budget"):
        make_suite(["vision_only"], [{"name": "none", "epsilons": [0.1, 0.2, 0.3]}], epsilons=[0.05])


def test_cells_carry_the_suite_specs():
    suite = make_suite([{"name": "late_fusion", "params": {"epochs": 1}}], [{"name": "FGM", "params": {"a": 1}}],
                       epsilons=[0.3])
    (cell,) = expand(suite, lambda name: BOTH)
    assert cell.model is suite.models[0] and cell.attack is suite.attacks[0] and cell.epsilon == 0.3


def test_modalities_are_looked_up_by_registered_name():
    seen = []
    suite = make_suite(["vision_only", "text_only"], [{"name": "none"}])
    expand(suite, lambda name: seen.append(name) or BOTH)
    assert seen == ["vision_only", "text_only"]


# --- applies -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("modality, model, expected", [
    ("none", frozenset(), True), ("none", TEXT, True),
    ("image", IMAGE, True), ("image", TEXT, False), ("image", BOTH, True),
    ("text", TEXT, True), ("text", IMAGE, False), ("text", BOTH, True),
    ("joint", BOTH, True), ("joint", IMAGE, False), ("joint", TEXT, False),
])
def test_applies(modality, model, expected):
    assert applies(AttackSpec(name="a", modality=modality), model) is expected


def test_registered_models_have_the_expected_modalities():
    assert registered_modalities("vision_only") == IMAGE
    assert registered_modalities("text_only") == TEXT
    assert registered_modalities("early_fusion") == BOTH


# --- property ------------------------------------------------------------------------------------------------

MODEL_NAMES = ["vision_only", "text_only", "early_fusion", "late_fusion", "ensemble_fusion"]
MODALITY_SETS = [frozenset(), IMAGE, TEXT, BOTH]
NEEDS = {"none": frozenset(), "image": IMAGE, "text": TEXT, "joint": BOTH}
budget_lists = st.lists(st.sampled_from([0.01, 0.03, 0.1, 0.5, 1.0]), min_size=1, max_size=3)
attack_specs = st.fixed_dictionaries(
    {"name": st.sampled_from(["FGM", "PGD", "none", "HopSkipJump"]),
     "modality": st.sampled_from(list(NEEDS))},
    optional={"epsilons": budget_lists},
).map(lambda a: {k: v for k, v in a.items() if k != "epsilons" or a["modality"] in ("image", "joint")}
      if a["name"] != "none" else {"name": "none"})


@settings(max_examples=150, deadline=None)
@given(models=st.lists(st.sampled_from(MODEL_NAMES), min_size=1, max_size=4),
       attacks=st.lists(attack_specs, min_size=1, max_size=4, unique_by=lambda a: a["name"]),
       epsilons=budget_lists,
       modality_choice=st.dictionaries(st.sampled_from(MODEL_NAMES), st.sampled_from(MODALITY_SETS)))
def test_cell_count_is_the_sum_of_applicable_budgets(models, attacks, epsilons, modality_choice):
    suite = make_suite(models, attacks, epsilons)
    modalities_of = lambda name: modality_choice.get(name, BOTH)  # noqa: E731
    cells = expand(suite, modalities_of)

    expected = []
    for model in suite.models:
        for attack in suite.attacks:
            if not NEEDS[attack.modality] <= modalities_of(model.name):
                continue
            if attack.modality in ("none", "text"):
                expected.append((model.name, attack.name, None))
            else:
                expected += [(model.name, attack.name, e) for e in attack.epsilons or suite.epsilons]
    assert len(cells) == sum(
        (1 if a.modality in ("none", "text") else len(a.epsilons or epsilons))
        for m in models for a in suite.attacks if NEEDS[a.modality] <= modalities_of(m)
    )
    assert [(c.model.name, c.attack.name, c.epsilon) for c in cells] == expected
