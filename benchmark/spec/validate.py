"""Every mistake in a suite found before any work: attack names and parameters against the real libraries,
model overrides and recipe fields, the dataset folder, an empty grid, and the device.

Pydantic (`benchmark.spec.suite`) checks the shape of a suite; this module checks what needs the model registry
and the attack libraries. Each problem is one line naming the suite file and the field, e.g.
`field 'attacks.2 (PGD).params.max_iters': ART ProjectedGradientDescent has no parameter 'max_iters'; did you
mean max_iter? ...`.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.attacks import check_attack
from benchmark.spec.grid import dropped_pairs, expand, expand_transfer
from benchmark.spec.suite import AttackSpec, ModelSpec, Suite
from mmrb.core.errors import MmrbError, SuiteError


def check_device(device: str) -> None:
    """Stop before any work, in one line, when the torch device cannot be used here."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise MmrbError(f"--device {device!r} is not a torch device; use cpu or cuda (cuda:0, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise MmrbError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
                        "torch.cuda.is_available() is False); run with --device cpu")
    if kind not in ("cpu", "cuda"):
        raise MmrbError(f"--device {device!r}: mmrb runs on cpu or cuda")


def _attack_problems(prefix: str, attacks: list[AttackSpec]) -> list[tuple[str, str]]:
    # (what an attack perturbs is checked against its declaration by the schema: benchmark.spec.attack)
    return [(f"{prefix}.{i} ({a.label}).{field}", message) for i, a in enumerate(attacks)
            for field, message in check_attack(a.source, a.name, a.params)]


def _model_problems(prefix: str, models: list[ModelSpec]) -> list[tuple[str, str]]:
    from wrappers.configs import override_problems
    from wrappers.registry import model_entry

    return [(f"{prefix}.{i} ({m.name}).params.{field}", message) for i, m in enumerate(models)
            for field, message in override_problems(m.params, model_entry(m.name).config_keys)]


def _dataset_problems(suite: Suite) -> list[tuple[str, str]]:
    spec = suite.dataset
    if spec.name != "indiana":
        return []
    from benchmark.data.indiana import REPORTS_CSV

    root = Path(spec.path).expanduser().resolve()
    fix = "set dataset.path to the folder of the Kaggle release, or use dataset: {name: indiana_synth} for generated data"
    if not root.is_dir():
        return [("dataset.path", f"{root}: folder not found; {fix}")]
    if not (root / REPORTS_CSV).is_file():
        return [("dataset.path", f"{root / REPORTS_CSV}: file not found; {fix}")]
    return []


def check_suite(suite: Suite) -> None:
    """Raise SuiteError listing every problem of `suite` that can be found without data or training."""
    from wrappers.registry import model_entry

    problems = _attack_problems("attacks", suite.attacks) + _model_problems("models", suite.models)
    if suite.transfer is not None:
        problems += _attack_problems("transfer.attacks", suite.transfer.attacks)
        problems += _model_problems("transfer.sources", suite.transfer.sources)
        problems += _model_problems("transfer.targets", suite.transfer.targets)
    problems += _dataset_problems(suite)
    modalities_of = lambda name: model_entry(name).modalities  # noqa: E731
    if not problems and not expand(suite, modalities_of) and not expand_transfer(suite, modalities_of):
        dropped = dropped_pairs(suite, modalities_of)
        problems.append(("models/attacks", "the grid is empty: no attack applies to any model"
                         + (f" (dropped: {'; '.join(dropped)})" if dropped else "")
                         + "; add a model that reads the attacked modality or an attack on the models' modalities"))
    if problems:
        where = suite.source or f"suite {suite.name!r}"
        raise SuiteError(f"{where}: invalid suite\n" + "\n".join(f"  field '{f}': {m}" for f, m in problems))
