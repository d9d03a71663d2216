"""The sharp edges a new user hits (issue 23), each reproduced with real small models: a wrong-shape or raising
model refused before any work, a constant classifier flagged and kept off the floor, a run folder of another suite
refused, evaluate(trained=False) reproducible and resumable, Ctrl-C as one line, submit speaking before it works."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import mmrb
from benchmark.evaluation.soundness import UNRANKING_FLAGS
from benchmark.store.results import DB_NAME, RunStore
from mmrb.cli import main
from mmrb.core.errors import MmrbError, ModelError
from tests.plugins.tiny_plugin import tiny_suite, write_plugin
from wrappers.registry import import_plugin

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HEAD = "return self.head(gate * f_image + (1 - gate) * f_text)"


def variant(folder: Path, module: str, body: str) -> Path:
    """The tiny plug-in (registered as `module`_model) with its forward's last line replaced by `body`."""
    path = write_plugin(folder, module, f"{module}_model")
    source = path.read_text()
    assert HEAD in source
    path.write_text(source.replace(HEAD, body))
    return path


def stored_cells(out: Path) -> int:
    if not (out / DB_NAME).exists():
        return 0
    with RunStore(out) as store:
        return len(store.finished())


# 2: a wrong-shape or raising model is refused before any training or attack, in the API and the CLI


@pytest.mark.parametrize("module, body, message", [
    ("shape3", "out = self.head(gate * f_image + (1 - gate) * f_text); return torch.cat([out, out[:, :1]], 1)",
     r"model 'shape3_model' .*shape \(n, 2\) = \(8, 2\), got \(8, 3\).*fix the model's forward"),
    ("raises", "raise RuntimeError('boom')",
     r"model 'raises_model' .*forward on a batch of 8 samples raised RuntimeError: boom"),
    ("nan", "return self.head(gate * f_image + (1 - gate) * f_text) * float('nan')", r"model 'nan_model' .*non-finite"),
], ids=["shape_n3", "raises", "nan"])
def test_a_bad_model_is_refused_before_any_work(tmp_path, cache_dir, module, body, message):
    path = variant(tmp_path, module, body)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=message):
        mmrb.evaluate(tiny_suite(models=["early_fusion", f"{module}_model"], plugins=[str(path)]), out=tmp_path / "run",
                      cache=cache)
    assert stored_cells(tmp_path / "run") == 0  # not even the other model's cells ran
    assert not (cache / "models").exists() or not any((cache / "models").iterdir())  # nothing trained


def test_a_wrong_shape_object_is_refused_by_the_cli_and_the_api(tmp_path, cache_dir, capsys):
    path = variant(tmp_path, "cli_shape", "out = self.head(gate * f_image + (1 - gate) * f_text); "
                                          "return torch.cat([out, out[:, :1]], 1)")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(models=["cli_shape_model"])))
    with pytest.raises(SystemExit) as exit_code:
        main(["run", str(suite), "--out", str(tmp_path / "run"), "--cache", str(cache_dir), "--import", str(path),
              "--no-leaderboard", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_code.value.code == 2 and len(err) == 1 and "got (8, 3)" in err[0] and "cli_shape_model" in err[0]
    given = import_plugin(str(path)).make()
    with pytest.raises(ModelError, match=r"model 'mine' \(python\).*got \(8, 3\)"):
        mmrb.evaluate(tiny_suite(), {"mine": given}, only_given=True, out=tmp_path / "api", cache=cache_dir)
    assert stored_cells(tmp_path / "api") == 0


# 3: a constant classifier is flagged (and the flag unranks its entry); the submission floor beats the majority rate


def constant_model(folder: Path, module: str = "constant"):
    """A TinyGated whose head ignores its input and always says 'abnormal' (class 1)."""
    model = import_plugin(str(write_plugin(folder, module, f"{module}_{folder.parent.name}_{folder.name}"))).make()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 3.0]))
    return model


def test_a_constant_classifier_is_flagged_and_a_trained_one_is_not(tmp_path, cache_dir):
    from benchmark.evaluation.tables import soundness_table
    from benchmark.run.runner import RunRecord
    from benchmark.submission.card import Card
    from benchmark.submission.submit import make_entry

    path = write_plugin(tmp_path, "learner", "learner_model")
    suite = tiny_suite(models=["learner_model"], plugins=[str(path)], seeds=[0, 1])
    evaluation = mmrb.evaluate(suite, {"always_abnormal": constant_model(tmp_path)}, out=tmp_path / "run",
                               cache=cache_dir)
    flags = soundness_table(evaluation.cells)
    constant = flags[flags.flag == "constant_prediction"]
    assert list(constant.model) == ["always_abnormal"]  # the trained model is not flagged
    assert "normal 0.0 %" in constant.detail.iloc[0] and "abnormal 100.0 %" in constant.detail.iloc[0]
    assert "constant_prediction" in UNRANKING_FLAGS
    # the flag reaches a leaderboard entry's flags (which the ranking reads)
    card = Card(name="always_abnormal", authors=["T"], entry_point="x.py:f", trained_by="mmrb", tokenizer="t",
                data="d", threat_model="none")
    record = evaluation.record
    only = RunRecord([r for r in record.rows if r["model"] == "always_abnormal"], record.data_fingerprint,
                     record.results_path)
    protocol = mmrb.load_suite(ROOT / "suites" / "leaderboard.yaml")
    document = make_entry(card, SimpleNamespace(family="tiny_gated", modalities={"image", "text"}), protocol, only,
                          {"submission": "s", "code": "c"})
    assert "constant_prediction" in {f.flag for f in document.flags}


def test_the_submission_floor_is_above_the_majority_class_rate(tmp_path, cache_dir):
    from safetensors.torch import save_model

    from benchmark.submission.card import SubmissionError
    from benchmark.submission.submit import submit
    from tests.benchmark.test_submit import card, protocol

    folder = tmp_path / "submission"
    folder.mkdir()
    model = constant_model(folder, "model")
    save_model(model, str(folder / "weights.safetensors"))
    proto = protocol(tmp_path, min_clean_accuracy=0.0)  # min_clean_accuracy alone would let it through
    with pytest.raises(SubmissionError, match=r"not above its majority-class rate \d+\.\d % \(abnormal.*no attack"):
        submit(card(folder, trained_by="submitter", weights="weights.safetensors"), tmp_path / "board", proto, cache_dir,
               out=tmp_path / "run")
    assert stored_cells(tmp_path / "run") == 0 and not (tmp_path / "board").exists()


# 4: a run folder holds one suite


def test_another_suites_out_folder_is_refused_and_a_file_is_one_line(tmp_path, cache_dir, capsys):
    given = {"mine": import_plugin(str(write_plugin(tmp_path, "folder_model", "folder_model"))).make()}
    out = tmp_path / "run"
    first = mmrb.evaluate(tiny_suite(name="first", attacks=[{"name": "none"}]), given, only_given=True, out=out,
                          cache=cache_dir)
    assert first.record.computed == 1
    assert "first: 1 cells" in capsys.readouterr().err  # the API shows its plan (and a bar) by default
    second = tiny_suite(name="second", attacks=[{"name": "none"}])
    with pytest.raises(MmrbError, match=r"holds the results of suite 'first', not of 'second'.*another --out.*--fresh"):
        mmrb.evaluate(second, given, only_given=True, out=out, cache=cache_dir)
    assert set(json.loads(r)["suite"] for r in _rows(out)) == {"first"}
    replaced = mmrb.evaluate(second, given, only_given=True, out=out, cache=cache_dir, fresh=True)
    assert set(replaced.frame.suite) == {"second"} and set(json.loads(r)["suite"] for r in _rows(out)) == {"second"}

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(models=["early_fusion"])))
    (tmp_path / "a_file").write_text("")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_code:
        main(["run", str(suite), "--out", str(tmp_path / "a_file"), "--cache", str(cache_dir), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_code.value.code == 2 and len(err) == 1 and "a_file is a file, not a folder" in err[0]


def _rows(out: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(out / DB_NAME) as db:
        return [row for (row,) in db.execute("SELECT row FROM cells")]


# 5: evaluate(trained=False) is reproducible and resumable


def test_untrained_objects_give_the_same_figures_and_the_second_call_resumes(tmp_path, cache_dir):
    module = import_plugin(str(write_plugin(tmp_path, "untrained_obj", "untrained_obj_model")))
    suite = tiny_suite(seeds=[0, 1])
    frames = []
    for init in (1, 2):  # two objects with different random initial weights
        torch.manual_seed(init)
        evaluation = mmrb.evaluate(suite, {"mine": module.make()}, trained=False, only_given=True, out=tmp_path / "run",
                                   cache=tmp_path / "cache")
        frames.append(evaluation)
    first, second = frames
    assert first.record.computed == 4 and second.record.computed == 0  # 2 seeds × (clean, FGSM); then all resumed
    columns = ["model", "attack", "seed", "clean_accuracy", "robust_accuracy"]
    assert first.frame[columns].equals(second.frame[columns])
    # into a new folder with the cache kept, nothing is retrained: the model keys match
    models = sorted(p.name for p in (tmp_path / "cache" / "models").iterdir())
    torch.manual_seed(3)
    third = mmrb.evaluate(suite, {"mine": module.make()}, trained=False, only_given=True, out=tmp_path / "run3",
                          cache=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == models
    assert third.frame[columns].equals(first.frame[columns])


# 6: Ctrl-C is one line and exit status 130; the same command resumes


INTERRUPTER = '''
import os, signal
from pathlib import Path

_forward = TinyGated.forward


def forward(self, images, text):  # Ctrl-C once the run folder holds a committed cell
    results = os.environ.get("MMRB_TEST_INTERRUPT")
    if results and Path(results).exists() and len(Path(results).read_text().splitlines()) > 1:
        os.kill(os.getpid(), signal.SIGINT)
    return _forward(self, images, text)


TinyGated.forward = forward
'''


@pytest.mark.e2e
def test_ctrl_c_is_one_line_and_exit_130_and_the_same_command_resumes(tmp_path, cache_dir):
    path = write_plugin(tmp_path, "interrupter", "interrupter_model")
    path.write_text(path.read_text() + INTERRUPTER)
    suite, out = tmp_path / "suite.yaml", tmp_path / "run"
    suite.write_text(yaml.safe_dump(tiny_suite(models=["interrupter_model"])))
    command = [sys.executable, "-m", "mmrb.cli", "run", str(suite), "--out", str(out), "--cache",
               str(cache_dir), "--import", str(path), "--no-leaderboard", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MMRB_TEST_INTERRUPT": str(out / "results.csv")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == \
        f"interrupted: 1 cells kept in {out}; run the same command again to resume"
    env.pop("MMRB_TEST_INTERRUPT")
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "(2 rows: 1 resumed from the run store, 1 run now" in again.stdout
    assert signal.SIGINT  # the signal the test sends itself, by name


# 1: submit says what it will run before any work, then one progress bar over trainings and cells


def test_submit_speaks_before_its_first_training_and_shows_one_bar(tmp_path, cache_dir, capsys, monkeypatch):
    import re

    import wrappers.training
    from benchmark.submission.submit import submit
    from tests.benchmark.test_submit import card, protocol

    folder = tmp_path / "submission"
    folder.mkdir()
    write_plugin(folder, "model", f"tiny_gated_{tmp_path.name}")
    said = []
    build = wrappers.training.build_model

    def first_work(*args, **kwargs):  # what stderr held when the first model was built
        said.append(capsys.readouterr().err)
        return build(*args, **kwargs)

    monkeypatch.setattr(wrappers.training, "build_model", first_work)
    outcome = submit(card(folder), tmp_path / "board", protocol(tmp_path), cache_dir, progress=True)
    assert outcome.written
    message = said[0].strip()
    assert re.search(r"tiny_gated: the leaderboard protocol tiny_protocol .*: 3 trainings .*then (\d+) cells; "
                     r"roughly \d+ min", message), message
    cells = int(re.search(r"then (\d+) cells", message).group(1))
    bars = re.findall(r"(\d+)/(\d+) \[", capsys.readouterr().err)
    assert bars and {int(total) for _, total in bars} == {3 + 1 + cells}  # one bar: trainings, floor check, cells
    assert bars[-1][0] == bars[-1][1]


# 2 (compare-defenses): each defense's model is checked before any pre-training


def test_compare_defenses_checks_each_defense_before_pretraining(tmp_path, monkeypatch):
    from benchmark.studies.defenses import compare_defenses, load_defense_suite
    from benchmark.studies.defenses.corpora import load_data
    from benchmark.studies.defenses.heads import check_defenses
    from wrappers.clip import ClipDefended

    suite = load_defense_suite(ROOT / "suites" / "defenses_smoke.yaml")
    test = load_data(suite, tmp_path / "cache").tests["ID"]
    check_defenses(suite.defenses, suite.clip, suite.image_size, test.images, test.texts, "smoke")  # they pass
    forward = ClipDefended.forward
    monkeypatch.setattr(ClipDefended, "forward", lambda self, images, text=None: forward(self, images, text)[:, :1])
    with pytest.raises(ModelError, match=r"defense 'lp'.*got \(8, 1\).*fix the model's forward"):
        compare_defenses(suite, tmp_path / "out", tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "clip").exists()  # no CLIP was pre-trained


# 7: friction


def test_models_and_attacks_listings_version_and_gate_help(capsys):
    import wrappers
    from wrappers.registry import builtin_models

    mine = {n: (e.family, "+".join(sorted(e.modalities)), e.preset, e.cls.__module__) for n in wrappers.list_models()
            for e in [wrappers.model_entry(n)] if e.origin == "mmrb"}
    declared = {n: (b.family, b.modalities, b.preset, b.module) for n, b in builtin_models().items()}
    assert mine == declared  # the listing without imports is the registry, and each name's module registers it
    main(["models", "fusion"])  # a substring, not only a shell pattern
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names and all("fusion" in n for n in names) and "early_fusion" in names
    main(["attacks", "ProjectedGradientDescent", "--source", "art"])
    out = capsys.readouterr().out
    assert "art" in out and "max_iter=100" in out and "estimator" not in out
    main(["attacks", "standard", "--source", "mmrb"])
    assert "steps, restarts, fab_steps, queries, attacks" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith(f"mmrb {mmrb.__version__}")
    with pytest.raises(SystemExit) as exit_code:
        main(["gate", "--help"])
    out = capsys.readouterr().out
    assert exit_code.value.code == 0 and "--mmrb-suite" in out and len(out.splitlines()) < 30


def test_suite_models_are_relative_to_the_suite_take_a_label_and_import_their_neighbours(tmp_path, monkeypatch):
    folder = tmp_path / "suites"
    folder.mkdir()
    path = write_plugin(folder, "relmod", "relmod_model")
    (folder / "relmod_helper.py").write_text("WIDTH = 16\n")
    path.write_text("import relmod_helper\nassert relmod_helper.WIDTH == 16\n" + path.read_text())
    suite = folder / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(models=["relmod.py:annotated", {"name": "early_fusion", "label": "ef"}])))
    monkeypatch.chdir(tmp_path)  # not the suite's folder: the reference resolves against the suite, as plugins: do
    loaded = mmrb.load_suite(suite)
    assert [m.label for m in loaded.models] == ["relmod.py:annotated", "ef"]
    assert loaded.models[1].name == "early_fusion"
    from mmrb.core.errors import SuiteError

    suite.write_text(yaml.safe_dump(tiny_suite(models=["absent.py:make"])))
    with pytest.raises(SuiteError, match=r"looked up relative to the suite's \(or card's\) folder, then the working"):
        mmrb.load_suite(suite)


def test_the_view_scores_what_run_attack_returned_with_its_rows(tmp_path):
    import numpy as np
    from art.attacks.evasion import HopSkipJump

    from benchmark.run.runner import prepare_data
    from benchmark.spec.suite import suite_from_data
    from mmrb.core.errors import ContextError
    from wrappers.configs import TrainRecipe
    from wrappers.training import batch_logits, fit, predict_logits

    data = prepare_data(suite_from_data(tiny_suite(models=["early_fusion"])), tmp_path / "cache")
    torch.manual_seed(0)
    model = import_plugin(str(write_plugin(tmp_path, "viewmod", "viewmod_model"))).make()
    fit(model, batch_logits(model, data.train_set), data.train_set.labels, TrainRecipe(lr=0.02, epochs=6), seed=0)
    images, texts, labels = data.test.images[:4], data.test.texts[:4], data.test.labels[:4]
    view = mmrb.ImageView(model.eval(), images, texts)
    np.random.seed(0)
    attack = HopSkipJump(view, max_iter=2, max_eval=20, init_eval=5, init_size=50, verbose=False)
    x_adv = view.run_attack(attack, images, np.eye(2)[labels])
    with pytest.raises(ContextError, match=r"beyond the unambiguous radius.*predict\(x_adv, rows="):  # the problem
        view.predict(x_adv)
    expected = predict_logits(model, x_adv, texts).numpy()
    assert np.allclose(view.predict(x_adv, rows=range(4)), expected, atol=1e-5)
    assert np.allclose(view.predict(x_adv[::-1], rows=[3, 2, 1, 0]), expected[::-1], atol=1e-5)
    with pytest.raises(ContextError, match="one index of a bound sample"):
        view.predict(x_adv, rows=[0, 1])


# 8: the page defines each figure where it is shown; a one-ε attack is no curve; a text-only model has no empty panel


def test_the_page_defines_its_figures_and_draws_no_invented_curves(tmp_path, monkeypatch):
    import benchmark.board.plots as plots_module
    from benchmark.board import GLOSSARY, build_board, plot_curves
    from tests.benchmark.test_board import ENTRIES, cell, make_entry, write_entries

    build_board(write_entries(tmp_path / "board"))
    page = (tmp_path / "board" / "index.html").read_text()
    for header in ("robust (rank metric)", "text floor", "clean", "flags"):
        assert re.search(rf'<th scope="col" title="[^"]+">{re.escape(header)}</th>', page), header
    assert "standard evaluation" in GLOSSARY["robust (rank metric)"] and "What the figures mean" in page
    readme = (tmp_path / "board" / "README.md").read_text()
    assert "**text floor**" in readme and "**robust (rank metric)**" in readme

    figures = []
    monkeypatch.setattr(plots_module, "_save", lambda figure, path: figures.append(figure) or path)
    plot_curves(ENTRIES["3"][0][1], tmp_path / "curves.png")
    image_axis = figures[-1].axes[0]
    lines = {line.get_label(): list(line.get_xdata()) for line in image_axis.get_lines()}
    assert lines["FGSM"][0] == 0.0  # a curve from clean (ε = 0) over its three ε
    assert all(x[0] > 0 for label, x in lines.items() if label.startswith("standard"))  # one ε: a point, no line
    assert any(c.get_label() == "standard" for c in image_axis.containers)

    text_only = make_entry("text_only", "2", None, 0.0, floor=None)
    text_only["cells"] = [c for c in text_only["cells"] if c["modality"] in ("none", "text")] + \
        [cell("words", "text", None, 0.5, "word_deletion")]
    plot_curves(text_only, tmp_path / "text.png")
    assert len(figures[-1].axes) == 1 and figures[-1].axes[0].get_title() == "text and joint attacks"
