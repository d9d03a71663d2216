"""Rewrite the tables of a finished run folder from what it holds (results.csv, samples.csv), without running
anything: after a change to how tables are written (e.g. the intervals), so that the copies under docs/results are
what today's code prints for the same results.

    .venv/bin/python scripts/rewrite_tables.py runs/joint_attacks [--baseline vision_only]
    .venv/bin/python scripts/rewrite_tables.py runs/fusion_defenses --defenses   # tables.md and verdicts.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.evaluation.evidence import read_samples
from benchmark.evaluation.tables import write_tables
from benchmark.store.results import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--baseline", default=None, help="the suite's corruption_baseline (the mCE)")
    parser.add_argument("--defenses", action="store_true", help="a defense comparison: its tables.md and verdicts.md")
    args = parser.parse_args()
    if args.defenses:
        from benchmark.studies.defenses.fusion import write_fusion_reports

        print("\n".join(str(p) for p in write_fusion_reports(args.folder).values()))
        return
    rows = read_results(args.folder / "results.csv").to_dict("records")
    samples = read_samples(args.folder)
    labels = None if samples is None else samples.drop_duplicates("sample_id").sort_values("sample_id")["label"].to_numpy()
    write_tables(rows, args.folder, args.baseline, labels)
    print(f"{args.folder}: tables rewritten")


if __name__ == "__main__":
    main()
