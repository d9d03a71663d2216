"""ImageView.run_attack: any ART evasion attack on a multimodal view, every query with its own sample's text."""
from __future__ import annotations

import numpy as np
import pytest
from art.attacks.evasion import (
    AutoProjectedGradientDescent,
    BasicIterativeMethod,
    DeepFool,
    FastGradientMethod,
    HopSkipJump,
    ProjectedGradientDescent,
    SquareAttack,
)

from mmrb.core.errors import ContextError
from tests.wrappers.test_estimators import AlignmentProbe, probe_inputs
from wrappers.estimators import ImageView, query_budget
from wrappers.training import predict_logits

EPS = 0.03
ATTACKS = {
    "FGSM": lambda v: FastGradientMethod(v, eps=EPS, batch_size=3),
    "PGD": lambda v: ProjectedGradientDescent(v, eps=EPS, eps_step=0.01, max_iter=5, batch_size=3, verbose=False),
    "BIM": lambda v: BasicIterativeMethod(v, eps=EPS, eps_step=0.01, max_iter=5, batch_size=3, verbose=False),
    "AutoPGD": lambda v: AutoProjectedGradientDescent(v, eps=EPS, eps_step=0.01, max_iter=5, nb_random_init=1,
                                                      batch_size=3, verbose=False),
    "Square": lambda v: SquareAttack(v, eps=EPS, max_iter=40, batch_size=3, verbose=False),
    "HopSkipJump": lambda v: HopSkipJump(v, max_iter=2, max_eval=40, init_eval=10, init_size=20, verbose=False),
    "DeepFool": lambda v: DeepFool(v, max_iter=10, epsilon=0.05, batch_size=3, verbose=False),
}
BUDGETED = {"FGSM", "PGD", "BIM", "AutoPGD", "Square"}


def probe_view(n: int = 8):
    images, texts, labels = probe_inputs(n)
    probe = AlignmentProbe(n)
    return probe, ImageView(probe, images, texts, batch_size=3), images, texts, labels


@pytest.mark.parametrize("name", ATTACKS)
def test_run_attack_keeps_every_query_aligned(name):
    probe, view, images, texts, labels = probe_view()
    np.random.seed(0)
    attack = ATTACKS[name](view)  # no bound_to: constructor probes (AutoPGD's all-ones image) are placeholders
    probe.seen.clear()
    probe.mismatches = 0
    x_adv = view.run_attack(attack, images, np.eye(2)[labels])
    assert len(probe.seen) > 1
    if name != "HopSkipJump":  # its random starting images are nobody's: the probe cannot decode them
        assert probe.mismatches == 0
    assert x_adv.shape == images.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    if name in BUDGETED:
        assert query_budget(attack) == pytest.approx(EPS)
        assert np.abs(x_adv - images).max() <= EPS + 1e-6  # row i is still sample i's image
    else:  # no budget: one sample at a time, in order, so any query is that sample's
        assert query_budget(attack) is None
        assert all(len(set(ids)) == 1 for ids in probe.seen)
        order = [ids[0] for ids in probe.seen]
        assert order == sorted(order) and set(order) == set(range(len(texts)))
    direct = predict_logits(probe, x_adv, texts).argmax(1).numpy()
    # the attacks really attack, judged with each row's own text (HopSkipJump's random starts only fool the
    # probe on its brighter half of samples)
    assert (direct != labels).mean() >= (0.5 if name == "HopSkipJump" else 0.75)


@pytest.mark.parametrize("loss_type", [None, "cross_entropy"])
def test_autopgd_constructor_works_with_all_rows_bound(loss_type):
    probe, view, images, _, labels = probe_view()
    attack = AutoProjectedGradientDescent(view, eps=EPS, eps_step=0.01, max_iter=3, nb_random_init=1,
                                          loss_type=loss_type, verbose=False)
    # the all-ones probe is nobody's image: answered with the nearest bound image's text (the brightest, 7)
    assert probe.seen == [[7]]
    assert len(view.binding) == len(images)  # nothing was unbound to get here
    probe.mismatches = 0
    x_adv = view.run_attack(attack, images, labels)
    assert probe.mismatches == 0 and np.abs(x_adv - images).max() <= EPS + 1e-6


def test_pgd_above_max_epsilon_runs_in_groups_and_stays_aligned():
    probe, view, images, _, labels = probe_view()
    eps = view.max_epsilon + 0.015
    attack = ProjectedGradientDescent(view, eps=eps, eps_step=eps / 2, max_iter=4, verbose=False)
    with pytest.raises(ContextError, match="run_attack"):  # a plain generate cannot tell the rows apart
        attack.generate(images, y=np.eye(2)[labels])
    probe.seen.clear()
    probe.mismatches = 0
    x_adv = view.run_attack(attack, images, np.eye(2)[labels])
    assert probe.mismatches == 0
    assert view.max_epsilon < np.abs(x_adv - images).max() <= eps + 1e-6  # the budget beyond the radius was used
    assert 1 < len({tuple(sorted(set(ids))) for ids in probe.seen}) < len(images)  # in groups, not one by one


def test_run_attack_takes_a_subset_in_any_order():
    probe, view, images, _, labels = probe_view()
    rows = [5, 2, 7]
    x_adv = view.run_attack(FastGradientMethod(view, eps=EPS), images[rows], labels[rows])
    assert probe.mismatches == 0
    assert np.abs(x_adv - images[rows]).max() <= EPS + 1e-6 and np.abs(x_adv - images[rows]).max() > EPS / 2


def test_a_real_far_query_still_raises():
    _, view, images, _, _ = probe_view()
    nearly_ones = np.ones_like(images[:1])
    nearly_ones[0, 0, 0, 0] = 0.5  # not a placeholder: it has content
    noise = np.random.default_rng(0).uniform(0, 1, images[:2].shape).astype(np.float32)
    grey = np.full_like(images[:1], 0.05)  # constant, but not a placeholder value
    for query in (nearly_ones, noise, grey, np.concatenate([images[:1], noise[:1]])):
        with pytest.raises(ContextError, match="unambiguous radius.*run_attack"):
            view.predict(query)
    for value in (0.0, 1.0):  # all-zeros and all-ones placeholders are answered, also amid real rows
        assert view.predict(np.concatenate([images[:2], np.full_like(images[:1], value)])).shape == (3, 2)
    with pytest.raises(ContextError, match="bound to"):  # and run_attack only attacks the bound images
        view.run_attack(FastGradientMethod(view, eps=EPS), np.ones_like(images[:1]))


def test_run_attack_refuses_an_attack_built_on_another_view():
    _, view, images, texts, _ = probe_view()
    other = ImageView(AlignmentProbe(len(texts)), images, texts)
    with pytest.raises(ContextError, match="not built on this view"):
        view.run_attack(FastGradientMethod(other, eps=EPS), images)
