"""A report canonicaliser against text attacks: every word mapped to its canonical spelling before tokenisation. It
leaves the image alone, so an image attack needs no stand-in (`gradient = "none"`)."""
from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from defenses.input.base import InputDefense
from defenses.registry import Range, input_defense

#: Synonyms a radiology report uses for the same finding, mapped to one spelling (the words the synonym attacks of
#: the catalogue swap in); extended by the suite's `synonyms`.
SYNONYMS = {"enlarged": "enlarged", "enlargement": "enlarged", "increased": "enlarged", "big": "enlarged",
            "large": "enlarged", "normal": "normal", "unremarkable": "normal", "regular": "normal",
            "opacity": "opacity", "opacities": "opacity", "consolidation": "opacity", "infiltrate": "opacity",
            "effusion": "effusion", "effusions": "effusion", "fluid": "effusion",
            "cardiomegaly": "cardiomegaly", "heart": "heart", "cardiac": "heart"}


@input_defense("canonicaliser", params={"cutoff": Range(0, 1), "synonyms": None})
class Canonicaliser(InputDefense):
    """Each word of the report lower-cased, mapped through `SYNONYMS` (plus `synonyms`), and a misspelt word
    (edit ratio ≥ `cutoff` to a known one) corrected to it."""
    modality = "text"
    gradient = stand_in_name = "none"

    def __init__(self, seed: int = 0, cutoff: float = 0.8, synonyms: dict[str, str] | None = None) -> None:
        super().__init__(seed, cutoff=cutoff, **({"synonyms": synonyms} if synonyms else {}))
        self.table = {**SYNONYMS, **{k.lower(): v.lower() for k, v in (synonyms or {}).items()}}
        self.cutoff = float(cutoff)

    def _word(self, word: str) -> str:
        low = word.lower()
        if low in self.table:
            return self.table[low]
        close = difflib.get_close_matches(low, self.table, n=1, cutoff=self.cutoff) if len(low) > 3 else []
        return self.table[close[0]] if close else low

    def texts(self, reports: Sequence[str]) -> list[str]:
        return [re.sub(r"[A-Za-z]+", lambda m: self._word(m.group(0)), report) for report in reports]
