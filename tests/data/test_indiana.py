"""Tests of the Indiana loader, on generated data and on a hand-written tiny release."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.data.indiana import (
    LABEL_NAMES,
    IndianaDataset,
    assemble_text,
    label_from_problems,
    load_images,
    load_indiana,
)
from benchmark.data.synth import write_synthetic_indiana
from mmrb.core.errors import DataError

N, DROPPED, SIZE = 40, 6, 32


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 40-uid release with 6 uids missing one view."""
    return write_synthetic_indiana(tmp_path_factory.mktemp("mini"), n=N, seed=3, image_size=SIZE, drop_views=DROPPED)


@pytest.fixture(scope="module")
def dataset(mini: Path) -> IndianaDataset:
    """The mini release, loaded."""
    return load_indiana(mini)


@pytest.fixture()
def copy(mini: Path, tmp_path: Path) -> Path:
    """A private copy of the mini release that a test may break."""
    return Path(shutil.copytree(mini, tmp_path / "copy"))


def _projections(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "indiana_projections.csv", dtype=str)


def _reports(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "indiana_reports.csv", dtype=str).set_index("uid")


def test_pairs_belong_to_their_uid_and_view(dataset: IndianaDataset, mini: Path) -> None:
    rows = set(_projections(mini).itertuples(index=False, name=None))
    assert dataset.samples
    for s in dataset.samples:
        assert s.frontal.is_file() and s.lateral.is_file()
        assert s.frontal.parent == mini / "images" / "images_normalized"
        assert (s.uid, s.frontal.name, "Frontal") in rows
        assert (s.uid, s.lateral.name, "Lateral") in rows


def test_skipped_counts_match_dropped_views(dataset: IndianaDataset, mini: Path) -> None:
    views = _projections(mini).groupby("uid")["projection"].agg(set)
    missing_frontal = sum("Frontal" not in v for v in views)
    missing_lateral = sum("Lateral" not in v for v in views)
    assert missing_frontal + missing_lateral == DROPPED
    assert dataset.skipped == {
        "no_report": 0, "no_label": 0, "no_text": 0, "no_frontal": missing_frontal, "no_lateral": missing_lateral,
    }
    assert len(dataset.samples) == N - DROPPED
    kept = {s.uid for s in dataset.samples}
    assert kept == {uid for uid, v in views.items() if v == {"Frontal", "Lateral"}}


def test_labels_and_texts_come_from_the_report_row(dataset: IndianaDataset, mini: Path) -> None:
    reports = _reports(mini)
    for s in dataset.samples:
        row = reports.loc[s.uid]
        assert s.label == label_from_problems(row["Problems"])
        assert s.text == assemble_text(row["impression"], row["findings"], row["indication"])
        assert s.text and s.text == s.text.lower()
    assert {s.label for s in dataset.samples} == {0, 1}
    assert LABEL_NAMES == ("normal", "abnormal")


def test_assemble_text_order_missing_parts_case_and_whitespace() -> None:
    assert assemble_text("Impression.", "Findings.", "Indication.") == "impression. findings. indication."
    assert assemble_text(float("nan"), "  The HEART\n is  normal. ", None) == "the heart is normal."
    assert assemble_text("", np.nan, "Chest\tpain") == "chest pain"
    assert assemble_text("A", "   ", "B") == "a b"
    assert assemble_text(None, np.nan, "") == ""


def test_label_from_problems() -> None:
    assert label_from_problems("normal") == 0
    assert label_from_problems("  Normal ") == 0
    assert label_from_problems("Cardiomegaly;Opacity") == 1
    assert label_from_problems("Pleural Effusion") == 1
    with pytest.raises(DataError, match="Problems"):
        label_from_problems(float("nan"))


def test_split_is_deterministic_disjoint_and_80_20(dataset: IndianaDataset) -> None:
    train, test = dataset.split(seed=7)
    assert (train, test) == dataset.split(seed=7)
    assert (train, test) != dataset.split(seed=8)
    uids_train, uids_test = {s.uid for s in train}, {s.uid for s in test}
    assert not uids_train & uids_test
    assert uids_train | uids_test == {s.uid for s in dataset.samples}
    assert len(test) == round(len(dataset.samples) * 0.2)
    reversed_ds = IndianaDataset(dataset.root, dataset.samples[::-1], dataset.skipped)
    assert reversed_ds.split(seed=7) == (train, test)  # independent of the order samples were loaded in
    with pytest.raises(ValueError):
        dataset.split(seed=7, test_fraction=1.0)


def test_fingerprint_is_stable_and_content_sensitive(dataset: IndianaDataset, copy: Path) -> None:
    fp = dataset.fingerprint()
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert load_indiana(copy).fingerprint() == fp  # another folder with the same bytes
    with open(copy / "indiana_reports.csv", "a") as handle:
        handle.write("\n")
    assert load_indiana(copy).fingerprint() != fp


def test_load_images_shape_range_and_channels(dataset: IndianaDataset) -> None:
    samples = dataset.samples[:5]
    x = load_images(samples, 24)
    assert x.shape == (5, 2, 24, 24) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01
    for c, path in enumerate((samples[0].frontal, samples[0].lateral)):
        expected = np.asarray(Image.open(path).convert("L").resize((24, 24), Image.Resampling.BILINEAR)) / 255.0
        np.testing.assert_allclose(x[0, c], expected, atol=1e-6)


def test_logs_one_summary_line(mini: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="benchmark.data.indiana"):
        load_indiana(mini)
    lines = [r.getMessage() for r in caplog.records if r.name == "benchmark.data.indiana"]
    assert len(lines) == 1 and f"kept {N - DROPPED}" in lines[0]


def test_missing_csv_is_a_data_error(copy: Path) -> None:
    (copy / "indiana_reports.csv").unlink()
    with pytest.raises(DataError, match=r"indiana_reports\.csv: file not found; set dataset\.path.*indiana_synth"):
        load_indiana(copy)


def test_missing_column_names_file_and_column(copy: Path) -> None:
    _projections(copy).drop(columns="projection").to_csv(copy / "indiana_projections.csv", index=False)
    with pytest.raises(DataError, match=r"indiana_projections\.csv: missing column 'projection'"):
        load_indiana(copy)
    with pytest.raises(DataError, match="Problems"):
        _reports(copy).drop(columns="Problems").to_csv(copy / "indiana_reports.csv")
        load_indiana(copy)


def test_missing_image_file_is_named(copy: Path, dataset: IndianaDataset) -> None:
    victim = dataset.samples[3].lateral.name
    (copy / "images" / "images_normalized" / victim).unlink()
    with pytest.raises(DataError, match=victim.replace(".", r"\.")):
        load_indiana(copy)


def test_bad_projection_value_names_uid_and_allowed_values(copy: Path) -> None:
    projections = _projections(copy)
    projections.loc[2, "projection"] = "AP"
    projections.to_csv(copy / "indiana_projections.csv", index=False)
    uid = projections.loc[2, "uid"]
    with pytest.raises(DataError, match=rf"uid {uid} .*'AP'.*Frontal, Lateral"):
        load_indiana(copy)


def test_hand_written_release(tmp_path: Path) -> None:
    images = tmp_path / "images"  # no images_normalized: the loader must fall back to root/images
    images.mkdir()
    for i, name in enumerate(["1_b.png", "1_a.png", "1_lat.png", "2_f.png", "2_l.png", "3_f.png", "4_f.png",
                              "4_l.png", "5_f.png", "5_l.png"]):
        Image.fromarray(np.full((6, 8), 20 * i, dtype=np.uint8)).save(images / name)
    nan = np.nan
    pd.DataFrame({
        "uid": [1, 2, 3, 5], "MeSH": ["normal", "Cardiomegaly/mild;Opacity/lung", "normal", nan],
        "Problems": ["normal", "Cardiomegaly;Opacity", "normal", nan], "image": ["Xray Chest PA and Lateral"] * 4,
        "indication": ["XXXX-year-old male, chest pain.", "Dyspnea.", nan, "Cough."], "comparison": [nan] * 4,
        "findings": [nan, "The heart is enlarged.  Right  lower lobe opacity.", "Clear.", "Clear."],
        "impression": ["No acute disease.", "Cardiomegaly.", "Normal.", "Normal."],
    }).to_csv(tmp_path / "indiana_reports.csv", index=False)
    pd.DataFrame({
        "uid": [1, 1, 1, 2, 2, 3, 4, 4, 5, 5],
        "filename": ["1_b.png", "1_a.png", "1_lat.png", "2_f.png", "2_l.png", "3_f.png", "4_f.png", "4_l.png",
                     "5_f.png", "5_l.png"],
        "projection": ["Frontal", "Frontal", "Lateral", "Frontal", "Lateral", "Frontal", "Frontal", "Lateral",
                       "Frontal", "Lateral"],
    }).to_csv(tmp_path / "indiana_projections.csv", index=False)

    ds = load_indiana(tmp_path)
    assert [s.uid for s in ds.samples] == ["1", "2"]
    first, second = ds.samples
    assert (first.frontal, first.lateral) == (images / "1_a.png", images / "1_lat.png")  # first of two frontals
    assert first.text == "no acute disease. xxxx-year-old male, chest pain."
    assert second.text == "cardiomegaly. the heart is enlarged. right lower lobe opacity. dyspnea."
    assert (first.label, second.label) == (0, 1)
    assert ds.skipped == {"no_report": 1, "no_label": 1, "no_text": 0, "no_frontal": 0, "no_lateral": 1}
    assert load_images(ds.samples, 4).shape == (2, 2, 4, 4)
    assert load_indiana(tmp_path, images_dir=images).samples == ds.samples
    with pytest.raises(DataError, match="image folder"):
        load_indiana(tmp_path, images_dir=tmp_path / "nowhere")
