"""Outside evaluations of leaderboard entries (RobustBench's "[New evaluation]").

Anyone can propose a stronger attack against a published entry: an evaluation file names the attack (any suite
attack entry: ART, torchattacks or mmrb's own, e.g. `{source: mmrb, name: pgd, params: {steps: 1000, restarts: 10}}`)
and who proposes it. `mmrb evaluate-entry CARD.yaml EVALUATION.yaml` checks that the card's code and weights are the
entry's (the same digests), replays the attack on the entry's model, data and training seeds at the rank ε, and
writes `<board>/v<protocol>/evaluations/<entry>/<evaluation>.json` (immutable, like entries). When the board is built,
an entry's ranked figure is the lowest of its own and its evaluations', and the page credits the evaluation that set it.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import benchmark
from benchmark import default_cache
from benchmark.board.evaluations import EVALUATIONS_DIR, EvaluationError

if TYPE_CHECKING:
    from benchmark.run.backends import Backend

EVALUATION_VERSION = 1


class EvaluationSpec(BaseModel):
    """An outside evaluation: who proposes it and the attack (a suite attack entry, run at the rank ε)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the evaluation's name (letters, digits, _ . -)")
    authors: list[str] = Field(min_length=1)
    attack: dict[str, Any] = Field(description="a suite attack entry: {source, name, params}")
    description: str = ""
    url: str = ""


def load_evaluation(path: str | Path) -> EvaluationSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EvaluationError(f"{path}: cannot be read as YAML ({exc})") from None
    try:
        spec = EvaluationSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: field {'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise EvaluationError("\n".join(lines) + "\n(an evaluation holds name, authors, attack: {source, name, params}; "
                              "see docs/leaderboard.md, 'Outside evaluations')") from None
    from benchmark.attacks import check_attack

    attack = spec.attack
    if "name" not in attack:
        raise EvaluationError(f"{path}: field 'attack': needs {{source, name, params}}")
    problems = check_attack(attack.get("source", "art"), attack["name"], attack.get("params", {}))
    if problems:
        raise EvaluationError("\n".join(f"{path}: field 'attack.{f}': {m}" for f, m in problems))
    if attack.get("modality", "image") != "image":
        raise EvaluationError(f"{path}: field 'attack.modality': the rank metric is an image attack at ε; use 'image'")
    return spec


def evaluation_path(board: Path, entry: str, name: str) -> Path:
    return Path(board) / f"v{benchmark.PROTOCOL_VERSION}" / EVALUATIONS_DIR / entry / f"{name}.json"


def evaluate_entry(card_path: str | Path, evaluation: str | Path, board: str | Path = "leaderboard",
                   cache: str | Path | None = None, device: str = "cpu", progress: bool = False,
                   backend: str | Backend | None = None, protocol: str | Path | None = None) -> tuple[Path, str]:
    """Replay `evaluation` on the entry of `card_path` (module docstring); returns the written file and a summary."""
    from benchmark.api import with_models
    from benchmark.board.entry import read_entry
    from benchmark.evaluation.aggregate import aggregate
    from benchmark.run.runner import run_suite
    from benchmark.spec.suite import suite_from_data
    from benchmark.submission.card import load_card
    from benchmark.submission.submit import entry_path, load_protocol, resolve_card
    from mmrb.core.provenance import git_commit, package_versions
    from wrappers.cache import code_digest, file_digest
    from wrappers.registry import registered

    card_path, board, evaluation = Path(card_path), Path(board), Path(evaluation)
    cache = Path(cache) if cache is not None else default_cache()
    spec = load_evaluation(evaluation)
    card = load_card(card_path)
    path = entry_path(board, card.name)
    if not path.exists():
        raise EvaluationError(f"{card_path}: no entry {card.name!r} in protocol {benchmark.PROTOCOL_VERSION} ({path}); "
                              "evaluate a published entry (mmrb submit it first)")
    entry_doc = read_entry(path)
    out_path = evaluation_path(board, card.name, spec.name)
    if out_path.exists():
        raise EvaluationError(f"{evaluation}: field 'name': evaluation {spec.name!r} of {card.name!r} already exists "
                              f"({out_path}); evaluations are immutable: give it a new name")
    entry, weights_path = resolve_card(card, card_path)
    digests = {"code": code_digest(entry.cls, entry.factory), "weights": file_digest(weights_path) if weights_path else None}
    published = entry_doc.get("digests") or {}
    for key, value in digests.items():
        if published.get(key) != value:
            raise EvaluationError(f"{card_path}: the model's {key} digest ({value}) is not the entry's "
                                  f"({published.get(key)}): an evaluation replays the published model; check out the "
                                  "code and weights it was submitted with")
    protocol = load_protocol(protocol)
    if (entry_doc.get("provenance") or {}).get("suite_hash") != protocol.content_hash:
        raise EvaluationError(f"{protocol.source}: not the protocol entry {card.name!r} was made with (suite hash "
                              f"{(entry_doc.get('provenance') or {}).get('suite_hash')}); pass that protocol (--protocol)")
    rank = protocol.leaderboard.rank_by
    data = protocol.model_dump(exclude={"content_hash", "source", "transfer", "expect", "leaderboard"}, exclude_none=True)
    attack = {"modality": "image", **spec.attack, "label": f"evaluation:{spec.name}", "epsilons": [rank.epsilon]}
    data.update(name=f"evaluation-{spec.name}", attacks=[{"name": "none"}, attack])
    suite = suite_from_data(data, str(evaluation))
    with registered(entry):
        run = with_models(suite, [card.name], only_given=True)
        out = cache / "evaluations" / f"v{benchmark.PROTOCOL_VERSION}" / card.name / spec.name
        record = run_suite(run, out, cache, device=device, progress=progress, backend=backend)
    failed = [r for r in record.rows if r["error"]]
    if failed:
        raise EvaluationError(f"{evaluation}: {len(failed)} cell(s) failed, nothing written (results in "
                              f"{record.results_path}). First: seed {failed[0]['seed']}: {failed[0]['error']}")
    cells = aggregate(record.rows)
    cell = cells[cells["attack"] == attack["label"]].iloc[0]
    figure = {k: float(cell[k]) for k in ("robust_accuracy", "robust_accuracy_ci_low", "robust_accuracy_ci_high")}
    before = (entry_doc.get("rank") or {}).get("robust_accuracy")
    document = {
        "evaluation_version": EVALUATION_VERSION, "name": spec.name, "entry": card.name,
        "protocol_version": benchmark.PROTOCOL_VERSION, "authors": spec.authors, "description": spec.description,
        "url": spec.url, "attack": spec.attack, "epsilon": rank.epsilon, "seeds": protocol.training_seeds,
        "robust_accuracy": figure["robust_accuracy"], "ci_low": figure["robust_accuracy_ci_low"],
        "ci_high": figure["robust_accuracy_ci_high"],
        "not_converged": bool(cell["not_converged"]) if isinstance(cell.get("not_converged"), bool) else None,
        "per_seed": [float(r["robust_accuracy"]) for r in record.rows if r["attack"] == attack["label"]],
        "entry_rank_robust_accuracy": before,
        "provenance": {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "mmrb_version": benchmark.__version__, "mmrb_commit": git_commit(), "packages": package_versions(),
                       "data_fingerprint": record.data_fingerprint},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from benchmark.submission.submit import write_entry

    write_entry(out_path, document)
    lowered = before is not None and figure["robust_accuracy"] < before
    summary = (f"{card.name}: evaluation {spec.name!r}: {100 * figure['robust_accuracy']:.1f} % "
               f"[{100 * figure['robust_accuracy_ci_low']:.1f}, {100 * figure['robust_accuracy_ci_high']:.1f}] at "
               f"ε={rank.epsilon:.4g}; the entry's rank figure was {100 * before:.1f} %" if before is not None else "")
    summary += ": the ranked figure becomes the evaluation's" if lowered else ": the entry's figure stands"
    return out_path, summary
