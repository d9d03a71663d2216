"""The attack cache: what each cell produced (adversarial inputs and predictions), stored under its content key.

A cell's key covers everything that decides its output (see `benchmark.run.keys.Keys.cell`): the model's content
key, the data and the scored samples, the attack's source, name and parameters, ε, the seed, mmrb's protocol
version, the attack libraries' versions and the code of the adapters. Re-running an unchanged suite therefore
loads every cell instead of attacking, and scores are recomputed from the stored predictions, so a re-run is
byte-identical. Entries are single .npz files written atomically; an unreadable one is reported and recomputed.
"""
from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrb.core.io import atomic_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    """What one cell produced: class probabilities on clean and attacked inputs, and the attacked inputs."""

    clean_prob: np.ndarray
    adv_prob: np.ndarray
    images: np.ndarray | None = None  # adversarial images (image and joint attacks, transfer crafts)
    texts: list[str] | None = None  # adversarial texts (text and joint attacks)
    branch_prob: np.ndarray | None = None  # the attacked branch's probabilities, for models with branches
    queries: np.ndarray | None = None  # model queries per sample, where the library reports them
    meta: dict[str, Any] = field(default_factory=dict)  # steps, params, over_budget, seconds
    as_run_prob: np.ndarray | None = None  # the attack as configured, before the convergence check raised it (adv_prob)


ARRAYS = ("clean_prob", "adv_prob", "images", "branch_prob", "queries", "as_run_prob")


class ArtifactCache:
    """Artifacts under `<cache>/attacks/<key[:2]>/<key>.npz`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> Artifact | None:
        """The stored artifact, or None if there is none or it cannot be read (reported, then recomputed)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] if name in data.files else None for name in ARRAYS}
                texts = json.loads(str(data["texts"])) if "texts" in data.files else None
                meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            log.warning("attack cache entry %s cannot be read (%s); recomputing it", path, exc.__class__.__name__)
            return None
        return Artifact(texts=texts, meta=meta, **arrays)

    def save(self, key: str, artifact: Artifact) -> None:
        """Write the artifact atomically: a temporary file renamed into place."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(artifact, name) for name in ARRAYS if getattr(artifact, name) is not None}
        extra = {"meta": np.array(json.dumps(artifact.meta, sort_keys=True, default=_plain))}
        if artifact.texts is not None:
            extra["texts"] = np.array(json.dumps(list(artifact.texts)))

        def fill(tmp: Path) -> None:
            with tmp.open("wb") as handle:  # a handle: np.savez would add .npz to a path
                np.savez(handle, **arrays, **extra)

        atomic_write(path, fill)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)
