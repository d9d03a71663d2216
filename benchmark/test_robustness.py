"""The robustness gate, one test per cell of each suite: `pytest benchmark/ [--mmrb-suite PATH]`.

A cell's test fails if any of its training seeds failed, or if a bound of the suite's `expect:` is missed by the
cell's whole 95 % interval (benchmark.gate). The suite runs once per session through mmrb.evaluate, into a run
folder that is resumed, with the shared model and attack caches."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.conftest import gate_suites
from benchmark.gate import CellKey, cell_keys, expectations, judge
from benchmark.speed import crafts


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gate_cell" not in metafunc.fixturenames:
        return
    suites = gate_suites(metafunc.config)
    named = len(suites) > 1
    params, ids = [], []
    speed = metafunc.function.__name__ == "test_attack_speed"
    for index, suite in enumerate(suites):
        for key in cell_keys(suite):
            if speed and not crafts(suite, key):
                continue
            params.append((index, key))
            ids.append(f"{suite.name}:{key.test_id}" if named else key.test_id)
    metafunc.parametrize("gate_cell", params, ids=ids)


@pytest.fixture(scope="session")
def gate_runs(request: pytest.FixtureRequest):
    """suite index -> (suite, aggregated cells by key, per-cell errors), each suite run once per session."""
    from benchmark.api import evaluate
    from benchmark.evaluation.aggregate import aggregate
    from benchmark.run.backends import backend_from

    config = request.config
    out, cache = Path(config.getoption("--mmrb-out")), config.getoption("--mmrb-cache")
    backend = backend_from(config.getoption("--mmrb-backend"), config.getoption("--mmrb-address"))
    runs = {}
    for index, suite in enumerate(gate_suites(config)):
        record = evaluate(suite, out=out / suite.name, cache=cache, device=config.getoption("--mmrb-device"),
                          backend=backend).record
        cells = {_key(row): row for row in aggregate(record.rows).to_dict("records")}
        errors: dict[CellKey, list[str]] = {}
        for row in record.rows:
            if row["error"]:
                errors.setdefault(_key(row), []).append(f"seed {row['seed']}: {row['error']}")
        runs[index] = (suite, cells, errors)
    return runs


def _key(row: dict) -> CellKey:
    eps = row.get("epsilon")
    eps = None if eps is None or eps != eps or eps == "" else float(eps)
    return CellKey(str(row["model"]), str(row["attack"]), eps, str(row.get("transfer_source") or ""))


def test_cell(gate_cell: tuple[int, CellKey], gate_runs) -> None:
    index, key = gate_cell
    suite, cells, errors = gate_runs[index]
    if key in errors:
        pytest.fail(f"{key.test_id}: the cell failed: " + "; ".join(errors[key]), pytrace=False)
    row = cells.get(key)
    assert row is not None, f"{key.test_id}: no result"
    failures = [message for metric, (where, bound) in expectations(suite, key).items()
                if (message := judge(row, metric, bound, where)) is not None]
    if failures:
        pytest.fail(f"{key.test_id}: " + "\n".join(failures), pytrace=False)


def test_attack_speed(gate_cell: tuple[int, CellKey], gate_runs, request: pytest.FixtureRequest) -> None:
    """Adversarial examples per second of the cell's attack on 8 samples (first training seed), timed by
    pytest-benchmark (`--benchmark-autosave` keeps it); only with --mmrb-speed."""
    from benchmark.speed import time_attack

    index, key = gate_cell
    suite = gate_runs[index][0]
    benchmark = request.getfixturevalue("benchmark")
    craft = time_attack(suite, key, request.config.getoption("--mmrb-cache"), request.config.getoption("--mmrb-device"))
    n = benchmark.pedantic(craft, rounds=1, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["adversarial_examples_per_second"] = n / benchmark.stats.stats.mean
