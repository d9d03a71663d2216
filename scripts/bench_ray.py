"""Wall time of one grid on the local backend and on a local Ray instance with 1 and with 2 workers (1 torch
thread per worker), all in one run of this script (machines are noisy: compare ratios from the same run).

    .venv/bin/python scripts/bench_ray.py [--cells-per-model 4] [--steps 40]

Every timing starts from the same cache: the models trained once beforehand (not timed), no attack output, so
each backend attacks every cell. The Ray timings include starting and stopping the local Ray instance.
Goal (issue 16): 2 workers at least 1.7x faster than 1.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmark.api import evaluate
from benchmark.run.backends import LocalBackend, RayBackend


def suite(cells_per_model: int, steps: int) -> dict:
    epsilons = [round(2 * (i + 1) / 255, 6) for i in range(cells_per_model)]
    return {"name": "bench_ray", "dataset": {"name": "indiana_synth"}, "models": ["early_fusion", "late_fusion"],
            "attacks": [{"source": "art", "name": "ProjectedGradientDescent", "label": "PGD",
                         "params": {"max_iter": steps, "num_random_init": 1}}],
            "epsilons": epsilons, "seeds": [0], "convergence_check": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells-per-model", type=int, default=4, help="ε values per model (2 models)")
    parser.add_argument("--steps", type=int, default=40, help="PGD steps per cell")
    args = parser.parse_args()
    grid = suite(args.cells_per_model, args.steps)
    root = Path(tempfile.mkdtemp(prefix="mmrb-bench-ray-"))
    base = root / "base"
    warm = {**grid, "attacks": [{"name": "none"}]}
    evaluate(warm, out=root / "warm", cache=base, backend=LocalBackend(torch_threads=1))  # trains the models
    default = "local backend (torch's default threads)"
    runs = {default: LocalBackend(),
            "local backend (1 torch thread)": LocalBackend(torch_threads=1),
            "Ray, 1 worker (1 torch thread)": RayBackend(local_cpus=1, num_cpus=1, torch_threads=1),
            "Ray, 2 workers (1 torch thread each)": RayBackend(local_cpus=2, num_cpus=1, torch_threads=1)}
    seconds, frames = {}, {}
    for i, (label, backend) in enumerate(runs.items()):
        cache = root / f"cache{i}"
        shutil.copytree(base, cache, ignore=shutil.ignore_patterns("attacks"))
        start = time.perf_counter()
        evaluation = evaluate(grid, out=root / f"out{i}", cache=cache, backend=backend)
        seconds[label] = time.perf_counter() - start
        frames[label] = evaluation.frame.drop(columns=["seconds"])
        assert evaluation.record.computed == len(evaluation.frame) and evaluation.record.loaded == 0
    n_cells = len(next(iter(frames.values())))
    print(f"grid: {n_cells} cells (early_fusion, late_fusion x PGD-{args.steps} with a random start x "
          f"{args.cells_per_model} eps), {frames[next(iter(frames))]['n'].iloc[0]} test samples, models cached")
    for label, value in seconds.items():
        print(f"  {label:<40} {value:7.1f} s")
    one, two = seconds["Ray, 1 worker (1 torch thread)"], seconds["Ray, 2 workers (1 torch thread each)"]
    print(f"  speed-up, 2 Ray workers over 1          {one / two:7.2f}x   (goal >= 1.7)")
    print(f"  2 Ray workers vs the local backend       {seconds[default] / two:7.2f}x")
    same = [label for label in frames if label.startswith(("Ray", "local backend (1"))]
    identical = all(frames[label].equals(frames[same[0]]) for label in same)
    print(f"  results identical across the 1-thread runs (local, Ray 1 and 2 workers): {identical}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
