"""Suite files: pydantic models of a YAML suite; errors name the file, the field and what is allowed."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchmark.spec.attack import AttackSpec, check_epsilons
from benchmark.spec.defense import InputDefenseSpec
from mmrb.core.errors import SuiteError


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'recipe': {'lr': 1}} -> {'recipe.lr': 1}."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """Where samples come from: generated Indiana-format data, or the real release at `path`."""

    name: Literal["indiana_synth", "indiana"] = "indiana_synth"
    path: str | None = Field(None, description="indiana: the Kaggle release folder (holds indiana_reports.csv)")
    images_dir: str | None = Field(None, description="indiana: image folder if not <path>/images/images_normalized")
    n: int = Field(600, gt=10, description="indiana_synth: number of uids to generate")
    seed: int = Field(0, description="indiana_synth: generator seed")
    image_size: int = Field(64, ge=16, le=1024, description="side the images are resized to (model input)")
    test_fraction: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _real_needs_path(self) -> DatasetSpec:
        if self.name == "indiana" and not self.path:
            raise ValueError("dataset 'indiana' needs 'path': the folder of the Kaggle release")
        return self


class ModelSpec(_Strict):
    """A registered model (wrappers.list_models()) with optional config overrides."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    given_label: str | None = Field(None, alias="label", min_length=1, description=(
        "the name shown in results (default: the name, plus the overrides and the defense if any)"))
    defense: InputDefenseSpec | None = None

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from mmrb.core.errors import ModelError
        from wrappers.registry import known_name, model_entry

        if known_name(name):  # a built-in name is checked without importing torch or any model library
            return name
        try:
            model_entry(name)
        except ModelError as exc:  # a ValueError lets pydantic report it with the file and field
            raise ValueError(str(exc)) from None
        return name

    @property
    def label(self) -> str:
        """The name shown in results: the `label` given, else the registered name plus overrides if any."""
        if self.given_label:
            return self.given_label
        label = self.name
        if self.params:
            label += "[" + ",".join(f"{k}={v}" for k, v in sorted(_flatten(self.params).items())) + "]"
        return label + (f"+{self.defense.label}" if self.defense else "")


class ConvergenceSpec(_Strict):
    """How the escalating convergence check strengthens an attack (benchmark.attacks.convergence): round k runs
    k · `restarts` random-start restarts with `step_factor`**k times the steps, on the samples still robust, until a
    round breaks at most `tolerance` samples (after `min_rounds`) or `max_rounds` rounds ran (the cap: only then is a cell flagged)."""

    step_factor: int = Field(2, ge=1, le=100)
    restarts: int = Field(1, ge=1, le=100)
    min_rounds: int = Field(2, ge=1, le=10)
    max_rounds: int = Field(4, ge=1, le=10)
    tolerance: int = Field(1, ge=0)


class TransferSpec(_Strict):
    """Black-box transfer: adversarial inputs (images, reports or both: a joint attack such as SGA) crafted once on
    each source, scored on every target (a target that does not read a perturbed modality sees only the other)."""

    sources: list[ModelSpec] = Field(min_length=1)
    targets: list[ModelSpec] = Field(min_length=1)
    attacks: list[AttackSpec] = Field(min_length=1)
    epsilons: list[float] | None = None

    _names_to_specs = field_validator("sources", "targets", mode="before")(
        classmethod(lambda cls, value: _names_to_specs(value)))
    _check_epsilons = field_validator("epsilons")(classmethod(lambda cls, value: check_epsilons(value)))

    @field_validator("attacks")
    @classmethod
    def _perturbing(cls, attacks: list[AttackSpec]) -> list[AttackSpec]:
        bad = [a.label for a in attacks if a.modality == "none" or a.combined]
        if bad:
            raise ValueError(f"transfer attacks craft inputs on a source (image, text or joint attacks); not: {bad}")
        return attacks


def _names_to_specs(value: Any) -> Any:
    return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value


class Bound(_Strict):
    """An expectation on one metric of a cell: its 95 % interval must not lie wholly below `min` / above `max`."""

    min: float | None = Field(None, ge=0, le=1)
    max: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_side(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both, e.g. {min: 0.4}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


#: Metrics a suite's `expect:` may bound: those with a 95 % interval in aggregate.csv.
EXPECTABLE = ("clean_accuracy", "robust_accuracy", "robust_accuracy_normal", "robust_accuracy_abnormal",
              "as_run_robust_accuracy", "branch_robust_accuracy", "clean_f1", "robust_f1", "auc", "robust_auc",
              "attack_success_rate")


class RankSpec(_Strict):
    """The cell a leaderboard ranks by: an attack label of the suite at one ε."""

    attack: str
    epsilon: float


class LeaderboardSpec(_Strict):
    """What makes a suite a leaderboard protocol (`mmrb submit`): the ranking cell and the checks before any attack."""

    rank_by: RankSpec
    min_clean_accuracy: float = Field(0.6, ge=0, le=1, description="a submission below this clean accuracy is refused")


class Suite(_Strict):
    """A model × attack × ε grid on one dataset."""

    name: str
    description: str = ""
    plugins: list[str] = Field(default_factory=list, description=(
        "modules (mypkg.models) or files (path/to/models.py, relative to the suite) imported before the models are "
        "looked up: their @register_model factories become model names"))
    leaderboard: LeaderboardSpec | None = None
    expect: dict[str, dict[str, dict[str, Bound]]] = Field(default_factory=dict, description=(
        "regression gate (pytest benchmark/): model label or '*' -> attack label, 'label@ε' or '*' -> metric -> "
        "{min, max}; a cell fails only when its whole 95 % interval lies beyond the bound"))
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    models: list[ModelSpec] = Field(default_factory=list)
    attacks: list[AttackSpec] = Field(default_factory=list)
    transfer: TransferSpec | None = None
    epsilons: list[float] = Field(default_factory=lambda: [8 / 255])
    seed: int = Field(0, description="seed of the train/test split (the split stays fixed across training seeds)")
    seeds: list[int] | None = Field(None, description="training seeds: every model is trained, attacked and scored once "
                                                      "per seed (default: [seed])")
    limit: int | None = Field(None, gt=0, description="score at most this many test samples")
    operating_point: float | None = Field(None, gt=0, lt=1, description=(
        "specificity the decision threshold is set at on clean held-out data (benchmark.evaluation.clinical), e.g. 0.95"))
    corruption_baseline: str | None = Field(None, description="model label whose corruption errors normalise the mCE")
    convergence_check: ConvergenceSpec | bool = Field(default_factory=lambda: ConvergenceSpec(), description=(
        "re-run every gradient-attack cell stronger (benchmark.attacks.convergence); false to skip"))

    @field_validator("convergence_check")
    @classmethod
    def _check_spec(cls, value: ConvergenceSpec | bool) -> ConvergenceSpec | None:
        if value is True:
            return ConvergenceSpec()
        return value or None
    content_hash: str = Field("", description="set by load_suite: sha256 of the file")
    source: str = Field("", description="set by load_suite: the file the suite was read from")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, e.g. [0, 1, 2]; got {value}")
        return value

    @property
    def training_seeds(self) -> list[int]:
        """The training seeds the grid runs over."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    _names_to_specs = field_validator("models", mode="before")(classmethod(lambda cls, value: _names_to_specs(value)))

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        if not (self.models and self.attacks) and self.transfer is None:
            raise ValueError("a suite needs 'models' and 'attacks', or a 'transfer' section")
        labels = [a.label for a in self.attacks]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"attack labels must be unique, repeated: {dupes}; give each a 'label'")
        for i, attack in enumerate(self.attacks):
            earlier = labels[:i]
            refs = attack.combined + [attack.compare_with] if attack.compare_with else []
            missing = [r for r in refs if r not in earlier]
            if missing:
                raise ValueError(f"attack {attack.label!r} refers to {missing}, which must be labels of attacks listed "
                                 f"before it; known so far: {earlier}")
        self._check_expectations(labels)
        models = [m.label for m in self.models]
        if self.corruption_baseline is not None and self.leaderboard is None and self.corruption_baseline not in models:
            raise ValueError(f"corruption_baseline: {self.corruption_baseline!r} is not a model of this suite, so no mCE "
                             f"could be computed; name one of its models {models} (e.g. the image-only one), or drop the "
                             f"field")
        if self.leaderboard is not None:
            if len(self.training_seeds) < 3:
                raise ValueError(f"a leaderboard protocol trains every model with at least 3 seeds (one seed is not a "
                                 f"result); got seeds {self.training_seeds}: set seeds: [0, 1, 2]")
            rank = self.leaderboard.rank_by
            attack = next((a for a in self.attacks if a.label == rank.attack), None)
            if attack is None:
                raise ValueError(f"leaderboard.rank_by.attack {rank.attack!r} is not an attack label of the suite; "
                                 f"labels: {labels}")
            if not any(abs(e - rank.epsilon) < 1e-9 for e in attack.epsilons or self.epsilons):
                raise ValueError(f"leaderboard.rank_by.epsilon {rank.epsilon} is not an ε of attack {rank.attack!r} "
                                 f"({attack.epsilons or self.epsilons})")
        return self

    def _check_expectations(self, labels: list[str]) -> None:
        """Every key of `expect` names a model, an attack (at one of its ε) and a metric of this suite."""
        models = {m.label for m in self.models} | {m.label for m in (self.transfer.targets if self.transfer else [])}
        attacks = {a.label: a for a in [*self.attacks, *(self.transfer.attacks if self.transfer else [])]}
        for model, per_attack in self.expect.items():
            if model != "*" and model not in models:
                raise ValueError(f"expect.{model}: not a model of the suite; models: {sorted(models)} (or '*')")
            for key, metrics in per_attack.items():
                label, _, eps = key.partition("@")
                if key != "*" and label not in attacks:
                    raise ValueError(f"expect.{model}.{key}: not an attack label; labels: {sorted(attacks)} (or '*'; "
                                     f"'label@ε' for one budget)")
                if eps:
                    known = attacks[label].epsilons or (self.transfer.epsilons if label not in labels and self.transfer
                                                        else None) or self.epsilons
                    try:
                        value = float(eps)
                    except ValueError:
                        raise ValueError(f"expect.{model}.{key}: '{eps}' is not a number") from None
                    if not any(abs(value - e) < 5e-4 for e in known):
                        raise ValueError(f"expect.{model}.{key}: {label} does not run at ε = {eps}; its ε: {known}")
                bad = sorted(set(metrics) - set(EXPECTABLE))
                if bad:
                    raise ValueError(f"expect.{model}.{key}: unknown metric(s) {bad}; expectable: {', '.join(EXPECTABLE)}")

    _in_pixel_range = field_validator("epsilons")(classmethod(lambda cls, value: check_epsilons(value)))


def load_suite(path: str | Path, default_models: Sequence[str] = ()) -> Suite:
    """Read and validate a suite YAML file (`default_models`: its models if it names none; the Python API's
    `evaluate(only_given=True)`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read suite file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a YAML mapping with name, dataset, models, attacks, epsilons")
    data.setdefault("name", path.stem)
    if default_models and not data.get("models"):
        data["models"] = list(default_models)
    return suite_from_data(data, str(path), hashlib.sha256(raw).hexdigest()[:16], path.parent)


def suite_from_data(data: dict[str, Any], where: str = "<suite>", content_hash: str | None = None,
                    base: Path | None = None) -> Suite:
    """Validate a suite given as a mapping (what a YAML file holds); `where` names it in errors. Its plug-ins
    (`plugins:` modules or files, relative to `base`) are imported first, so their models are known."""
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: a suite is a mapping with name, dataset, models, attacks, epsilons")
    data = dict(data)
    data.setdefault("name", Path(where).stem if where != "<suite>" else "suite")
    data["content_hash"] = content_hash or hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()[:16]
    data["source"] = where
    import_plugins(data.get("plugins"), where, base)
    from wrappers.registry import references_relative_to

    try:
        with references_relative_to(base):  # models: ["file.py:obj"] relative to the suite, as plugins: are
            return Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(f"{where}: invalid suite\n" + "\n".join(_describe(err, data) for err in exc.errors())) from None


def import_plugins(plugins: Any, where: str, base: Path | None) -> None:
    """Import a suite's plug-ins; a failure is a SuiteError naming the file and the field."""
    from mmrb.core.errors import ModelError
    from wrappers.registry import import_plugin

    if plugins is None:
        return
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise SuiteError(f"{where}: invalid suite\n  field 'plugins': a list of module names or .py files, e.g. "
                         f"[mypkg.models, models/gated.py]")
    for i, reference in enumerate(plugins):
        try:
            import_plugin(reference, base)
        except ModelError as exc:
            raise SuiteError(f"{where}: invalid suite\n  field 'plugins.{i}': {exc}") from None


def _describe(err: dict, data: dict) -> str:
    """One line per error: the dotted field path (with the model/attack name), the problem, what is allowed."""
    loc = list(err["loc"])
    parts, node = [], data
    for key in loc:
        node = node[key] if isinstance(node, (dict, list)) and _has(node, key) else None
        name = node.get("name") if isinstance(node, dict) else None
        parts.append(f"{key}" + (f" ({name})" if isinstance(key, int) and name else ""))
    field = ".".join(parts) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error":
        msg += f" (got {err.get('input')!r})"
    if err["type"] == "extra_forbidden":
        msg = "unknown field; check the spelling (see docs/suites.md)"
    return f"  field '{field}': {msg}"


def _has(node: dict | list, key: Any) -> bool:
    return key in node if isinstance(node, dict) else isinstance(key, int) and 0 <= key < len(node)
