"""The board's clinical parts: the paired test of adjacent entries decides ≈ and rank ranges (a planted difference is
separated, a null one is not, where intervals alone say nothing), and the page renders the operating point, the
corruption mCE, the baselines, the below-text-only mark, the detectable difference and the samples browser in Chromium."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmark.board import HTML_NAME, build_board, rank_entries, screenshot
from benchmark.board.entry import Entry
from benchmark.evaluation.evidence import png_uri
from tests.benchmark.test_board import dump_dom, make_entry, needs_chromium, write_entries

N, SEEDS = 150, 3


def bits(correct: np.ndarray) -> dict[str, str]:
    return {str(s): "".join("1" if v else "0" for v in row) for s, row in enumerate(correct)}


def with_evidence(entry: dict, correct: np.ndarray, broken: bool = False) -> dict:
    entry = copy.deepcopy(entry)
    image = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    entry["evidence"] = {"samples": "same-ids", "rank_correct": bits(correct), "broken": [] if not broken else [
        {"sample_id": "17", "seed": 0, "attack": "standard@0.03137", "label": 1, "clean_prediction": 1,
         "adversarial_prediction": 0, "report": "mild cardiomegaly. <b>no</b> effusion.",
         "adversarial_report": "mild cardiomegaly. no effusion.",
         "images": {"clean": png_uri(image), "adversarial": png_uri(image[::-1]), "difference": png_uri(abs(image - image[::-1]))}}]}
    entry["operating_point"] = {"specificity": 0.95, "robust_sensitivity": 0.41, "robust_specificity": 0.88,
                                "false_reassurance": 12.3, "false_alarm": 4.0}
    return entry


def corruption(entry: dict, scale: float, baseline: str = "base") -> dict:
    entry["corruption"] = {"baseline": baseline, "errors": {"blur": 0.5 * scale, "typos": 0.4 * scale}, "mean_ce": 0.09 * scale}
    return entry


@pytest.fixture(scope="module")
def decisions():
    rng = np.random.default_rng(0)
    low = rng.random((SEEDS, N)) < 0.45
    planted = low | (rng.random((SEEDS, N)) < 0.2)  # right wherever `low` is, and on a fifth of the rest
    null = low.copy()  # a near-identical model: 20 decisions lost and 14 gained over the seeds (no real difference)
    right, wrong = np.argwhere(low), np.argwhere(~low)
    for (s, i) in right[rng.choice(len(right), 20, replace=False)]:
        null[s, i] = False
    for (s, i) in wrong[rng.choice(len(wrong), 14, replace=False)]:
        null[s, i] = True
    return planted, low, null


def test_a_planted_difference_separates_overlapping_intervals(decisions):
    planted, low, _ = decisions
    a = with_evidence(make_entry("a", "3", 0.52, 0.08), planted)
    b = with_evidence(make_entry("b", "3", 0.46, 0.08), low)
    ranked = rank_entries([a, b])
    assert [r.group for r in ranked] == ["1", "2"] and not ranked[1].tied_above
    assert ranked[1].test.separable and ranked[1].test.result.b_only == 0
    without = rank_entries([make_entry("a", "3", 0.52, 0.08), make_entry("b", "3", 0.46, 0.08)])
    assert without[1].tied_above  # the intervals alone cannot separate them


def test_a_null_difference_is_not_separated(decisions):
    _, low, null = decisions
    ranked = rank_entries([with_evidence(make_entry("a", "3", 0.47, 0.08), low),
                           with_evidence(make_entry("b", "3", 0.45, 0.08), null)])
    assert ranked[1].tied_above and [r.group for r in ranked] == ["1–2", "1–2"] and not ranked[1].test.separable


@pytest.fixture(scope="module")
def board(tmp_path_factory, decisions):
    planted, low, _ = decisions
    text_only = make_entry("text_model", "3", None, 0.0, floor=None)
    text_only["model"]["modalities"] = ["text"]
    text_only["clean"] = {"accuracy": 0.89, "ci_low": 0.85, "ci_high": 0.93}
    base = corruption(make_entry("base", "3", 0.2, 0.05), 1.0)
    base["model"]["modalities"] = ["image"]
    entries = {"3": [("fusion", corruption(with_evidence(make_entry("fusion", "3", 0.52, 0.08), planted, broken=True), 0.5)),
                     ("weak", corruption(with_evidence(make_entry("weak", "3", 0.46, 0.08), low), 0.8)),
                     ("base", base), ("text_model", text_only)]}
    for _, entry in entries["3"]:
        Entry.model_validate(entry)  # the schema takes the new blocks
    directory = write_entries(tmp_path_factory.mktemp("clinical-board"), entries)
    build_board(directory)
    return directory


@needs_chromium
def test_the_page_renders_the_clinical_parts(board, tmp_path):
    page = (board / HTML_NAME).read_text().replace("</body>", """<script>
window.addEventListener("load", function () {
  var seen = [".operating", ".mce", ".baseline-row", ".below-text", ".detectable", "figure.sample img"].map(function (s) {
    var e = document.querySelector(s); return s + ":" + (e && e.getBoundingClientRect().height > 0 ? "shown" : "missing"); });
  document.body.setAttribute("data-seen", seen.join(","));
});
</script></body>""")
    check = board / "clinical_check.html"
    check.write_text(page)
    dom = dump_dom(check)
    assert 'data-seen=".operating:shown,.mce:shown,.baseline-row:shown,.below-text:shown,.detectable:shown,figure.sample img:shown"' in dom
    assert "41.0 / 88.0 @ 95 % spec" in dom and "12.3 / 4.0" in dom
    assert ">50<" in dom and ">80<" in dom and ">100<" in dom  # mCE of fusion, weak and the baseline itself
    assert "constant: always abnormal" in dom and "text-only: text_model" in dom
    assert "smallest difference these comparisons detect" in dom and "&lt;b&gt;no&lt;/b&gt;" in dom
    assert dom.count('<figure class="sample"') == 1
    png = screenshot(board / HTML_NAME, tmp_path / "clinical.png", width=1400, height=2400)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
