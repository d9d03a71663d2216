"""Training time of the default suite's models (suites/smoke.yaml's data, one training seed) under the canonical
numerical setting (1 torch thread, deterministic algorithms: `wrappers.numerics.canonical_numerics`) and as
before it (the caller's threads: torch's default, one per core), in one run of this script, each from an empty cache.

    .venv/bin/python scripts/bench_canonical_training.py [--suite suites/smoke.yaml] [--seed 0] [--threads 2]
                                                         [--models vision_only early_fusion]

Each model is timed on its own (its single-modality branches, which late and ensemble fusion reuse, are trained
before in the same cache: the per-model times add up to the suite's training time for that seed). The tiny BERT
vocabulary is built before the timings. Machines are noisy: compare the ratio from the same run.
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch

import wrappers.training as training
from benchmark.run.runner import prepare_data
from benchmark.spec.suite import load_suite
from wrappers.training import obtain_trained, state_digest, tiny_bert_folder


def train_all(models: list[str], data, cache: Path, seed: int, canonical: bool) -> dict[str, tuple[float, str]]:
    """model -> (seconds, state digest), trained in that order into `cache`."""
    saved = training.canonical_numerics
    if not canonical:  # as before: training at whatever the caller set
        training.canonical_numerics = contextlib.nullcontext
    try:
        tiny_bert_folder(data.texts, cache, seed)
        out = {}
        for name in models:
            start = time.perf_counter()
            model = obtain_trained(name, {}, data, cache, seed)
            out[name] = time.perf_counter() - start, state_digest(model)
        return out
    finally:
        training.canonical_numerics = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/smoke.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="the caller's threads (before)")
    parser.add_argument("--models", nargs="*", help="these of the suite's models only (default: all)")
    args = parser.parse_args()
    suite = load_suite(args.suite)
    root = Path(tempfile.mkdtemp(prefix="mmrb-bench-canonical-"))
    data = prepare_data(suite, root / "data").train_set
    models = [m.name for m in suite.models if not args.models or m.name in args.models]
    torch.set_num_threads(args.threads)
    before = train_all(models, data, root / "before", args.seed, canonical=False)
    canonical = train_all(models, data, root / "canonical", args.seed, canonical=True)
    print(f"{suite.name}: {len(data.labels)} training samples, seed {args.seed}, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}")
    print(f"  {'model':<18}{f'before ({args.threads} threads)':>22}{'canonical (1 thread)':>22}{'ratio':>8}  same weights")
    for name in models:
        (b, bd), (c, cd) = before[name], canonical[name]
        print(f"  {name:<18}{b:>20.1f} s{c:>20.1f} s{c / max(b, 1e-9):>8.2f}  {bd == cd}")
    b, c = sum(t for t, _ in before.values()), sum(t for t, _ in canonical.values())
    print(f"  {'total':<18}{b:>20.1f} s{c:>20.1f} s{c / b:>8.2f}")


if __name__ == "__main__":
    main()
