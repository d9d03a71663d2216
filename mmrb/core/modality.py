"""The modalities: what a model reads and what an attack perturbs, listed once for every layer."""
from __future__ import annotations

from typing import Literal

#: What a model reads.
INPUTS = ("image", "text")
#: What an attack perturbs: nothing (the clean row), the images, the reports, or both.
MODALITIES = ("none", "image", "text", "joint")
#: The inputs a model must read for an attack of each modality to apply to it.
NEEDS = {"none": frozenset(), "image": frozenset({"image"}), "text": frozenset({"text"}), "joint": frozenset(INPUTS)}

#: One of INPUTS / MODALITIES, as types (pydantic checks them and names the allowed values).
Input = Literal[INPUTS]  # type: ignore[valid-type]
Modality = Literal[MODALITIES]  # type: ignore[valid-type]
