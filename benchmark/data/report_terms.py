"""What a text attack may not touch in a radiology report, and whether an edited report still says what it said.

A swap that adds or removes a finding or a negation is not an adversarial example of the report, it is a different
report: "no pleural effusion" → "know pleural effusion", "the lungs are clear" → "the lungs are effusion". mmrb keeps
text attacks label-preserving in two ways:

- `PROTECTED`: the words no text attack or report corruption may swap, insert or delete — findings (and the
  abbreviations the corruption track writes for them), the anatomy a finding is said of, and negations and their
  cues (no, not, without, negative for, free of, clear, normal, resolved, ...). `is_protected(token)` reads a token's
  core (punctuation stripped, any case).
- `report_label(text)`: the report re-labelled by the rules the generated data's reports are written by
  (benchmark.data.synth): abnormal when some sentence names a finding that no negation cue scopes (NegEx-style: a
  cue before the finding in its sentence — "no", "without", "negative for", "resolution of" — or one after it —
  "has resolved"). On reports of that grammar it agrees with the generator's label except where the generator
  writes a vague report on purpose (tests/data/test_report_terms.py). `label_kept(original, adversarial)`: whether
  the edit left that label as it was; the engine reverts every adversarial report that does not keep it (the
  sample counts with its original report) and publishes the share that kept it (`label_kept`).
"""
from __future__ import annotations

import re
import string

#: Findings, as the reports write them (and the corruption track's abbreviations of them).
FINDINGS = frozenset({
    "opacity", "opacities", "opacification", "consolidation", "consolidations", "effusion", "effusions",
    "cardiomegaly", "enlarged", "enlargement", "increased", "pneumonia", "airspace", "infiltrate", "infiltrates",
    "atelectasis", "density", "densities", "pneumothorax", "edema", "mass", "nodule", "nodules", "blunting", "disease",
    "abnormality", "abnormalities", "process", "fracture", "congestion", "infection",
    "eff", "cmg", "opac", "consol", "atx", "ptx", "dz",
})
#: Anatomy a finding is said of (swapping it moves or removes the finding).
ANATOMY = frozenset({
    "heart", "cardiac", "cardiomediastinal", "silhouette", "mediastinal", "mediastinum", "lung", "lungs", "pleural",
    "costophrenic", "lobe", "lingula", "base", "bases", "basilar", "pulmonary", "vascularity", "chest",
    "cm", "sil", "pulm", "vasc", "ll", "ul",
})
#: Cues that scope the findings after them in a sentence: negations ("no", "negative for", "free of", ...) and what
#: does not assert a finding (an indication's "evaluate for pneumonia", "history of", "rule out").
NEGATION_BEFORE = frozenset({
    "no", "not", "without", "negative", "free", "clear", "normal", "unremarkable", "resolution", "resolved", "absent",
    "none", "nor", "within", "limits", "w/o", "wnl", "nl", "unrem", "evaluate", "evaluation", "history", "rule", "r/o",
})
#: Cues that scope the findings before them ("... effusion has resolved", "... ruled out").
NEGATION_AFTER = frozenset({"resolved", "excluded", "absent"})
#: Every word no text attack or report corruption may swap, insert or delete.
PROTECTED = FINDINGS | ANATOMY | NEGATION_BEFORE | NEGATION_AFTER

_PUNCT = string.punctuation.replace("/", "")
_SENTENCE = re.compile(r"(?<=[.;])\s+")


def core(token: str) -> str:
    """A token without its leading and trailing punctuation, lower-cased ("Effusion." → "effusion")."""
    return token.strip(_PUNCT).lower()


def is_protected(token: str) -> bool:
    """Whether a text attack must leave `token` alone (its core is a finding, its anatomy or a negation cue)."""
    return core(token) in PROTECTED


def report_label(text: str) -> int:
    """1 (abnormal) when some sentence of `text` names a finding no negation cue scopes, else 0 (module docstring)."""
    for sentence in _SENTENCE.split(str(text).lower()):
        words = [core(t) for t in sentence.split()]
        for i, word in enumerate(words):
            if word in FINDINGS and not any(w in NEGATION_BEFORE for w in words[:i]) \
                    and not any(w in NEGATION_AFTER for w in words[i + 1:]):
                return 1
    return 0


def label_kept(original: str, adversarial: str) -> bool:
    """Whether the adversarial report reads with the original's label (`report_label` of both)."""
    return report_label(original) == report_label(adversarial)


def keep_labels(originals: list[str], adversarial: list[str]) -> tuple[list[str], float]:
    """The adversarial reports with every one that changed its label (`label_kept` false) put back to its original,
    and the share that kept it: a figure from label-changing edits is never published as robustness."""
    kept = [label_kept(o, a) for o, a in zip(originals, adversarial, strict=True)]
    texts = [a if k else o for o, a, k in zip(originals, adversarial, kept)]
    return texts, (sum(kept) / len(kept) if kept else float("nan"))
