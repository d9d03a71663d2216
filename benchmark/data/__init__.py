"""Datasets of a suite: the real Indiana University release, or generated data in the same format."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.data.indiana import IndianaDataset, Sample, load_images, load_indiana
from benchmark.data.synth import write_synthetic_indiana

#: Side of the generated PNGs; the suite's image_size resizes them like real X-rays.
SYNTH_PNG_SIZE = 128


@dataclass(frozen=True)
class SplitArrays:
    """One split as arrays: (n, 2, H, W) images in [0,1], texts, labels (1 = abnormal), uids."""

    images: np.ndarray
    texts: list[str]
    labels: np.ndarray
    uids: list[str]

    @classmethod
    def from_samples(cls, samples: tuple[Sample, ...], image_size: int) -> SplitArrays:
        return cls(load_images(samples, image_size), [s.text for s in samples],
                   np.array([s.label for s in samples], dtype=np.int64), [s.uid for s in samples])


def synthetic_folder(cache_dir: Path, n: int, seed: int, first_uid: int = 1) -> Path:
    """The generated Indiana-format dataset for (n, seed), written once into the cache; `first_uid` > 1: n studies
    numbered from it (a held-out stream the default set never draws)."""
    suffix = f"-from{first_uid}" if first_uid != 1 else ""
    folder = cache_dir / "data" / f"indiana_synth-n{n}-s{seed}-{SYNTH_PNG_SIZE}px{suffix}"
    if not (folder / "indiana_projections.csv").exists():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_synthetic_indiana(tmp, n=n, seed=seed, image_size=SYNTH_PNG_SIZE, first_uid=first_uid)
        tmp.rename(folder)
    return folder


def load_dataset(spec, cache_dir: str | Path) -> IndianaDataset:
    """The dataset a suite's `dataset` entry names (generating synthetic data on first use)."""
    if spec.name == "indiana":
        return load_indiana(spec.path, spec.images_dir)
    return load_indiana(synthetic_folder(Path(cache_dir), spec.n, spec.seed))
