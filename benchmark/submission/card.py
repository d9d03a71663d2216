"""The submission card: what a submitter writes to put a model on the leaderboard (schema, loading, the fixes named in errors)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchmark.spec.defense import InputDefenseSpec
from mmrb.core.errors import MmrbError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SubmissionError(MmrbError):
    """A card, its files or its model cannot be submitted; the message names the file, the field and the fix."""


class Card(BaseModel):
    """A model card: who made the model, where its code and weights are, and what it claims."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="the model's name on the leaderboard (letters, digits, _ . -)")
    authors: list[str] = Field(min_length=1)
    entry_point: str = Field(description="a registered model name, 'package.module:factory' or 'file.py:factory' "
                                         "(relative to the card)")
    trained_by: Literal["mmrb", "submitter"] = Field(description=(
        "mmrb: mmrb trains the model with its config['recipe'] on the protocol's training split, once per training "
        "seed; submitter: `weights` are final and used as they are"))
    weights: str | None = Field(None, description="trained_by submitter: a .safetensors file, or a state dict saved "
                                                  "with torch.save (read with torch.load(weights_only=True))")
    tokenizer: str = Field(min_length=1, description="what turns a report into tokens, e.g. 'tiny_bert (built by mmrb "
                                                     "from the training reports)' or a hub name and revision")
    data: str = Field(min_length=1, description="data statement: what the model was trained on")
    threat_model: str = Field(min_length=1, description="the robustness claimed, e.g. 'none (standard training)' or "
                                                        "'L∞ image perturbations up to 8/255'")
    defense: InputDefenseSpec | None = Field(None, description=(
        "optional: a defense mmrb puts the model behind (jpeg, gaussian_augmentation, ...) or fine-tunes it with "
        "(pgd_at, trades); attacked naively and adaptively, the adaptive figure ranked (docs/defenses.md)"))
    description: str = ""
    url: str = ""

    @field_validator("authors")
    @classmethod
    def _named(cls, authors: list[str]) -> list[str]:
        if not all(isinstance(a, str) and a.strip() for a in authors):
            raise ValueError("every author is a non-empty name")
        return authors

    @model_validator(mode="after")
    def _weights_match_training(self) -> Card:
        if self.trained_by == "submitter" and not self.weights:
            raise ValueError("trained_by 'submitter' needs 'weights': the file of the final weights (.safetensors or a "
                             "torch.save'd state dict)")
        if self.trained_by == "mmrb" and self.weights:
            raise ValueError("trained_by 'mmrb' trains the model from its factory's initial weights: remove 'weights', "
                             "or set trained_by: submitter to use them as final")
        return self


FIXES = {"name": "a short name of letters, digits, _ . - (e.g. gated_fusion)",
         "authors": "a list of names, e.g. [Ada Lovelace]",
         "entry_point": "a registered model name, 'package.module:factory' or 'file.py:factory'",
         "trained_by": "'mmrb' (mmrb trains it) or 'submitter' (weights are final)",
         "tokenizer": "say what tokenizes the reports", "data": "say what the model was trained on",
         "threat_model": "say what robustness is claimed ('none' is an answer)"}


def load_card(path: str | Path) -> Card:
    """Read and validate a card; every problem is one line naming the file, the field and the fix."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SubmissionError(f"{path}: cannot read the model card ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SubmissionError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SubmissionError(f"{path}: a model card is a YAML mapping with name, authors, entry_point, trained_by, "
                              f"tokenizer, data, threat_model (see examples/submit_fusion/card.yaml)")
    try:
        return Card.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(k) for k in err["loc"]) or "(card)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = f"missing; {FIXES.get(field, 'required')}"
            elif err["type"] == "extra_forbidden":
                message = f"unknown field; card fields: {', '.join(Card.model_fields)}"
            elif field in FIXES:
                message += f" ({FIXES[field]})"
            lines.append(f"  field '{field}': {message}")
        raise SubmissionError(f"{path}: invalid model card\n" + "\n".join(lines)) from None
