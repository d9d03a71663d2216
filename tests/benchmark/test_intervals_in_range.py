"""No published interval lies outside its metric's range or fails to hold its figure: every generated page, table and
CSV of the default suite's board, the leaderboard and the committed study results (docs/results) is scanned, and so
is every file a small real run writes. Intervals are printed `mean [low, high]`; a `mean ± half-width` left in an
older committed copy must stay inside the range too (a run folder's files never print one: they are checked for it)."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_suite_text

ROOT = Path(__file__).resolve().parents[2]
#: `12.3 [4.5, 20.1]`, `+2.5 [-1.0, +6.0]` (a signed difference), an optional † or % after the bracket.
BRACKET = re.compile(r"(?<![\w.])([+-]?\d+(?:\.\d+)?) \[([+-]?\d+(?:\.\d+)?), ([+-]?\d+(?:\.\d+)?)\]")
SYMMETRIC = re.compile(r"(?<![\w.])([+−-]?\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")
TOLERANCE = 0.051  # printed to one decimal


def generated_files(root: Path) -> list[Path]:
    """The committed generated pages and tables: the leaderboard's and its suite boards', and docs/results."""
    found = [root / "leaderboard" / "README.md", root / "leaderboard" / "suites" / "LEADERBOARD.md",
             root / "leaderboard" / "ranking.csv", root / "leaderboard" / "cells.csv",
             root / "leaderboard" / "suites" / "leaderboard.csv"]
    found += sorted((root / "docs" / "results").rglob("*.md"))
    return [p for p in found if p.is_file()]


def problems(path: Path, symmetric: bool = True) -> list[str]:
    """Intervals of one file outside their range or not holding their figure (printed or as CSV columns);
    `symmetric`: whether a `mean ± half-width` may appear at all (it must lie inside the range in any case)."""
    if path.suffix == ".csv":
        frame, out = pd.read_csv(path, low_memory=False), []
        for low in [c for c in frame.columns if c.endswith("_ci_low")]:
            metric, high = low[: -len("_ci_low")], low[: -len("_ci_low")] + "_ci_high"
            if metric not in frame or high not in frame:
                continue
            rows = frame[[metric, low, high]].apply(pd.to_numeric, errors="coerce").dropna()
            bad = rows[(rows[low] < -1e-9) | (rows[high] > 1 + 1e-9) | (rows[low] > rows[metric] + 1e-9)
                       | (rows[metric] > rows[high] + 1e-9)]
            out += [f"{path.name}: {metric} {r[metric]:.4f} [{r[low]:.4f}, {r[high]:.4f}]" for _, r in bad.iterrows()]
        return out
    text, out = path.read_text(), []
    for match in BRACKET.finditer(text):
        mean, low, high = (float(g) for g in match.groups())
        signed = match.group(1)[0] in "+-"
        floor = -100.0 if signed or low < 0 else 0.0
        if not (floor - TOLERANCE <= low <= mean + TOLERANCE and mean - TOLERANCE <= high <= 100 + TOLERANCE):
            out.append(f"{path.relative_to(ROOT) if ROOT in path.parents else path.name}: {match.group(0)}")
    for match in SYMMETRIC.finditer(text):
        signed = match.group(1)[0] in "+−-"
        mean, half = float(match.group(1).replace("−", "-")), float(match.group(2))
        if not symmetric or mean - half < (-100 if signed else 0) - TOLERANCE or mean + half > 100 + TOLERANCE:
            out.append(f"{path.name}: {match.group(0)}" + ("" if symmetric else " (printed as ±)"))
    return out


def test_the_scan_finds_what_it_looks_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("| a | 31.6 [0.0, 118.0] | 45.6 ± 65.2 | 53.3 [44.4, 62.0] | +3.0 [-1.0, +7.5] | 12.0 [13.0, 20.0] "
                    "| 55.0 ± 10.8 |")
    found = problems(page)
    assert len(found) == 3 and "118.0" in found[0] and "12.0 [13.0" in found[1] and "45.6 ± 65.2" in found[2]
    assert len(problems(page, symmetric=False)) == 4  # a run's own files print no ± at all
    table = tmp_path / "cells.csv"
    pd.DataFrame({"robust_f1": [0.5, 0.2], "robust_f1_ci_low": [0.1, -0.3], "robust_f1_ci_high": [0.9, 0.7]}).to_csv(
        table, index=False)
    assert len(problems(table)) == 1


def test_no_committed_generated_file_prints_an_interval_out_of_range():
    files = generated_files(ROOT)
    assert len(files) >= 8
    found = [p for path in files for p in problems(path)]
    assert not found, "\n".join(found[:20])


SUITE = """
name: tiny_intervals
dataset: {name: indiana_synth, n: 80, seed: 3, image_size: 32}
models: [vision_only, text_only, early_fusion]
attacks:
  - {name: none}
  - {source: art, name: FastGradientMethod, label: FGSM}
  - {source: mmrb, name: corruption, label: blur-3, params: {kind: blur, severity: 3}}
  - {source: mmrb, name: operating_point, label: false_reassurance, params: {direction: false_reassurance, steps: 5, restarts: 1}}
transfer:
  sources: [early_fusion]
  targets: [vision_only]
  attacks: [{source: art, name: FastGradientMethod, label: FGSM-transfer}]
epsilons: [0.0313725]
seeds: [0, 1, 2]
operating_point: 0.9
corruption_baseline: vision_only
convergence_check: false
limit: 16
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_suite_text(tmp_path_factory.mktemp("intervals"), SUITE)


def test_every_file_a_run_writes_keeps_its_intervals_in_range(run):
    files = [p for p in [*(run / "out").glob("*.md"), *(run / "out").glob("*.csv"), *(run / "lb").glob("*")]
             if p.suffix in (".md", ".csv") and p.name not in ("results.csv", "samples.csv", "samples_transfer.csv")]
    assert {"accuracy.md", "aggregate.csv", "LEADERBOARD.md", "clinical.md", "transfer.md"} <= {p.name for p in files}
    found = [p for path in files for p in problems(path, symmetric=False)]
    assert not found, "\n".join(found[:20])
    cells = pd.read_csv(run / "out" / "aggregate.csv")
    white = cells[cells["transfer_source"].isna()]
    assert (white.loc[white["attack"] != "none", "interval"] == "bootstrap").all()
    assert (cells.loc[cells["transfer_source"].notna(), "interval"] == "seeds").all()
    assert "3 training seed(s) × 16 test samples" in (run / "out" / "accuracy.md").read_text()
