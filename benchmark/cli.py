"""The `mmrb` command: parses arguments and calls one function per verb."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from benchmark.errors import MmrbError


def default_cache() -> Path:
    """$MMRB_CACHE, else ~/.cache/mmrb: generated data and trained models are kept there."""
    return Path(os.environ.get("MMRB_CACHE", Path.home() / ".cache" / "mmrb"))


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.leaderboard import provenance, publish
    from benchmark.runner import describe_run, run_suite
    from benchmark.suite import load_suite

    suite = load_suite(args.suite)
    out = Path(args.out or Path("runs") / suite.name)
    record = run_suite(suite, out, args.cache, device=args.device, progress=not args.quiet, fresh=args.fresh)
    print(describe_run(record))
    if record.tables and not args.quiet:
        print(record.tables)
    failed = [r for r in record.rows if r["error"]]
    for row in failed:
        print(f"  failed: {row['model']} / {row['attack']} / eps={row['epsilon']}: {row['error']}", file=sys.stderr)
    if not args.no_leaderboard:
        meta = provenance(suite.name, suite.content_hash, record.data_fingerprint, suite.seed)
        csv_path, md_path = publish(record.rows, meta, args.leaderboard)
        print(f"leaderboard: {csv_path}, {md_path}")
        if not args.quiet:
            print(md_path.read_text())
    if failed:
        raise SystemExit(1)


def cmd_compare_defenses(args: argparse.Namespace) -> None:
    from benchmark.defenses_compare import compare_defenses, load_defense_suite

    suite = load_defense_suite(args.suite)
    out = Path(args.out or Path("runs") / suite.name)
    frame = compare_defenses(suite, out, args.cache, progress=not args.quiet)
    print(f"results: {out / 'results.csv'} ({len(frame)} rows); tables: {out / 'tables.md'}, {out / 'zeroshot.md'}")
    if not args.quiet:
        print((out / "tables.md").read_text())
        print((out / "zeroshot.md").read_text())


def cmd_synth(args: argparse.Namespace) -> None:
    from benchmark.data.synth import write_synthetic_indiana

    out = write_synthetic_indiana(args.out, n=args.n, seed=args.seed, image_size=args.image_size)
    print(f"wrote {args.n} synthetic Indiana-format studies to {out}")


def cmd_text_resources(args: argparse.Namespace) -> None:
    from benchmark.data.text_resources import build_nltk_data

    print(f"NLTK data (WordNet 3.0 from Debian's wordnet packages + English stopwords) in {build_nltk_data(args.out)}")


def cmd_models(args: argparse.Namespace) -> None:
    import wrappers

    print("\n".join(wrappers.list_models(args.pattern)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrb", description="Adversarial robustness benchmark for multimodal models")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    verbs = parser.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("run", help="run a suite and update the leaderboard")
    run.add_argument("suite", help="suite YAML file, e.g. suites/smoke.yaml")
    run.add_argument("--out", help="folder for results.csv (default runs/<suite name>)")
    run.add_argument("--cache", type=Path, default=default_cache(), help="data/model cache (default $MMRB_CACHE or ~/.cache/mmrb)")
    run.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    run.add_argument("--no-leaderboard", action="store_true", help="write results.csv only")
    run.add_argument("--device", default="cpu", help="torch device: cpu or cuda (checked before any work)")
    run.add_argument("--fresh", action="store_true", help="forget the cells already committed in the --out folder and "
                     "run every cell again (cached models and attacks are still reused: their keys cover their content)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")
    run.set_defaults(func=cmd_run)

    compare = verbs.add_parser("compare-defenses", help="noisy CLIP pre-training and the defense comparison "
                               "(LP, MLP, RAN, NMTune) in and out of domain, clean and under attack")
    compare.add_argument("suite", help="defenses suite YAML file, e.g. suites/defenses.yaml")
    compare.add_argument("--out", help="folder for results.csv, tables and plots (default runs/<suite name>)")
    compare.add_argument("--cache", type=Path, default=default_cache(), help="data/model cache (default $MMRB_CACHE or ~/.cache/mmrb)")
    compare.add_argument("-q", "--quiet", action="store_true", help="no progress, no tables")
    compare.set_defaults(func=cmd_compare_defenses)

    data = verbs.add_parser("data", help="dataset tools").add_subparsers(dest="data_verb", required=True)
    synth = data.add_parser("synth", help="write a synthetic dataset in the Indiana University format")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--n", type=int, default=600, help="number of studies (uids)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--image-size", type=int, default=128, help="PNG side in pixels")
    synth.set_defaults(func=cmd_synth)

    resources = data.add_parser("text-resources", help="build the NLTK data text attacks need, offline, from Debian's "
                                "wordnet-base and wordnet-sense-index packages")
    resources.add_argument("--out", type=Path, default=None, help="folder (default $MMRB_NLTK_DATA or ~/.cache/mmrb/nltk_data)")
    resources.set_defaults(func=cmd_text_resources)

    models = verbs.add_parser("models", help="list registered models")
    models.add_argument("pattern", nargs="?", default="*")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except MmrbError as exc:
        print(f"mmrb: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
