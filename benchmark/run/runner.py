"""The run driver: a suite -> its data, its resolved models, its cells -> the cells not yet committed, computed by a
backend -> one results row per cell and seed, committed to the run folder's store as each arrives.

Each cell has a content key (`benchmark.run.keys.Keys.cell`) covering everything that decides its output. A finished
cell is committed to the run folder's store (`benchmark.store.results.RunStore`) before the next one is taken, and what it
produced is kept in the attack cache (`benchmark.store.artifacts.ArtifactCache`): re-running into the same folder skips
committed cells, and re-running an unchanged suite anywhere loads instead of attacking. The cells themselves are
computed by the cell engine (`benchmark.run.engine`), wherever the backend (`benchmark.run.backends`) runs them.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmark.board.samples_page import write_samples_page
from benchmark.data import SplitArrays, load_dataset
from benchmark.evaluation.clinical import calibration_split
from benchmark.evaluation.costs import write_costs
from benchmark.evaluation.evidence import write_evidence
from benchmark.evaluation.tables import write_tables
from benchmark.run.backends import Backend, Progress, as_backend
from benchmark.run.engine import Plan, SuiteData, needs_text_resources
from benchmark.run.keys import Keys
from benchmark.run.preflight import check_models, suite_models
from benchmark.spec.grid import expand, expand_transfer
from benchmark.spec.suite import Suite
from benchmark.spec.validate import check_suite
from benchmark.store.artifacts import ArtifactCache
from benchmark.store.results import CSV_NAME, RunStore, write_csv
from mmrb.core.errors import Interrupted
from wrappers.registry import ModelEntry, model_entry
from wrappers.training import LabelledSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRecord:
    """What a run produced and what it ran on (the leaderboard's provenance columns)."""

    rows: list[dict[str, Any]]
    data_fingerprint: str
    results_path: Path
    tables: str = ""  # Markdown of the paper-shaped tables, also written next to results.csv
    computed: int = 0  # cells this run scored (the others were already in the run store)
    loaded: int = 0  # of those, cells whose attack output came from the attack cache


def run_suite(suite: Suite, out_dir: str | Path, cache_dir: str | Path, device: str = "cpu",
              progress: bool = True, fresh: bool = False, backend: str | Backend | None = None,
              before: list[tuple[str, Callable[[], Any]]] = ()) -> RunRecord:
    """Execute every cell of `suite` not already committed in out_dir's run store (all of them with `fresh`);
    results.csv there is regenerated from the store after every cell. `backend` decides where cells run
    (`benchmark.run.backends`: in this process by default, or as Ray tasks); the store is written here only.
    `before`: (description, task) pairs run first, each a step of the run's progress bar (submit's trainings and
    floor check). Ctrl-C raises `Interrupted` (how many cells the folder keeps)."""
    backend = as_backend(backend)
    backend.check(device)
    check_suite(suite)
    if needs_text_resources(suite):  # stop before any data or training work, not halfway through the grid
        from benchmark.data.text_resources import ensure_text_resources

        ensure_text_resources()
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    with RunStore(out_dir, fresh=fresh, suite=suite_identity(suite)) as store:
        try:
            return _run(suite, store, cache_dir.resolve(), device, progress, backend, before)
        except KeyboardInterrupt:
            raise Interrupted(store.folder, len(store.finished())) from None


def suite_identity(suite: Suite) -> dict[str, Any]:
    """What a run folder records of the suite that fills it (a folder holds one suite's results)."""
    source = str(suite.source or "")
    return {"name": suite.name, "source": "" if source.startswith("<") else source, "hash": suite.content_hash}


def prepare_data(suite: Suite, cache_dir: Path) -> SuiteData:
    """Load (or generate) the suite's dataset and split it by the suite's seed; `limit` caps the test samples."""
    spec = suite.dataset
    dataset = load_dataset(spec, cache_dir)
    train_samples, test_samples = dataset.split(suite.seed, spec.test_fraction)
    test_samples = test_samples[: suite.limit] if suite.limit else test_samples
    fingerprint = f"{dataset.fingerprint()}-{spec.image_size}px-split{suite.seed}-{spec.test_fraction}"
    train = SplitArrays.from_samples(train_samples, spec.image_size)
    test = SplitArrays.from_samples(test_samples, spec.image_size)
    calibration = calibration_split(spec, cache_dir, spec.image_size) if suite.operating_point else None
    return SuiteData(LabelledSet(train.images, train.texts, train.labels, fingerprint), test, fingerprint, calibration)


def resolve_models(suite: Suite) -> dict[str, ModelEntry]:
    """The model entry of every model name the suite uses, resolved once by the driver: the plan carries them to the
    cell engine and to every backend's workers (no registry lookups by name elsewhere)."""
    return {spec.name: model_entry(spec.name) for spec in suite_models(suite)}


def _run(suite: Suite, store: RunStore, cache_dir: Path, device: str, progress: bool, backend: Backend,
         before: list[tuple[str, Callable[[], Any]]] = ()) -> RunRecord:
    data = prepare_data(suite, cache_dir)
    models = resolve_models(suite)
    modalities_of = lambda name: models[name].modalities  # noqa: E731
    cells = expand(suite, modalities_of) + expand_transfer(suite, modalities_of)
    keys = Keys(suite, data.fingerprint, data.test.uids, device, models)
    cell_keys = [keys.cell(c) for c in cells]
    finished = store.finished()
    pending = [(c, k) for c, k in zip(cells, cell_keys) if k not in finished]
    if pending:  # every model on one batch before any training or attack (benchmark.run.preflight)
        check_models(suite, data, cache_dir, models=models)
    message = (f"{suite.name}: {len(cells)} cells ({len(suite.training_seeds)} training seeds), {len(data.train_set.labels)} "
               f"train / {len(data.test.labels)} test samples; {len(cells) - len(pending)} already committed in "
               f"{store.folder}, {len(pending)} to run ({backend.describe()})")
    log.info(message)
    if progress:
        print(message, file=sys.stderr)
    results_path, loaded, committed = store.folder / CSV_NAME, 0, set()
    plan = Plan(suite, keys, data, cache_dir, device, models)
    with tqdm(total=len(pending) + len(before), desc=suite.name, disable=not progress, unit="task") as bar:
        steps = Progress(bar)
        for text, task in before:
            steps.note(text)
            task()
            steps.task_done()
        for outcome in backend.execute(plan, pending, steps):
            if outcome.key in committed:  # a backend that ran a cell twice (a retried task) commits it once
                continue
            store.commit(outcome.key, outcome.row)
            committed.add(outcome.key)
            loaded += outcome.loaded
            write_csv(store.rows(cell_keys), results_path)
            steps.task_done()
    rows = store.rows(cell_keys)
    write_csv(rows, results_path)
    rank = (suite.leaderboard.rank_by.attack, suite.leaderboard.rank_by.epsilon) if suite.leaderboard else None
    write_evidence(cells, cell_keys, data.test, ArtifactCache(cache_dir / "attacks"), store.folder, rank=rank)
    write_costs(suite.models, suite.training_seeds, keys, cache_dir, store.folder)
    write_samples_page(store.folder, f"{suite.name}: broken samples")
    tables = write_tables(rows, store.folder, suite.corruption_baseline, data.test.labels)
    return RunRecord(rows, data.fingerprint, results_path, tables, computed=len(committed),
                     loaded=loaded)


def describe_run(record: RunRecord) -> str:
    """One line for the user: rows, and how many cells this run computed."""
    return (f"results: {record.results_path} ({len(record.rows)} rows: {len(record.rows) - record.computed} resumed from "
            f"the run store, {record.computed} run now, {record.loaded} of them loaded from the attack cache)")

