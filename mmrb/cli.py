"""The `mmrb` command: parses arguments and calls one function per verb."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from benchmark import default_cache
from mmrb.core.errors import MmrbError


def cmd_run(args: argparse.Namespace) -> None:
    from benchmark.api import evaluate
    from benchmark.run.runner import describe_run

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
        from benchmark.run.suite_boards import CSV_NAME, MD_NAME

        print(f"leaderboard: {board / CSV_NAME}, {board / MD_NAME}")
        if not args.quiet:
            print((board / MD_NAME).read_text())
    if failed:
        raise SystemExit(1)


def compare_model_defenses(args: argparse.Namespace) -> None:
    """compare-defenses on a run suite: run it like `mmrb run` (store, resume, backend), then the comparison."""
    from benchmark.api import evaluate
    from benchmark.run.runner import describe_run
    from benchmark.spec.suite import load_suite
    from benchmark.studies.defenses.fusion import check_defended, write_fusion_reports

    check_defended(load_suite(args.suite), args.suite)
    out = Path(args.out or Path("runs") / Path(args.suite).stem)
    record = evaluate(args.suite, out=out, cache=args.cache, device=args.device, progress=not args.quiet,
                      fresh=args.fresh, leaderboard=None, backend=backend_of(args)).record
    print(describe_run(record))
    written = write_fusion_reports(record.results_path.parent)
    print(f"tables: {written['tables']}, verdicts: {written['verdicts']}")
    if not args.quiet:
        print(written["tables"].read_text())
        print(written["verdicts"].read_text())
    failed = [r for r in record.rows if r["error"]]
    for row in failed:
        print(f"  failed: {row['model']} / {row['attack']} / eps={row['epsilon']}: {row['error']}", file=sys.stderr)
    if failed:
        raise SystemExit(1)


def add_protocol_options(parser: argparse.ArgumentParser, written: str) -> None:
    """Options of the verbs that run the leaderboard protocol (submit, evaluate-entry), the backend's included."""
    parser.add_argument("--leaderboard", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    parser.add_argument("--protocol", type=Path, default=None, help="protocol suite (default suites/leaderboard.yaml)")
    parser.add_argument("--cache", type=Path, default=default_cache(), help="data/model cache (default $MMRB_CACHE or ~/.cache/mmrb)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--no-build", action="store_true", help=f"write {written} only; do not rebuild the pages")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_backend_options(parser)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """--backend (the backends registered in benchmark.run.backends) and the Ray settings (run, submit)."""
    from benchmark.run.backends import DEFAULT_BACKEND, list_backends  # listed from the backend files: no Ray, no torch

    ray = parser.add_argument_group("backend", "where cells run: here, one after another (local, the default), or as "
                                 "Ray tasks (pip install 'mmrb[ray]'; see docs/ray.md)")
    ray.add_argument("--backend", choices=list_backends(), default=DEFAULT_BACKEND,
                     help=f"where cells run: {', '.join(list_backends())} (default {DEFAULT_BACKEND})")
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
    from benchmark.run.backends import backend_from

    return backend_from(args.backend, args.address, args.num_cpus, args.num_gpus, args.torch_threads, args.max_retries,
                        args.local_cpus)


def import_all(references: list[str]) -> None:
    """Import the plug-ins named by --import (modules or .py files): their @register_model factories register."""
    from wrappers.registry import import_plugin

    for reference in references or ():
        import_plugin(reference)


def cmd_submit(args: argparse.Namespace) -> None:
    from benchmark.submission.submit import submit

    for card in args.cards:
        outcome = submit(card, board=args.leaderboard, protocol=args.protocol, cache=args.cache, device=args.device,
                         progress=not args.quiet, backend=backend_of(args))
        print(outcome.message)
    if not args.no_build:
        written = build_locked(args.leaderboard)
        print("leaderboard rebuilt: " + ", ".join(str(p) for p in written if p.suffix in (".md", ".html", ".csv")))


def cmd_evaluate_entry(args: argparse.Namespace) -> None:
    from benchmark.submission.evaluations import evaluate_entry

    path, summary = evaluate_entry(args.card, args.evaluation, board=args.leaderboard, cache=args.cache,
                                   device=args.device, progress=not args.quiet, backend=backend_of(args),
                                   protocol=args.protocol)
    print(f"{summary}\nwritten: {path}")
    if not args.no_build:
        written = build_locked(args.leaderboard)
        print("leaderboard rebuilt: " + ", ".join(str(p) for p in written if p.suffix in (".md", ".html", ".csv")))


def build_locked(directory: Path) -> list[Path]:
    """Rebuild the leaderboard pages holding the folder's lock (two builds never interleave)."""
    from benchmark.board.build import build_board
    from mmrb.core.io import folder_lock

    with folder_lock(directory, "the leaderboard", wait=True):
        return build_board(directory)


def cmd_board_build(args: argparse.Namespace) -> None:
    for path in build_locked(args.dir):
        print(path)


def cmd_board_screenshot(args: argparse.Namespace) -> None:
    from benchmark.board.screenshot import screenshot

    print(screenshot(args.dir / "index.html", args.out))


def cmd_compare_defenses(args: argparse.Namespace) -> None:
    from benchmark.studies.defenses import compare_defenses, load_defense_suite
    from benchmark.studies.defenses.fusion import is_run_suite

    if is_run_suite(args.suite):  # defenses on suite models (fusion_defenses.yaml): run, then compare
        compare_model_defenses(args)
        return
    if args.backend not in ("local", "ray"):
        raise MmrbError(f"{args.suite}: a head-defense study runs on --backend local or ray, not {args.backend}")
    backend = backend_of(args)
    suite = load_defense_suite(args.suite)
    out = Path(args.out or Path("runs") / suite.name)
    if out.exists() and not out.is_dir():
        raise MmrbError(f"{out} is a file, not a folder: give --out a folder")
    frame = compare_defenses(suite, out, args.cache, progress=not args.quiet, fresh=args.fresh,
                             base=Path(args.suite).parent, backend=backend)
    print(f"results: {out / 'results.csv'} ({len(frame)} rows); tables: {out / 'tables.md'}, verdicts: "
          f"{out / 'verdicts.md'}")
    if not args.quiet:
        print((out / "tables.md").read_text())
        print((out / "verdicts.md").read_text())


def cmd_synth(args: argparse.Namespace) -> None:
    from benchmark.data.synth import write_synthetic_indiana

    out = write_synthetic_indiana(args.out, n=args.n, seed=args.seed, image_size=args.image_size)
    print(f"wrote {args.n} synthetic Indiana-format studies to {out}")


def cmd_text_resources(args: argparse.Namespace) -> None:
    from benchmark.data.text_resources import build_nltk_data

    print(f"NLTK data (WordNet 3.0 from Debian's wordnet packages + English stopwords) in {build_nltk_data(args.out)}")


def cmd_models(args: argparse.Namespace) -> None:
    from benchmark.spec.catalogue import model_rows

    pattern = "" if args.pattern == "*" else args.pattern
    print_table(("name", "family", "modalities", "preset", "from"), model_rows(pattern, args.imports))


def cmd_attacks(args: argparse.Namespace) -> None:
    from benchmark.spec.catalogue import list_attacks

    sources = tuple(args.source) if args.source else None  # every source of the attack registry
    rows = list_attacks(args.pattern, sources)
    if not rows:
        print(f"no attack matches {args.pattern!r} (a substring, or a shell pattern such as '*PGD*')")
        return
    print_table(("source", "name", "params (suite entry: params: {...}; eps is set per ε)", "note"), rows)


def print_table(header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


def build_parser() -> argparse.ArgumentParser:
    from benchmark import PROTOCOL_VERSION, __version__

    parser = argparse.ArgumentParser(prog="mmrb", description="Adversarial robustness benchmark for multimodal models")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"mmrb {__version__} (leaderboard protocol "
                        f"{PROTOCOL_VERSION})")
    verbs = parser.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("run", help="run a suite and update the leaderboard")
    run.add_argument("suite", help="suite YAML file, e.g. suites/smoke.yaml")
    run.add_argument("--out", help="folder for results.csv (default runs/<suite name>); it holds one suite's results: "
                     "another suite's folder is refused (--fresh discards them)")
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
    add_protocol_options(sub, "the entry")
    sub.set_defaults(func=cmd_submit)

    outside = verbs.add_parser("evaluate-entry", help="replay an outside evaluation (a stronger attack) on a published "
                               "entry; a lower figure becomes the entry's ranked one, credited")
    outside.add_argument("card", type=Path, help="the entry's model card (its code and weights must be the entry's)")
    outside.add_argument("evaluation", type=Path, help="evaluation YAML: name, authors, attack {source, name, params}")
    add_protocol_options(outside, "the evaluation")
    outside.set_defaults(func=cmd_evaluate_entry)

    board = verbs.add_parser("leaderboard", help="the leaderboard pages").add_subparsers(dest="board_verb", required=True)
    build = board.add_parser("build", help="regenerate README.md, ranking.csv, cells.csv and index.html from the entries")
    build.add_argument("--dir", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    build.set_defaults(func=cmd_board_build)
    shot = board.add_parser("screenshot", help="render index.html in headless Chromium to a PNG")
    shot.add_argument("--dir", type=Path, default=Path("leaderboard"), help="leaderboard folder (default ./leaderboard)")
    shot.add_argument("--out", type=Path, default=Path("leaderboard-screenshot.png"), help="PNG to write")
    shot.set_defaults(func=cmd_board_screenshot)

    compare = verbs.add_parser("compare-defenses", help="compare defenses: the CLIP heads (LP, MLP, RAN, NMTune) under "
                               "noisy pre-training (suites/defenses.yaml), or defenses on suite models, attacked "
                               "naively and adaptively (suites/fusion_defenses.yaml)",
                               description="With --backend ray, a head-defense study runs a Ray task per seed and "
                               "noise type (every γ of that type, after the seed's general-CLIP task); a run suite's "
                               "cells run as with `mmrb run --backend ray`. Units are committed as their tasks finish: "
                               "the same command resumes.")
    compare.add_argument("suite", help="a defense study (suites/defenses.yaml) or a run suite whose models carry "
                         "defense: (suites/fusion_defenses.yaml)")
    compare.add_argument("--out", help="folder for results.csv, tables and plots (default runs/<suite name>)")
    compare.add_argument("--cache", type=Path, default=default_cache(), help="data/model cache (default $MMRB_CACHE or ~/.cache/mmrb)")
    compare.add_argument("--fresh", action="store_true", help="discard the units already committed in --out")
    compare.add_argument("-q", "--quiet", action="store_true", help="no progress, no tables")
    compare.add_argument("--device", default="cpu", help="torch device of a run suite's models: cpu or cuda")
    add_backend_options(compare)
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
                     "goes to pytest (--mmrb-suite PATH, --mmrb-out, --mmrb-cache, --mmrb-speed, --benchmark-autosave; "
                     "`mmrb gate --help` lists them)")

    models = verbs.add_parser("models", help="list registered models (plug-ins and entry points included)")
    models.add_argument("pattern", nargs="?", default="*", help="a substring of the name (fusion), or a shell "
                        "pattern (*_paper); default: all")
    models.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a plug-in first (module name or .py file; repeatable)")
    models.set_defaults(func=cmd_models)

    attacks = verbs.add_parser("attacks", help="list the attacks a suite can name, by source, with their parameters")
    attacks.add_argument("pattern", nargs="?", default="", help="a substring of the name (pgd), or a shell pattern "
                         "(*Gradient*); default: all")
    from benchmark.attacks.registry import sources  # listed from the adapter files: no library is imported

    attacks.add_argument("--source", action="append", choices=sources(),
                         help="only this source (repeatable)")
    attacks.set_defaults(func=cmd_attacks)
    return parser


GATE_HELP = """usage: mmrb gate [--mmrb-suite PATH ...] [--mmrb-out DIR] [--mmrb-cache DIR] [--mmrb-device DEV]
                 [--mmrb-backend NAME] [--mmrb-address ADDR] [--mmrb-speed] [PYTEST OPTIONS]

The robustness gate: runs `pytest benchmark/` of the installed mmrb on a suite and fails when a cell's 95 %
interval lies beyond its `expect:` bound (docs/gate.md).

mmrb options:
  --mmrb-suite PATH      suite YAML to gate on (repeatable; default suites/smoke.yaml)
  --mmrb-out DIR         folder of the suites' run folders (default runs/gate)
  --mmrb-cache DIR       data/model/attack cache (default $MMRB_CACHE or ~/.cache/mmrb)
  --mmrb-device DEV      torch device (default cpu)
  --mmrb-backend NAME    where the cells run: {backends} (default local)
  --mmrb-address ADDR    Ray cluster for --mmrb-backend ray (default $RAY_ADDRESS, else a local instance)
  --mmrb-speed           also time every attack on 8 samples with pytest-benchmark (examples per second)

Any other option goes to pytest (-q, -x, -k EXPR, --benchmark-autosave, ...; `python -m pytest --help` lists them)."""


def run_gate(pytest_args: list[str]) -> None:
    """`mmrb gate [pytest options]`: `pytest benchmark/` on the installed package (the robustness gate)."""
    import pytest

    import benchmark

    raise SystemExit(pytest.main([str(Path(benchmark.__file__).resolve().parent), *pytest_args]))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["gate"] and any(a in ("-h", "--help") for a in argv[1:]):
        from benchmark.run.backends import list_backends

        print(GATE_HELP.replace("{backends}", ", ".join(list_backends())))
        raise SystemExit(0)
    if argv[:1] == ["gate"]:  # everything after it goes to pytest unparsed
        run_gate(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except MmrbError as exc:
        print(f"mmrb: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as exc:  # Ctrl-C: one line (what the run folder kept), not a traceback
        from mmrb.core.errors import Interrupted

        print(str(exc) if isinstance(exc, Interrupted) else "interrupted before any cell was committed; run the same "
              "command again to start over (models, attacks and data already in the cache are reused)", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
