"""The run store: every finished cell committed to SQLite in the run folder; results.csv is a view of it.

One transaction per cell, in WAL mode, before the next cell starts: a run killed at any moment (SIGKILL
included) loses at most the cell it was computing, and re-running the suite into the same folder skips every
committed cell. A lock on the folder keeps a second process out; the CSV view is rewritten atomically
(temporary file + rename), so a reader never sees half a file and the file is never truncated before work.
"""
from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mmrb.core.errors import MmrbError
from mmrb.core.io import atomic_write, folder_lock

#: Columns of results.csv, in order (docs/metrics.md).
COLUMNS = (
    "suite", "model", "defense", "attack", "attack_name", "attack_source", "modality", "epsilon", "seed", "steps", "transfer_source", "n",
    "clean_accuracy", "robust_accuracy", "as_run_robust_accuracy",
    "check_rounds", "check_capped", "check_steps", "check_restarts", "check_attacked", "check_seconds",
    "n_normal", "clean_accuracy_normal", "robust_accuracy_normal",
    "n_abnormal", "clean_accuracy_abnormal", "robust_accuracy_abnormal",
    "threshold", "clean_sensitivity", "clean_specificity", "robust_sensitivity", "robust_specificity",
    "false_reassurance", "false_alarm",
    "clean_f1", "robust_f1", "auc", "robust_auc", "attack_success_rate",
    "branch_robust_accuracy", "branch_robust_f1", "queries", "compare_with", "agreement_gap",
    "zero_gradient", "nonfinite_gradient", "zero_gradient_bpda", "stochastic", "naive_robust_accuracy", "masking",
    "sub_attacks",
    "max_perturbation", "over_budget", "seconds", "params", "error",
)
DB_NAME, LOCK_NAME, CSV_NAME = "run.sqlite", ".mmrb.lock", "results.csv"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


class RunStore:
    """Finished cells of one run folder, keyed by each cell's content key (see benchmark.run.keys.Keys.cell)."""

    def __init__(self, folder: str | Path, fresh: bool = False, suite: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self._lock = folder_lock(self.folder, "this run folder", wait=False)
        self._lock.__enter__()
        try:
            self._db = sqlite3.connect(self.folder / DB_NAME, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS cells (key TEXT PRIMARY KEY, row TEXT NOT NULL, "
                             "failed INTEGER NOT NULL, run_id TEXT NOT NULL, finished REAL NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            if fresh:
                self._db.execute("DELETE FROM cells")
            if suite is not None:
                self._claim(suite, fresh)
        except sqlite3.DatabaseError as exc:
            self._lock.__exit__(None, None, None)
            raise MmrbError(f"{self.folder / DB_NAME}: the run store cannot be opened ({exc}); move it away or "
                            "re-run with --fresh") from None
        except MmrbError:
            self._db.close()
            self._lock.__exit__(None, None, None)
            raise
        self.run_id = uuid.uuid4().hex[:12]

    def _claim(self, suite: dict[str, Any], fresh: bool) -> None:
        """Record which suite fills the folder (`suite`: name, source, hash); refuse another suite's folder unless
        `fresh` (which has just emptied it). A suite is identified by its name: an edited suite resumes."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'suite'").fetchone()
        owner = json.loads(found[0]) if found else None
        if owner is None:  # a folder from before mmrb recorded its suite: its rows name it
            row = self._db.execute("SELECT row FROM cells LIMIT 1").fetchone()
            owner = {"name": json.loads(row[0]).get("suite")} if row else None
        if owner is not None and owner.get("name") != suite["name"] and not fresh:
            where = f" ({owner['source']})" if owner.get("source") else ""
            raise MmrbError(f"{self.folder} holds the results of suite {owner.get('name')!r}{where}, not of "
                            f"{suite['name']!r}: give this run another --out folder, or add --fresh (API: "
                            "fresh=True) to discard them")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('suite', ?)", (json.dumps(suite, sort_keys=True),))

    def suite(self) -> dict[str, Any] | None:
        """The identity of the suite that fills the folder (None: a folder written before mmrb recorded it)."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'suite'").fetchone()
        return json.loads(found[0]) if found else None

    def finished(self) -> set[str]:
        """Keys of cells committed without an error (a failed cell is retried by the next run)."""
        return {key for (key,) in self._db.execute("SELECT key FROM cells WHERE failed = 0")}

    def commit(self, key: str, row: dict[str, Any]) -> None:
        """Store one finished cell, in its own transaction."""
        text = json.dumps(row, default=_plain, sort_keys=True)
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?)",
                             (key, text, int(bool(row.get("error"))), self.run_id, time.time()))

    def rows(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The stored rows of `keys`, in that order (keys not stored are left out)."""
        stored = dict(self._db.execute("SELECT key, row FROM cells"))
        return [json.loads(stored[k]) for k in keys if k in stored]

    def run_ids(self) -> dict[str, str]:
        """key -> id of the process run that computed it (lets tests tell resumed cells from recomputed ones)."""
        return dict(self._db.execute("SELECT key, run_id FROM cells"))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
        self._lock.__exit__(None, None, None)

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_csv(rows: Iterable[dict[str, Any]], path: str | Path, columns: Sequence[str] = COLUMNS) -> Path:
    """Write rows as CSV atomically (a temporary file renamed into place)."""
    path = Path(path)

    def fill(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, fill)
