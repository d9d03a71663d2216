"""`mmrb submit`: model cards, checks before any attack, immutable and idempotent entries, protocol versions."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

import benchmark
from benchmark.submission.card import SubmissionError, load_card
from benchmark.submission.submit import submit
from mmrb.cli import main
from tests.plugins.tiny_plugin import tiny_suite, write_plugin

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def protocol(tmp_path, **leaderboard) -> str:
    """A small leaderboard protocol: clean, FGSM, the standard evaluation (tiny budgets) and the floor, 3 seeds."""
    suite = tiny_suite(
        name="tiny_protocol", models=["early_fusion"], seeds=[0, 1, 2], epsilons=[0.01, 0.03],
        convergence_check={"step_factor": 2, "restarts": 1},
        attacks=[{"name": "none"}, {"source": "art", "name": "FastGradientMethod", "label": "FGSM"},
                 {"source": "mmrb", "name": "standard",
                  "params": {"steps": 5, "restarts": 1, "fab_steps": 3, "queries": 20, "attacks": ["apgd_ce", "square"]}},
                 {"source": "mmrb", "name": "image_replacement", "label": "floor"}],
        leaderboard={"rank_by": {"attack": "standard", "epsilon": 0.03}, "min_clean_accuracy": 0.6, **leaderboard})
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def card(folder, file: str = "card.yaml", **fields) -> str:
    data = {"name": "tiny_gated", "authors": ["A. Tester"], "entry_point": "model.py:make", "trained_by": "mmrb",
            "tokenizer": "hashed words", "data": "the protocol's training split", "threat_model": "none claimed"}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / file
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture()
def submission(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    write_plugin(folder, "model", f"tiny_gated_{tmp_path.name}")
    return folder


def test_submit_writes_one_entry_and_resubmitting_is_a_no_op(tmp_path, submission, cache_dir, capsys):
    board, proto = tmp_path / "board", protocol(tmp_path)
    outcome = submit(card(submission), board, proto, cache_dir)
    assert outcome.written and outcome.path == board / f"v{benchmark.PROTOCOL_VERSION}" / "entries" / "tiny_gated.json"
    entry = json.loads(outcome.path.read_text())
    assert entry["card"]["authors"] == ["A. Tester"] and entry["model"] == {"family": "tiny_gated",
                                                                           "modalities": ["image", "text"]}
    assert entry["provenance"]["seeds"] == [0, 1, 2] and entry["provenance"]["suite_hash"]
    assert len(entry["digests"]["code"]) == 16 and entry["digests"]["weights"] is None
    attacks = {(c["attack"], c["epsilon"]) for c in entry["cells"]}
    assert {("none", None), ("FGSM", 0.01), ("FGSM", 0.03), ("standard", 0.03), ("floor", None)} <= attacks
    rank = entry["rank"]
    assert rank["attack"] == "standard" and rank["ci_low"] <= rank["robust_accuracy"] <= rank["ci_high"]
    standard = next(c for c in entry["cells"] if c["attack"] == "standard" and c["epsilon"] == 0.03)
    assert rank["robust_accuracy"] == standard["robust_accuracy"]
    assert entry["floor"]["robust_accuracy"] <= entry["clean"]["accuracy"]
    assert all(c["seeds"] == 3 and c["robust_accuracy_normal"] is not None for c in entry["cells"])
    assert isinstance(entry["flags"], list)
    written = outcome.path.read_bytes()

    again = submit(card(submission), board, proto, cache_dir)
    assert not again.written and "nothing to do" in again.message
    assert outcome.path.read_bytes() == written

    # other code under the same name is refused: entries are immutable
    (submission / "model.py").write_text((submission / "model.py").read_text() + "\n# changed\n")
    with pytest.raises(SubmissionError, match="already exists.*immutable.*tiny_gated-v2"):
        submit(card(submission), board, proto, cache_dir)


def test_protocol_versions_never_mix(tmp_path, submission, cache_dir, monkeypatch):
    board, proto = tmp_path / "board", protocol(tmp_path)
    first = submit(card(submission), board, proto, cache_dir)
    monkeypatch.setattr(benchmark, "PROTOCOL_VERSION", "99")
    second = submit(card(submission), board, proto, cache_dir)
    assert second.written and first.path.parent.parent.name != second.path.parent.parent.name == "v99"
    assert json.loads(second.path.read_text())["protocol_version"] == "99"
    # a changed protocol suite cannot add entries to a version made with another one
    changed = protocol(tmp_path, min_clean_accuracy=0.55)
    with pytest.raises(SubmissionError, match="differs from the one the entries of protocol 99"):
        submit(card(submission, name="other"), board, changed, cache_dir)


def test_final_weights_load_from_safetensors_and_a_pickle_is_refused(tmp_path, submission, cache_dir):
    from safetensors.torch import save_model

    from wrappers.registry import import_plugin

    module = import_plugin(str(submission / "model.py"))
    model = module.make()
    save_model(model, str(submission / "weights.safetensors"))
    torch.save(model, submission / "pickled.pt")  # the whole module: needs unpickling arbitrary classes
    torch.save(model.state_dict(), submission / "state.pt")
    board, proto = tmp_path / "board", protocol(tmp_path, min_clean_accuracy=0.0)
    with pytest.raises(SubmissionError, match=r"field 'weights': .*pickled.pt holds pickled Python objects.*never"):
        submit(card(submission, trained_by="submitter", weights="pickled.pt"), board, proto, cache_dir)
    assert not board.exists()
    outcome = submit(card(submission, trained_by="submitter", weights="weights.safetensors"), board, proto, cache_dir)
    entry = json.loads(outcome.path.read_text())
    assert entry["card"]["trained_by"] == "submitter" and len(entry["digests"]["weights"]) == 64
    # an untrained model's clean accuracy is what it is: the same for every seed (final weights, attack seeds vary)
    clean = next(c for c in entry["cells"] if c["modality"] == "none")
    assert clean["robust_accuracy"] == pytest.approx(entry["clean"]["accuracy"])
    outcome = submit(card(submission, name="from_state", trained_by="submitter", weights="state.pt"), board, proto,
                     cache_dir, out=tmp_path / "state_run")
    assert outcome.written


def test_checks_before_any_attack(tmp_path, submission, cache_dir):
    board = tmp_path / "board"
    with pytest.raises(SubmissionError, match=r"clean accuracy .* below the floor 99 %.*min_clean_accuracy.*no attack"):
        submit(card(submission), board, protocol(tmp_path, min_clean_accuracy=0.99), cache_dir, out=tmp_path / "run")
    assert not board.exists()
    assert not (tmp_path / "run" / "results.csv").exists()  # the floor is the bar's step before any cell
    (submission / "bad.py").write_text((submission / "model.py").read_text().replace(
        "return self.head(", "return torch.cat([self.head(f_image), self.head(f_text)], 1)  # (").replace(
        "NAME = '", "NAME = 'bad_"))
    with pytest.raises(SubmissionError, match=r"forward must return logits of shape \(n, 2\) = \(8, 2\), got \(8, 4\)"):
        submit(card(submission, name="bad", entry_point="bad.py:make"), board, protocol(tmp_path), cache_dir)


MALFORMED = {
    "missing name": ({"name": None}, r"field 'name': missing; a short name"),
    "bad name": ({"name": "no spaces allowed"}, r"field 'name': String should match pattern"),
    "no authors": ({"authors": []}, r"field 'authors': List should have at least 1 item"),
    "unknown field": ({"licence": "MIT"}, r"field 'licence': unknown field; card fields: name, authors"),
    "trained_by": ({"trained_by": "me"}, r"field 'trained_by': Input should be 'mmrb' or 'submitter'"),
    "weights missing": ({"trained_by": "submitter"}, r"needs 'weights'"),
    "weights with mmrb": ({"weights": "w.safetensors"}, r"remove 'weights'"),
    "no threat model": ({"threat_model": None}, r"field 'threat_model': missing; say what robustness is claimed"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_each_malformed_card_is_one_clear_line(tmp_path, case):
    fields, message = MALFORMED[case]
    path = card(tmp_path, **fields)
    with pytest.raises(SubmissionError, match=message) as error:
        load_card(path)
    assert str(error.value).startswith(f"{path}: invalid model card")


def test_card_files_are_checked_before_any_work(tmp_path, submission, cache_dir, capsys):
    proto = protocol(tmp_path)
    cases = [(card(submission, "a.yaml", trained_by="submitter", weights="absent.safetensors"),
              r"field 'weights': .*absent.safetensors does not exist"),
             (card(submission, "b.yaml", entry_point="absent.py:make"),
              r"field 'entry_point': plug-in file 'absent.py' not found"),
             (card(submission, "c.yaml", entry_point="model.py:nothing"), r"field 'entry_point': .* has no 'nothing'"),
             (card(submission, "d.yaml", name="early_fusion"), r"field 'name': 'early_fusion' is the name of another")]
    for path, message in cases:
        with pytest.raises(SubmissionError, match=message):
            submit(path, tmp_path / "board", proto, cache_dir, out=tmp_path / "run")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(SystemExit) as exit_code:
        main(["submit", str(tmp_path / "list.yaml"), "--protocol", proto, "--cache", str(cache_dir)])
    assert exit_code.value.code == 2 and "a model card is a YAML mapping" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_docs_example_is_the_example_file_and_its_card_submits(tmp_path, cache_dir):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "own-model.md").read_text()
    block = page.split("**A worked example**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    source = (root / "examples/submit_fusion/gated.py").read_text()
    assert block.strip() and source.endswith(block)  # the docs show the file as it is, from its imports on
    board = tmp_path / "board"
    outcome = submit(root / "examples/submit_fusion/card.yaml", board, protocol(tmp_path), cache_dir)
    entry = json.loads(outcome.path.read_text())
    assert entry["name"] == "gated_fusion" and entry["model"]["family"] == "gated_fusion"
    assert entry["clean"]["accuracy"] >= 0.6 and entry["rank"]["robust_accuracy"] <= entry["clean"]["accuracy"]
    from benchmark.board import build_board

    written = build_board(board)
    assert "gated_fusion" in (board / "README.md").read_text() and board / "index.html" in written


def test_an_outside_evaluation_that_finds_lower_sets_the_ranked_figure(tmp_path, submission, cache_dir):
    from benchmark.board import build_board, load_entries
    from benchmark.submission.evaluations import EvaluationError, evaluate_entry

    board = tmp_path / "board"
    suite = yaml.safe_load(open(protocol(tmp_path)))
    suite.update(epsilons=[0.15], leaderboard={"rank_by": {"attack": "standard", "epsilon": 0.15}, "min_clean_accuracy": 0.6})
    suite["attacks"][2]["params"] = {"queries": 3, "attacks": ["square"]}  # a deliberately weak rank evaluation
    (tmp_path / "weak.yaml").write_text(yaml.safe_dump(suite))
    weak = str(tmp_path / "weak.yaml")
    the_card = card(submission)
    submitted = json.loads(submit(the_card, board, weak, cache_dir).path.read_text())["rank"]["robust_accuracy"]
    spec = tmp_path / "stronger.yaml"
    spec.write_text(yaml.safe_dump({"name": "pgd-margin-200", "authors": ["B. Challenger"],
                                    "attack": {"source": "mmrb", "name": "pgd", "params": {"steps": 200, "restarts": 3}}}))
    path, summary = evaluate_entry(the_card, spec, board, cache_dir, protocol=weak)
    found = json.loads(path.read_text())
    assert found["authors"] == ["B. Challenger"] and len(found["per_seed"]) == 3
    assert found["robust_accuracy"] < submitted, (found["robust_accuracy"], submitted)
    assert "becomes the evaluation's" in summary
    entry = load_entries(board)[benchmark.PROTOCOL_VERSION][0]
    assert entry["rank"]["robust_accuracy"] == found["robust_accuracy"]
    assert entry["rank"]["submitted_robust_accuracy"] == submitted
    build_board(board)
    readme = (board / "README.md").read_text()
    assert "outside evaluation pgd-margin-200 (B. Challenger" in readme
    with pytest.raises(EvaluationError, match="immutable"):
        evaluate_entry(the_card, spec, board, cache_dir, protocol=weak)
    spec.write_text(yaml.safe_dump({"name": "bad", "authors": ["B"], "attack": {"source": "mmrb", "name": "pgd",
                                                                              "params": {"stepz": 3}}}))
    with pytest.raises(EvaluationError, match=r"stronger.yaml: field 'attack.params.stepz'"):
        evaluate_entry(the_card, spec, board, cache_dir, protocol=weak)


def test_a_defended_card_publishes_the_naive_figure_beside_the_ranked_adaptive_one(tmp_path, submission, cache_dir):
    """A card behind feature squeezing: every gradient attack is run naively and adaptively; the entry's rank figure
    is the adaptive one (the standard evaluation, which adapts by itself), and beside it the lowest naive figure at
    the rank ε with its attack (FGSM here); each naively attacked cell carries both figures and the masking."""
    board, proto = tmp_path / "board", protocol(tmp_path)
    defense = {"name": "feature_squeezing", "params": {"bit_depth": 3}}
    outcome = submit(card(submission, name="tiny_squeezed", defense=defense), board, proto, cache_dir)
    entry = json.loads(outcome.path.read_text())
    assert entry["card"]["defense"]["name"] == "feature_squeezing"
    rank = entry["rank"]
    fgsm = {c["epsilon"]: c for c in entry["cells"] if c["attack"] == "FGSM"}
    assert set(fgsm) == {0.01, 0.03} and all(c["naive_robust_accuracy"] >= c["robust_accuracy"] for c in fgsm.values())
    assert all(c["masking"] == pytest.approx(c["naive_robust_accuracy"] - c["robust_accuracy"]) for c in fgsm.values())
    assert rank["naive_attack"] == "FGSM" and rank["naive_robust_accuracy"] == fgsm[0.03]["naive_robust_accuracy"]
    standard = next(c for c in entry["cells"] if c["attack"] == "standard" and c["epsilon"] == 0.03)
    assert rank["robust_accuracy"] == standard["robust_accuracy"] <= rank["naive_robust_accuracy"]
