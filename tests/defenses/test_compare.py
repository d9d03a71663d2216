"""`mmrb compare-defenses`: the suite schema, the noisy corpora, faithful heads, a plug-in defense, resume after
kill -9, and the shipped smoke suite end to end."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.studies.defenses import load_defense_suite
from benchmark.studies.defenses.spec import DefenseEntry
from mmrb.cli import main
from mmrb.core.errors import SuiteError

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "suites"
SMOKE = (SUITES / "defenses_smoke.yaml").read_text()

PLUGIN = '''
import torch
from torch import nn
from defenses.heads import DefenseHead


class Gated(DefenseHead):
    """A user's defense: a gate on the features, its width from the suite."""

    PARAMS = ("width",)

    def __init__(self, dim, n_classes=2, width=4):
        super().__init__(dim, n_classes)
        self.width = width
        self.gate = nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, dim), nn.Sigmoid())

    def transform(self, features):
        return features * self.gate(features)
'''


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, field", [
    ("defenses: [lp, rann]\n", "field 'defenses.1.name': unknown defense 'rann'"),
    ("noise: [{type: image, ratios: [0.0, 0.3]}]\n", "field 'noise.0.ratios'"),
    ("noise: [{type: images, ratios: [0.3]}]\n", "field 'noise.0.type'"),
    ("seedz: [0]\n", "field 'seedz'"),
    ("defenses: [{name: ran, params: {gamma: 1}}]\n", "field 'defenses.0.params': ran has no parameter"),
    ("defenses: [lp, lp]\n", "field 'defenses': labels must be unique"),
    ("attacks: [{label: P, name: pgd, params: {stepz: 3}, epsilons: [0.01]}]\n", "field 'attacks.0 (P).params.stepz'"),
    ("attacks: [{label: P, name: pgd, epsilons: [0.0]}]\n", "field 'attacks.0.epsilons'"),
    ("defenses: [my_heads.py:Gate]\n", "field 'defenses.0.name':"),
])
def test_bad_suites_name_the_file_and_field(tmp_path, text, field):
    (tmp_path / "my_heads.py").write_text(PLUGIN)
    with pytest.raises(SuiteError, match="suite.yaml: .*" + field.replace("(", r"\(").replace(")", r"\)")):
        load_defense_suite(_suite(tmp_path, text))


def test_corpora_and_splits_must_be_disjoint(tmp_path):
    from benchmark.studies.defenses.corpora import load_data

    suite = load_defense_suite(_suite(tmp_path, SMOKE.replace("id: {n: 40, data_seed: 3}", "id: {n: 40, data_seed: 1}")))
    with pytest.raises(SuiteError, match="different generator seeds"):
        load_data(suite, tmp_path / "cache")


def test_shipped_suites_validate():
    full = load_defense_suite(SUITES / "defenses.yaml")
    assert len(full.seeds) >= 5 and full.labels == ["lp", "mlp", "nmtune", "ran"]
    assert {n.type for n in full.noise} == {"image", "caption", "random", "mismatch"}
    assert [n.type for n in full.noise if n.control] == ["mismatch"] and max(full.noise[-1].ratios) >= 0.8
    assert full.data.id.n >= 2000 and full.data.ood.n >= 2000 and full.data.ood.shift >= 1.0
    assert len({full.base.data_seed, full.noisy.data_seed, full.data.train.data_seed, full.data.id.data_seed,
                full.data.ood.data_seed}) == 5
    assert all(len(a.epsilons) >= 1 and a.converge and a.domains == ["ID", "OOD"] for a in full.attacks)
    assert full.attack_limit >= 1000 and "standard" in {a.name for a in full.attacks} and full.attack_clips == "noisy"
    assert not full.base.chest and len(full.noise[-1].ratios) >= 4  # the paper's setting; a dose–response control
    prior = load_defense_suite(SUITES / "defenses_prior.yaml")  # the in-domain-prior arm: only the base differs
    assert prior.base.chest and prior.model_dump(exclude={"base", "name", "content_hash"}) == \
        full.model_dump(exclude={"base", "name", "content_hash"})
    measured = load_defense_suite(SUITES / "defenses_measured.yaml")
    assert measured.noise == full.noise and measured.data == full.data and measured.base == full.base
    smoke = load_defense_suite(SUITES / "defenses_smoke.yaml")
    assert "ran_centroids" in smoke.labels


def test_nmtune_starts_near_identity_on_raw_features(tmp_path):
    """At the start of training (train mode: BatchNorm on batch statistics), g = f + s ⊙ MLP(f) with s = 1 is close
    to the raw CLIP features f of a pre-trained CLIP; `features = "raw"` is what the comparison feeds it."""
    from benchmark.studies.defenses.corpora import generated
    from benchmark.studies.defenses.heads import build_head
    from benchmark.studies.defenses.spec import SplitSpec
    from wrappers.clip_encoder import TINY_ARCH, ClipEncoder, PretrainRecipe, pretrain_clip

    split = generated(SplitSpec(n=64, data_seed=0), 32, tmp_path)
    torch.manual_seed(0)
    encoder = ClipEncoder(TINY_ARCH, image_size=32)
    pretrain_clip(encoder, split.images[:, 0], split.texts, PretrainRecipe(epochs=3, batch_size=32), 0)
    raw = encoder.embed_images(split.images, normalize=False)
    head = build_head(DefenseEntry(name="nmtune", label="nmtune"), raw.shape[1], seed=0).train()
    assert type(head).features == "raw"
    with torch.no_grad():
        residual = head.scale * head.mlp(raw)
        cos = torch.nn.functional.cosine_similarity(head.transform(raw), raw, dim=1)
    assert cos.mean() > 0.9, cos.mean()
    assert (residual.norm(dim=1) / raw.norm(dim=1)).mean() < 0.5


def test_every_head_is_seeded_before_it_is_built():
    from benchmark.studies.defenses.heads import build_head

    entry = DefenseEntry(name="ran", label="ran", params={"learned_centroids": True})
    first = build_head(entry, 16, seed=3)
    torch.rand(100)  # whatever ran before
    second = build_head(entry, 16, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert first.centroids is not None and first.centroids.shape == (2, 16)


def test_each_noise_type_changes_the_nested_share_of_pairs_within_its_budget(tmp_path):
    from benchmark.studies.defenses.corpora import Data, Split, noise_order, noisy_corpus
    from wrappers.clip_encoder import TINY_ARCH, ClipEncoder, save_clip

    torch.manual_seed(0)
    encoder = ClipEncoder(TINY_ARCH, image_size=32)
    save_clip(encoder.clip, encoder.cfg, tmp_path / "base")
    rng = np.random.default_rng(0)
    texts = [f"study {i}: small left pleural effusion. the heart is normal." for i in range(40)]
    pairs = Split(rng.random((40, 2, 32, 32), dtype=np.float32), texts, np.zeros(40, dtype=int), "x")
    data = Data(pairs, pairs, rng.random((8, 2, 32, 32), dtype=np.float32), ["ct abdomen."] * 8, pairs, pairs,
                {"ID": pairs, "OOD": pairs})
    noise = ("noise:\n  - {type: image, ratios: [0.1, 0.3]}\n  - {type: caption, ratios: [0.3]}\n"
             "  - {type: random, ratios: [0.3]}\n  - {type: mismatch, ratios: [0.8], control: true}\n")
    head, rest = SMOKE.split("noise:\n", 1)
    suite = load_defense_suite(_suite(tmp_path, head + noise + rest[rest.index("noise_attack"):]))
    order = noise_order(40, 0)
    general = f"local-dir:{tmp_path / 'base'}"
    eps = suite.noise_attack.epsilon
    for kind in ("image", "random"):
        images, captions = noisy_corpus(data, general, suite, kind, seed=0)
        moved = np.flatnonzero(np.abs(images - pairs.images).reshape(40, -1).max(1) > 0)
        assert set(moved) <= set(order[:12]) and len(moved) >= 10, kind  # 30 % of 40 pairs, first of the order
        assert np.abs(images - pairs.images).max() <= eps + 1e-6 and captions == texts
    _, captions = noisy_corpus(data, general, suite, "caption", seed=0)
    assert {i for i, (a, b) in enumerate(zip(texts, captions)) if a != b} <= set(order[:12])
    images, captions = noisy_corpus(data, general, suite, "mismatch", seed=0)
    swapped = [i for i, (a, b) in enumerate(zip(texts, captions)) if a != b]
    assert sorted(swapped) == sorted(order[:int(0.8 * 40)]) and (images == pairs.images).all()
    assert sorted(captions[i] for i in swapped) == sorted(texts[i] for i in swapped)  # reports of other pairs


def _committed(folder: Path) -> int:
    try:
        with sqlite3.connect(folder / "run.sqlite", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.e2e
@pytest.mark.slow
def test_smoke_suite_end_to_end_then_a_kill_resumes_without_recomputing(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    main(["compare-defenses", str(SUITES / "defenses_smoke.yaml"), "--out", str(out), "--cache", str(cache)])
    frame = pd.read_csv(out / "results.csv")
    suite = load_defense_suite(SUITES / "defenses_smoke.yaml")
    clips = 1 + sum(len(n.ratios) for n in suite.noise)
    units = len(suite.seeds) * clips * len(suite.defenses)
    assert frame.drop_duplicates(["seed", "noise", "ratio", "method"]).shape[0] == units
    # per unit: clean on ID and OOD; on every CLIP but the control's, PGD at two ε and the feature attack on both
    attacked_units = len(suite.seeds) * (clips - len(suite.noise[-1].ratios)) * len(suite.defenses)
    assert suite.noise[-1].control and len(frame) == units * 2 + attacked_units * (2 + 1) * 2
    attacked = frame[frame["attack"] != "clean"]
    assert (attacked["accuracy"] <= attacked["clean_accuracy"] + 1e-9).all()  # on the same samples, never helps
    feature = frame[frame["attack"] == "feature"]
    assert (feature["target_similarity_adv"] > feature["target_similarity_clean"]).all()
    assert frame["lr"].isin(suite.search.lr).all() and frame["outcomes"].str.len().gt(0).all()
    verdicts = (out / "verdicts.md").read_text()
    assert verdicts.split("\n")[3].startswith("Positive control (dose–response)") and "MDD (pt)" in verdicts
    assert "mismatch, ID clean (lp)**: accuracy" in verdicts and "at γ 0, 40, 80 %" in verdicts
    assert "ran − nmtune" in verdicts and "ID PGD@0.003922" in verdicts and "OOD feature@0.03137" in verdicts
    assert "methods, noisy CLIPs pooled" in verdicts and "p seed t (Holm)" in verdicts
    claims = (out / "claims.md").read_text()
    assert "| Han et al. §5.5, Fig. 7 | RAN improves over MLP tuning" in claims and "this study's own findings" in claims
    for name in ("tables.md", "claims.md", "spectrum.md", "zeroshot.md", "search.md", "clip_scores.md", "accuracy_vs_noise_image.png"):
        assert (out / name).stat().st_size > 100, name
    meta = json.loads((out / "provenance.json").read_text())
    assert meta["suite"] == "defenses_smoke" and meta["computed"] == units and "open_clip_torch=" in meta["packages"]
    assert "verdicts:" in capsys.readouterr().out

    # kill -9 a fresh run into another folder (CLIPs cached) once two units are committed, then resume
    again = tmp_path / "again"
    args = [sys.executable, "-m", "mmrb", "compare-defenses", str(SUITES / "defenses_smoke.yaml"), "--out", str(again),
            "--cache", str(cache), "-q"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while _committed(again) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the comparison finished before it could be killed: " + proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    from benchmark.store.results import RunStore

    with RunStore(again) as store:
        before = store.run_ids()
    assert 2 <= len(before) < units
    main(["compare-defenses", str(SUITES / "defenses_smoke.yaml"), "--out", str(again), "--cache", str(cache), "-q"])
    with RunStore(again) as store:
        after = store.run_ids()
    assert len(after) == units and {k: after[k] for k in before} == before, "a committed unit was recomputed"
    resumed = json.loads((again / "provenance.json").read_text())
    assert resumed["loaded"] == len(before) and resumed["computed"] == units - len(before)
    columns = ["seed", "noise", "ratio", "method", "domain", "attack", "epsilon", "accuracy", "outcomes"]
    pd.testing.assert_frame_equal(frame[columns], pd.read_csv(again / "results.csv")[columns])  # the same figures


@pytest.mark.slow
def test_a_defense_plugin_from_a_file_runs_with_the_suites_parameters(tmp_path):
    (tmp_path / "my_heads.py").write_text(PLUGIN)
    text = SMOKE.replace("defenses: [lp, mlp, nmtune, ran, {name: ran, label: ran_centroids, params: {learned_centroids: true}}]",
                         "defenses: [lp, {name: my_heads.py:Gated, label: gated, params: {width: 3}}]")
    text = text.replace("seeds: [0, 1]", "seeds: [0]").replace("attack_limit: 16", "attack_limit: 8")
    suite_path = _suite(tmp_path, text)
    suite = load_defense_suite(suite_path)
    assert suite.labels == ["lp", "gated"]
    from benchmark.studies.defenses.heads import build_head

    head = build_head(suite.defenses[1], 8, seed=0, base=tmp_path)
    assert head.width == 3 and head.gate[0].out_features == 3  # the suite's parameter reached the head
    main(["compare-defenses", str(suite_path), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "-q"])
    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(frame["method"]) == {"lp", "gated"}
    assert "gated − lp" in (tmp_path / "out" / "verdicts.md").read_text()


def test_the_ablation_suite_sets_ran_parameters_from_the_suite():
    ablation = load_defense_suite(SUITES / "defenses_ablation.yaml")
    params = {d.label: d.params for d in ablation.defenses}
    assert params["ran_no_adv"] == {"beta": 0.0} and params["ran_no_mse_cov"] == {"alpha": 0.0}
    from benchmark.studies.defenses.heads import build_head

    head = build_head(ablation.defenses[[d.label for d in ablation.defenses].index("ran_strong")], 8, seed=0)
    assert (head.alpha, head.beta) == (0.1, 0.15)
