"""The convergence check, escalating: every gradient-attack figure is converged by construction.

After a cell's attack has run as the suite configured it, the check re-runs the same attack on the samples it left
standing (benchmark.attacks.cascade), stronger each round: round k runs `k · restarts` restarts from random starts, each
with `step_factor**k` times the configured steps (step size back to its default 2.5·ε/steps); a single-step attack
(FGSM) gets the restarts only. Rounds stop as soon as one breaks at most `tolerance` samples (the figure stopped
falling) once `min_rounds` rounds ran, or at the cap of `max_rounds` rounds. Per sample the worst of all runs
counts, so the published figure is the converged one; a cell is flagged (`not_converged`, ‡) only when the cap was
hit while the figure was still falling and more than `tolerance` samples were left standing, with the budget it took.

Defaults (a suite's `convergence_check: {step_factor, restarts, min_rounds, max_rounds, tolerance}` changes them):
×2 steps and +1 restart per round, at least 2 and at most 4 rounds, tolerance 1 sample. For PGD-10 that is
PGD-20 × 1 and PGD-40 × 2 at least, then PGD-80 × 3 and PGD-160 × 4 while samples still fall: at most 10 restarts of up to 16×
the steps, each only on the samples still robust.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from benchmark.attacks import Crafted, Target
from benchmark.attacks.registry import AttackInfo

STEP_FACTOR = 2
RESTARTS = 1
MIN_ROUNDS = 2
MAX_ROUNDS = 4
TOLERANCE = 1
#: Seeds of the check's runs: cell seed + SEED_STRIDE · (run number), apart from the cell's own draws.
SEED_STRIDE = 7919


def is_gradient_attack(source: str, name: str) -> bool:
    """Whether the convergence check applies to this attack (its registry traits: a gradient attack)."""
    from benchmark.attacks.registry import traits

    return traits(source, name).gradient


def accepted_params(source: str, name: str) -> dict[str, inspect.Parameter]:
    """The parameters of a gradient attack with their defaults (benchmark.attacks.registry.parameters)."""
    from benchmark.attacks.registry import parameters

    return parameters(source, name)


def steps_of(spelling: AttackInfo, accepted: dict[str, inspect.Parameter], params: dict[str, Any]) -> int | None:
    """The configured step count of an attack (its default where the suite gives none), None if it has none;
    `spelling`: the attack's registry traits (how it names its steps)."""
    name = spelling.steps
    if name not in accepted:
        return None
    default = accepted[name].default if accepted[name].default is not inspect.Parameter.empty else 10
    return int(params.get(name, default))


def round_params(spelling: AttackInfo, accepted: dict[str, inspect.Parameter], params: dict[str, Any], k: int,
                 step_factor: int = STEP_FACTOR) -> dict[str, Any]:
    """Parameters of one run of round `k` (1, 2, ...): `step_factor**k` times the steps, from a random start."""
    strong = dict(params)
    steps = steps_of(spelling, accepted, params)
    if steps is not None:
        strong[spelling.steps] = steps * step_factor ** k
        strong.pop(spelling.step_size, None)  # back to 2.5·ε/steps for the new step count
    if spelling.random_start is not None and spelling.random_start[0] in accepted:
        strong[spelling.random_start[0]] = spelling.random_start[1]
    return strong


def escalate(cascade, attack: Callable[[dict[str, Any], Target, int], Crafted], accepted: dict[str, inspect.Parameter],
             spelling: AttackInfo, params: dict[str, Any], epsilon: float | None, seed: int, step_factor: int = STEP_FACTOR,
             restarts: int = RESTARTS, max_rounds: int = MAX_ROUNDS, tolerance: int = TOLERANCE,
             min_rounds: int = MIN_ROUNDS,
             label: str = "run") -> dict[str, Any]:
    """Escalate `attack(params, target, seed) -> Crafted` on the survivors of `cascade` (benchmark.attacks.cascade.Cascade),
    round by round (module docstring); `spelling`: the attack's registry traits (`benchmark.attacks.registry.info`:
    how it names its steps, step size and random start). Returns the check's record: rounds run, whether the cap was hit while the
    figure still fell, the largest steps and the restarts it took, samples attacked and seconds in all."""
    rounds, capped, runs, largest = 0, False, 0, steps_of(spelling, accepted, params)
    for k in range(1, max_rounds + 1):
        if not len(cascade.survivors()):
            break
        rounds, broken = k, 0
        strong = round_params(spelling, accepted, params, k, step_factor)
        steps = steps_of(spelling, accepted, strong)
        largest = steps if steps is not None else largest
        for _ in range(k * restarts):
            runs += 1
            part = cascade.run(f"{label}-{steps or 1}#{runs}", lambda sub, p=strong, s=seed + SEED_STRIDE * runs:
                               attack(p, sub, s), epsilon)
            broken += part.broken
        if broken <= tolerance and k >= min(min_rounds, max_rounds):
            break
        # at the cap and still falling; converged all the same when too few samples are left to fall by more
        capped = k == max_rounds and len(cascade.survivors()) > tolerance
    checks = cascade.parts[-runs:] if runs else []
    return {"rounds": rounds, "capped": capped, "steps": largest, "restarts": runs,
            "attacked": sum(p.attacked for p in checks), "seconds": round(sum(p.seconds for p in checks), 3)}


def escalate_attack(cascade, source: str, name: str, params: dict[str, Any], epsilon: float | None, seed: int,
                    label: str | None = None, **schedule: int) -> dict[str, Any]:
    """`escalate` for the suite attack {source, name, params} at ε (the convergence check, the floor's unbounded
    attack); `schedule`: step_factor, restarts, min_rounds, max_rounds, tolerance (defaults above)."""
    from benchmark.attacks import craft
    from benchmark.attacks.registry import info

    return escalate(cascade, lambda p, sub, s: craft(source, name, p, sub, epsilon, s), accepted_params(source, name),
                    info(source, name), params, epsilon, seed, label=label or name, **schedule)
