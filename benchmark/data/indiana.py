"""Loader for the Kaggle "Chest X-rays (Indiana University)" release (reports + projections + PNGs)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mmrb.core.errors import DataError

LABEL_NAMES = ("normal", "abnormal")
REPORTS_CSV = "indiana_reports.csv"
PROJECTIONS_CSV = "indiana_projections.csv"
REPORT_COLUMNS = ("uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression")
PROJECTION_COLUMNS = ("uid", "filename", "projection")
REQUIRED_REPORT_COLUMNS = ("uid", "Problems", "indication", "findings", "impression")
PROJECTIONS = ("Frontal", "Lateral")
SKIP_REASONS = ("no_report", "no_label", "no_text", "no_frontal", "no_lateral")
FIX = ("set dataset.path in the suite to the folder of the Kaggle release (it holds indiana_reports.csv), or use "
       "dataset: {name: indiana_synth} for generated data")


@dataclass(frozen=True)
class Sample:
    """One study: a frontal and a lateral image of one uid with its report text and label."""

    uid: str
    frontal: Path
    lateral: Path
    text: str
    label: int


@dataclass(frozen=True)
class IndianaDataset:
    """The loaded studies of one dataset folder plus how many uids were skipped and why."""

    root: Path
    samples: tuple[Sample, ...]
    skipped: dict[str, int]

    def fingerprint(self) -> str:
        """Return the first 16 hex chars of a sha256 over both CSVs and the used images' names and sizes."""
        digest = hashlib.sha256()
        for name in (REPORTS_CSV, PROJECTIONS_CSV):
            digest.update((self.root / name).read_bytes())
        images = sorted({p for s in self.samples for p in (s.frontal, s.lateral)}, key=lambda p: p.name)
        for path in images:
            digest.update(f"{path.name}\t{path.stat().st_size}\n".encode())
        return digest.hexdigest()[:16]

    def split(self, seed: int, test_fraction: float = 0.2) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
        """Split into (train, test) by a seeded permutation of the samples sorted by uid."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        ordered = sorted(self.samples, key=lambda s: _uid_key(s.uid))
        shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
        n_train = len(shuffled) - round(len(shuffled) * test_fraction)
        return tuple(shuffled[:n_train]), tuple(shuffled[n_train:])


def _uid_key(uid: str) -> tuple[int, int, str]:
    """Sort numeric uids numerically, then any others as strings."""
    return (0, int(uid), "") if uid.isdigit() else (1, 0, uid)


def _missing(value: object) -> bool:
    """True for None, NaN and blank strings."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return not str(value).strip()


def assemble_text(impression: object, findings: object, indication: object) -> str:
    """Join impression, findings and indication (missing parts dropped), lowercased and whitespace-collapsed."""
    parts = [str(p) for p in (impression, findings, indication) if not _missing(p)]
    return " ".join(" ".join(parts).lower().split())


def label_from_problems(problems: object) -> int:
    """Return 0 if Problems is "normal" (case/space-insensitive), else 1; missing Problems raise DataError."""
    if _missing(problems):
        raise DataError(f"{REPORTS_CSV}: empty 'Problems' value; it must be 'normal' or a ';'-list of findings")
    return 0 if str(problems).strip().lower() == "normal" else 1


def _read_csv(path: Path, columns: Sequence[str], expected: Sequence[str]) -> pd.DataFrame:
    """Read a CSV as strings and check that the required columns are present."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; {FIX}")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc}); {FIX}") from exc
    for column in columns:
        if column not in frame.columns:
            raise DataError(
                f"{path}: missing column '{column}' (expected {', '.join(expected)}); {FIX}"
            )
    frame["uid"] = frame["uid"].astype(str).str.strip()
    return frame


def _views(projections: pd.DataFrame, images_dir: Path) -> dict[str, dict[str, Path]]:
    """Map uid -> {projection: first filename in sorted order}, validating projection values."""
    views: dict[str, dict[str, list[str]]] = {}
    for uid, filename, projection in projections[list(PROJECTION_COLUMNS)].itertuples(index=False):
        view = "" if _missing(projection) else str(projection).strip()
        if view not in PROJECTIONS:
            raise DataError(
                f"{PROJECTIONS_CSV}: uid {uid} has projection {projection!r} in column 'projection'; "
                f"allowed values are {', '.join(PROJECTIONS)}"
            )
        if _missing(filename):
            raise DataError(f"{PROJECTIONS_CSV}: uid {uid} has an empty 'filename'; {FIX}")
        views.setdefault(uid, {}).setdefault(view, []).append(str(filename).strip())
    return {uid: {v: images_dir / sorted(names)[0] for v, names in by_view.items()} for uid, by_view in views.items()}


def load_indiana(root: str | Path, images_dir: str | Path | None = None) -> IndianaDataset:
    """Load the studies of an Indiana release folder that have a report, a label, text and both views."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; {FIX}")
    if images_dir is None:
        normalized = root / "images" / "images_normalized"
        images_dir = normalized if normalized.is_dir() else root / "images"
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found (expected the PNGs there); {FIX}")
    reports = _read_csv(root / REPORTS_CSV, REQUIRED_REPORT_COLUMNS, REPORT_COLUMNS)
    projections = _read_csv(root / PROJECTIONS_CSV, PROJECTION_COLUMNS, PROJECTION_COLUMNS)
    views = _views(projections, images_dir)
    rows = {row.uid: row for row in reports.drop_duplicates("uid").itertuples(index=False)}
    present = {p.name for p in images_dir.iterdir()}
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    samples = []
    for uid in sorted(set(rows) | set(views), key=_uid_key):
        row, by_view = rows.get(uid), views.get(uid, {})
        text = "" if row is None else assemble_text(row.impression, row.findings, row.indication)
        reason = (
            "no_report" if row is None
            else "no_label" if _missing(row.Problems)
            else "no_text" if not text
            else "no_frontal" if "Frontal" not in by_view
            else "no_lateral" if "Lateral" not in by_view
            else None
        )
        if reason is not None:
            skipped[reason] += 1
            continue
        for path in (by_view["Frontal"], by_view["Lateral"]):
            if path.name not in present:
                raise DataError(
                    f"{PROJECTIONS_CSV}: uid {uid} names image {path.name!r} in column 'filename' "
                    f"but {path} does not exist; re-download the release or pass the right images folder"
                )
        samples.append(Sample(uid, by_view["Frontal"], by_view["Lateral"], text, label_from_problems(row.Problems)))
    logging.getLogger(__name__).info(
        "indiana %s: kept %d studies, skipped %s", root, len(samples),
        ", ".join(f"{k}={v}" for k, v in skipped.items()),
    )
    return IndianaDataset(root=root, samples=tuple(samples), skipped=skipped)


def load_images(samples: Sequence[Sample], size: int) -> np.ndarray:
    """Return float32 (n, 2, size, size) in [0, 1]: channel 0 frontal, channel 1 lateral, bilinear-resized."""
    out = np.empty((len(samples), 2, size, size), dtype=np.float32)
    for i, sample in enumerate(samples):
        for c, path in enumerate((sample.frontal, sample.lateral)):
            try:
                with Image.open(path) as img:
                    pixels = img.convert("L").resize((size, size), Image.Resampling.BILINEAR)
            except OSError as exc:
                raise DataError(f"{path}: cannot read image of uid {sample.uid} ({exc}); {FIX}") from exc
            out[i, c] = np.asarray(pixels, dtype=np.float32) / 255.0
    return out
