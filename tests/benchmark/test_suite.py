"""Tests of suite files: suites/smoke.yaml loads as documented, and every bad file gives a SuiteError
whose message names the file and the offending field."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.spec.suite import load_suite
from mmrb.core.errors import MmrbError, SuiteError

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "suites" / "smoke.yaml"

MINIMAL = "models: [early_fusion]\nattacks: [{name: none}]\n"


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def suite_error(path: Path) -> str:
    """The message of the SuiteError that loading `path` raises; it must name the file.

    The path is replaced by <path> so that later checks cannot match words of the tmp_path name."""
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message.replace(str(path), "<path>")


# --- the shipped smoke suite -------------------------------------------------------------------------------


def test_smoke_suite_loads_as_documented():
    suite = load_suite(SMOKE)
    assert suite.name == "smoke"
    assert [m.name for m in suite.models] == ["vision_only", "text_only", "early_fusion", "late_fusion",
                                              "ensemble_fusion"]
    assert all(m.params == {} and m.label == m.name for m in suite.models)
    assert [a.name for a in suite.attacks] == ["none", "FastGradientMethod", "ProjectedGradientDescent", "random_noise",
                                               "image_replacement", "operating_point", *["corruption"] * 10]
    assert suite.attacks[5].params == {"direction": "false_reassurance", "steps": 50, "restarts": 2}
    assert [a.modality for a in suite.attacks[5:]] == ["image"] * 9 + ["text"] * 2
    assert suite.operating_point == 0.95 and suite.corruption_baseline == "vision_only"
    assert suite.epsilons == pytest.approx([0.0313725, 0.2])
    assert suite.dataset.name == "indiana_synth" and suite.dataset.n == 600 and suite.dataset.image_size == 64
    assert suite.attacks[2].params == {"max_iter": 10, "num_random_init": 1}
    assert [(a.source, a.modality) for a in suite.attacks[1:5]] == [("art", "image"), ("art", "image"),
                                                                    ("mmrb", "image"), ("mmrb", "image")]
    assert suite.training_seeds == [0, 1, 2]
    assert (suite.convergence_check.step_factor, suite.convergence_check.restarts) == (2, 1)


def test_none_shorthand_becomes_the_clean_mmrb_attack():
    clean = load_suite(SMOKE).attacks[0]
    assert (clean.name, clean.source, clean.modality) == ("none", "mmrb", "none")
    assert clean.params == {} and clean.epsilons is None


def test_none_shorthand_keeps_explicit_fields(tmp_path):
    suite = load_suite(write(tmp_path, "models: [early_fusion]\nattacks: [{name: none, params: {k: 1}}]\n"))
    assert (suite.attacks[0].source, suite.attacks[0].modality, suite.attacks[0].params) == ("mmrb", "none", {"k": 1})


def test_attack_defaults_are_art_and_image(tmp_path):
    attack = load_suite(write(tmp_path, "models: [early_fusion]\nattacks: [{name: FGM}]\n")).attacks[0]
    assert (attack.source, attack.modality) == ("art", "image")


def test_modality_defaults_to_the_attacks_declaration_and_may_repeat_it(tmp_path):
    """What an attack perturbs is its registry trait, read without torch: a suite may leave it out or repeat it."""
    text = ("models: [early_fusion]\nattacks:\n  - {source: mmrb, name: synonym_swap}\n  - {source: textattack, name: PWWS}\n"
            "  - {source: mmrb, name: co_attack}\n  - {source: mmrb, name: hotflip, modality: text}\n"
            "  - {source: mmrb, name: corruption, modality: text, params: {kind: typos}}\n")
    assert [a.modality for a in load_suite(write(tmp_path, text)).attacks] == ["text", "text", "joint", "text", "text"]


def test_a_modality_contradicting_the_declaration_names_the_field_and_the_fix(tmp_path):
    message = suite_error(write(tmp_path, "models: [early_fusion]\nattacks: [{source: mmrb, name: synonym_swap, "
                                          "modality: image}]\n"))
    assert "field 'attacks.0 (synonym_swap).modality': mmrb synonym_swap perturbs text, not image" in message
    assert "set modality: text" in message


def test_a_combining_attack_is_mmrb_and_needs_its_labels(tmp_path):
    text = "models: [early_fusion]\nattacks: [{name: FGM}, {name: worst_case, label: w, params: {of: [FGM]}}]\n"
    worst = load_suite(write(tmp_path, text)).attacks[1]
    assert (worst.source, worst.combined) == ("mmrb", ["FGM"])
    message = suite_error(write(tmp_path, "models: [early_fusion]\nattacks: [{name: worst_case}]\n"))
    assert "attacks.0 (worst_case)" in message and "worst_case needs params: {of: [label, ...]}" in message


def test_content_hash_is_set_and_follows_the_bytes(tmp_path):
    original = SMOKE.read_bytes()
    copy = tmp_path / "smoke.yaml"
    copy.write_bytes(original)
    first = load_suite(copy).content_hash
    assert len(first) == 16 and int(first, 16) >= 0
    assert load_suite(copy).content_hash == first  # deterministic
    assert load_suite(SMOKE).content_hash == first  # depends on the bytes, not on the path

    copy.write_bytes(original + b"# a comment changes the bytes, not the meaning\n")
    changed = load_suite(copy)
    assert changed.content_hash != first
    assert changed.models == load_suite(SMOKE).models


def test_name_defaults_to_the_file_stem_and_strings_become_model_specs(tmp_path):
    suite = load_suite(write(tmp_path, MINIMAL, name="my-suite.yaml"))
    assert suite.name == "my-suite"
    assert suite.models[0].name == "early_fusion" and suite.models[0].params == {}
    assert suite.epsilons == pytest.approx([8 / 255])


def test_model_label_lists_overrides_sorted(tmp_path):
    text = "models: [{name: early_fusion, params: {lr: 0.1, epochs: 2}}]\nattacks: [{name: none}]\n"
    assert load_suite(write(tmp_path, text)).models[0].label == "early_fusion[epochs=2,lr=0.1]"


# --- errors --------------------------------------------------------------------------------------------------


def test_unknown_top_level_field(tmp_path):
    message = suite_error(write(tmp_path, MINIMAL + "epsilon: [0.1]\n"))
    assert "'epsilon'" in message and "unknown field" in message


def test_unknown_field_inside_a_model_names_the_model(tmp_path):
    message = suite_error(write(tmp_path, "models: [{name: late_fusion, parms: {}}]\nattacks: [{name: none}]\n"))
    assert "models.0 (late_fusion).parms" in message and "unknown field" in message


def test_unknown_model_name_suggests_the_close_match(tmp_path):
    path = write(tmp_path, "models: [early_fusoin]\nattacks: [{name: none}]\n")
    with pytest.raises(MmrbError) as info:
        load_suite(path)
    message = str(info.value)
    assert "early_fusoin" in message
    assert "did you mean early_fusion" in message


def test_unknown_model_name_is_a_suite_error_naming_the_file(tmp_path):
    message = suite_error(write(tmp_path, "models: [vision_only, early_fusoin]\nattacks: [{name: none}]\n"))
    assert "models.1" in message and "early_fusion" in message


def test_bad_modality_names_the_field_path_the_attack_and_the_allowed_values(tmp_path):
    text = "models: [early_fusion]\nattacks:\n  - {name: none}\n  - {name: FastGradientMethod, modality: audio}\n"
    message = suite_error(write(tmp_path, text))
    line = next(line for line in message.splitlines() if "modality" in line)
    assert "attacks.1 (FastGradientMethod).modality" in line
    for allowed in ("'none'", "'image'", "'text'", "'joint'"):
        assert allowed in line
    assert "'audio'" in line


def test_bad_source_names_the_attack(tmp_path):
    message = suite_error(write(tmp_path, "models: [early_fusion]\nattacks: [{name: PGD, source: foolbox}]\n"))
    assert "attacks.0 (PGD).source" in message and "'foolbox'" in message and "known: mmrb, art, textattack, torchattacks" in message


@pytest.mark.parametrize("epsilons, bad", [("[0, 0.1]", "[0.0]"), ("[0.1, 1.5, 2]", "[1.5, 2.0]"),
                                           ("[-0.01]", "[-0.01]")])
def test_epsilon_outside_zero_one(tmp_path, epsilons, bad):
    message = suite_error(write(tmp_path, MINIMAL + f"epsilons: {epsilons}\n"))
    assert "field 'epsilons'" in message
    assert message.rstrip().endswith(f"got {bad}")  # only the bad budgets are listed


def test_epsilon_one_is_allowed(tmp_path):
    assert load_suite(write(tmp_path, MINIMAL + "epsilons: [1, 0.5]\n")).epsilons == [1.0, 0.5]


def test_per_attack_epsilon_outside_zero_one(tmp_path):
    message = suite_error(write(tmp_path, "models: [early_fusion]\nattacks: [{name: FGM, epsilons: [2.0]}]\n"))
    assert "attacks.0 (FGM).epsilons" in message


def test_real_indiana_needs_a_path(tmp_path):
    message = suite_error(write(tmp_path, "dataset: {name: indiana}\n" + MINIMAL))
    assert "field 'dataset'" in message and "needs 'path'" in message


def test_real_indiana_with_a_path_loads(tmp_path):
    suite = load_suite(write(tmp_path, "dataset: {name: indiana, path: /data/iu}\n" + MINIMAL))
    assert (suite.dataset.name, suite.dataset.path) == ("indiana", "/data/iu")


def test_unknown_dataset_name(tmp_path):
    message = suite_error(write(tmp_path, "dataset: {name: mimic}\n" + MINIMAL))
    assert "dataset.name" in message and "'indiana_synth'" in message and "'mimic'" in message


def test_every_bad_field_is_reported(tmp_path):
    text = "models: [early_fusion]\nattacks: [{name: FGM, modality: audio}]\nepsilons: [3]\nlimit: 0\n"
    message = suite_error(write(tmp_path, text))
    for field in ("attacks.0 (FGM).modality", "'epsilons'", "'limit'"):
        assert field in message


def test_missing_required_fields(tmp_path):
    message = suite_error(write(tmp_path, "name: x\n"))
    assert "needs 'models' and 'attacks', or a 'transfer' section" in message


def test_yaml_syntax_error(tmp_path):
    message = suite_error(write(tmp_path, "models: [early_fusion\nattacks: {\n"))
    assert "not valid YAML" in message


def test_missing_file(tmp_path):
    message = suite_error(tmp_path / "nowhere" / "absent.yaml")
    assert "cannot read" in message


@pytest.mark.parametrize("text", ["- early_fusion\n- late_fusion\n", "just a string\n", "", "42\n"])
def test_non_mapping_yaml(tmp_path, text):
    message = suite_error(write(tmp_path, text))
    assert message == "<path>: a suite is a YAML mapping with name, dataset, models, attacks, epsilons"
