"""The run store survives faults: SIGKILL mid-suite and resume, a lock against a second process, --fresh,
and a content-keyed attack cache (unchanged re-runs load; a changed ε or an added model recomputes only that)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.run.runner import run_suite
from benchmark.spec.suite import load_suite
from benchmark.store.results import DB_NAME, RunStore

SUITE = {
    "name": "resume",
    "dataset": {"name": "indiana_synth", "n": 120, "seed": 1, "image_size": 32},
    "models": ["vision_only", "early_fusion"],
    "attacks": [{"name": "none"},
                {"source": "art", "name": "FastGradientMethod", "label": "FGSM"},
                {"source": "art", "name": "ProjectedGradientDescent", "label": "PGD", "params": {"max_iter": 5}}],
    "epsilons": [0.0313725, 0.2],
    "seeds": [0, 1],
    "limit": 16,
    "convergence_check": False,  # these tests are about the store and the cache, not the attacks
}
N_CELLS = 2 * 2 * 5  # models × seeds × (clean + 2 attacks × 2 ε)


def write_suite(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**SUITE, **changes}))
    return path


def mmrb(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmrb", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2], **kwargs)


def committed(folder: Path) -> int:
    try:
        with sqlite3.connect(folder / DB_NAME, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def scores(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns=["seconds"])


def kill_then_resume(args: tuple[str, ...], out: Path, at_least: int, n_cells: int,
                     before_kill=lambda pid: None) -> tuple[dict[str, str], dict[str, str]]:
    """Start `mmrb *args`, SIGKILL it once `at_least` cells are committed in `out` (calling `before_kill(pid)`
    first), check the store and results.csv hold just those, run the same command again and check it resumed them
    and finished the rest; returns the run ids (key -> run) before and after the re-run."""
    proc = mmrb(*args)
    deadline = time.time() + 240
    while committed(out) < at_least and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.communicate()[1][-2000:]
    before_kill(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with RunStore(out) as store:  # the lock died with the process
        before = store.run_ids()
    assert at_least <= len(before) < n_cells
    assert len(pd.read_csv(out / "results.csv")) == len(before)  # the view holds every committed cell

    resumed = mmrb(*args)
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-2000:]
    assert f"{len(before)} resumed from the run store, {n_cells - len(before)} run now" in stdout
    with RunStore(out) as store:
        after = store.run_ids()
    assert len(after) == n_cells
    assert {k: after[k] for k in before} == before, "a cell committed before the kill was recomputed"
    return before, after


@pytest.mark.e2e
@pytest.mark.slow
def test_sigkill_mid_suite_then_resume_loses_and_recomputes_nothing(tmp_path):
    suite = write_suite(tmp_path / "resume.yaml")
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ("run", str(suite), "--out", str(out), "--cache", str(cache), "--no-leaderboard", "-q")
    before, after = kill_then_resume(args, out, 4, N_CELLS)
    assert len(set(after.values())) == 2  # the killed run's cells and the resumed run's

    # an uninterrupted run with its own cache (nothing shared) gives the same results
    run_suite(load_suite(suite), tmp_path / "whole", tmp_path / "cache2", progress=False)
    pd.testing.assert_frame_equal(scores(out / "results.csv"), scores(tmp_path / "whole" / "results.csv"))


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    suite = write_suite(tmp_path / "resume.yaml")
    out = tmp_path / "out"
    with RunStore(out):
        proc = mmrb("run", str(suite), "--out", str(out), "--cache", str(tmp_path / "cache"), "--no-leaderboard", "-q")
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "in use by another mmrb process" in stderr and str(out) in stderr
    assert not (tmp_path / "cache").exists()  # refused before any work


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cached")
    suite = write_suite(root / "resume.yaml")
    record = run_suite(load_suite(suite), root / "out", root / "cache", progress=False)
    return root, record


def test_unchanged_rerun_loads_every_cell_and_is_byte_identical(first_run):
    root, first = first_run
    assert first.computed == N_CELLS and first.loaded == 0
    again = run_suite(load_suite(root / "resume.yaml"), root / "elsewhere", root / "cache", progress=False)
    assert again.computed == N_CELLS and again.loaded == N_CELLS
    assert (root / "out" / "results.csv").read_bytes() == (root / "elsewhere" / "results.csv").read_bytes()
    resumed = run_suite(load_suite(root / "resume.yaml"), root / "out", root / "cache", progress=False)
    assert resumed.computed == 0 and len(resumed.rows) == N_CELLS
    fresh = run_suite(load_suite(root / "resume.yaml"), root / "out", root / "cache", progress=False, fresh=True)
    assert fresh.computed == N_CELLS and fresh.loaded == N_CELLS


def test_changing_one_epsilon_recomputes_only_its_cells(first_run):
    root, _ = first_run
    attacks = [dict(a) for a in SUITE["attacks"]]
    attacks[2]["epsilons"] = [0.1]  # PGD now at 0.1 only; FGSM keeps 8/255 and 0.2
    suite = write_suite(root / "changed.yaml", attacks=attacks)
    record = run_suite(load_suite(suite), root / "out", root / "cache", progress=False)
    assert record.computed == 2 * 2 and record.loaded == 0  # PGD ε=0.1 on 2 models × 2 seeds
    assert len(record.rows) == 2 * 2 * 4
    assert set(pd.DataFrame(record.rows).query("attack == 'PGD'")["epsilon"]) == {0.1}


def test_adding_a_model_runs_only_its_cells(first_run):
    root, _ = first_run
    suite = write_suite(root / "more.yaml", models=["vision_only", "early_fusion", "ensemble_fusion"])
    record = run_suite(load_suite(suite), root / "out3", root / "cache", progress=False)
    assert record.computed == 3 * 2 * 5
    assert record.loaded == 2 * 2 * 5  # the two models already attacked come from the cache


def test_library_error_in_a_cell_is_that_cells_row(tmp_path):
    attacks = SUITE["attacks"][:1] + [{"source": "art", "name": "ProjectedGradientDescent", "label": "bad",
                                       "params": {"max_iter": -1, "eps_step": 0.01}}]
    suite = write_suite(tmp_path / "bad.yaml", attacks=attacks, models=["vision_only"], seeds=[0], epsilons=[0.1])
    record = run_suite(load_suite(suite), tmp_path / "out", tmp_path / "cache", progress=False)
    rows = pd.DataFrame(record.rows).set_index("attack")
    assert rows.loc["none", "error"] == ""
    assert "ValueError" in rows.loc["bad", "error"] and "max_iter" in rows.loc["bad", "error"]


def test_artifacts_stay_under_the_drivers_keys_when_the_attack_code_changes_mid_run(tmp_path, monkeypatch):
    """The attack-code digest reads the source files: an edit while a run goes on changes it. Cells must still store
    their artifacts under the key the driver computed when the run began, or the run's per-sample evidence
    (samples.csv, the paired tests) would silently miss them. Here every digest differs from the last."""
    import itertools

    import benchmark.run.keys

    calls = itertools.count()
    real = benchmark.run.keys.attack_code
    monkeypatch.setattr(benchmark.run.keys, "attack_code", lambda *args: {**real(*args), "edit": next(calls)})
    suite = write_suite(tmp_path / "resume.yaml", models=["vision_only"], seeds=[0])
    record = run_suite(load_suite(suite), tmp_path / "out", tmp_path / "cache", progress=False)
    samples = pd.read_csv(tmp_path / "out" / "samples.csv")
    assert record.computed == 5
    assert len(samples.groupby(["attack", "epsilon"], dropna=False)) == 5  # every cell's per-sample rows
