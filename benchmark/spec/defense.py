"""The `defense:` of a suite model: an input defense (defenses.registry) with its parameters, checked without
importing torch."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class InputDefenseSpec(BaseModel):
    """`defense: jpeg` or `defense: {name: jpeg, params: {quality: 50}}` on a model of a suite."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _known(self) -> InputDefenseSpec:
        from defenses.registry import model_defense_problems

        problems = model_defense_problems(self.name, self.params)
        if problems:  # a ValueError: pydantic reports it with the file and the field (models.N.defense)
            raise ValueError("; ".join(f"{field}: {message}" for field, message in problems))
        return self

    @property
    def label(self) -> str:
        """`jpeg` or `jpeg[quality=30]`: how the defended model's label names its defense."""
        return self.name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items())) + "]" if self.params else "")
