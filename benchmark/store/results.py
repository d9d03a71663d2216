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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.store.record import COLUMNS, DEFAULTS, TEXT, ResultRecord
from mmrb.core.errors import MmrbError
from mmrb.core.io import atomic_write, folder_lock

if TYPE_CHECKING:
    import pandas as pd

DB_NAME, LOCK_NAME, CSV_NAME = "run.sqlite", ".mmrb.lock", "results.csv"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


class CellStore:
    """Finished cells of one run folder, keyed by each cell's content key (see benchmark.run.keys.Keys.cell), each a
    JSON object: the defense comparison's units; `RunStore` holds the result records of `mmrb run`."""

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

    def commit(self, key: str, row: Mapping[str, Any]) -> None:
        """Store one finished cell, in its own transaction (failed: it has an `error`)."""
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

    def __enter__(self) -> CellStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RunStore(CellStore):
    """The result records of a run folder (benchmark.store.record.ResultRecord, one per cell and training seed): a row
    with a column the record does not have, or without one it requires, is refused at commit, naming the column; a
    row an older mmrb committed reads back with the columns added since at their defaults."""

    def __enter__(self) -> RunStore:
        return self

    def commit(self, key: str, row: ResultRecord | Mapping[str, Any]) -> None:
        """Store one finished cell's record, in its own transaction."""
        record = row if isinstance(row, ResultRecord) else ResultRecord.of(row)
        super().commit(key, record.as_row())

    def records(self, keys: Sequence[str]) -> list[ResultRecord]:
        """The stored records of `keys`, in that order (keys not stored are left out)."""
        return [ResultRecord.load(row) for row in super().rows(keys)]

    def rows(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The stored records of `keys` as rows (column -> value, every column), in that order."""
        return [record.as_row() for record in self.records(keys)]


def write_csv(rows: Iterable[ResultRecord | Mapping[str, Any]], path: str | Path,
              columns: Sequence[str] = COLUMNS) -> Path:
    """Write rows (records, or mappings of their columns) as CSV atomically (a temporary file renamed into place)."""
    path = Path(path)
    rows = [row.as_row() if isinstance(row, ResultRecord) else row for row in rows]

    def fill(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, fill)


def read_results(path: str | Path) -> pd.DataFrame:
    """A results.csv as a frame with every column of `COLUMNS` in order, whichever mmrb wrote it: text columns as text
    ("" where empty), a column added since at its default, one since dropped left out."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={c: str for c in TEXT})
    if "attack_name" not in frame and "attack" in frame:
        frame["attack_name"] = frame["attack"]
    for column in COLUMNS:
        if column not in frame:
            frame[column] = DEFAULTS.get(column) if column in TEXT else float("nan")
    frame[list(TEXT)] = frame[list(TEXT)].fillna("").astype(str)
    return frame[list(COLUMNS)]
