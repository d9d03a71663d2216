"""The `mmrb` command: parses arguments and calls one function per verb."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from benchmark import default_cache
from benchmark.errors import MmrbError


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.api import evaluate
    from benchmark.runner import describe_run

    import_all(args.imports)
    board = None if args.no_leaderboard else args.leaderboard
    backend = backend_of(args)
    record = evaluate(args.suite, out=args.out, cache=args.cache, device=args.device, progress=not args.quiet,
                      fresh=args.fresh, leaderboard=board, backend=backend).record
    print(describe_run(record))
    if record.tables and not args.quiet:
        print(record.tables)
    failed = [r for r in record.rows if r["error"]]
    for row in failed:
        print(f"  failed: {row['model']} / {row['attack']} / eps={row['epsilon']}: {row['error']}", file=sys.stderr)
    if board is not None:
        from benchmark.leaderboard import CSV_NAME, MD_NAME

        print(f"leaderboard: {board / CSV_NAME}, {board / MD_NAME}")
        if not args.quiet:
            print((board / MD_NAME).read_text())
    if failed:
        raise SystemExit(1)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """--backend and the Ray settings (run, submit)."""
    ray = parser.add_argument_group("backend", "where cells run: here, one after another (local, the default), or as "
                                 "Ray tasks (pip install 'mmrb[ray]'; see the README's 'Running on Ray')")
    ray.add_argument("--backend", choices=("local", "ray"), default="local")
    ray.add_argument("--address", default=None, help="Ray cluster to join (auto, ray://HEAD:10001; default "
                     "$RAY_ADDRESS, else a local Ray instance started for this run)")
    ray.add_argument("--local-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    ray.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per Ray task (default 1)")
    ray.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray task (with --device cuda; 0.5 shares one "
                     "GPU between two tasks)")
    ray.add_argument("--torch-threads", type=int, default=None, help="torch threads per Ray task (default: --num-cpus), "
                     "or of the local run (default: torch's own) for attacks and scoring; training always uses 1 "
                     "(the canonical setting: the same weights and figures at any value)")
    ray.add_argument("--max-retries", type=int, default=3, help="re-runs of a Ray task whose worker died (default 3)")


def backend_of(args: argparse.Namespace):
    from benchmark.backends import backend_from

    return backend_from(args.backend, args.address, args.num_cpus, args.num_gpus, args.torch_threads, args.max_retries,
                        args.local_cpus)


def import_all(references: list[str]) -> None:
    """Import the plug-ins named by --import (modules or .py files): their @register_model factories register."""
    from wrappers.registry import import_plugin

    for reference in references or ():
        import_plugin(reference)


def cmd_submit(args: argparse.Namespace) -> None:
    from benchmark.submit import submit

    for card in args.cards:
        outcome = submit(card, board=args.leaderboard, protocol=args.protocol, cache=args.cache, device=args.device,
                         progress=not args.quiet, backend=backend_of(args))
        print(outcome.message)
    if not args.no_build:
        written = build_locked(args.leaderboard)
        print("leaderboard rebuilt: " + ", ".join(str(p) for p in written if p.suffix in (".md", ".html", ".csv")))


def build_locked(directory: Path) -> list[Path]:
    """Rebuild the leaderboard pages holding the folder's lock (two builds never interleave)."""
    from benchmark.board import build_board
    from benchmark.results import folder_lock

    with folder_lock(directory, "the leaderboard", wait=True):
        return build_board(directory)


def cmd_board_build(args: argparse.Namespace) -> None:
    for path in build_locked(args.dir):
        print(path)


def cmd_board_screenshot(args: argparse.Namespace) -> None:
    from benchmark.board import screenshot

    print(screenshot(args.dir / "index.html", args.out))


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

    import_all(args.imports)
    rows = [(name, entry.family, "+".join(sorted(entry.modalities)), entry.preset, entry.origin)
            for name in wrappers.list_models(args.pattern) for entry in [wrappers.model_entry(name)]]
    header = ("name", "family", "modalities", "preset", "from")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrb", description="Adversarial robustness benchmark for multimodal models")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    verbs = parser.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("run", help="run a suite and update the leaderboard")
    run.add_argument("suite", help="suite YAML file, e.g. suites/smoke.yaml")
    run.add_argument("--out", help="folder for results.csv (default runs/<suite name>)")
    run.add_argument("--cache", type=Path, default=default_cache(), help="data/model cache (default $MMRB_CACHE or ~/.cache/mmrb)")
    run.add_argument("--leaderboard", type=Path, default=Path("leaderboard/suites"),
                     help="folder of the suites' leaderboard (default ./leaderboard/suites; the ranked board of submitted "
                          "models is built by `mmrb submit` / `mmrb leaderboard build`)")
    run.add_argument("--no-leaderboard", action="store_true", help="write results.csv only")
    run.add_argument("--device", default="cpu", help="torch device: cpu or cuda (checked before any work)")
    run.add_argument("--fresh", action="store_true", help="forget the cells already committed in the --out folder and "
                     "run every cell again (cached models and attacks are still reused: their keys cover their content)")
    run.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                     help="import a plug-in first (module name or .py file; repeatable): its @register_model models "
                          "can then be named in the suite")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")
    add_backend_options(run)
    run.set_defaults(func=cmd_run)

    sub = verbs.add_parser("submit", help="run the leaderboard protocol on a model card and write its entry")
    sub.add_argument("cards", nargs="+", type=Path, help="model card YAML file(s), e.g. examples/submit_fusion/card.yaml")
    sub.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    sub.add_argument("--protocol", type=Path, default=None, help="protocol suite (default suites/leaderboard.yaml)")
    sub.add_argument("--cache", type=Path, default=default_cache(), help="data/model cache (default $MMRB_CACHE or ~/.cache/mmrb)")
    sub.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    sub.add_argument("--no-build", action="store_true", help="write the entry only; do not rebuild the pages")
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_backend_options(sub)
    sub.set_defaults(func=cmd_submit)

    board = verbs.add_parser("leaderboard", help="the leaderboard pages").add_subparsers(dest="board_verb", required=True)
    build = board.add_parser("build", help="regenerate README.md, ranking.csv, cells.csv and index.html from the entries")
    build.add_argument("--dir", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    build.set_defaults(func=cmd_board_build)
    shot = board.add_parser("screenshot", help="render index.html in headless Chromium to a PNG")
    shot.add_argument("--dir", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    shot.add_argument("--out", type=Path, default=Path("leaderboard-screenshot.png"), help="PNG to write")
    shot.set_defaults(func=cmd_board_screenshot)

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

    verbs.add_parser("gate", help="the robustness gate: pytest benchmark/ on the installed mmrb; every further argument "
                     "goes to pytest (--mmrb-suite PATH, --mmrb-out, --mmrb-cache, --mmrb-speed, --benchmark-autosave)")

    models = verbs.add_parser("models", help="list registered models (plug-ins and entry points included)")
    models.add_argument("pattern", nargs="?", default="*")
    models.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a plug-in first (module name or .py file; repeatable)")
    models.set_defaults(func=cmd_models)
    return parser


def run_gate(pytest_args: list[str]) -> None:
    """`mmrb gate [pytest options]`: `pytest benchmark/` on the installed package (the robustness gate)."""
    import pytest

    import benchmark

    raise SystemExit(pytest.main([str(Path(benchmark.__file__).resolve().parent), *pytest_args]))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gate"]:  # everything after it goes to pytest unparsed
        run_gate(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except MmrbError as exc:
        print(f"mmrb: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
