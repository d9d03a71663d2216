"""Every mistake found before any work, each naming the suite file, the field and the fix; fuzzed loader."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.run.runner import run_suite
from benchmark.spec.suite import load_suite
from benchmark.spec.validate import check_device, check_suite
from mmrb.cli import main
from mmrb.core.errors import MmrbError, SuiteError

BASE = {
    "name": "v",
    "dataset": {"name": "indiana_synth", "n": 60, "seed": 1, "image_size": 32},
    "models": ["vision_only", "early_fusion"],
    "attacks": [{"name": "none"},
                {"source": "art", "name": "FastGradientMethod", "label": "FGSM"},
                {"source": "art", "name": "ProjectedGradientDescent", "label": "PGD", "params": {"max_iter": 3}}],
    "epsilons": [0.03],
}


def problem(tmp_path: Path, **changes) -> str:
    """The message `mmrb run` stops with, asserting that it stopped before any data or training work."""
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    cache = tmp_path / "cache"
    with pytest.raises(MmrbError) as info:
        run_suite(load_suite(path), tmp_path / "out", cache, progress=False)
    assert not cache.exists(), "work started before the suite was checked"
    assert str(path) in str(info.value) or "device" in str(info.value)
    return str(info.value)


def with_attack(index: int, **changes) -> list[dict]:
    attacks = [dict(a) for a in BASE["attacks"]]
    attacks[index] = {**attacks[index], **changes}
    return attacks


def test_misspelt_art_attack_name_offers_the_close_match(tmp_path):
    message = problem(tmp_path, attacks=with_attack(2, name="ProjectedGradientDecent"))
    assert "field 'attacks.2 (PGD).name'" in message and "ProjectedGradientDescent" in message


def test_misspelt_parameter_names_the_field_and_the_right_name(tmp_path):
    message = problem(tmp_path, attacks=with_attack(2, params={"max_iters": 3}))
    assert "field 'attacks.2 (PGD).params.max_iters'" in message and "did you mean max_iter" in message


def test_torchattacks_and_textattack_entries_are_checked(tmp_path):
    attacks = BASE["attacks"] + [{"source": "torchattacks", "name": "PGDD", "label": "ta"},
                                 {"source": "textattack", "name": "PWWS", "modality": "text", "params": {"max_word": 2}}]
    message = problem(tmp_path, attacks=attacks)
    assert "field 'attacks.3 (ta).name'" in message and "PGD" in message
    assert "field 'attacks.4 (PWWS).params.max_word'" in message


def test_joint_attack_parts_are_checked(tmp_path):
    joint = {"source": "mmrb", "name": "joint", "modality": "joint", "label": "j",
             "params": {"image": {"source": "art", "name": "FastGradientMethod", "params": {"epss": 1}},
                        "text": {"name": "synonym_swap", "params": {"fraction": 2}}}}
    message = problem(tmp_path, attacks=BASE["attacks"] + [joint])
    assert "attacks.3 (j).params.image.params.epss" in message and "attacks.3 (j).params.text.params.fraction" in message


def test_bad_model_override_and_recipe_field(tmp_path):
    message = problem(tmp_path, models=["vision_only", {"name": "early_fusion", "params": {"bogus": 1, "recipe": {"epoch": 1}}}])
    assert "field 'models.1 (early_fusion).params.bogus': unknown override" in message
    assert "field 'models.1 (early_fusion).params.recipe.epoch'" in message and "did you mean epochs" in message


def test_empty_grid_names_the_dropped_pairs(tmp_path):
    message = problem(tmp_path, models=["text_only"], attacks=BASE["attacks"][1:])
    assert "grid is empty" in message and "FGSM (image) on text_only (reads text)" in message


def test_missing_real_dataset_names_the_field_the_path_and_a_fix(tmp_path):
    message = problem(tmp_path, dataset={"name": "indiana", "path": str(tmp_path / "nowhere")})
    assert "dataset.path" in message and str(tmp_path / "nowhere") in message and "indiana_synth" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_stops_in_one_line(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(BASE))
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"), "--device", "cuda"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA is not available" in err and "--device cpu" in err
    assert not (tmp_path / "c").exists()


def test_device_names_are_checked():
    check_device("cpu")
    with pytest.raises(MmrbError, match="not a torch device"):
        check_device("gpu0")


# --------------------------------------------------------------------------- fuzzing the loader

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
attack = st.fixed_dictionaries({}, optional={"name": st.sampled_from(["none", "FastGradientMethod", "PGD", "worst_case", "joint",
                                                                       "synonym_swap", "x"]),
                                             "source": st.sampled_from(["art", "torchattacks", "textattack", "mmrb", "zz"]),
                                             "modality": st.sampled_from(["none", "image", "text", "joint", "imag"]),
                                             "params": values, "epsilons": values, "label": values})
suites = st.fixed_dictionaries({}, optional={
    "name": values, "dataset": st.one_of(values, st.fixed_dictionaries({}, optional={
        "name": st.sampled_from(["indiana", "indiana_synth", "x"]), "path": values, "n": values, "image_size": values})),
    "models": st.one_of(values, st.lists(st.one_of(st.sampled_from(["vision_only", "early_fusion", "text_only", "nope"]),
                                                   st.fixed_dictionaries({"name": st.sampled_from(["early_fusion", "x"])},
                                                                         optional={"params": values})), max_size=3)),
    "attacks": st.one_of(values, st.lists(attack, max_size=3)),
    "epsilons": values, "seeds": values, "seed": values, "limit": values, "transfer": values})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(values, suites))
def test_loader_raises_only_suite_errors(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        check_suite(load_suite(path))
    except SuiteError as exc:
        assert str(path) in str(exc)
