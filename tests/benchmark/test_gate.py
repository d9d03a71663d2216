"""The robustness gate: `pytest benchmark/` turns cells into tests; expectations fail only beyond the interval."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.gate import CellKey, expectations, judge
from benchmark.spec.suite import Bound, suite_from_data
from mmrb.core.errors import SuiteError

ROOT = Path(__file__).resolve().parents[2]


def gate_suite(expect: dict) -> dict:
    return {"name": "gate_tiny", "dataset": {"name": "indiana_synth", "n": 200, "seed": 1, "image_size": 16},
            "models": ["vision_only", "early_fusion"], "seeds": [0], "limit": 40, "epsilons": [0.03],
            "attacks": [{"name": "none"}, {"source": "art", "name": "FastGradientMethod", "label": "FGSM"}],
            "convergence_check": False, "expect": expect}


def run_gate(tmp_path: Path, suite: dict, cache: Path, name: str = "suite.yaml") -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(suite))
    return subprocess.run([sys.executable, "-m", "pytest", "benchmark/", "--mmrb-suite", str(path), "--mmrb-out",
                           str(tmp_path / "runs"), "--mmrb-cache", str(cache), "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_raised_expectation_fails_readably_and_a_noise_level_miss_passes(tmp_path, cache_dir):
    from benchmark.api import evaluate
    from benchmark.evaluation.aggregate import aggregate

    # measure the cells first (the gate's own run then resumes them), to place one bound inside the interval
    measured = aggregate(evaluate(gate_suite({}), out=tmp_path / "runs" / "gate_tiny", cache=cache_dir).record.rows)
    clean = measured[(measured.model == "early_fusion") & (measured.attack == "none")].iloc[0]
    inside = round(float(clean.clean_accuracy + clean.clean_accuracy_ci_high) / 2, 4)  # above the mean, in the interval
    assert clean.clean_accuracy < inside < clean.clean_accuracy_ci_high
    expect = {"early_fusion": {"none": {"clean_accuracy": {"min": inside}}},
              "vision_only": {"none": {"clean_accuracy": {"min": 0.99}}}}
    result = run_gate(tmp_path, gate_suite(expect), cache_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 3 passed" in result.stdout
    assert "vision_only-none: clean_accuracy" in result.stdout
    assert "is below the expected min 99.0 % (expect.vision_only.none.clean_accuracy): the whole interval lies below" \
        in result.stdout
    assert "early_fusion-none" not in result.stdout.split("short test summary")[1]
    import sqlite3

    # the gate resumed the run folder: the same 4 cells, none added or run twice

    with sqlite3.connect(tmp_path / "runs" / "gate_tiny" / "run.sqlite") as db:
        assert db.execute("select count(*) from cells").fetchone()[0] == 4


def test_a_bad_expectation_stops_the_gate_before_any_work(tmp_path, cache_dir):
    result = run_gate(tmp_path, gate_suite({"early_fusion": {"PGD": {"robust_accuracy": {"min": 0.4}}}}), cache_dir)
    assert result.returncode == 4  # a usage error
    assert "expect.early_fusion.PGD: not an attack label; labels: ['FGSM', 'none']" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("expect, message", [
    ({"early_fuson": {"none": {"clean_accuracy": {"min": 0.5}}}}, "expect.early_fuson: not a model of the suite"),
    ({"*": {"FGSM@0.2": {"robust_accuracy": {"min": 0.5}}}}, "FGSM does not run at ε = 0.2"),
    ({"*": {"FGSM": {"robust_acc": {"min": 0.5}}}}, "unknown metric(s) ['robust_acc']"),
    ({"*": {"FGSM": {"robust_accuracy": {}}}}, "give min, max or both"),
])
def test_expectations_are_validated_like_the_rest_of_the_suite(expect, message):
    with pytest.raises(SuiteError, match="invalid suite") as error:
        suite_from_data(gate_suite(expect))
    assert message in str(error.value)


def test_the_most_specific_expectation_wins_and_only_the_whole_interval_fails():
    suite = suite_from_data(gate_suite({"*": {"*": {"robust_accuracy": {"min": 0.1}}, "FGSM": {"robust_accuracy": {"min": 0.2}},
                                              "FGSM@0.03": {"robust_accuracy": {"min": 0.3}}},
                                        "early_fusion": {"FGSM": {"robust_accuracy": {"max": 0.9}}}}))
    found = expectations(suite, CellKey("early_fusion", "FGSM", 0.03))
    assert found["robust_accuracy"][0] == "expect.early_fusion.FGSM.robust_accuracy"
    assert expectations(suite, CellKey("vision_only", "FGSM", 0.03))["robust_accuracy"][1] == Bound(min=0.3)
    assert expectations(suite, CellKey("vision_only", "none", None))["robust_accuracy"][1] == Bound(min=0.1)
    row = {"robust_accuracy": 0.35, "robust_accuracy_ci_low": 0.25, "robust_accuracy_ci_high": 0.45, "seeds": 3, "n": 120}
    assert judge(row, "robust_accuracy", Bound(min=0.4), "w") is None  # the mean misses, the interval reaches it
    assert "below the expected min 50.0 %" in judge(row, "robust_accuracy", Bound(min=0.5), "w")
    assert "above the expected max 20.0 %" in judge(row, "robust_accuracy", Bound(max=0.2), "w")
    assert judge({"robust_f1": 0.5, "robust_f1_hw": 0.2, "seeds": 3, "n": 9}, "robust_f1", Bound(min=0.65), "w") is None
    assert judge({}, "robust_accuracy", Bound(min=0.1), "w") == "w: the cell has no robust_accuracy figure"


@pytest.mark.e2e
@pytest.mark.slow
def test_speed_tests_record_adversarial_examples_per_second(tmp_path, cache_dir):
    import json

    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(gate_suite({})))
    report = tmp_path / "speed.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmark/", "--mmrb-suite", str(path), "--mmrb-out",
                             str(tmp_path / "runs"), "--mmrb-cache", str(cache_dir), "--mmrb-speed", "-q",
                             "-p", "no:cacheprovider", f"--benchmark-json={report}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout  # 4 cells + a speed test per attack cell (FGSM on 2 models; clean has none)
    speeds = {b["name"]: b["extra_info"]["adversarial_examples_per_second"] for b in json.loads(report.read_text())["benchmarks"]}
    assert set(speeds) == {"test_attack_speed[vision_only-FGSM-0.03]", "test_attack_speed[early_fusion-FGSM-0.03]"}
    assert all(v > 0 for v in speeds.values())
