"""What a leaderboard protocol runs, in words generated from its suite file (never typed by hand): the rank attack and
its budgets with the attack's own defaults filled in, the convergence check, the corruption kinds and severities and
the baselines their mCE is relative to, the operating point and the attacks aimed at it, the seeds and the data.

`mmrb submit` writes it beside the entries (`v<protocol>/protocol.json`, with the suite's content hash); the board
(`benchmark.board.protocol_notes`) prints it under the protocol's ranking, so the glossary states the budgets that ran.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROTOCOL_NAME = "protocol.json"


def _eps(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g} (≈ {255 * value:.0f}/255)"


def _attack_words(spec: Any) -> str:
    """One attack of the suite with its budgets, its defaults filled in."""
    from benchmark.attacks import registry
    from benchmark.attacks.standard import DEFAULTS as STANDARD

    info = registry.traits(spec.source, spec.name)
    params = {**(info.defaults or {}), **(STANDARD if (spec.source, spec.name) == ("mmrb", "standard") else {}),
              **(spec.params or {})}
    if spec.source == "mmrb" and spec.name == "standard":
        return (f"the standard evaluation (per sample the worst case over APGD-CE and APGD on a two-class margin loss, "
                f"{params['steps']} steps × {params['restarts']} restart(s) each, FAB-{params['fab_steps']} and Square "
                f"with {params['queries']} queries; cascaded on the samples still standing; BPDA/EOT for defended or "
                f"randomised models)")
    if spec.source == "mmrb" and spec.name == "operating_point":
        return (f"PGD on the threshold-aware margin ({params['steps']} steps × {params['restarts']} restart(s), "
                f"direction {params['direction']})")
    shown = ", ".join(f"{k} {v}" for k, v in sorted((spec.params or {}).items()))
    return f"{spec.source} {spec.name}" + (f" ({shown})" if shown else "")


def describe(suite: Any) -> dict[str, str]:
    """The protocol's glossary entries, generated from `suite` (a leaderboard protocol)."""
    from benchmark.attacks.corruption import SEVERITIES
    from benchmark.evaluation.clinical import CALIBRATION_N

    out: dict[str, str] = {}
    attacks = {a.label: a for a in suite.attacks}
    rank = suite.leaderboard.rank_by
    out["rank metric"] = (f"robust accuracy under {rank.attack}: {_attack_words(attacks[rank.attack])}, at ε = "
                          f"{_eps(rank.epsilon)}")
    check = suite.convergence_check
    out["convergence check"] = ("none" if not check else
                                f"every gradient cell re-run on its survivors, ×{check.step_factor} steps and "
                                f"+{check.restarts} restart(s) per round, {check.min_rounds} to {check.max_rounds} "
                                f"rounds, stopping when a round breaks at most {check.tolerance} sample(s)")
    out["data and seeds"] = (f"{suite.dataset.name}: {suite.dataset.n} studies at {suite.dataset.image_size} px (split "
                             f"seed {suite.seed}), {len(suite.training_seeds)} training seeds {suite.training_seeds}; "
                             f"ε: {', '.join(_eps(e) for e in suite.epsilons)}")
    corruptions = [a for a in suite.attacks if a.source == "mmrb" and a.name == "corruption"]
    if corruptions:
        by = {m: [f"{a.params['kind']} (severity {a.params['severity']}: {SEVERITIES[a.params['kind']][a.params['severity'] - 1]})"
                  for a in corruptions if a.modality == m] for m in ("image", "text")}
        severities = sorted({int(a.params["severity"]) for a in corruptions})
        out["corruption mCE"] = (f"image kinds {', '.join(by['image']) or 'none'}; report kinds "
                                 f"{', '.join(by['text']) or 'none'}; severities run: {severities} (not summed over "
                                 f"5 unless listed); image mCE relative to the {suite.corruption_baseline} entry, report "
                                 f"mCE relative to a text-only entry")
    if suite.operating_point is not None:
        aimed = [f"{a.label}: {_attack_words(a)}" for a in suite.attacks if a.source == "mmrb" and a.name == "operating_point"]
        out["operating point"] = (f"threshold on P(abnormal) at {100 * suite.operating_point:.0f} % specificity on "
                                  f"{CALIBRATION_N} clean held-out generated studies, per model and seed"
                                  + (f"; attacked at the threshold by {'; '.join(aimed)}" if aimed else ""))
    joint = [f"{a.label}" for a in suite.attacks if a.modality == "joint"]
    if joint:
        out["joint attack"] = "; ".join(f"{label}: image part {_attack_words(_part(attacks[label], 'image'))}"
                                        for label in joint)
    return out


def _part(spec: Any, part: str) -> Any:
    from benchmark.spec.attack import AttackSpec

    entry = (spec.params or {}).get(part) or {}
    return AttackSpec(source=entry.get("source", "art"), name=entry.get("name", "?"), params=entry.get("params") or {})


def write_protocol(folder: Path, suite: Any, version: str) -> Path:
    """`folder`/protocol.json: the protocol's description and the hash of the suite file it was generated from."""
    path = Path(folder) / PROTOCOL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"protocol_version": version, "suite_hash": suite.content_hash,
                                "describes": describe(suite)}, indent=1, ensure_ascii=False) + "\n")
    return path
