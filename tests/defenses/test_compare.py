"""`mmrb compare-defenses`: the suite schema, the seed interval, and the shipped smoke suite end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from benchmark.defenses_compare import load_defense_suite
from benchmark.defenses_report import interval
from mmrb.cli import main
from mmrb.core.errors import SuiteError

SUITES = Path(__file__).resolve().parents[2] / "suites"


def test_interval_is_the_student_t_half_width_over_seeds():
    mean, half = interval([0.7, 0.8, 0.9])
    assert mean == pytest.approx(0.8)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / 3 ** 0.5)  # sd 0.1 over √3
    assert interval([0.5]) == (0.5, 0.0)


def test_bad_suites_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defenses: [lp, rann]\n")
    with pytest.raises(SuiteError, match="bad.yaml: field 'defenses': unknown \\['rann'\\]"):
        load_defense_suite(bad)
    bad.write_text("noise: {ratios: [0.0, 1.5]}\n")
    with pytest.raises(SuiteError, match="field 'noise.ratios'"):
        load_defense_suite(bad)
    bad.write_text("noise: {types: [images]}\n")
    with pytest.raises(SuiteError, match="field 'noise.types.0'"):
        load_defense_suite(bad)
    bad.write_text("seedz: [0]\n")
    with pytest.raises(SuiteError, match="field 'seedz'"):
        load_defense_suite(bad)


def test_shipped_suites_validate():
    full = load_defense_suite(SUITES / "defenses.yaml")
    assert full.noise.ratios == [0.0, 0.05, 0.1, 0.2, 0.3] and full.defenses == ["lp", "mlp", "nmtune", "ran"]
    assert {a.label for a in full.attacks} == {"PGD", "feature"} and len(full.seeds) >= 3


@pytest.mark.slow
def test_smoke_suite_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    main(["compare-defenses", str(SUITES / "defenses_smoke.yaml"), "--out", str(out), "--cache", str(tmp_path / "cache")])
    frame = pd.read_csv(out / "results.csv")
    heads = frame[frame["method"] != "zero_shot"]
    # 2 noise types × 2 ratios × 4 methods × 2 domains × (clean + 2 attacks), and the zero-shot rows
    assert len(heads) == 2 * 2 * 4 * 2 * 3 and len(frame) - len(heads) == 2 * 2 * 2
    assert set(heads["method"]) == {"lp", "mlp", "nmtune", "ran"} and set(heads["attack"]) == {"clean", "PGD", "feature"}
    assert frame[["accuracy"]].notna().all().all() and frame["accuracy"].between(0, 1).all()
    clean = heads[heads["attack"] == "clean"].set_index(["noise", "ratio", "method", "domain"])["accuracy"]
    pgd = heads[heads["attack"] == "PGD"].set_index(["noise", "ratio", "method", "domain"])["accuracy"]
    assert (pgd <= clean + 1e-9).all()  # white-box PGD never helps
    feature = heads[heads["attack"] == "feature"]
    assert (feature["target_similarity_adv"] > feature["target_similarity_clean"]).all()
    tables = (out / "tables.md").read_text()
    assert "### image noise" in tables and "### caption noise" in tables and "OOD ACC feature" in tables
    assert "ID AUC" in (out / "zeroshot.md").read_text()
    directions = (out / "directions.md").read_text()
    assert "γ 30 % − 0 (lp)" in directions and "ran − nmtune (all γ)" in directions
    assert (out / "accuracy_vs_noise_image.png").stat().st_size > 1000
    meta = json.loads((out / "provenance.json").read_text())
    assert meta["suite"] == "defenses_smoke" and meta["protocol_version"] and "open_clip=" in meta["packages"]
    assert frame["suite_hash"].nunique() == 1 and frame["data_fingerprint"].iloc[0] == meta["data_fingerprint"]
    assert "results:" in capsys.readouterr().out


def test_noisy_corpus_replaces_the_nested_share_of_pairs_within_the_budget(tmp_path):
    import numpy as np
    import torch

    from benchmark.defenses_compare import Data, DefenseSuite, Split, noisy_pairs
    from wrappers.clip_encoder import TINY_ARCH, ClipEncoder, save_clip

    torch.manual_seed(0)
    encoder = ClipEncoder(TINY_ARCH, image_size=32)
    save_clip(encoder.clip, encoder.cfg, tmp_path / "base")
    rng = np.random.default_rng(0)
    texts = ["small left pleural effusion. the heart is normal."] * 40
    pairs = Split(rng.random((40, 2, 32, 32), dtype=np.float32), texts, np.zeros(40, dtype=int), "x")
    data = Data(pairs, rng.random((8, 2, 32, 32), dtype=np.float32), ["ct abdomen."] * 8, pairs, pairs, pairs)
    suite = DefenseSuite(noise={"ratios": [0.0, 0.1, 0.3], "steps": 2})
    corpora = noisy_pairs(data, f"local-dir:{tmp_path / 'base'}", suite, seed=0)
    images, _, order = corpora["image"]
    moved = np.flatnonzero(np.abs(images - pairs.images).reshape(40, -1).max(1) > 0)
    assert set(moved) <= set(order[:12]) and len(moved) >= 10  # 30 % of 40 pairs, the first of the noise order
    assert np.abs(images - pairs.images).max() <= suite.noise.epsilon + 1e-6
    _, captions, order = corpora["caption"]
    rewritten = [i for i, (a, b) in enumerate(zip(texts, captions)) if a != b]
    assert sorted(rewritten) == sorted(order[:12])
