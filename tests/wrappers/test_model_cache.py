"""The trained-model cache is keyed by content: an edited model default retrains, a damaged entry is reported
once (naming its folder) and rebuilt, an unchanged request retrains nothing."""
from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest
import torch

from wrappers import registry
from wrappers.training import WEIGHTS_FILE, model_key, obtain_trained

MODULE = '''
import torch
from wrappers.registry import register_model


class MeanPixel(torch.nn.Module):
    family = "mean_pixel"
    modalities = frozenset({{"image"}})

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.hidden = torch.nn.Linear(2, config["hidden"])
        self.head = torch.nn.Linear(config["hidden"], 2)

    def tokenize(self, texts):
        return None

    def forward(self, images, text=None):
        return self.head(torch.relu(self.hidden(images.mean((2, 3)))))


@register_model("{name}", MeanPixel, "custom")
def factory(hidden={hidden}, **overrides):
    return MeanPixel({{"name": "{name}", "hidden": hidden, "recipe": {{"lr": 0.05, "epochs": 2}}, **overrides}})
'''


def load_user_module(path: Path, name: str, hidden: int) -> None:
    """(Re)write and import a user's model module, as a user editing their factory's default would."""
    registry._MODELS.pop(name, None)
    path.write_text(MODULE.format(name=name, hidden=hidden))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)


def trainings(caplog) -> int:
    return sum(r.getMessage().startswith("training ") for r in caplog.records if r.name == "wrappers.training")


def test_edited_factory_default_retrains_and_unchanged_code_does_not(train_set, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="wrappers.training")
    monkeypatch.syspath_prepend(str(tmp_path))
    name, path = "test_user_mean_pixel", tmp_path / "user_models_a.py"
    load_user_module(path, name, hidden=4)
    first = obtain_trained(name, {}, train_set, tmp_path / "cache")
    key = model_key(name, {}, train_set.fingerprint, 0)
    assert trainings(caplog) == 1 and first.hidden.out_features == 4

    load_user_module(path, name, hidden=4)  # re-imported, unchanged: loaded, not retrained
    again = obtain_trained(name, {}, train_set, tmp_path / "cache")
    assert trainings(caplog) == 1 and torch.equal(again.head.weight, first.head.weight)

    load_user_module(path, name, hidden=8)  # the user edits the default
    assert model_key(name, {}, train_set.fingerprint, 0) != key
    edited = obtain_trained(name, {}, train_set, tmp_path / "cache")
    assert trainings(caplog) == 2 and edited.hidden.out_features == 8
    assert len(list((tmp_path / "cache" / "models").glob(f"{name}-*"))) == 2
    registry._MODELS.pop(name, None)


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest"])
def test_damaged_cache_entry_is_reported_once_and_rebuilt(train_set, tmp_path, caplog, damage):
    caplog.set_level(logging.INFO, logger="wrappers.training")
    overrides = {"recipe": {"epochs": 1}}
    model = obtain_trained("vision_only", overrides, train_set, tmp_path)
    (folder,) = (tmp_path / "models").glob("vision_only-*")
    weights = folder / WEIGHTS_FILE
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        weights.write_bytes(data[:-8] + bytes(8))
    else:
        (folder / "manifest.json").write_text("{not json")
    caplog.clear()
    rebuilt = obtain_trained("vision_only", overrides, train_set, tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(folder) in warnings[0] and "retraining" in warnings[0]
    assert trainings(caplog) == 1
    assert torch.equal(rebuilt.head.weight, model.head.weight)  # same seed, same recipe: the same weights again
    caplog.clear()
    obtain_trained("vision_only", overrides, train_set, tmp_path)  # the rebuilt entry verifies
    assert not [r for r in caplog.records if r.levelno == logging.WARNING] and trainings(caplog) == 0


def test_concurrent_requests_for_one_model_train_it_once(train_set, tmp_path, caplog):
    """Two workers sharing a cache (Ray tasks, two runs) ask for the same model at once: the second waits on the
    entry's build lock, then loads what the first trained (late fusion trains its two branches first: nested locks)."""
    import threading

    caplog.set_level(logging.INFO, logger="wrappers.training")
    overrides = {"recipe": {"epochs": 1}}
    models: list = []
    start = threading.Barrier(2)

    def request(name: str) -> None:
        start.wait()
        models.append(obtain_trained(name, overrides, train_set, tmp_path))

    threads = [threading.Thread(target=request, args=("late_fusion",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trained = sorted(r.getMessage().split()[1] for r in caplog.records
                     if r.name == "wrappers.training" and r.getMessage().startswith("training "))
    assert trained == ["late_fusion", "text_only", "vision_only"]  # each once, though both requests needed them
    assert len(models) == 2 and torch.equal(models[0].head.weight, models[1].head.weight)
