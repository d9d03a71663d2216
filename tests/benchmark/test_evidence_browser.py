"""The evidence a reader wants: per model broken samples of the rank cell, of a text attack and of a joint attack
(never a corruption standing for an attack), and the words an attack changed in a report marked."""
from __future__ import annotations

import pandas as pd

from benchmark.board.samples_page import render_samples_page, sample_rows, word_diff
from benchmark.evaluation.evidence import pick_broken


def _rows(model, attack, modality, epsilon, broken, n=10, seed=0):
    return [dict(sample_id=f"s{i}", model=model, seed=seed, attack=attack, modality=modality, epsilon=epsilon, label=1,
                 clean_prediction=1, adversarial_prediction=0 if i < broken else 1, broken=i < broken)
            for i in range(n)]


def test_the_rank_cell_a_text_and_a_joint_attack_are_picked_per_model():
    frame = pd.DataFrame(_rows("m", "FGSM", "image", 0.03, 3) + _rows("m", "PGD", "image", 0.03, 6)
                         + _rows("m", "floor", "image", None, 10) + _rows("v", "typos-3", "text", None, 3)
                         + _rows("m", "blur-3", "image", None, 9) + _rows("m", "swap", "text", None, 2)
                         + _rows("m", "joint", "joint", 0.03, 4) + _rows("m", "FGSM", "image", 0.03, 8, seed=1)
                         + _rows("v", "PGD", "image", 0.03, 5))
    picked = pick_broken(frame, rank=("FGSM", 0.03), corruptions={"blur-3", "typos-3"}, probes={"floor"})
    kinds = picked.groupby(["model", "kind"])["attack"].agg(set).to_dict()
    # v has no FGSM cell: no rank cell to show for it (its PGD is not the rank cell); its report corruption stands in
    assert kinds == {("m", "rank cell"): {"FGSM"}, ("m", "text attack"): {"swap"}, ("m", "joint attack"): {"joint"},
                     ("v", "report corruption"): {"typos-3"}}
    assert (picked["seed"] == 0).all() and len(picked) == 8  # 2 per kind, first seed
    # without a rank cell: the image attack that broke the most over the seeds — not the floor probe, not blur
    without_rank = pick_broken(frame, corruptions={"blur-3", "typos-3"}, probes={"floor"})
    assert without_rank.groupby(["model", "kind"])["attack"].agg(set).to_dict() == {  # m: FGSM 3 + 8 > PGD 6
        ("m", "strongest image attack"): {"FGSM"}, ("m", "text attack"): {"swap"}, ("m", "joint attack"): {"joint"},
        ("v", "strongest image attack"): {"PGD"}, ("v", "report corruption"): {"typos-3"}}  # v has no text attack


def test_the_words_an_attack_changed_are_marked_on_the_page():
    before, after = "the lungs are clear. no effusion.", "the lung are clear. no effusion."
    left, right = word_diff(before, after)
    assert [w for w, changed in left if changed] == ["lungs"] and [w for w, changed in right if changed] == ["lung"]
    assert [w for w, _ in right] == after.split()
    rows = sample_rows("m", [dict(sample_id="s1", seed=0, attack="swap", kind="text attack", label=1,
                                  clean_prediction=1, adversarial_prediction=0, report=before,
                                  adversarial_report=after, images={})])
    page = render_samples_page(rows, "t")
    assert "<del>lungs</del>" in page and "<mark>lung</mark>" in page and "text attack" in page


def test_what_the_browser_records_is_what_an_entry_accepts():
    from types import SimpleNamespace

    import numpy as np

    from benchmark.board.entry import BrokenSample
    from benchmark.evaluation.evidence import broken_examples

    frame = pd.DataFrame(_rows("m", "swap", "text", None, 2, n=3))
    attack = SimpleNamespace(label="swap", source="mmrb", name="synonym_swap")
    cells = [SimpleNamespace(model=SimpleNamespace(label="m"), seed=0, attack=attack, epsilon=None, source=None)]
    test = SimpleNamespace(uids=["s0", "s1", "s2"], images=np.zeros((3, 2, 8, 8), dtype=np.float32),
                           texts=["no acute disease.", "the lungs are clear.", "heart normal."])
    artifact = SimpleNamespace(images=None, texts=["no sharp disease.", "the lung are clear.", "heart normal."])
    examples = broken_examples(frame, cells, ["key"], test, SimpleNamespace(load=lambda key: artifact))
    assert [e["kind"] for e in examples] == ["text attack"] * 2
    for example in examples:  # an entry's evidence block keeps every field but the model (benchmark.evaluation.evidence)
        BrokenSample.model_validate({k: v for k, v in example.items() if k != "model"})
