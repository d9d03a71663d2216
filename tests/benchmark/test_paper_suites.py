"""The paper suites as shipped, shrunk (fewer, smaller samples) but otherwise unchanged, run end to end."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.run.runner import run_suite
from benchmark.spec.suite import load_suite

SUITES = Path(__file__).resolve().parents[2] / "suites"
TINY_DATA = {"name": "indiana_synth", "n": 120, "seed": 1, "image_size": 32}


def shrunk(name: str, tmp_path: Path) -> Path:
    data = yaml.safe_load((SUITES / name).read_text())
    if name.startswith("paper_"):  # leaderboard-facing suites train three seeds; one is enough to test the shape
        assert data["seeds"] == [0, 1, 2]
    data.update(dataset=TINY_DATA, limit=12, seeds=[0], convergence_check={"step_factor": 2, "restarts": 1})
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.e2e
def test_paper_table1_runs_every_row(tmp_path, cache):
    suite = load_suite(shrunk("paper_table1.yaml", tmp_path))
    record = run_suite(suite, tmp_path / "out", cache, progress=False)
    rows = pd.DataFrame(record.rows)
    assert (rows["error"] == "").all(), rows.loc[rows["error"] != "", "error"].tolist()
    fusion = rows[rows["model"] == "late_fusion"]
    # the paper's 11 rows: clean, FGSM/PGD at 0.03 and 0.2, synonym (0.2 and 0.4), deletion, 4 joint attacks; + the floor
    assert len(fusion) == 13 and set(fusion["modality"]) == {"none", "image", "text", "joint"}
    assert "floor" in (tmp_path / "out" / "accuracy.md").read_text()
    table = (tmp_path / "out" / "table1.md").read_text()
    for row in ("PGD+synonym, ε=0.03 [joint]", "half_deletion [text]", "FGSM, ε=0.2 [image]"):
        assert row in table and row in record.tables
    assert fusion.loc[fusion["attack"] == "synonym_0.2", "branch_robust_f1"].notna().all()  # bracketed figure


def test_paper_transfer_prints_both_matrices(tmp_path, cache):
    suite = load_suite(shrunk("paper_transfer.yaml", tmp_path))
    record = run_suite(suite, tmp_path / "out", cache, progress=False)
    rows = pd.DataFrame(record.rows)
    assert len(rows) == 3 * 3 * 2 and (rows["error"] == "").all()
    assert "PGD, ε=0.03137" in record.tables and "PGD, ε=0.2" in record.tables
    assert len(list((tmp_path / "out").glob("transfer_*.csv"))) == 2


def test_text_attack_suite_records_queries(tmp_path, cache):
    path = shrunk("text_attacks.yaml", tmp_path)
    data = yaml.safe_load(path.read_text())
    data.update(limit=4, models=["early_fusion"])
    path.write_text(yaml.safe_dump(data))
    rows = pd.DataFrame(run_suite(load_suite(path), tmp_path / "out", cache, progress=False).rows)
    assert (rows["error"] == "").all()
    searched = rows[rows["attack_source"] == "textattack"]
    assert len(searched) == 3 and (searched["queries"] > 0).all()
    assert (searched["robust_accuracy"] <= searched["clean_accuracy"]).all()
