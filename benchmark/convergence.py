"""The convergence check: every gradient-attack cell is re-run stronger, and a figure the stronger run can
lower beyond the cell's interval is not published as if it were converged.

The stronger run of an attack with a step count (ART `max_iter`, torchattacks `steps`) uses `step_factor` times
the steps (step size back to its default 2.5·ε/steps) with a random start, `restarts` times with other seeds;
a single-step attack (FGSM) is re-run `restarts` times from random starts. Defaults: STEP_FACTOR, RESTARTS
(a suite's `convergence_check: {step_factor, restarts}` changes them). Per sample the worst of the original
and the stronger runs counts (the lowest true-class probability), so the check can only lower a figure.
"""
from __future__ import annotations

import inspect
from typing import Any

STEP_FACTOR = 4
RESTARTS = 2
#: Gradient-based L∞ attacks the check applies to, by source.
GRADIENT_ATTACKS = {
    "art": {"FastGradientMethod", "ProjectedGradientDescent", "ProjectedGradientDescentPyTorch", "BasicIterativeMethod",
            "AutoProjectedGradientDescent", "MomentumIterativeMethod"},
    "torchattacks": {"FGSM", "PGD", "BIM", "APGD", "MIFGSM", "RFGSM", "EOTPGD", "TPGD", "NIFGSM", "SINIFGSM", "VMIFGSM",
                     "VNIFGSM", "Jitter"},
}
_STEPS = {"art": "max_iter", "torchattacks": "steps"}
_STEP_SIZE = {"art": "eps_step", "torchattacks": "alpha"}
_RANDOM_START = {"num_random_init": 1, "nb_random_init": 1, "random_start": True}


def is_gradient_attack(source: str, name: str) -> bool:
    """Whether the convergence check applies to this attack."""
    return name in GRADIENT_ATTACKS.get(source, ())


def stronger_runs(source: str, cls: type, params: dict[str, Any], step_factor: int = STEP_FACTOR,
                  restarts: int = RESTARTS) -> list[dict[str, Any]]:
    """Parameters of the `restarts` stronger runs of an attack class with suite `params`."""
    accepted = inspect.signature(cls.__init__).parameters
    strong = dict(params)
    steps = _STEPS[source]
    if steps in accepted:
        default = accepted[steps].default if accepted[steps].default is not inspect.Parameter.empty else 10
        strong[steps] = step_factor * int(params.get(steps, default))
        strong.pop(_STEP_SIZE[source], None)  # back to 2.5·ε/steps for the new step count
    for name, value in _RANDOM_START.items():
        if name in accepted:
            strong[name] = value
    return [dict(strong) for _ in range(restarts)]
