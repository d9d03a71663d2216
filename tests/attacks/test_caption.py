"""Rule-based caption rewrite: it changes only the words it says, by the paper's three objectives, seeded."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.attacks import Target, craft
from benchmark.attacks.caption import BODY_PARTS, OPPOSITES, WORD, RuleRewriter, load_rewriter, rewrite_captions
from mmrb.core.errors import AttackError

REPORT = "No acute cardiopulmonary abnormality. The heart is normal in size. Small left pleural effusion."


def _words(text: str) -> list[str]:
    return WORD.findall(text)


def test_rewrite_changes_only_the_words_it_reports():
    result = RuleRewriter(max_words=3).rewrite(REPORT, np.random.default_rng(0))
    before, after = _words(REPORT), _words(result.text)
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed == [i for i, _, _ in result.changes] and len(changed) == 3
    assert WORD.sub("", REPORT) == WORD.sub("", result.text)  # punctuation and spacing untouched
    for i, old, new in result.changes:
        assert before[i] == old and after[i] == new
        assert new.lower() in (BODY_PARTS.get(old.lower()), OPPOSITES.get(old.lower()))


def test_rewrite_changes_a_body_part_first_and_keeps_case():
    result = RuleRewriter(max_words=1).rewrite("Left lung base opacity.", np.random.default_rng(3))
    assert len(result.changes) == 1 and result.changes[0][1] == "lung"  # the only body-part word goes first
    flipped = RuleRewriter(max_words=2).rewrite("Left opacity.", np.random.default_rng(0))
    assert flipped.text == "Right opacity." and flipped.changes == ((0, "Left", "Right"),)


def test_rewrite_is_seeded_and_leaves_captions_without_key_words_alone():
    captions = [REPORT, "Heart size is increased. Lungs are clear."] * 3
    assert rewrite_captions(captions, 5) == rewrite_captions(captions, 5)
    assert rewrite_captions(["Comparison made to prior."], 0) == ["Comparison made to prior."]


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(["the", "left", "right", "lung", "heart", "is", "normal", "no", "effusion",
                                       "Small", "LARGE", "increased", "XXXX", "chest", "seen"]), min_size=1, max_size=14),
       budget=st.integers(1, 4), seed=st.integers(0, 1000))
def test_rewrite_property_budget_and_alignment(words, budget, seed):
    text = " ".join(words) + "."
    result = RuleRewriter(max_words=budget).rewrite(text, np.random.default_rng(seed))
    before, after = _words(text), _words(result.text)
    assert len(result.changes) <= budget and len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after)) == len(result.changes)


def test_user_rewriter_plugs_in_from_a_file(tmp_path, test_split):
    (tmp_path / "my_llm.py").write_text("def shout(caption, rng):\n    return caption.upper()\n")
    rewriter = load_rewriter(f"{tmp_path / 'my_llm.py'}:shout")
    assert rewriter("no effusion.", np.random.default_rng(0)) == "NO EFFUSION."
    target = Target(None, test_split.images[:4], test_split.texts[:4], test_split.labels[:4])
    crafted = craft("mmrb", "caption_rewrite", {"rewriter": f"{tmp_path / 'my_llm.py'}:shout"}, target, None, 0)
    assert crafted.texts == [t.upper() for t in test_split.texts[:4]]
    half = craft("mmrb", "caption_rewrite", {"fraction": 0.5}, target, None, 0)
    assert sum(a != b for a, b in zip(half.texts, test_split.texts[:4])) <= 2
    with pytest.raises(AttackError, match="cannot load rewriter"):
        load_rewriter("no_such_module_xyz:rewrite")
    with pytest.raises(AttackError, match="it takes: max_words"):
        craft("mmrb", "caption_rewrite", {"words": 2}, target, None, 0)
