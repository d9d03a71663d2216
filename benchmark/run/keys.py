"""Content keys of a run: of each trained model, each craft and each cell, and which cells a cell combines.

A key covers everything that decides what it names: the model's content key, the data and the scored samples, the
attack entry, ε, the seed, the convergence check, the protocol version and the code of the attack (its module and
every module it imports, at any depth, plus the user files its params name and the attacks it crafts: `attack_code`).
The run store and the attack cache are keyed by them; `Keys.combined` is the one statement of which cells a cell
depends on (worst_case parts, compare_with), read by the cell engine and by every backend.
"""
from __future__ import annotations

import functools
from typing import Any

from benchmark import PROTOCOL_VERSION
from benchmark.spec.grid import Cell
from benchmark.spec.suite import AttackSpec, ModelSpec, Suite
from wrappers.cache import code_digest, digest, library_version, reference_digest
from wrappers.registry import ModelEntry
from wrappers.training import model_key

#: How a defended or randomised model's cells are attacked adaptively (benchmark.run.adaptive); part of every checked
#: craft's key, since whether a model is randomised is only found when it runs. 2: training defenses and randomised
#: models too, EOT's draws as one batch.
ADAPTIVE_VERSION = 2
#: How a joint attack's image part is escalated by the convergence check (benchmark.run.engine.escalation_of).
JOINT_ESCALATION_VERSION = 1


def attack_code(source: str, name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What decides an attack's craft besides its entry (part of every cell key): the versions of the attack
    libraries, a digest of its code (`_module_code`), the contents of the user files its `params` name (its traits'
    `files`: a caption rewriter, a masked LM folder) and the code of the attacks it crafts (its traits' `calls`)."""
    from benchmark.attacks import registry

    code: dict[str, Any] = dict(_module_code(source, name))
    attack, params = registry.traits(source, name), params or {}
    files = {p: [reference_digest(str(ref)) for ref in _listed(params[p])] for p in attack.files
             if params.get(p) is not None}
    calls = {p: [attack_code(entry.get("source", default), entry["name"], entry.get("params") or {})
                 for entry in _listed(params[p]) if isinstance(entry, dict) and "name" in entry]
             for p, default in attack.calls if params.get(p) is not None}
    return {**code, **({"files": files} if files else {}), **({"calls": calls} if calls else {})}


def uses_threshold(source: str, name: str, params: dict[str, Any] | None = None) -> bool:
    """Whether an attack, or an attack it crafts (its traits' `calls`), aims at the run's decision threshold (its
    registry trait `threshold`): the suite's operating point is then part of its cells' keys."""
    from benchmark.attacks import registry

    attack, params = registry.traits(source, name), params or {}
    return attack.threshold or any(
        uses_threshold(entry.get("source", default), entry["name"], entry.get("params") or {})
        for p, default in attack.calls if params.get(p) is not None
        for entry in _listed(params[p]) if isinstance(entry, dict) and "name" in entry)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


@functools.lru_cache(maxsize=64)
def _module_code(source: str, name: str) -> dict[str, str]:
    """Versions of the attack libraries and a digest of the attack's module (`registry.code_modules`) and of the
    cascade, the convergence check and the image view, which decide every craft, with all they import, at any depth
    (`wrappers.cache.code_digest`)."""
    import benchmark.attacks.cascade
    import benchmark.attacks.convergence
    import wrappers.estimators
    from benchmark.attacks import registry

    return {**{lib: library_version(dist) for lib, dist in registry.library_distributions().items()},
            "code": code_digest(*registry.code_modules(source, name), wrappers.estimators, benchmark.attacks.convergence,
                                benchmark.attacks.cascade)}


def _attack_identity(attack: AttackSpec) -> dict[str, Any]:
    return {"source": attack.source, "name": attack.name, "modality": attack.modality, "params": attack.params}


class Keys:
    """Content keys of models and cells of one suite on one dataset."""

    def __init__(self, suite: Suite, fingerprint: str, sample_ids: list[str], device: str = "cpu",
                 models: dict[str, ModelEntry] | None = None) -> None:
        self.suite, self.fingerprint, self.device = suite, fingerprint, device  # device: part of every model's key
        self.models = models or {}  # name -> the model entry the run resolved (None: the registry's)
        self.samples = digest(sample_ids)
        self.attacks = {a.label: a for a in suite.attacks}  # label -> spec (worst_case parts, compare_with)
        self._models: dict[tuple[str, int], str] = {}

    def trained(self, spec: ModelSpec, seed: int) -> str:
        """Key of the trained model of `spec` at `seed`, before any defense."""
        return model_key(spec.name, spec.params, self.fingerprint, seed, self.device, entry=self.models.get(spec.name))

    def model(self, spec: ModelSpec, seed: int) -> str:
        if (spec.label, seed) not in self._models:
            key = self.trained(spec, seed)
            if spec.defense is not None:  # the trained model behind its input defense (and that defense's code)
                import importlib

                from defenses.registry import defense_module

                key = digest({"model": key, "defense": spec.defense.model_dump(), "adaptive": ADAPTIVE_VERSION,
                              "code": code_digest(importlib.import_module(defense_module(spec.defense.name)),
                                                  importlib.import_module("defenses.input.base"))})
            self._models[spec.label, seed] = key
        return self._models[spec.label, seed]

    def craft(self, model: ModelSpec, attack: AttackSpec, epsilon: float | None, seed: int, check: bool = True) -> str:
        """Key of adversarial inputs crafted by `attack` on `model` (a white-box cell, or a transfer craft, which
        has no convergence check: `check=False`)."""
        if attack.combined:  # its parts' crafts, under its name
            parts = [self.craft(model, self.attacks[label], epsilon, seed) for label in attack.combined]
            return digest({attack.name: parts})
        parts = {"model": self.model(model, seed), "data": self.fingerprint, "samples": self.samples,
                 "attack": _attack_identity(attack), "epsilon": epsilon, "seed": seed,
                 "check": self.suite.convergence_check.model_dump() if check and self.suite.convergence_check
                 else None, "adaptive": ADAPTIVE_VERSION if check else None,
                 "protocol": PROTOCOL_VERSION, "attack_code": attack_code(attack.source, attack.name, attack.params)}
        if attack.modality in ("text", "joint"):  # its reports are re-labelled and label changes put back (engine)
            import benchmark.data.report_terms

            parts["report_rules"] = code_digest(benchmark.data.report_terms)
        if uses_threshold(attack.source, attack.name, attack.params):  # aimed at the decision threshold
            import benchmark.evaluation.clinical

            parts["operating_point"] = [self.suite.operating_point, code_digest(benchmark.evaluation.clinical)]
        if attack.modality == "joint" and check:  # its image part escalated (benchmark.run.engine.escalation_of)
            parts["joint_escalation"] = JOINT_ESCALATION_VERSION
        return digest(parts, length=32)

    def cell(self, cell: Cell) -> str:
        """Key of a cell: its craft, and for transfer cells the target model scoring it."""
        if cell.source is None:
            return self.craft(cell.model, cell.attack, cell.epsilon, cell.seed)
        return digest({"craft": self.craft(cell.source, cell.attack, cell.epsilon, cell.seed, check=False),
                       "target": self.model(cell.model, cell.seed)}, length=32)

    def combined(self, cell: Cell) -> list[Cell]:
        """The white-box cells whose output `cell` combines: its worst_case parts and its compare_with attack (same
        model, ε and seed). The one statement of the dependencies between cells (engine and backends read it)."""
        attack = cell.attack
        others = [self.attacks[label] for label in attack.combined]
        if attack.compare_with and cell.source is None:
            others.append(self.attacks[attack.compare_with])
        return [Cell(cell.model, other, cell.epsilon, seed=cell.seed) for other in others]

    def transfer_craft(self, cell: Cell) -> str | None:
        """The key of the transfer craft a transfer cell scores (shared by its targets), None for a white-box cell."""
        if cell.source is None:
            return None
        return self.craft(cell.source, cell.attack, cell.epsilon, cell.seed, check=False)
