"""Tests of the leaderboard: merging runs into leaderboard.csv by KEY, the Markdown view, and provenance."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from benchmark import PROTOCOL_VERSION, __version__
from benchmark.run.suite_boards import CSV_NAME, MD_NAME, PACKAGES, PROVENANCE, SCORES, git_commit, provenance, publish

FINGERPRINT = "a1b2c3d4-64px-split0-0.2"
EPS = (8 / 255, 0.03, 0.2)


def make_row(model: str, attack: str = "none", epsilon: float | None = None, robust_accuracy: float = 0.8,
             robust_f1: float = 0.6, error: str = "", transfer_source: str = "") -> dict:
    """A row as the runner writes it to results.csv (including columns the leaderboard does not keep)."""
    clean = attack == "none"
    return dict(suite="smoke", model=model, attack=attack, attack_source="mmrb" if clean else "art",
                modality="none" if clean else "image", epsilon=epsilon, steps=0 if clean else 1,
                transfer_source=transfer_source, n=120, clean_accuracy=0.8, robust_accuracy=robust_accuracy,
                clean_f1=0.6, robust_f1=robust_f1, auc=0.9, robust_auc=0.7, attack_success_rate=0.25,
                max_perturbation=epsilon or 0.0, seconds=1.5, params="{}", error=error)


def run_rows(robust_accuracy: float = 0.4567) -> list[dict]:
    """One run of a small suite: two models, the clean cell and FGSM at three budgets."""
    rows = []
    for model in ("early_fusion", "vision_only"):
        rows.append(make_row(model))
        rows += [make_row(model, "FastGradientMethod", e, robust_accuracy=robust_accuracy) for e in EPS]
    return rows


def meta(suite: str = "smoke", suite_hash: str = "0123456789abcdef", seed: int = 0) -> dict:
    """Provenance exactly as `mmrb run` records it."""
    return provenance(suite, suite_hash, FINGERPRINT, seed)


def read(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / CSV_NAME, dtype=str, keep_default_na=False)


# --- the CSV -------------------------------------------------------------------------------------------------


def test_publish_writes_both_files_with_provenance_columns(tmp_path):
    csv_path, md_path = publish(run_rows(), meta(), tmp_path / "board")
    assert (csv_path, md_path) == (tmp_path / "board" / CSV_NAME, tmp_path / "board" / MD_NAME)
    table = read(tmp_path / "board")
    assert list(table.columns) == [*PROVENANCE, *SCORES]  # results-only columns (seconds, params, error) dropped
    for column in ("protocol_version", "suite_hash", "data_fingerprint", "packages", "seed", "git_commit"):
        assert column in table.columns
    assert len(table) == 8
    first = table.iloc[0]
    assert first["protocol_version"] == PROTOCOL_VERSION
    assert first["suite_hash"] == "0123456789abcdef"  # leading zero kept: read as text, not a number
    assert first["data_fingerprint"] == FINGERPRINT
    assert first["seed"] == "0"
    assert first["git_commit"] == git_commit()
    assert first["mmrb_version"] == __version__
    assert [p.split("=")[0] for p in first["packages"].split(";")] == list(PACKAGES)
    assert table["robust_accuracy"].astype(float).tolist() == [0.8, 0.4567, 0.4567, 0.4567] * 2


def test_rows_with_an_error_are_not_published(tmp_path):
    rows = run_rows()
    rows[1]["error"] = "AttackError: FastGradientMethod diverged"
    rows[5]["error"] = "ModelError: boom"
    publish(rows, meta(), tmp_path)
    table = read(tmp_path)
    assert len(table) == 6
    published = set(zip(table["model"], table["epsilon"]))
    assert ("early_fusion", repr(EPS[0])) not in published and ("vision_only", repr(EPS[0])) not in published
    assert ("early_fusion", repr(EPS[1])) in published


def test_a_run_where_every_cell_failed_publishes_nothing(tmp_path):
    publish([make_row("early_fusion", error="boom")], meta(), tmp_path)
    assert len(read(tmp_path)) == 0
    assert "## " not in (tmp_path / MD_NAME).read_text()


def test_republishing_the_same_key_replaces_rows(tmp_path):
    publish(run_rows(robust_accuracy=0.4567), meta(), tmp_path)
    publish(run_rows(robust_accuracy=0.1234), meta(), tmp_path)
    table = read(tmp_path)
    assert len(table) == 8
    assert table["robust_accuracy"].astype(float).tolist() == [0.8, 0.1234, 0.1234, 0.1234] * 2
    markdown = (tmp_path / MD_NAME).read_text()
    assert markdown.count("## smoke") == 1
    assert "45.7" not in markdown and "12.3" in markdown


def test_rows_of_one_cell_within_one_publish_are_its_seeds(tmp_path):
    rows = [{**make_row("early_fusion", "FastGradientMethod", 0.03, robust_accuracy=0.5), "seed": 0},
            {**make_row("early_fusion", "FastGradientMethod", 0.03, robust_accuracy=0.25), "seed": 1}]
    publish(rows, meta(), tmp_path)
    table = read(tmp_path)
    assert table["robust_accuracy"].tolist() == ["0.375"] and table["seeds"].tolist() == ["2"]


def test_a_different_suite_hash_adds_rows(tmp_path):
    publish(run_rows(robust_accuracy=0.4567), meta(suite_hash="1111111111111111"), tmp_path)
    publish(run_rows(robust_accuracy=0.1234), meta(suite_hash="2222222222222222"), tmp_path)
    table = read(tmp_path)
    assert len(table) == 16
    assert table.groupby("suite_hash")["robust_accuracy"].agg(set).to_dict() == {
        "1111111111111111": {"0.8", "0.4567"}, "2222222222222222": {"0.8", "0.1234"}}


def test_key_fields_keep_rows_apart(tmp_path):
    rows = [make_row("early_fusion", "FastGradientMethod", 0.03),
            make_row("early_fusion", "FastGradientMethod", 0.03, transfer_source="vision_only"),
            make_row("early_fusion", "FastGradientMethod", 0.2),
            make_row("late_fusion", "FastGradientMethod", 0.03),
            make_row("early_fusion", "ProjectedGradientDescent", 0.03)]
    publish(rows, meta(), tmp_path)
    assert len(read(tmp_path)) == 5


# --- LEADERBOARD.md ------------------------------------------------------------------------------------------


def test_markdown_has_a_section_per_suite_with_percentages(tmp_path):
    publish(run_rows(robust_accuracy=0.4567), meta("smoke", "1111111111111111"), tmp_path)
    other = [make_row("late_fusion"), make_row("late_fusion", "FastGradientMethod", 0.1, robust_accuracy=0.0512)]
    publish(other, meta("paper", "2222222222222222", seed=7), tmp_path)
    markdown = re.sub(" +", " ", (tmp_path / MD_NAME).read_text())  # (to_markdown pads the columns)

    sections = re.split(r"^## ", markdown, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == [f"smoke (protocol {PROTOCOL_VERSION})",
                                                     f"paper (protocol {PROTOCOL_VERSION})"]
    smoke, paper = sections
    assert "suite `1111111111111111`" in smoke and f"data `{FINGERPRINT}`" in smoke and "seed 0" in smoke
    assert "suite `2222222222222222`" in paper and "seed 7" in paper
    assert "| model | clean | FastGradientMethod ε=0.03137 | FastGradientMethod ε=0.03 | " \
           "FastGradientMethod ε=0.2 |" in smoke
    pm = r" \[\d+\.\d, \d+\.\d\]"  # every figure carries its interval
    assert re.search(rf"\| early_fusion \| 80\.0{pm} \| 45\.7{pm} \| 45\.7{pm} \| 45\.7{pm} \|", smoke)  # accuracy %
    assert "| early_fusion | " + " | ".join(["60.0 [60.0, 60.0]"] * 4) + " |" in smoke  # F1 %: one seed, no spread
    assert re.search(rf"\| late_fusion \| 80\.0{pm} \| 5\.1{pm} \|", paper)
    assert "late_fusion" not in smoke and "early_fusion" not in paper


def test_markdown_marks_missing_cells(tmp_path):
    rows = [make_row("early_fusion"), make_row("early_fusion", "FastGradientMethod", 0.1, robust_accuracy=0.3),
            make_row("text_only", robust_accuracy=0.7)]
    publish(rows, meta(), tmp_path)
    markdown = re.sub(" +", " ", (tmp_path / MD_NAME).read_text())  # (to_markdown pads the columns)
    assert re.search(r"\| early_fusion \| 80\.0 \[\d+\.\d, \d+\.\d\] \| 30\.0 \[\d+\.\d, \d+\.\d\] \|", markdown)
    assert re.search(r"\| text_only \| 70\.0 \[\d+\.\d, \d+\.\d\] \| – \|", markdown)


# --- provenance ----------------------------------------------------------------------------------------------


def test_provenance_records_every_provenance_column():
    record = provenance("smoke", "abc", FINGERPRINT, 3)
    assert set(record) == set(PROVENANCE)
    assert (record["protocol_version"], record["suite"], record["suite_hash"], record["data_fingerprint"],
            record["seed"], record["mmrb_version"]) == (PROTOCOL_VERSION, "smoke", "abc", FINGERPRINT, 3, __version__)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["date"])
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?|unknown", record["git_commit"])
    versions = dict(p.split("=") for p in record["packages"].split(";"))
    assert list(versions) == list(PACKAGES) and all(versions.values())


def test_git_commit_is_unknown_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(where=tmp_path) == "unknown"


def test_git_commit_is_unknown_for_a_missing_folder(tmp_path):
    assert git_commit(where=tmp_path / "does-not-exist") == "unknown"


def test_git_commit_names_head_and_marks_dirty(tmp_path, monkeypatch):
    for var, value in (("GIT_CONFIG_GLOBAL", "/dev/null"), ("GIT_CONFIG_NOSYSTEM", "1"),
                       ("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@example.org"),
                       ("GIT_COMMITTER_NAME", "t"), ("GIT_COMMITTER_EMAIL", "t@example.org")):
        monkeypatch.setenv(var, value)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "tracked.txt").write_text("a\n")
    git("add", "tracked.txt")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")

    assert git_commit(where=tmp_path) == head[:12]
    (tmp_path / "untracked.txt").write_text("ignored by the dirty check\n")
    assert git_commit(where=tmp_path) == head[:12]
    (tmp_path / "tracked.txt").write_text("b\n")
    assert git_commit(where=tmp_path) == head[:12] + "-dirty"


# --- seeds and concurrency -------------------------------------------------------------------------------------


def test_entries_aggregate_seeds_with_intervals(tmp_path):
    rows = [{**make_row("early_fusion", "FastGradientMethod", 0.2, robust_accuracy=acc), "seed": seed}
            for seed, acc in enumerate((0.5, 0.6, 0.7))]
    publish(rows, meta(), tmp_path)
    entry = pd.read_csv(tmp_path / CSV_NAME).iloc[0]
    assert entry["seeds"] == 3 and entry["seed_list"] == "0,1,2"
    assert entry["robust_accuracy"] == pytest.approx(0.6)
    assert entry["robust_accuracy_ci_low"] < 0.5 and entry["robust_accuracy_ci_high"] > 0.7
    low, high = 100 * entry["robust_accuracy_ci_low"], 100 * entry["robust_accuracy_ci_high"]
    assert f"60.0 [{low:.1f}, {high:.1f}]" in (tmp_path / MD_NAME).read_text()
    assert 0 <= entry["robust_f1_ci_low"] <= entry["robust_f1_ci_high"] <= 1 and entry["interval"] == "seeds"


def _publish_many(directory: str, worker: int, count: int) -> None:
    for i in range(count):
        publish([make_row(f"model-{worker}-{i}")], meta(), directory)


def test_concurrent_publishers_lose_no_entry_and_readers_never_see_half_a_file(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_publish_many, args=(str(tmp_path), w, 20)) for w in range(4)]
    for w in workers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in workers):
        if (tmp_path / CSV_NAME).exists():
            table = pd.read_csv(tmp_path / CSV_NAME)  # an EmptyDataError / ParserError here fails the test
            assert list(table.columns) == [*PROVENANCE, *SCORES]
            reads += 1
    assert all(w.exitcode == 0 for w in workers)
    table = read(tmp_path)
    assert len(table) == 80 and table["model"].nunique() == 80
    assert reads > 0
