"""BPDA and EOT (defenses.adaptive) and mmrb's own PGD: rounding passed straight through, randomised models
attacked in expectation, and PGD that sees through a rounding layer that stops it without BPDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.attacks import Target, craft
from defenses.adaptive import Adapted, StraightThrough, is_stochastic, takes_rounding_steps
from mmrb.core.errors import AttackError
from tests.attacks.test_probes import LinearImageModel

SIDE = 6
EPS = 0.3


def rounded(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * 255) / 255


def test_straight_through_keeps_the_forward_and_passes_the_gradient():
    x = torch.rand(3, 5, requires_grad=True)
    (plain,) = torch.autograd.grad(rounded(x).sum(), x)
    assert (plain == 0).all()
    mode = StraightThrough()
    with mode:
        y = rounded(x)
        (through,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y, rounded(x))  # the forward value is the rounded one
    torch.testing.assert_close(through, torch.ones_like(x))  # the backward is the identity
    assert mode.seen == {"round": 1}
    with StraightThrough() as other:
        (torch.sin(x) * 2).sum().backward()
    assert not other.seen


def _data(n: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = (np.round(rng.random((n, 2, SIDE, SIDE)) * 255) / 255).astype(np.float32)
    return images, ["x"] * n


def test_pgd_sees_through_a_rounding_layer_only_with_bpda():
    images, texts = _data()
    model = LinearImageModel(SIDE, transform=rounded)
    twin = LinearImageModel(SIDE)  # the same weights, no rounding
    labels = twin(torch.as_tensor(images), None).argmax(1).numpy()  # every sample correct when clean
    assert takes_rounding_steps(model, torch.as_tensor(images[:2]), None)
    assert not takes_rounding_steps(twin, torch.as_tensor(images[:2]), None)

    def robust(m, **params) -> float:
        crafted = craft("mmrb", "pgd", {"steps": 20, **params}, Target(m, images, texts, labels), EPS, 0)
        assert np.abs(crafted.images - images).max() <= EPS + 1e-6
        return float((m(torch.as_tensor(crafted.images), None).argmax(1).numpy() == labels).mean())

    masked, adaptive, unmasked = robust(model, bpda=False), robust(model), robust(twin)
    assert masked == 1.0  # a zero gradient: PGD does not move
    assert adaptive <= unmasked + 1 / len(labels) and adaptive < 0.5


class NoisyModel(LinearImageModel):
    """A randomised defence: Gaussian noise on the input at every forward pass."""

    def forward(self, images, text):
        return super().forward(images + 0.05 * torch.randn_like(images), text)


def test_a_randomised_model_is_detected_and_attacked_in_expectation():
    images, texts = _data(8)
    noisy, plain = NoisyModel(SIDE), LinearImageModel(SIDE)
    assert is_stochastic(noisy, images, texts) and not is_stochastic(plain, images, texts)
    x = torch.as_tensor(images)
    torch.manual_seed(0)
    adapted = Adapted(noisy, draws=6, bpda=False)
    mean = adapted(x, None)
    torch.manual_seed(0)
    draws = noisy(x.repeat(6, 1, 1, 1), None).reshape(6, len(x), -1)  # the six draws, evaluated as one batch
    torch.testing.assert_close(mean, draws.mean(0))
    assert adapted.per_call is False and not torch.equal(draws[0], draws[1])


class OneDrawPerCall(LinearImageModel):
    """Randomised per call, not per row: one noise offset for the whole batch."""

    def forward(self, images, text):
        return super().forward(images + 0.05 * torch.randn(()), text)


def test_a_model_drawing_once_per_call_is_averaged_over_calls():
    """Repeating rows in one batch would give such a model one draw, not six: Adapted finds it out on the first batch
    and averages one call per draw."""
    images, texts = _data(8)
    x, model = torch.as_tensor(images), OneDrawPerCall(SIDE)
    adapted = Adapted(model, draws=6, bpda=False)
    torch.manual_seed(0)
    mean = adapted(x, None)
    assert adapted.per_call is True
    torch.manual_seed(0)
    first = model(x.repeat(6, 1, 1, 1), None)[: len(x)]
    expected = torch.stack([first] + [model(x, None) for _ in range(5)]).mean(0)
    torch.testing.assert_close(mean, expected)
    assert adapted(x, None).shape == mean.shape


def test_pgd_refuses_bad_parameters_before_any_work():
    images, texts = _data(4)
    target = Target(LinearImageModel(SIDE), images, texts, np.zeros(4, int))
    with pytest.raises(AttackError, match="params.loss"):
        craft("mmrb", "pgd", {"loss": "hinge"}, target, 0.1, 0)
    with pytest.raises(AttackError, match="pgd has no parameter 'stepz'"):
        craft("mmrb", "pgd", {"stepz": 3}, target, 0.1, 0)
