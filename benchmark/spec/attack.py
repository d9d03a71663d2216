"""One attack entry of a suite (`attacks:`, `transfer.attacks:`): pydantic, checked against the attack registry's
declarations without importing torch or any attack library."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mmrb.core.errors import unknown
from mmrb.core.modality import Modality


def check_epsilons(value: list[float] | None) -> list[float] | None:
    """L∞ budgets in pixel units: 0 < ε ≤ 1, and at least one where the field is given."""
    bad = [e for e in value or () if not 0 < e <= 1]
    if bad:
        raise ValueError(f"epsilons are L∞ budgets in [0,1] pixel units, 0 < ε ≤ 1; got {bad}")
    if value is not None and not value:
        raise ValueError("epsilons is empty: give at least one budget or leave the field out")
    return value


class AttackSpec(BaseModel):
    """One attack: its source library, its name there, the modality it perturbs and its parameters.

    What the attack perturbs, and whether it combines other cells, are its registry traits, read without torch
    (`benchmark.attacks.registry.declaration`): `modality` defaults to the declared one, and may only repeat it
    unless the attack declares the default, image (corruption's report kinds are text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str = Field("art", description="an attack source of benchmark.attacks.registry.sources(): mmrb, or a "
                                           "library with an adapter (art, torchattacks, textattack); mmrb by default "
                                           "for its clean row (none) and the attacks that combine others (worst_case)")
    modality: Modality = Field("image", description="what it perturbs (default: what the attack declares)")
    params: dict[str, Any] = Field(default_factory=dict)
    epsilons: list[float] | None = Field(None, description="overrides the suite's epsilons for this attack")
    label: str = Field("", description="name in results (default: name); must be unique in the suite")
    compare_with: str | None = Field(None, description="label of another attack: results get the robust-accuracy gap")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        from benchmark.attacks.registry import MMRB, declaration

        if not isinstance(data, dict):
            return data
        data = dict(data)
        own = declaration(MMRB, data.get("name"))  # an attack that only arranges cells is mmrb's
        if "source" not in data and own is not None and (own.combines or own.modality == "none"):
            data["source"] = MMRB
        declared = declaration(data.get("source", cls.model_fields["source"].default), data.get("name"))
        if declared is not None:
            data.setdefault("modality", declared.modality)
        data.setdefault("label", data.get("name", ""))
        return data

    _check_epsilons = field_validator("epsilons")(classmethod(lambda cls, value: check_epsilons(value)))

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        from benchmark.attacks.registry import sources

        if source not in sources():  # listed from the adapter files, without importing any library
            raise ValueError(unknown("attack source", source, sources()))
        return source

    @field_validator("modality")
    @classmethod
    def _as_declared(cls, modality: str, info: ValidationInfo) -> str:
        from benchmark.attacks.registry import declaration

        source, name = info.data.get("source"), info.data.get("name")
        declared = declaration(source, name)
        if declared is not None and declared.modality not in ("image", modality):
            raise ValueError(f"{source} {name} perturbs {declared.modality}, not {modality}: leave modality out or set "
                             f"modality: {declared.modality}")
        return modality

    @property
    def combined(self) -> list[str]:
        """The labels of the attacks whose cells this one combines (the parameter its `combines` trait names:
        worst_case's `of`); empty for an attack that crafts."""
        from benchmark.attacks.registry import combines

        parameter = combines(self.source, self.name)
        return list(self.params.get(parameter) or []) if parameter else []

    @model_validator(mode="after")
    def _combined_labels_given(self) -> AttackSpec:
        from benchmark.attacks.registry import combines

        parameter = combines(self.source, self.name)
        if parameter and not (isinstance(self.params.get(parameter), list) and self.params[parameter]):
            raise ValueError(f"{self.name} needs params: {{{parameter}: [label, ...]}}: the attacks it combines")
        if self.modality in ("text", "none") and self.epsilons:
            raise ValueError(f"a {self.modality!r} attack has no image budget: remove 'epsilons'")
        return self
