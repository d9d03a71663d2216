"""Benchmark: first run of a suite vs an unchanged re-run (attack cache warm), and their ratio.

    .venv/bin/python scripts/bench_rerun.py [suites/smoke.yaml] [--workdir DIR]

Both runs are `mmrb run` subprocesses (interpreter start-up included), with a fresh temporary cache for the
first one; the re-run writes into a new --out folder, so it is the attack cache, not the run store, that makes
it fast. Prints seconds and the ratio (target: <= 0.05) and checks that results.csv is byte-identical.
`--workdir DIR` keeps the cache and both run folders (DIR/first has the tables) instead of a temporary folder.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(suite: str, out: Path, cache: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmrb", "run", suite, "--out", str(out), "--cache", str(cache),
                    "--no-leaderboard", "-q"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", nargs="?", default="suites/smoke.yaml")
    parser.add_argument("--workdir", type=Path, help="keep cache and run folders here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        first = timed_run(args.suite, work / "first", work / "cache")
        again = timed_run(args.suite, work / "again", work / "cache")
        same = (work / "first" / "results.csv").read_bytes() == (work / "again" / "results.csv").read_bytes()
    print(f"suite {args.suite}")
    print(f"first run (empty cache)      {first:8.1f} s")
    print(f"unchanged re-run (new --out) {again:8.1f} s")
    print(f"ratio                        {again / first:8.3f}   (target <= 0.05)")
    print(f"results.csv byte-identical   {same}")


if __name__ == "__main__":
    main()
