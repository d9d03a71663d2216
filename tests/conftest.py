"""Shared fixtures: a small generated Indiana-format dataset and tiny models trained on it (once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.data import SplitArrays
from benchmark.data.indiana import load_indiana
from benchmark.data.synth import write_synthetic_indiana
from wrappers.training import LabelledSet, obtain_trained

IMAGE_SIZE = 32
#: The tests' recipes where the tiny preset's default does not learn reliably on this small split (320 studies at
#: 32 px): early fusion's joint training from scratch stayed at the majority class after its 8 epochs at 2 of 8 seeds
#: (seed 0 among them, on AVX2 and AVX-512 kernels alike); at 12 epochs it learned at 13 of 13 (88.75-95 % clean).
#: On the default suite's data (480 studies at 64 px) the 8 epochs learn at every seed measured (91.7-92.5 %).
TEST_OVERRIDES = {"early_fusion": {"recipe": {"epochs": 12}}}

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_suite_text(root: Path, text: str, leaderboard: bool = True) -> Path:
    """Run the suite `text` as a user would (`mmrb run`) in `root`: suite.yaml, out/, cache/ and, with `leaderboard`,
    lb/; returns `root`."""
    from mmrb.cli import main

    (root / "suite.yaml").write_text(text)
    board = ["--leaderboard", str(root / "lb")] if leaderboard else ["--no-leaderboard"]
    main(["run", str(root / "suite.yaml"), "--out", str(root / "out"), "--cache", str(root / "cache"), *board, "--quiet"])
    return root


def load_example(relative: str):
    """The module of an example plug-in file (examples/<relative>), imported from its path as a user would."""
    import importlib.util

    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location("mmrb_example_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mmrb-cache")


@pytest.fixture(scope="session")
def indiana_root(tmp_path_factory) -> Path:
    return write_synthetic_indiana(tmp_path_factory.mktemp("indiana") / "release", n=400, seed=3, image_size=64)


@pytest.fixture(scope="session")
def splits(indiana_root) -> tuple[SplitArrays, SplitArrays, str]:
    dataset = load_indiana(indiana_root)
    train, test = dataset.split(seed=0)
    return SplitArrays.from_samples(train, IMAGE_SIZE), SplitArrays.from_samples(test, IMAGE_SIZE), dataset.fingerprint()


@pytest.fixture(scope="session")
def train_set(splits) -> LabelledSet:
    train, _, fingerprint = splits
    return LabelledSet(train.images, train.texts, train.labels, fingerprint)


@pytest.fixture(scope="session")
def test_split(splits) -> SplitArrays:
    return splits[1]


@pytest.fixture(scope="session")
def trained(train_set, cache_dir):
    """name -> tiny model trained with its default recipe (or the tests' recipe, `TEST_OVERRIDES`) on the session's
    training split."""
    return lambda name: obtain_trained(name, TEST_OVERRIDES.get(name, {}), train_set, cache_dir, seed=0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (CLIP pre-training and heads: faster than two on a shared 2-core box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
