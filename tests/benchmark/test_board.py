"""Tests of the static leaderboard page: ranking and separability, protocol versions kept apart, the CSVs,
HTML escaping, and the page as headless Chromium renders it from file://."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from benchmark.board import (
    CELLS_NAME,
    HTML_NAME,
    PLOTS_DIR,
    RANKING_COLUMNS,
    RANKING_NAME,
    README_NAME,
    BoardError,
    build_board,
    chromium,
    find_chromium,
    load_entries,
    rank_entries,
    render_html,
    screenshot,
)

EPS = 8 / 255
EVIL = '<script>alert("x")</script> | `evil`'
HAS_CHROMIUM = any(shutil.which(name) for name in ("chromium", "chromium-browser"))
needs_chromium = pytest.mark.skipif(not HAS_CHROMIUM, reason="headless Chromium is not installed: sudo apt-get install chromium")


def interval(mean: float | None, half: float) -> dict:
    return {"robust_accuracy": mean, "robust_accuracy_ci_low": None if mean is None else mean - half,
            "robust_accuracy_ci_high": None if mean is None else mean + half}


def cell(attack: str, modality: str, epsilon: float | None, mean: float | None, attack_name: str = "", transfer_source: str = "",
         not_converged: bool | None = False, flags: str = "") -> dict:
    """A cell in the entry schema; figures are arbitrary but consistent (rendering data, not a model's)."""
    return {"attack": attack, "attack_name": attack_name or attack, "attack_source": "art", "modality": modality,
            "epsilon": epsilon, "transfer_source": transfer_source, "n": 120, "seeds": 3,
            "clean_accuracy": 0.9, "clean_accuracy_ci_low": 0.84, "clean_accuracy_ci_high": 0.95,
            **interval(mean, 0.06), "robust_accuracy_std": 0.02,
            "robust_accuracy_normal": mean, "robust_accuracy_abnormal": mean, "n_normal": 44, "n_abnormal": 76,
            "as_run_robust_accuracy": None if not not_converged else (mean or 0) + 0.1, "not_converged": not_converged,
            "check_rounds": 4 if not_converged else 2, "check_steps": 160 if not_converged else 40,
            "check_restarts": 10 if not_converged else 3, "flags": flags,
            "robust_f1": mean, "robust_f1_hw": 0.05, "auc": 0.8, "attack_success_rate": 0.3}


def make_entry(name: str, version: str, rank: float | None, half: float, floor: float | None = 0.1,
               sources: tuple[str, ...] = (), description: str = "a test model", url: str = "https://example.org/m",
               rank_not_converged: bool | None = None) -> dict:
    """An entry (benchmark.board.entry.Entry) with a curve (FGSM at three ε), a not-converged PGD, text, joint,
    the floor, the standard evaluation at the ranking ε and transfer cells from `sources`."""
    rank_figure = rank if rank is not None else None
    cells = [cell("none", "none", None, 0.9),
             *(cell("FGSM", "image", eps, 0.7 - 2 * eps, "FastGradientMethod") for eps in (EPS, 0.05, 0.2)),
             cell("PGD", "image", EPS, 0.5, "ProjectedGradientDescent", not_converged=True, flags="rising_with_steps"),
             cell("PGD", "image", 0.2, 0.2, "ProjectedGradientDescent"),
             cell("standard", "image", EPS, rank_figure, "standard"),
             cell("synonyms", "text", 0.2, 0.6, "synonym_fraction"),
             cell("joint", "joint", EPS, 0.4, "joint_pgd"),
             cell("floor", "text", None, floor, "image_replacement"),
             *(cell("PGD", "image", EPS, 0.55 + 0.1 * i, "ProjectedGradientDescent", transfer_source=s) for i, s in enumerate(sources))]
    return {"entry_version": 1, "name": name, "protocol_version": version,
            "card": {"name": name, "authors": ["A. Author", "B. <b>Bold</b>"], "entry_point": "my_models:build", "weights": None,
                     "trained_by": "mmrb", "tokenizer": "bert-base-uncased", "data": "indiana", "threat_model": "Linf",
                     "description": description, "url": url},
            "model": {"family": name.split("_")[0], "modalities": ["image", "text"]},
            "digests": {"submission": "ab" * 8, "code": "cd" * 8, "weights": None},
            "provenance": {"suite": "leaderboard", "suite_hash": "f00d", "data_fingerprint": "d474", "split_seed": 0,
                           "seeds": [0, 1, 2], "packages": "torch=2.14.1", "mmrb_version": "0.1.0", "mmrb_commit": "abc123",
                           "date": "2026-11-23T18:00:00Z"},
            "rank": {"attack": "standard", "epsilon": EPS, "robust_accuracy": rank_figure,
                     "ci_low": None if rank is None else rank - half, "ci_high": None if rank is None else rank + half,
                     **({} if rank_not_converged is None else {"not_converged": rank_not_converged})},
            "clean": {"accuracy": 0.9, "ci_low": 0.84, "ci_high": 0.95},
            "floor": None if floor is None else {"robust_accuracy": floor, "ci_low": floor - 0.05, "ci_high": floor + 0.05},
            "flags": [{"flag": "rising_with_steps", "cells": "PGD ε=0.0314", "detail": "<b>more steps</b> lowered it"}],
            "cells": cells}


#: protocol 3: gated (70 ± 6) is clearly above early (45 ± 7); evil (42 ± 7) overlaps early -> "2–3", evil ≈.
#: protocol 2: vision (30 ± 10) clearly above early (10 ± 5); text_only has no rank metric -> unranked, last.
ENTRIES = {"3": [("gated_fusion", make_entry("gated_fusion", "3", 0.70, 0.06, sources=("early_fusion", "late_fusion"))),
                 ("early_fusion", make_entry("early_fusion", "3", 0.45, 0.07, sources=("gated_fusion",))),
                 ("evil", make_entry(EVIL, "3", 0.42, 0.07, description='<img src=x onerror="alert(1)">',
                                     url="javascript:alert(1)"))],
           "2": [("vision_only", make_entry("vision_only", "2", 0.30, 0.10)),
                 ("early_fusion", make_entry("early_fusion", "2", 0.10, 0.05, floor=None, rank_not_converged=True)),
                 ("text_only", make_entry("text_only", "2", None, 0.0, floor=None))]}


def write_entries(directory: Path, entries: dict[str, list[tuple[str, dict]]] = ENTRIES) -> Path:
    """Entries as `mmrb submit` writes them (v<version>/entries/); protocol 2's in a folder without the "v"."""
    for version, items in entries.items():
        folder = directory / (version if version == "2" else f"v{version}") / "entries"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, entry in items:
            (folder / f"{stem}.json").write_text(json.dumps(entry, ensure_ascii=False, indent=1))
    return directory


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    directory = write_entries(tmp_path_factory.mktemp("leaderboard"))
    build_board(directory)
    return directory


def readme_sections(text: str) -> dict[str, list[list[str]]]:
    """README.md -> {protocol version: table rows (cells stripped), header left out}."""
    sections: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## Protocol "):
            current = sections.setdefault(line.removeprefix("## Protocol "), [])
        elif current is not None and line.startswith("|") and not re.match(r"^\|[-:| ]+\|$", line):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return {version: rows[1:] for version, rows in sections.items()}


def test_readme_ranks_by_mean_and_marks_overlapping_intervals(board):
    rows = readme_sections((board / README_NAME).read_text())["3"]
    assert [r[1] for r in rows] == ["gated_fusion", "early_fusion", "&lt;script&gt;alert(\"x\")&lt;/script&gt; \\| \\`evil\\` ≈"]
    assert [r[0] for r in rows] == ["1", "2–3", "2–3"]  # early/evil overlap: a shared rank range
    assert "≈" not in rows[1][1]  # early_fusion is clearly below gated_fusion: no mark
    # early_fusion's whole interval lies below the constant classifier (76 of 120 abnormal: 63.3 %): marked
    assert rows[0][6] == "70.0 [64.0, 76.0]" and rows[1][6] == "45.0 [38.0, 52.0] ▼ constant"
    text = (board / README_NAME).read_text()
    assert text.startswith("# mmrb leaderboard") and "`mmrb leaderboard build`" in text.splitlines()[2]
    assert "mean [95 % interval], never outside 0–100" in text
    assert "Not separable" in text and "≈ early_fusion" in text


def test_protocol_versions_never_mix(board):
    text = (board / README_NAME).read_text()
    sections = readme_sections(text)
    assert list(sections) == ["3", "2"] and text.index("## Protocol 3") < text.index("## Protocol 2")
    assert [r[1] for r in sections["2"]] == ["vision_only", "early_fusion", "text_only"]
    assert [r[0] for r in sections["2"]] == ["1", "2", "unranked (no rank figure)"]  # separated; text_only: none
    assert sections["2"][1][7] == "–"  # no floor: NaN-safe
    assert sections["2"][1][6] == "10.0 [5.0, 15.0] ‡ ▼ constant" and "‡" not in sections["2"][0][6]
    assert not any("gated_fusion" in r[1] for r in sections["2"])
    page = (board / HTML_NAME).read_text()
    for version, names in (("3", 3), ("2", 3)):
        assert page.count(f'class="ranking-row" data-protocol="{version}"') == names


def test_ranking_and_cells_csv(board):
    with open(board / RANKING_NAME, newline="") as handle:
        ranking = list(csv.DictReader(handle))
    assert tuple(ranking[0]) == RANKING_COLUMNS
    assert [(r["protocol_version"], r["position"], r["rank_group"], r["separable_from_above"], r["model"]) for r in ranking] == [
        ("3", "1", "1", "True", "gated_fusion"), ("3", "2", "2–3", "True", "early_fusion"), ("3", "3", "2–3", "False", EVIL),
        ("2", "1", "1", "True", "vision_only"), ("2", "2", "2", "True", "early_fusion"), ("2", "", "–", "True", "text_only")]
    assert float(ranking[0]["robust_ci_low"]) == pytest.approx(0.64) and ranking[0]["rank_not_converged"] == "False"
    assert ranking[4]["floor_robust_accuracy"] == "" and ranking[0]["flags"] == "rising_with_steps"
    assert [r["rank_not_converged"] for r in ranking] == ["False"] * 4 + ["True", "False"]
    with open(board / CELLS_NAME, newline="") as handle:
        cells = list(csv.DictReader(handle))
    expected = sum(len(entry["cells"]) for items in ENTRIES.values() for _, entry in items)
    assert len(cells) == expected == 6 * 10 + 3
    assert list(cells[0])[:4] == ["protocol_version", "model", "attack", "attack_name"]
    transfer = [(c["model"], c["transfer_source"]) for c in cells if c["transfer_source"]]
    assert transfer == [("gated_fusion", "early_fusion"), ("gated_fusion", "late_fusion"), ("early_fusion", "gated_fusion")]
    assert {c["protocol_version"] for c in cells if c["model"] == "vision_only"} == {"2"}


def test_entry_strings_are_escaped(board):
    page = (board / HTML_NAME).read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>" not in page and "&lt;b&gt;more steps&lt;/b&gt;" in page
    assert 'href="javascript:' not in page and 'href="https://example.org/m"' in page
    assert page.count("<script>") == 1  # the page's own sort/load script, nothing from an entry
    assert "<script>" not in (board / README_NAME).read_text()


def test_plots_are_rebuilt_and_stale_ones_removed(tmp_path):
    directory = write_entries(tmp_path, {"1": [("a", make_entry("a", "1", 0.5, 0.1, sources=("b",))),
                                               ("b", make_entry("b", "1", 0.3, 0.1))]})
    written = build_board(directory)
    plots = sorted((directory / PLOTS_DIR).glob("*.png"))
    assert len(plots) == 4 and set(plots) <= set(written)  # attribution, one transfer heatmap, two curves
    (directory / "v1" / "entries" / "b.json").unlink()
    build_board(directory)
    assert len(list((directory / PLOTS_DIR).glob("*.png"))) == 3
    assert "| b " not in (directory / README_NAME).read_text()


def test_bad_entries_are_refused_with_their_file(tmp_path):
    write_entries(tmp_path, {"1": [("a", make_entry("a", "1", 0.5, 0.1)), ("a2", make_entry("a", "1", 0.4, 0.1))]})
    with pytest.raises(BoardError, match=r"a2\.json.*already named 'a'"):
        load_entries(tmp_path)
    (tmp_path / "v1" / "entries" / "a2.json").write_text(json.dumps(make_entry("c", "2", 0.4, 0.1)))
    with pytest.raises(BoardError, match=r"a2\.json.*'protocol_version' is '2'.*folder 'v1'"):
        load_entries(tmp_path)
    (tmp_path / "v1" / "entries" / "a2.json").write_text("{")
    with pytest.raises(BoardError, match=r"a2\.json: not a readable JSON entry"):
        build_board(tmp_path)


def test_a_malformed_entry_is_refused_naming_the_file_each_field_and_the_fix(tmp_path):
    entry = make_entry("a", "1", 0.5, 0.1)
    entry["cells"][3]["robust_accuracy"] = "high"
    entry["model"]["modalities"] = ["image", "audio"]
    del entry["provenance"]["date"]
    entry["rank_by"] = "standard"
    path = write_entries(tmp_path, {"1": [("a", entry)]}) / "v1" / "entries" / "a.json"
    with pytest.raises(BoardError) as refused:
        load_entries(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{path}: not a valid leaderboard entry\n")
    assert "field 'cells.3.robust_accuracy': Input should be a valid number" in message and "(found 'high')" in message
    assert "field 'model.modalities.1': Input should be 'image' or 'text' (found 'audio')" in message
    assert "field 'provenance.date': missing" in message and "field 'rank_by': unknown field" in message
    assert "restore the file from git, or submit the model again" in message
    path.write_text(json.dumps({**make_entry("a", "1", 0.5, 0.1), "entry_version": 3}))
    with pytest.raises(BoardError, match=r"a\.json: .*\n  field 'entry_version': is 3; this mmrb reads versions 1 to 2 \(upgrade mmrb"):
        load_entries(tmp_path)


def test_the_page_escapes_html_in_a_model_name():
    name = "<img src=x onerror=alert(1)>"
    ranked = rank_entries([make_entry(name, "1", 0.5, 0.1)])
    page = render_html({"1": ranked}, {"1": {"attribution": "a.png", "transfer": [], "curves": {name: "c.png"}}})
    assert "<img src=x" not in page
    # the ranking's link and family column, the attribution table, the model's heading, family fact and plot's alt text
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 6


def test_chained_overlaps_share_one_rank_range():
    """a-b and b-c overlap, a-c do not: none of the three is separated from its neighbour, so all share 2–4."""
    means = (("top", 0.95), ("a", 0.80), ("b", 0.70), ("c", 0.60), ("d", 0.20))
    ranked = rank_entries([make_entry(name, "1", mean, 0.06) for name, mean in reversed(means)])
    assert [(r.name, r.group, r.tied_above) for r in ranked] == [
        ("top", "1", False), ("a", "2–4", False), ("b", "2–4", True), ("c", "2–4", True), ("d", "5", False)]


def dump_dom(page: Path, *extra: str) -> str:
    done = chromium(page.resolve().as_uri(), "--virtual-time-budget=5000", "--dump-dom", *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_chromium
def test_page_renders_from_file_with_every_image(board):
    dom = dump_dom(board / HTML_NAME)
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load script did not run"
    images = len(list((board / PLOTS_DIR).glob("*.png")))
    assert images == 2 + 1 + 6  # attribution per protocol, one transfer heatmap (protocol 3), curves per model
    assert loaded.groups() == (str(images), str(images))
    assert dom.count('class="ranking-row"') == 6
    for name in ("gated_fusion", "early_fusion", "vision_only", "text_only", "&lt;script&gt;alert"):
        assert re.search(r'<tr class="ranking-row"[^>]*>.*?' + re.escape(name), dom)


@needs_chromium
def test_clicking_a_header_sorts_the_ranking(board, tmp_path):
    """Sort the protocol-3 ranking by model name (ascending), in a copy of the page with a clicking script."""
    page = (board / HTML_NAME).read_text().replace("</body>", """<script>
window.addEventListener("load", function () {
  var table = document.querySelector("table.ranking");
  table.tHead.rows[0].cells[1].click();
  var order = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[1].textContent.trim(); });
  document.body.setAttribute("data-order", order.join(",").replace(/[^a-z_,]/g, ""));
  table.tHead.rows[0].cells[6].click(); table.tHead.rows[0].cells[6].click();
  var robust = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[6].textContent.trim(); });
  document.body.setAttribute("data-robust", robust.join(","));
});
</script></body>""")
    copy = board / "sort_check.html"
    copy.write_text(page)
    try:
        dom = dump_dom(copy)
    finally:
        copy.unlink()
    assert 'data-order="scriptalertxscriptevil,early_fusion,gated_fusion"' in dom
    assert 'data-robust="70.0 [64.0, 76.0],45.0 [38.0, 52.0] ▼ constant,42.0 [35.0, 49.0] ▼ constant"' in dom


@needs_chromium
def test_screenshot_writes_a_png(board, tmp_path):
    png = screenshot(board / HTML_NAME, tmp_path / "shot.png", width=800, height=1200)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_screenshot_without_chromium_names_the_install(monkeypatch, board, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BoardError, match="apt-get install chromium"):
        find_chromium()
    with pytest.raises(BoardError, match="apt-get install chromium"):
        screenshot(board / HTML_NAME, tmp_path / "shot.png")



def test_a_defended_entry_shows_its_naive_figure_beside_the_ranked_adaptive_one(tmp_path):
    """A model behind JPEG: the adaptive rank figure (BPDA) is the one ranked, below its twin without the defense
    would be if the naive one counted; the naive figure and the masking sit beside it on the page and in the
    README, and the defense is among the model's facts."""
    defended = make_entry("jpeg_fusion", "1", 0.30, 0.05)
    defended["card"]["defense"] = {"name": "jpeg", "params": {"quality": 50}}
    defended["rank"].update(naive_robust_accuracy=0.95, naive_attack="PGD")
    standard = next(c for c in defended["cells"] if c["attack"] == "standard")
    standard.update(naive_robust_accuracy=0.95, masking=0.65)
    plain = make_entry("plain_fusion", "1", 0.40, 0.05)
    directory = write_entries(tmp_path, {"1": [("jpeg_fusion", defended), ("plain_fusion", plain)]})
    build_board(directory)
    rows = readme_sections((directory / README_NAME).read_text())["1"]
    assert [r[1] for r in rows] == ["plain_fusion", "jpeg_fusion"]  # ranked by the adaptive figure, not the naive one
    assert "30.0" in rows[1][6] and "naive 95.0 (PGD; masking +65.0)" in rows[1][6] and "naive" not in rows[0][6]
    page = (directory / HTML_NAME).read_text()
    assert page.count("naive 95.0 (PGD; masking +65.0)") == 1  # the ranking row
    assert "<tr><th>defense</th><td>jpeg[quality=50] (robust figures adaptive" in page
    assert '<td class="num">95.0 (+65.0)</td>' in page  # the standard cell's naive figure and masking


def test_every_multimodal_entry_shows_its_modality_reliance(tmp_path):
    """The attribution table carries the modality-reliance index: the recorded one (mean ± seed half-width) where the
    entry has it, else the point estimate from its cells' seed means ((0.9 − 0.4) − max(0.9 − 0.5, 0.9 − 0.6) = 10.0
    points here), and nothing for an entry without a joint cell."""
    recorded = make_entry("recorded_fusion", "1", 0.30, 0.05)
    recorded["reliance"] = {"epsilon": EPS, "index": 0.128, "halfwidth": 0.098, "joint_drop": 0.5, "single_drop": 0.372,
                            "seeds": 3}
    from_means = make_entry("older_fusion", "1", 0.60, 0.05)
    image_only = make_entry("image_model", "1", 0.35, 0.05)
    image_only["cells"] = [c for c in image_only["cells"] if c["modality"] in ("none", "image")]
    per_sample = make_entry("new_fusion", "1", 0.40, 0.05)  # protocol ≥ 6: the share only the joint attack breaks
    per_sample["reliance"] = {"epsilon": EPS, "definition": "only_joint", "index": 0.0, "low": 0.0, "high": 0.0,
                              "only_joint": 0, "missed": 2, "pairs": 120, "seeds": 3,
                              "said": "none of 120 (seed, sample) pairs is broken by the joint attack alone"}
    for entry in (recorded, from_means, per_sample):  # the text floor is mmrb's probe, not a text attack
        next(c for c in entry["cells"] if c["attack"] == "floor")["attack_source"] = "mmrb"
    directory = write_entries(tmp_path, {"1": [("recorded_fusion", recorded), ("older_fusion", from_means),
                                               ("image_model", image_only), ("new_fusion", per_sample)]})
    build_board(directory)
    page = (directory / HTML_NAME).read_text()
    assert "<th scope=\"col\"" in page and "modality reliance (pt)</th>" in page
    rows = {m: page.split(f"<tr><td>{m}</td>", 1)[1].split("</tr>", 1)[0] for m in ("recorded_fusion", "older_fusion",
                                                                                     "image_model", "new_fusion")}
    assert "0 of 120 (seed, sample) pairs" in rows["new_fusion"] and "none of 120" in rows["new_fusion"]
    assert ">0.0 <span" in rows["new_fusion"] and "± 0.0" not in rows["new_fusion"]  # said in words, no interval
    assert "12.8 [3.0, 22.6]" in rows["recorded_fusion"] and "3 seeds" in rows["recorded_fusion"]
    assert ">10.0 <span class=\"attack\">(at ε 0.03137, from the seed means" in rows["older_fusion"]
    assert rows["image_model"].rstrip().endswith("<td class=\"num\" data-sort=\"\">–</td>")


def test_a_submission_records_the_reliance_index_of_its_samples(tmp_path):
    from benchmark.evaluation.evidence import SAMPLES_NAME
    from benchmark.submission.submit import entry_reliance

    # 3 seeds × 10 samples; at EPS the joint attack alone breaks samples 0-1, at 0.2 sample 0; the image attack 2-4
    samples = [{"sample_id": f"s{i}", "model": "m", "seed": seed, "attack": attack, "modality": modality,
                "epsilon": eps, "label": 1, "clean_prediction": 1, "broken": broken(i)}
               for seed in range(3) for i in range(10)
               for attack, modality, eps, broken in (("clean", "none", None, lambda i: False),
                                                     ("PGD", "image", EPS, lambda i: 2 <= i <= 4),
                                                     ("PGD", "image", 0.2, lambda i: i >= 2),
                                                     ("swap", "text", None, lambda i: False),
                                                     ("joint", "joint", EPS, lambda i: i <= 4),
                                                     ("joint", "joint", 0.2, lambda i: True))]
    import pandas as pd

    pd.DataFrame(samples).to_csv(tmp_path / SAMPLES_NAME, index=False)
    found = entry_reliance(tmp_path, [], "m", EPS)
    assert found["epsilon"] == EPS and found["seeds"] == 3 and found["definition"] == "only_joint"
    assert found["index"] == pytest.approx(0.2) and found["only_joint"] == 6 and found["pairs"] == 30
    assert 0 <= found["low"] <= found["index"] <= found["high"] <= 1
    assert entry_reliance(tmp_path, [], "m", 0.5)["epsilon"] == 0.2  # no joint cell at that ε: the largest there is
    pd.DataFrame([r for r in samples if r["modality"] != "joint"]).to_csv(tmp_path / SAMPLES_NAME, index=False)
    assert entry_reliance(tmp_path, [], "m", EPS) is None


def test_the_default_protocol_is_the_repository_suite():
    """`mmrb submit CARD` without --protocol runs suites/leaderboard.yaml (a path that broke once when submit.py moved)."""
    from pathlib import Path

    from benchmark.submission.submit import PROTOCOL_SUITE

    assert PROTOCOL_SUITE == Path(__file__).resolve().parents[2] / "suites" / "leaderboard.yaml"
    assert PROTOCOL_SUITE.is_file() and "rank_by" in PROTOCOL_SUITE.read_text()
