"""The `compare-defenses` suite: its schema (pydantic) and `load_defense_suite(path)`; errors name the file and field.

A suite declares the two pre-training corpora (the general CLIP's, and the downstream-domain corpus it continues on
under noise), the noise types with their ratios γ, the downstream ID/OOD data, the defenses (registered names,
`file.py:Class` references, or `{name, label, params}`), the learning-rate search every defense gets, and the attacks
with their ε curves. docs/clip-defenses.md explains each field.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchmark.spec.suite import ConvergenceSpec, import_plugins
from mmrb.core.errors import ModelError, SuiteError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CorpusSpec(_Strict):
    """Generated Indiana-format chest pairs (frontal image + report): how many and from which generator seed, the
    CT-like target-domain pairs added (the general corpus), and the CLIP pre-training recipe on them."""

    n: int = Field(600, ge=8)
    data_seed: int = 0
    target_n: int = Field(0, ge=0, description="abdominal CT-like pairs added (the MEDICAT stand-in)")
    chest: bool = Field(True, description="the general corpus holds chest pairs; false: CT-like pairs only, so the "
                                          "chest domain is first learned in the noisy phase (Han et al.'s setting)")
    recipe: dict[str, Any] = {"epochs": 10}


class NoiseSpec(_Strict):
    """One kind of pre-training noise and the shares γ of noisy pairs; `control`: a positive control (its effect
    on clean accuracy must be visible, or the comparison cannot register any)."""

    type: Literal["image", "caption", "random", "mismatch"]
    ratios: list[float]
    control: bool = False

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < r < 1 for r in value):
            raise ValueError(f"each ratio γ must be in (0, 1) (γ = 0, the clean CLIP, is always run); got {value}")
        return sorted(value)


class NoiseAttackSpec(_Strict):
    """How noisy pairs are made: the image budget (feature PGD, random noise), PGD steps, words per caption rewrite."""

    epsilon: float = Field(8 / 255, gt=0, le=1)
    steps: int = Field(10, ge=1)
    max_words: int = Field(3, ge=1)
    rewriter: str | None = None


class SplitSpec(_Strict):
    """A generated split: every sample of the generator run (n, data_seed), shifted by `shift` (0: none)."""

    n: int = Field(600, ge=8)
    data_seed: int = 1
    shift: float = Field(0.0, ge=0)


class DomainsSpec(_Strict):
    """The downstream task: the ID training split (a `validation` share held out for the search), the ID test
    split and the OOD test split (a stronger shift of contrast, gamma, noise and report wording)."""

    train: SplitSpec = SplitSpec(n=600, data_seed=1)
    validation: float = Field(0.2, gt=0, lt=1)
    id: SplitSpec = SplitSpec(n=2000, data_seed=3)
    ood: SplitSpec = SplitSpec(n=2000, data_seed=2, shift=1.0)


class DefenseEntry(_Strict):
    """A defense: a registered name or a `file.py:Class` reference, the label its rows carry, its parameters."""

    name: str
    label: str = ""
    params: dict[str, Any] = {}


class SearchSpec(_Strict):
    """The hyper-parameter search every defense gets alike: each (lr, epochs) pair is fit on the training part and
    the best on the validation part is kept."""

    lr: list[float] = Field([3e-4, 1e-3, 3e-3, 1e-2], min_length=1)
    epochs: list[int] = Field([30], min_length=1)


class AttackSpec(_Strict):
    """An attack of the catalogue on every defended classifier, at each ε of its curve, on the listed domains."""

    label: str
    source: Literal["art", "torchattacks", "mmrb"] = "mmrb"
    name: str
    params: dict[str, Any] = {}
    epsilons: list[float] = Field(min_length=1)
    domains: list[Literal["ID", "OOD"]] = ["ID", "OOD"]
    converge: bool = Field(True, description="escalate on the survivors until the figure stops falling")

    @field_validator("epsilons")
    @classmethod
    def _epsilons(cls, value: list[float]) -> list[float]:
        if any(not 0 < e <= 1 for e in value):
            raise ValueError(f"each ε must be in (0, 1]; got {value}")
        return value


class DefenseSuite(_Strict):
    """A `compare-defenses` suite (suites/defenses.yaml)."""

    name: str = ""
    seeds: list[int] = Field([0, 1, 2, 3, 4], min_length=1)
    threads: int = Field(1, ge=1)
    image_size: int = Field(32, ge=16)
    plugins: list[str] = []
    clip: str = "mmrb-tiny"
    base: CorpusSpec = CorpusSpec(n=600, data_seed=10, target_n=200, recipe={"epochs": 20})
    noisy: CorpusSpec = CorpusSpec(n=600, data_seed=0, recipe={"epochs": 10})
    noise: list[NoiseSpec] = [NoiseSpec(type="image", ratios=[0.1, 0.3]), NoiseSpec(type="caption", ratios=[0.1, 0.3])]
    noise_attack: NoiseAttackSpec = NoiseAttackSpec()
    data: DomainsSpec = DomainsSpec()
    defenses: list[DefenseEntry] = [DefenseEntry(name=n) for n in ("lp", "mlp", "nmtune", "ran")]
    search: SearchSpec = SearchSpec()
    attacks: list[AttackSpec] = []
    attack_limit: int | None = Field(1000, ge=1, description="attack at most this many test samples per domain")
    attack_clips: Literal["primary", "noisy", "all"] = Field(
        "noisy", description="which CLIPs' heads are attacked: primary (γ 0 only), noisy (γ 0 and every noisy CLIP but "
                             "the controls'), all (the controls' too)")
    convergence_check: ConvergenceSpec = ConvergenceSpec(max_rounds=3)
    spectrum_k: int = Field(5, ge=1, description="top-k singular values in the feature-spectrum diagnostic")
    content_hash: str = ""

    @field_validator("defenses", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.defenses]


def load_defense_suite(path: str | Path) -> DefenseSuite:
    """Validate a compare-defenses YAML file (and import its plug-ins); errors name the file and the field."""
    from wrappers.cache import digest

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: cannot read the suite ({exc})") from exc
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a defenses suite is a mapping of fields (name, seeds, noise, defenses, ...)")
    import_plugins(raw.get("plugins"), str(path), path.parent)
    try:
        suite = DefenseSuite(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise SuiteError(f"{path}: invalid defenses suite / {problems}") from None
    defenses = [_resolved(d, i, path) for i, d in enumerate(suite.defenses)]
    labels = [d.label for d in defenses]
    if len(set(labels)) != len(labels):
        raise SuiteError(f"{path}: field 'defenses': labels must be unique; got {labels} (give each a `label`)")
    kinds = [n.type for n in suite.noise]
    if len(set(kinds)) != len(kinds):
        raise SuiteError(f"{path}: field 'noise': each noise type once; got {kinds}")
    if not suite.base.chest and suite.base.target_n == 0:
        raise SuiteError(f"{path}: field 'base.target_n': a general corpus without chest pairs (base.chest: false) "
                         "needs CT-like pairs (target_n > 0) to pre-train on")
    if {"image"} & set(kinds) and suite.base.target_n == 0:
        raise SuiteError(f"{path}: field 'base.target_n': image noise needs target-domain pairs (> 0) to aim at")
    attack_labels = [a.label for a in suite.attacks]
    if len(set(attack_labels)) != len(attack_labels) or "clean" in attack_labels:
        raise SuiteError(f"{path}: field 'attacks': labels must be unique and not 'clean'; got {attack_labels}")
    from benchmark.attacks.registry import check

    for i, attack in enumerate(suite.attacks):
        for field, message in check(attack.source, attack.name, attack.params):
            raise SuiteError(f"{path}: field 'attacks.{i} ({attack.label}).{field}': {message}")
    return suite.model_copy(update={"name": suite.name or path.stem, "content_hash": digest(raw),
                                    "defenses": defenses})


def _resolved(entry: DefenseEntry, i: int, path: Path) -> DefenseEntry:
    """The entry with its label, after checking that its class exists and takes its parameters."""
    from defenses.heads.registry import defense_head_class

    try:
        cls = defense_head_class(entry.name, path.parent)
    except ModelError as exc:
        raise SuiteError(f"{path}: field 'defenses.{i}.name': {exc}") from None
    unknown = sorted(set(entry.params) - set(cls.PARAMS))
    if unknown:
        raise SuiteError(f"{path}: field 'defenses.{i}.params': {entry.name} has no parameter(s) {unknown}; it takes: "
                         f"{', '.join(cls.PARAMS) or 'none'} (its class's PARAMS)")
    return entry.model_copy(update={"label": entry.label or entry.name.rpartition(":")[2] or entry.name})
