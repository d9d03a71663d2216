"""Benchmark: first run of a suite vs an unchanged re-run (attack cache warm), and their ratio.

    .venv/bin/python scripts/bench_rerun.py [suites/smoke.yaml]

Both runs are `mmrb run` subprocesses (interpreter start-up included), with a fresh temporary cache for the
first one; the re-run writes into a new --out folder, so it is the attack cache, not the run store, that makes
it fast. Prints seconds and the ratio (target: <= 0.05) and checks that results.csv is byte-identical.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(suite: str, out: Path, cache: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "benchmark", "run", suite, "--out", str(out), "--cache", str(cache),
                    "--no-leaderboard", "-q"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    suite = sys.argv[1] if len(sys.argv) > 1 else "suites/smoke.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first = timed_run(suite, tmp / "first", tmp / "cache")
        again = timed_run(suite, tmp / "again", tmp / "cache")
        same = (tmp / "first" / "results.csv").read_bytes() == (tmp / "again" / "results.csv").read_bytes()
    print(f"suite {suite}")
    print(f"first run (empty cache)      {first:8.1f} s")
    print(f"unchanged re-run (new --out) {again:8.1f} s")
    print(f"ratio                        {again / first:8.3f}   (target <= 0.05)")
    print(f"results.csv byte-identical   {same}")


if __name__ == "__main__":
    main()
