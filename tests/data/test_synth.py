"""Tests of the synthetic Indiana generator: determinism, exact format, and content proxies."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.data.indiana import IndianaDataset, label_from_problems, load_images, load_indiana
from benchmark.data.synth import write_synthetic_indiana

REPORT_COLUMNS = ["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"]
PROJECTION_COLUMNS = ["uid", "filename", "projection"]
PROBLEMS = {"Opacity", "Airspace Disease", "Consolidation", "Cardiomegaly", "Pleural Effusion"}
NEGATION = re.compile(r"\b(no|without|negative|resolved|resolution)\b")
KEYWORDS = ("enlarged", "enlargement", "cardiomegaly", "opacity", "consolidation", "effusion", "pneumonia",
            "airspace disease", "density", "increased")


def keyword_rule(text: str) -> int:
    """1 if some clause names a finding before any negation word, else 0."""
    return int(any(any(k in NEGATION.split(clause)[0] for k in KEYWORDS) for clause in re.split(r"[.;,]", text)))


def lung_to_body(images: np.ndarray) -> np.ndarray:
    """Mean brightness of the frontal lung area over that of the lower body (gain-invariant)."""
    frontal = images[:, 0]
    return frontal[:, 8:24, 3:29].mean((1, 2)) / frontal[:, 28:31, 10:22].mean((1, 2))


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> IndianaDataset:
    """400 generated studies at 32 px, loaded."""
    return load_indiana(write_synthetic_indiana(tmp_path_factory.mktemp("big"), n=400, seed=11, image_size=32))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a = _files(write_synthetic_indiana(tmp_path / "a", n=15, seed=5, image_size=24, drop_views=2))
    b = _files(write_synthetic_indiana(tmp_path / "b", n=15, seed=5, image_size=24, drop_views=2))
    assert a == b and len(a) == 2 + 2 * 15 - 2
    c = _files(write_synthetic_indiana(tmp_path / "c", n=15, seed=6, image_size=24, drop_views=2))
    assert c["indiana_reports.csv"] != a["indiana_reports.csv"]


def test_format_matches_the_kaggle_release(tmp_path: Path) -> None:
    root = write_synthetic_indiana(tmp_path, n=30, seed=2, image_size=20)
    assert root == tmp_path
    reports = pd.read_csv(root / "indiana_reports.csv")
    projections = pd.read_csv(root / "indiana_projections.csv")
    assert list(reports.columns) == REPORT_COLUMNS
    assert list(projections.columns) == PROJECTION_COLUMNS
    assert reports["uid"].tolist() == list(range(1, 31))
    assert set(projections["projection"]) == {"Frontal", "Lateral"}
    assert projections.groupby("uid")["projection"].agg(sorted).tolist() == [["Frontal", "Lateral"]] * 30
    for row in reports.itertuples(index=False):
        names = set(row.Problems.split(";"))
        assert row.Problems == "normal" or (names <= PROBLEMS and len(names) == len(row.Problems.split(";")))
        assert (row.MeSH == "normal") == (row.Problems == "normal")
        assert isinstance(row.impression, str) and isinstance(row.image, str)
    for uid, name in projections[["uid", "filename"]].itertuples(index=False):
        assert re.fullmatch(rf"{uid}_IM-\d{{4}}-\d{{4}}\.dcm\.png", name)
        with Image.open(root / "images" / "images_normalized" / name) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "L", (20, 20))
    assert len(list((root / "images" / "images_normalized").iterdir())) == 60


def test_drop_views_removes_one_view_row_and_its_png(tmp_path: Path) -> None:
    root = write_synthetic_indiana(tmp_path, n=20, seed=4, image_size=16, drop_views=7)
    views = pd.read_csv(root / "indiana_projections.csv").groupby("uid")["filename"].count()
    assert len(views) == 20 and (views == 1).sum() == 7 and (views == 2).sum() == 13
    assert len(list((root / "images" / "images_normalized").iterdir())) == 33
    with pytest.raises(ValueError):
        write_synthetic_indiana(tmp_path / "x", n=3, seed=0, drop_views=4)


def test_label_balance_near_real_data(big: IndianaDataset) -> None:
    labels = np.array([s.label for s in big.samples])
    assert len(labels) == 400
    assert 0.57 <= labels.mean() <= 0.71  # target 0.64 abnormal, +-3 binomial sd
    problems = pd.read_csv(big.root / "indiana_reports.csv")["Problems"]
    assert [label_from_problems(p) for p in problems] == labels.tolist()


def test_text_is_informative_but_imperfect(big: IndianaDataset) -> None:
    labels = np.array([s.label for s in big.samples])
    rule = np.array([keyword_rule(s.text) for s in big.samples])
    accuracy = (rule == labels).mean()
    assert 0.70 <= accuracy <= 0.92
    assert len({s.text for s in big.samples}) > 0.9 * len(big.samples)  # templates combine into varied reports
    assert sum("xxxx" in s.text for s in big.samples) > 0.1 * len(big.samples)


def test_images_are_informative_but_imperfect(big: IndianaDataset) -> None:
    labels = np.array([s.label for s in big.samples])
    stat = lung_to_body(load_images(big.samples, 32))
    corr = np.corrcoef(stat, labels)[0, 1]
    assert 0.15 <= corr <= 0.8
    best = max(((stat > t) == labels).mean() for t in np.quantile(stat, np.linspace(0.02, 0.98, 49)))
    assert best < 0.9


def test_image_signal_survives_where_text_is_silent(big: IndianaDataset) -> None:
    """Vague reports and subtle images are independent, so fusing the modalities can help."""
    labels = np.array([s.label for s in big.samples])
    silent = np.array([keyword_rule(s.text) == 0 for s in big.samples])
    assert labels[silent].mean() > 0.15  # some abnormal studies have reports that name nothing
    stat = lung_to_body(load_images(big.samples, 32))
    assert np.corrcoef(stat[silent], labels[silent])[0, 1] > 0.1
