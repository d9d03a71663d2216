"""Training under the canonical numerical setting: the same weights whatever torch threads the caller runs with,
the caller's settings restored, the setting recorded in the manifest and what cannot be canonical in the key."""
from __future__ import annotations

import json

import pytest
import torch

from wrappers.numerics import CANONICAL_THREADS, canonical_numerics, numerics_identity
from wrappers.training import MANIFEST_FILE, model_key, obtain_trained, state_digest


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_weights_are_the_same_at_one_and_two_torch_threads(train_set, tmp_path, restore_threads):
    """early_fusion (conv + BERT encoders, 8 epochs of Adam) trained from separate empty caches by a caller at 1
    and at 2 torch threads: the same state digest. Without `canonical_numerics` the weight gradients' batch sums
    are split by thread and the two differ."""
    digests, manifests = {}, {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        cache = tmp_path / f"cache-{threads}"
        model = obtain_trained("early_fusion", {}, train_set, cache, seed=0)
        assert torch.get_num_threads() == threads  # the caller's setting is back
        assert not torch.are_deterministic_algorithms_enabled()
        digests[threads] = state_digest(model)
        key = model_key("early_fusion", {}, train_set.fingerprint, 0)
        manifests[threads] = json.loads((cache / "models" / f"early_fusion-{key}" / MANIFEST_FILE).read_text())
    assert digests[1] == digests[2]
    assert manifests[1]["weights_sha256"] == manifests[2]["weights_sha256"]
    for manifest in manifests.values():  # recorded: trained with the canonical thread count, deterministic
        assert manifest["numerics"]["torch_threads"] == CANONICAL_THREADS and manifest["numerics"]["deterministic"]
        assert manifest["numerics"]["torch"] == torch.__version__


def test_canonical_numerics_restores_the_callers_settings_also_on_an_error(restore_threads):
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="inside"):
        with canonical_numerics():
            assert torch.get_num_threads() == CANONICAL_THREADS and torch.are_deterministic_algorithms_enabled()
            with canonical_numerics():  # nested (a fusion model's branches): restores its entry's state
                pass
            assert torch.get_num_threads() == CANONICAL_THREADS and torch.are_deterministic_algorithms_enabled()
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()


def test_what_cannot_be_canonical_is_in_the_model_key(train_set):
    cpu, cuda = numerics_identity("cpu"), numerics_identity("cuda")
    assert cpu["device"] == "cpu" and cpu["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert cuda["device"] == "cuda" and cuda["cuda"] == torch.version.cuda  # known without a GPU
    # a model trained on a GPU is never served for one trained on the CPU, nor the other way round
    assert model_key("vision_only", {}, train_set.fingerprint, 0, "cpu") != \
        model_key("vision_only", {}, train_set.fingerprint, 0, "cuda")
    assert model_key("vision_only", {}, train_set.fingerprint, 0, "cuda") == \
        model_key("vision_only", {}, train_set.fingerprint, 0, "cuda:1")
