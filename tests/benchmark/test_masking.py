"""Gradient masking caught: a model that rounds its image input (a zero input gradient) is attacked through BPDA
and not ranked above its twin without the rounding (the same weights); masking BPDA cannot undo is listed unranked,
with the reason on the page."""
from __future__ import annotations

import numpy as np
import pytest

import mmrb
from benchmark.board import rank_entries, render_html, render_readme
from benchmark.evaluation.soundness import UNRANKING_FLAGS
from benchmark.evaluation.tables import soundness_table
from tests.conftest import load_example

EPS = 8 / 255


def _example():
    return load_example("masked_model/rounded.py")


@pytest.fixture(scope="module")
def masked_run(trained, indiana_root, tmp_path_factory):
    example = _example()
    twin = trained("early_fusion")
    models = {"twin": twin}
    for name, cls in (("rounded", example.RoundedEarlyFusion), ("detached", example.DetachedEarlyFusion)):
        model = cls({**twin.config, "name": name})
        model.load_state_dict(twin.state_dict())  # the same weights
        models[name] = model.eval()
    suite = {"name": "masking", "dataset": {"name": "indiana", "path": str(indiana_root), "image_size": 32},
             "models": list(models), "seeds": [0], "limit": 40, "epsilons": [EPS],
             "attacks": [{"name": "none"},
                         {"source": "art", "name": "ProjectedGradientDescent", "label": "PGD",
                          "params": {"max_iter": 10}},
                         {"source": "mmrb", "name": "standard",
                          "params": {"steps": 20, "restarts": 1, "fab_steps": 5, "queries": 100}}],
             "convergence_check": False}
    root = tmp_path_factory.mktemp("masking")
    result = mmrb.evaluate(suite, models, only_given=True, out=root / "out", cache=root / "cache")
    return result


def _cell(cells, model, attack):
    return cells[(cells["model"] == model) & (cells["attack"] == attack)].iloc[0]


def test_rounding_masks_the_gradient_and_bpda_restores_it(masked_run):
    frame = masked_run.frame
    assert (frame["error"].fillna("") == "").all(), frame["error"].tolist()
    clean = frame[frame["attack"] == "none"].set_index("model")
    assert clean.loc["rounded", "zero_gradient"] == 1.0 and clean.loc["rounded", "zero_gradient_bpda"] == 0.0
    assert clean.loc["twin", "zero_gradient"] == 0.0
    assert clean.loc["detached", "zero_gradient_bpda"] == 1.0
    cells = masked_run.cells
    twin_pgd, rounded_pgd = _cell(cells, "twin", "PGD"), _cell(cells, "rounded", "PGD")
    assert clean.loc["rounded", "clean_accuracy"] == pytest.approx(clean.loc["twin", "clean_accuracy"], abs=0.03)
    # the naive gradient attack is fooled: the rounded model looks as robust as it is clean
    assert rounded_pgd["robust_accuracy"] == pytest.approx(clean.loc["rounded", "clean_accuracy"])
    assert twin_pgd["robust_accuracy"] < rounded_pgd["robust_accuracy"]
    # the adaptive standard evaluation is not: the rounded model is no more robust than its twin (one sample slack)
    twin_std, rounded_std = _cell(cells, "twin", "standard"), _cell(cells, "rounded", "standard")
    assert rounded_std["robust_accuracy"] <= twin_std["robust_accuracy"] + 1 / 40 + 1e-9
    assert rounded_std["robust_accuracy"] < rounded_pgd["robust_accuracy"]


def _entry(name: str, cells, flags) -> dict:
    rank = _cell(cells, name, "standard")
    return {"entry_version": 1, "name": name, "protocol_version": "test", "model": {"modalities": ["image", "text"]},
            "rank": {"attack": "standard", "epsilon": EPS, "robust_accuracy": rank["robust_accuracy"],
                     "ci_low": rank["robust_accuracy_ci_low"], "ci_high": rank["robust_accuracy_ci_high"]},
            "clean": {}, "card": {}, "provenance": {}, "cells": [],
            "flags": [{"flag": f.flag, "cells": f.cells, "detail": f.detail} for f in flags.itertuples()
                      if f.model == name]}


def test_masked_model_is_not_ranked_above_its_twin_and_the_page_says_why(masked_run):
    cells = masked_run.cells
    flags = soundness_table(cells)
    raised = {(f.model, f.flag) for f in flags.itertuples()}
    assert ("rounded", "masked_gradients") in raised and ("rounded", "masking_unresolved") not in raised
    assert ("detached", "masking_unresolved") in raised and "masking_unresolved" in UNRANKING_FLAGS
    assert not any(model == "twin" and flag.startswith("mask") for model, flag in raised)
    ranked = rank_entries([_entry(name, cells, flags) for name in ("twin", "rounded", "detached")])
    by_name = {r.name: r for r in ranked}
    assert by_name["detached"].position is None and "masking_unresolved" in by_name["detached"].reason
    twin, rounded = by_name["twin"], by_name["rounded"]
    assert rounded.position is not None
    # not above: ranked below the twin, or not separable from it (a shared rank group)
    assert rounded.position > twin.position or rounded.group == twin.group or rounded.tied_above
    plots = {"test": {"transfer": [], "attribution": "a.png", "curves": {r.name: "c.png" for r in ranked}}}
    page = render_html({"test": ranked}, plots)
    readme = render_readme({"test": ranked})
    for text in (page, readme):
        assert "unranked" in text and "masking_unresolved" in text
    assert "BPDA" in page  # the rounded model's flag detail: attacked through BPDA
    assert np.isfinite(rounded.entry["rank"]["robust_accuracy"])
