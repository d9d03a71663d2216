"""Publish a finished CLIP defense study: rewrite its reports from results.csv and provenance.json with today's code
(nothing is re-run), copy them under docs/results/<name>/ and put its claims table, as generated, between the
markers of docs/clip-defenses.md (a test checks that the two agree).

    .venv/bin/python scripts/publish_clip_study.py runs/defenses_measured suites/defenses_measured.yaml [--as clip_defenses]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "clip-defenses.md"
START, END = "<!-- claims:start (generated: scripts/publish_clip_study.py) -->", "<!-- claims:end -->"
REPORTS = ("claims.md", "verdicts.md", "tables.md", "spectrum.md", "zeroshot.md", "search.md")


def claims_body(text: str) -> str:
    """claims.md without its provenance header (the two lines before the first blank line)."""
    return text.split("\n\n", 1)[1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("suite", type=Path, help="the suite the study ran")
    parser.add_argument("--as", dest="name", default="clip_defenses", help="the folder under docs/results")
    args = parser.parse_args()
    import json

    import pandas as pd

    from benchmark.studies.defenses import load_defense_suite, write_reports

    meta = json.loads((args.folder / "provenance.json").read_text())
    frame = pd.read_csv(args.folder / "results.csv")
    write_reports(frame, load_defense_suite(args.suite), meta, args.folder)
    target = ROOT / "docs" / "results" / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in REPORTS:
        shutil.copyfile(args.folder / name, target / name)
    doc = DOC.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC}: add the markers {START} and {END} where the claims table goes")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    body = claims_body((target / "claims.md").read_text())
    DOC.write_text(f"{head}{START}\n\n{body}\n\n{END}{tail}")
    print(f"copied {', '.join(REPORTS)} to {target}; claims table written into {DOC}")


if __name__ == "__main__":
    main()
