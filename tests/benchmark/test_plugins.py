"""Models from outside mmrb, three ways and no wrapper scripts: a suite entry 'module:factory' (or 'file.py:object'),
a suite's `plugins:` key / `--import`, and an installed package's `mmrb.models` entry point; and the Python API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmrb
from benchmark.run.runner import prepare_data
from benchmark.spec.suite import suite_from_data
from mmrb.cli import main
from mmrb.core.errors import ModelError, SuiteError
from tests.plugins.tiny_plugin import tiny_suite, write_plugin
from wrappers import registry
from wrappers.training import predict_proba

pytestmark = pytest.mark.slow


def _rows_ok(evaluation, model: str) -> None:
    frame = evaluation.frame
    mine = frame[frame.model == model]
    assert len(mine) == 2, frame[["model", "attack"]]
    assert (mine.error.fillna("") == "").all(), mine.error.tolist()
    clean, fgsm = mine.set_index("attack").robust_accuracy[["none", "FGSM"]]
    assert clean > 0.6  # it really trained (majority class ≈ 0.6 on this split would not pass with margin below)
    assert fgsm <= clean


def test_a_suite_names_a_model_by_module_and_factory(tmp_path, monkeypatch, cache_dir):
    write_plugin(tmp_path, "plug_ref", "plug_ref_model")
    monkeypatch.syspath_prepend(str(tmp_path))
    evaluation = mmrb.evaluate(tiny_suite(models=["plug_ref:make"]), out=tmp_path / "run", cache=cache_dir)
    _rows_ok(evaluation, "plug_ref:make")


def test_a_suite_names_a_class_or_annotated_function_in_a_file(tmp_path, cache_dir):
    path = write_plugin(tmp_path, "plug_file", "plug_file_model")
    evaluation = mmrb.evaluate(tiny_suite(models=[f"{path}:TinyGated", f"{path}:annotated"]),
                               out=tmp_path / "run", cache=cache_dir)
    _rows_ok(evaluation, f"{path}:TinyGated")
    _rows_ok(evaluation, f"{path}:annotated")
    assert registry.model_entry(f"{path}:TinyGated").family == "tiny_gated"


def test_the_plugins_key_imports_a_module_relative_to_the_suite(tmp_path, cache_dir):
    import yaml

    write_plugin(tmp_path, "plug_key", "plug_key_model")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(plugins=["plug_key.py"], models=["plug_key_model"])))
    _rows_ok(mmrb.evaluate(suite, out=tmp_path / "run", cache=cache_dir), "plug_key_model")


def test_import_option_lists_the_model_with_family_and_modalities(tmp_path, capsys):
    path = write_plugin(tmp_path, "plug_cli", "plug_cli_model")
    main(["models", "plug_cli*", "--import", str(path)])
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("plug_cli_model")]
    assert line and line[0].split()[1:3] == ["tiny_gated", "image+text"]


def test_an_installed_entry_point_is_listed_and_runs(tmp_path, monkeypatch, cache_dir, capsys):
    write_plugin(tmp_path, "plug_ep", "plug_ep_registered")
    info = tmp_path / "plug_ep_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-ep-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mmrb.models]\nplug_ep_model = plug_ep:annotated\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_ENTRY_POINTS_LOADED", False)
    main(["models", "plug_ep*"])
    out = capsys.readouterr().out
    assert "plug_ep_model" in out and "entry point plug_ep:annotated" in out
    _rows_ok(mmrb.evaluate(tiny_suite(models=["plug_ep_model"]), out=tmp_path / "run", cache=cache_dir), "plug_ep_model")


def test_plugin_errors_name_the_field(tmp_path):
    with pytest.raises(SuiteError, match=r"field 'plugins.0': plug-in module 'no_such_plugin_mod'"):
        suite_from_data(tiny_suite(plugins=["no_such_plugin_mod"], models=["early_fusion"]))
    path = write_plugin(tmp_path, "plug_err", "plug_err_model")
    with pytest.raises(SuiteError, match=r"models.0.*unknown object in .*'mak'.*did you mean make"):
        suite_from_data(tiny_suite(models=[f"{path}:mak"]))
    with pytest.raises(ModelError, match="not a model factory"):
        registry.model_entry(f"{path}:zlib")


def test_evaluate_takes_trained_and_untrained_model_objects(tmp_path, cache_dir):
    path = write_plugin(tmp_path, "plug_obj", "plug_obj_model")
    from wrappers.registry import import_plugin

    module = import_plugin(str(path))
    suite = suite_from_data(tiny_suite(models=["early_fusion"]))  # a suite model the objects run beside
    data = prepare_data(suite, cache_dir)
    torch.manual_seed(0)
    untrained = module.make()
    before = {k: v.clone() for k, v in untrained.state_dict().items()}
    evaluation = mmrb.evaluate(suite, {"mine": untrained}, trained=False, only_given=True, out=tmp_path / "a",
                               cache=cache_dir)
    _rows_ok(evaluation, "mine")
    assert set(evaluation.frame.model) == {"mine"}
    assert all(torch.equal(before[k], v) for k, v in untrained.state_dict().items())  # mmrb trained a copy

    # an object with final weights is scored as it is: its clean accuracy is exactly ours on the same samples
    trained = module.make()
    from wrappers.configs import TrainRecipe
    from wrappers.training import batch_logits, fit

    fit(trained, batch_logits(trained, data.train_set), data.train_set.labels, TrainRecipe(lr=0.02, epochs=6), seed=0)
    ours = float((predict_proba(trained, data.test.images, data.test.texts).argmax(1) == data.test.labels).mean())
    evaluation = mmrb.evaluate(suite, {"given": trained}, trained=True, only_given=True, out=tmp_path / "b",
                               cache=cache_dir)
    clean = evaluation.frame.set_index("attack").loc["none", "clean_accuracy"]
    assert clean == pytest.approx(ours)
    assert "given" not in registry.list_models()  # unregistered after the run
    assert np.isfinite(evaluation.cells.robust_accuracy).all()
