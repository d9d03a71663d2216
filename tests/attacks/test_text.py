"""Text attacks: the paper's synonym replacing / half-sentence deleting, and TextAttack recipes run on tiny
trained models with each report's own X-ray bound."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nltk.corpus import stopwords, wordnet

from benchmark.attacks import text as ta
from benchmark.data.report_terms import is_protected
from mmrb.core.errors import AttackError
from wrappers.training import predict_logits

REPORTS = [
    "The heart is enlarged.",
    "no pleural effusion or pneumothorax.",
    "Mild cardiomegaly, with small bilateral effusions; lungs are clear.",
    "focal opacity, possibly pneumonia. normal heart size and mediastinal contours. focal consolidation in the "
    "left lower lung zone. no pleural effusion or pneumothorax. mild degenerative changes of the thoracic spine. chest pain.",
    "marked cardiomegaly. left effusion. there is marked enlargement of the cardiac silhouette. no focal airspace "
    "disease. moderate left pleural effusion. the osseous structures are intact. leg swelling, dyspnea.",
    "the lungs are clear bilaterally. specifically, no evidence of focal consolidation, pneumothorax, or pleural "
    "effusion. cardio mediastinal silhouette is unremarkable. visualized osseous structures of the thorax are "
    "without acute abnormality.",
]


pytestmark = pytest.mark.usefixtures("nltk_data")


def half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def core(token: str) -> str:
    return ta._split_core(token)[1].lower()


def wordnet_synonyms(word: str) -> set[str]:
    return {n.lower() for s in wordnet.synsets(word) for n in s.lemma_names()} - {word}


# --------------------------------------------------------------------------- synonym swap / word deletion

def test_eligible_words_by_hand():
    # "The", "is": stopwords; "heart", "enlarged": protected (a finding and its anatomy: report_terms)
    assert ta.eligible_words("The heart is enlarged.") == []
    assert ta.eligible_words("no pleural effusion or pneumothorax.") == []  # a negation, findings: protected
    assert ta.eligible_words("xxxx-year-old male with chest pain") == [1, 4]  # not alphabetic; stopword; protected
    assert ta.eligible_words("mild degenerative changes of the thoracic spine.") == [0, 2, 5, 6]  # no synonym: 1
    assert ta.eligible_words("") == []


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_synonym_swap_replaces_the_asked_number_of_eligible_words(fraction):
    english = set(stopwords.words("english"))
    swapped = ta.synonym_swap(REPORTS, fraction, seed=0)
    for original, new in zip(REPORTS, swapped):
        before, after = original.split(), new.split()
        assert len(after) == len(before)
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        eligible = ta.eligible_words(original)
        assert len(changed) == half_up(fraction * len(eligible)), (original, new)
        assert set(changed) <= set(eligible)
        for i in changed:
            assert core(before[i]) not in english
            lead, word, trail = ta._split_core(after[i])
            assert (lead, trail) == ta._split_core(before[i])[::2]  # punctuation kept around the swapped word
            assert word.lower() in wordnet_synonyms(core(before[i])), (before[i], after[i])
        for i in set(range(len(before))) - set(changed):
            assert before[i] == after[i]
    assert all(a != b for a, b in zip(REPORTS, swapped) if half_up(fraction * len(ta.eligible_words(a))))
    assert sum(a != b for a, b in zip(REPORTS, swapped)) >= len(REPORTS) // 2


def test_synonym_swap_is_seeded_and_fraction_zero_is_identity():
    assert ta.synonym_swap(REPORTS, 0.0, seed=3) == [" ".join(r.split()) for r in REPORTS]
    assert ta.synonym_swap(REPORTS, 0.5, seed=7) == ta.synonym_swap(REPORTS, 0.5, seed=7)
    assert ta.synonym_swap(REPORTS, 0.5, seed=7) != ta.synonym_swap(REPORTS, 0.5, seed=8)
    # text i's result depends on (seed, i) only, not on the other texts in the call
    assert ta.synonym_swap(REPORTS, 0.5, seed=7)[:2] == ta.synonym_swap(REPORTS[:2], 0.5, seed=7)
    with pytest.raises(AttackError):
        ta.synonym_swap(REPORTS, 1.5, seed=0)


def test_word_deletion_drops_half_the_words_keeping_order():
    deleted = ta.word_deletion(REPORTS, 0.5, seed=0)
    for original, new in zip(REPORTS, deleted):
        before, after = original.split(), new.split()
        protected = [w for w in before if is_protected(w)]
        assert len(after) == len(before) - half_up(0.5 * (len(before) - len(protected)))
        assert [w for w in after if is_protected(w)] == protected  # a finding or a negation is never deleted
        it = iter(before)
        assert all(word in it for word in after), "remaining words must be a subsequence of the original"
    assert ta.word_deletion(REPORTS, seed=1) == ta.word_deletion(REPORTS, seed=1)
    assert ta.word_deletion(REPORTS, seed=1) != ta.word_deletion(REPORTS, seed=2)
    assert ta.word_deletion(REPORTS, 0.0) == [" ".join(r.split()) for r in REPORTS]
    assert ta.word_deletion(REPORTS, 1.0) == [" ".join(w for w in r.split() if is_protected(w)) for r in REPORTS]
    assert ta.word_deletion(["one two three"], 0.5)[0].count(" ") == 0  # 1.5 -> 2 deleted (half up)


# --------------------------------------------------------------------------- TextView

def test_text_view_scores_candidates_with_the_bound_image(trained, test_split):
    from textattack.models.wrappers import ModelWrapper

    model = trained("early_fusion")
    images, texts = test_split.images[:6], test_split.texts[:6]
    view = ta.TextView(model, images, batch_size=4)
    assert isinstance(view, ModelWrapper)
    with pytest.raises(AttackError, match="bind"):
        view(texts[:2])
    candidates = texts + ta.word_deletion(texts, 0.5, seed=0) + ["[UNK] heart"]
    for i in (2, 5):
        got = view.bind(i)(candidates)
        assert isinstance(got, np.ndarray) and got.shape == (len(candidates), 2)
        want = predict_logits(model, np.repeat(images[i:i + 1], len(candidates), axis=0), candidates)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(view.bind(2)(texts[:1]), view.bind(5)(texts[:1]))  # the image matters
    assert view.queries[2] == len(candidates) + 1 and view.queries[5] == len(candidates) + 1
    with pytest.raises(AttackError):
        view.bind(6)


def test_text_view_of_text_only_and_image_only_models(trained, test_split):
    model = trained("text_only")
    view = ta.TextView(model, None).bind(0)
    np.testing.assert_allclose(view(test_split.texts[:5]), predict_logits(model, None, test_split.texts[:5]).numpy(),
                               rtol=1e-5, atol=1e-5)
    assert view.queries[0] == 5
    with pytest.raises(AttackError, match="no text input"):
        ta.TextView(trained("vision_only"), test_split.images)
    with pytest.raises(AttackError, match="needs images"):
        ta.TextView(trained("early_fusion"), None)


# --------------------------------------------------------------------------- TextAttack recipes

def correct_examples(model, split, k: int = 4):
    """The k correctly classified test examples of smallest clean margin: attacked (not skipped), and
    within reach of a few word swaps even for a model that leans on the image."""
    logits = predict_logits(model, split.images, split.texts)
    pred, margin = logits.argmax(1).numpy(), (logits[:, 1] - logits[:, 0]).abs().numpy()
    correct = np.flatnonzero(pred == split.labels)
    idx = correct[np.argsort(margin[correct], kind="stable")][:k]
    assert len(idx) == k
    return split.images[idx], [split.texts[i] for i in idx], split.labels[idx]


@pytest.mark.parametrize("model_name", ["text_only", "early_fusion"])
@pytest.mark.parametrize("recipe", ["PWWS", "DeepWordBug", "WordNetGreedy"])
def test_textattack_recipes_fool_trained_models(recipe, model_name, trained, test_split):
    model = trained(model_name)
    images, texts, labels = correct_examples(model, test_split, k=8)  # 4 left WordNetGreedy nothing to change once
    params = {"max_words": 3} if recipe == "WordNetGreedy" else {}
    adv, queries = ta.textattack_recipe(recipe, model, images, texts, labels, params, seed=0)
    assert len(adv) == len(texts) and queries.shape == (len(texts),) and queries.dtype.kind == "i"
    assert (queries > 1).all()
    changed = [a != t for a, t in zip(adv, texts)]
    assert any(changed), f"{recipe} changed no text of {model_name}"
    # every returned perturbation fools the model when scored with ITS OWN image (the runner's scoring),
    # so accuracy on these (clean: all correct) examples drops by exactly the changed ones
    pred = predict_logits(model, images, adv).argmax(1).numpy()
    assert (pred == labels).mean() == 1 - np.mean(changed)
    assert all(pred[i] != labels[i] for i in range(len(adv)) if changed[i])
    assert all(pred[i] == labels[i] for i in range(len(adv)) if not changed[i])
    for original, new in zip(texts, adv):
        before, after = original.split(), new.split()
        assert len(after) == len(before)
        diff = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
        assert not {core(before[i]) for i in diff} & set(stopwords.words("english"))
        if recipe == "WordNetGreedy":
            assert len(diff) <= 3
        if recipe in ("PWWS", "WordNetGreedy"):
            assert all(core(after[i]) in wordnet_synonyms(core(before[i])) for i in diff), (original, new)


def test_textattack_recipe_seeded_budgeted_and_skips_misclassified(trained, test_split):
    model = trained("early_fusion")
    images, texts, labels = correct_examples(model, test_split, k=3)
    state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    run = lambda seed: ta.textattack_recipe("DeepWordBug", model, images, texts, labels, {}, seed=seed)  # noqa: E731
    first, second = run(1), run(1)
    assert first[0] == second[0] and (first[1] == second[1]).all()
    assert (np.random.get_state()[1] == state[0]).all() and torch.equal(torch.get_rng_state(), state[1])

    adv, queries = ta.textattack_recipe("PWWS", model, images, texts, labels, {"query_budget": 5}, seed=0)
    assert (queries <= 5).all() and (queries > 0).all()

    wrong = 1 - labels  # already misclassified: skipped after one query, text unchanged
    adv, queries = ta.textattack_recipe("WordNetGreedy", model, images, texts, wrong, {}, seed=0)
    assert adv == texts and (queries == 1).all()

    with pytest.raises(AttackError, match="unknown TextAttack recipe"):
        ta.textattack_recipe("TextFooler", model, images, texts, labels, {}, seed=0)
    with pytest.raises(AttackError, match="max_words"):
        ta.textattack_recipe("PWWS", model, images, texts, labels, {"max_words": 2}, seed=0)
