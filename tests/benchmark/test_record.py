"""The typed result row: one definition of results.csv's columns (benchmark.store.record.ResultRecord), committed and
read back by the run store, refused when a column is unknown or missing, and read from run folders older mmrb wrote."""
from __future__ import annotations

import csv
import json
import math
import sqlite3
import time

import numpy as np
import pytest

from benchmark.evaluation import aggregate, soundness
from benchmark.store.record import COLUMNS, DEFAULTS, REQUIRED, TEXT, RecordError, ResultRecord
from benchmark.store.results import DB_NAME, RunStore, read_results, write_csv

IDENTITY = dict(suite="tiny", model="early_fusion", attack="PGD", attack_name="ProjectedGradientDescent",
                attack_source="art", modality="image", epsilon=0.0313725, seed=0, n=20, params='{"max_iter": 3}')
#: The columns of results.csv when mmrb first had a run store (f0c5966): no defense, attack_name, per-class, check_*,
#: operating-point, gradient-health or masking columns.
FIRST_COLUMNS = ("suite", "model", "attack", "attack_source", "modality", "epsilon", "seed", "steps", "transfer_source",
                 "n", "clean_accuracy", "robust_accuracy", "clean_f1", "robust_f1", "auc", "robust_auc",
                 "attack_success_rate", "branch_robust_accuracy", "branch_robust_f1", "queries", "compare_with",
                 "agreement_gap", "max_perturbation", "over_budget", "seconds", "params", "error")


def scored(**changes) -> ResultRecord:
    return ResultRecord(**IDENTITY | dict(steps=3, clean_accuracy=0.9, robust_accuracy=0.45, n_normal=8, n_abnormal=12,
                                          check_rounds=2.0, auc=float("nan"), sub_attacks='{"apgd_ce": 0.5}',
                                          seconds=1.25) | changes)


def old_row(**changes) -> dict:
    """A row as the first run store committed it: only the columns of its time, the scores it had."""
    row = {c: None for c in FIRST_COLUMNS} | {k: v for k, v in IDENTITY.items() if k in FIRST_COLUMNS}
    return row | dict(steps=3, transfer_source="", clean_accuracy=0.9, robust_accuracy=0.45, compare_with="", error="",
                      check_robust_accuracy=0.4) | changes  # a column a later mmrb dropped


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k])
                                                         and math.isnan(b[k])) for k in a)


def test_one_definition_of_the_columns():
    assert len(COLUMNS) == len(set(COLUMNS)) == 62
    assert COLUMNS[:12] == ("suite", "model", "defense", "attack", "attack_name", "attack_source", "modality", "epsilon",
                            "seed", "steps", "transfer_source", "n") and COLUMNS[-2:] == ("params", "error")
    assert set(REQUIRED) | set(DEFAULTS) == set(COLUMNS) and not set(REQUIRED) & set(DEFAULTS)
    # how each column is combined over seeds comes from the record: every aggregated column once, counts are columns
    rules = [aggregate.GROUP, tuple(aggregate.PROPORTIONS), aggregate.SPREAD_ONLY, aggregate.MEANS, aggregate.MAXIMA]
    combined = [c for rule in rules for c in rule]
    assert len(combined) == len(set(combined)) and set(combined) < set(COLUMNS)
    assert set(aggregate.PROPORTIONS.values()) == {"n", "n_normal", "n_abnormal"}
    assert set(COLUMNS) - set(combined) == {"suite", "defense", "attack_name", "seed", "n", "compare_with", "sub_attacks",
                                            "params", "error", "stand_in"}
    assert set(COLUMNS) <= set(soundness.REQUIRED) | set(soundness.OPTIONAL)


def test_a_record_round_trips_through_the_store_and_results_csv(tmp_path):
    record = scored(steps=np.int64(3), robust_accuracy=np.float64(0.45))  # numpy scalars are stored as plain numbers
    failed = ResultRecord(**IDENTITY | {"seed": 1}, error="AttackError: no successful result")
    with RunStore(tmp_path) as store:
        store.commit("a", record)
        store.commit("b", failed.as_row())  # a mapping of the columns is made a record
        assert store.finished() == {"a"}  # a failed cell is retried by the next run
        back = store.records(["b", "a", "missing"])
        rows = store.rows(["a"])
    assert same(back[1].as_row(), record.as_row()) and type(back[1].steps) is int and math.isnan(back[1].auc)
    assert back[0] == failed and back[0].robust_accuracy is None
    assert list(rows[0]) == list(COLUMNS) and same(rows[0], record.as_row())
    write_csv(back, tmp_path / "results.csv")
    with (tmp_path / "results.csv").open() as handle:
        header, *lines = list(csv.reader(handle))
    assert tuple(header) == COLUMNS and len(lines) == 2
    written = dict(zip(header, lines[1]))
    assert written["robust_accuracy"] == "0.45" and written["steps"] == "3" and written["auc"] == "nan"
    assert written["threshold"] == "" and written["defense"] == "" and written["error"] == ""
    frame = read_results(tmp_path / "results.csv")
    assert tuple(frame.columns) == COLUMNS and frame.loc[0, "error"] == "AttackError: no successful result"
    assert frame.loc[1, "robust_accuracy"] == 0.45 and frame.loc[1, "sub_attacks"] == '{"apgd_ce": 0.5}'


@pytest.mark.parametrize("change, named", [
    (lambda row: {k: v for k, v in row.items() if k != "model"}, "'model'"),
    (lambda row: {k: v for k, v in row.items() if k != "params"}, "'params'"),
    (lambda row: row | {"robust_acc": 0.5}, "'robust_acc'"),
    (lambda row: row | {"robust_accuracy": "0.5"}, "'robust_accuracy'"),
    (lambda row: row | {"seed": 0.5}, "'seed'"),
    (lambda row: row | {"model": None}, "'model'"),
])
def test_a_row_with_an_unknown_missing_or_mistyped_column_is_refused_naming_it(tmp_path, change, named):
    with RunStore(tmp_path) as store:
        with pytest.raises(RecordError, match=named):
            store.commit("k", change(scored().as_row()))
        assert store.records(["k"]) == []


def test_the_engine_cannot_set_a_column_the_record_lacks():
    with pytest.raises(RecordError, match="'robust_acc'"):
        scored().updated({"robust_acc": 0.5})
    assert scored().updated({"error": "x"}).error == "x"


def test_a_cell_result_makes_a_backends_error_row_a_record():
    from benchmark.run.engine import CellResult

    outcome = CellResult(None, "k", dict(IDENTITY, transfer_source="", error="Ray could not run this cell"), False)
    assert isinstance(outcome.row, ResultRecord) and outcome.row.error == "Ray could not run this cell"
    with pytest.raises(RecordError, match="'suite'"):
        CellResult(None, "k", {k: v for k, v in IDENTITY.items() if k != "suite"}, False)


def test_a_run_folder_an_older_mmrb_wrote_still_loads(tmp_path):
    """Rows committed by the first run store: the columns added since read at their defaults (attack_name: the attack
    label), a dropped column is left out; its results.csv reads the same way."""
    with RunStore(tmp_path):  # creates the tables; the old rows are then written as that mmrb did
        pass
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        for key, row in (("a", old_row()), ("b", old_row(seed=1, error="ValueError: max_iter"))):
            db.execute("INSERT INTO cells VALUES (?, ?, ?, ?, ?)",
                       (key, json.dumps(row, sort_keys=True), int(bool(row["error"])), "old", time.time()))
    with RunStore(tmp_path) as store:
        assert store.finished() == {"a"}
        old, failed = store.records(["a", "b"])
        rows = store.rows(["a", "b"])
    assert old.attack_name == "PGD" and old.defense == "" and old.check_rounds is None and old.threshold is None
    assert old.robust_accuracy == 0.45 and failed.error == "ValueError: max_iter"
    assert all(list(row) == list(COLUMNS) for row in rows) and "check_robust_accuracy" not in rows[0]
    with (tmp_path / "old.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*FIRST_COLUMNS, "check_robust_accuracy"])
        writer.writeheader()
        writer.writerows([old_row(), old_row(seed=1, error="ValueError: max_iter")])
    frame = read_results(tmp_path / "old.csv")
    assert tuple(frame.columns) == COLUMNS
    assert frame["attack_name"].tolist() == ["PGD", "PGD"] and frame["defense"].tolist() == ["", ""]
    assert frame["threshold"].isna().all() and frame["error"].tolist() == ["", "ValueError: max_iter"]
    assert all(frame[c].map(type).eq(str).all() for c in TEXT)
