"""Label-preserving text attacks (issue 37): the words that carry a report's label are protected from every text
attack and report corruption, and an adversarial report the report rules read with another label is put back to its
original before it is scored."""
from __future__ import annotations

import pytest

from benchmark.data.indiana import assemble_text, label_from_problems
from benchmark.data.report_terms import PROTECTED, is_protected, keep_labels, label_kept, report_label
from benchmark.data.synth import _study


def _generated(n: int):
    for uid in range(n):
        meta = _study(0, uid, 8)[0]
        yield assemble_text(meta["impression"], meta["findings"], meta["indication"]), label_from_problems(meta["Problems"])


def test_the_report_rules_read_generated_reports_as_the_generator_labelled_them():
    """Measured on 1000 generated studies: 919 agree; every normal study reads normal, and the 81 that do not agree
    are abnormal studies whose report the generator writes vague or normal-reading on purpose (about 8 % of them)."""
    pairs = list(_generated(1000))
    read = [(report_label(text), label) for text, label in pairs]
    assert all(r == 0 for r, label in read if label == 0)
    agree = sum(r == label for r, label in read)
    assert agree >= 900, agree


@pytest.mark.parametrize("text, label", [
    ("no pleural effusion or pneumothorax. the lungs are clear.", 0),
    ("mild cardiomegaly without acute disease.", 1),
    ("the previously noted right pleural effusion has resolved.", 0),
    ("interval resolution of the previously seen left lower lobe opacity.", 0),
    ("small left pleural effusion. evaluate for pneumonia.", 1),
    ("no acute cardiopulmonary abnormality. evaluate for pneumonia, xxxx.", 0),
    ("the heart is mildly enlarged.", 1),
])
def test_negation_scope(text, label):
    assert report_label(text) == label


def test_negations_findings_and_their_anatomy_are_protected_and_modifiers_are_not():
    for token in ("no", "No", "without", "negative", "free", "clear.", "Effusion,", "opacity", "cardiomegaly", "heart",
                  "pleural", "resolved.", "w/o", "eff"):
        assert is_protected(token), token
    for token in ("mild", "small", "right", "stable", "the", "seen"):
        assert not is_protected(token), token


def test_a_label_changing_swap_is_put_back_and_counted():
    originals = ["no pleural effusion. the lungs are clear.", "small right pleural effusion.", "normal chest."]
    adversarial = ["know pleural effusion. the lungs are clear.",   # a negation deleted: now abnormal
                   "small right pleural gush.",                       # the finding gone: now normal
                   "formal chest."]                                   # still normal
    texts, kept = keep_labels(originals, adversarial)
    assert texts == [originals[0], originals[1], adversarial[2]] and kept == pytest.approx(1 / 3)
    assert not label_kept(originals[0], adversarial[0]) and label_kept(originals[2], adversarial[2])


def test_word_level_attacks_and_report_corruptions_leave_protected_words_alone():
    from benchmark.attacks.corruption import report_corruptions
    from benchmark.attacks.text import synonym_swap, word_deletion

    texts = [text for text, _ in _generated(60)]
    for name, edited in (("synonym_swap", synonym_swap(texts, 1.0, 0)), ("word_deletion", word_deletion(texts, 1.0, 0)),
                         ("dictation", report_corruptions(texts, "dictation", 5, 0)),
                         ("typos", report_corruptions(texts, "typos", 5, 0))):
        changed = 0
        for before, after in zip(texts, edited):
            kept = [t for t in before.split() if is_protected(t)]
            assert [t for t in after.split() if is_protected(t)] == kept, (name, before, after)
            assert label_kept(before, after), (name, before, after)
            changed += before != after
        assert changed > 0, name  # the attack still does something
    assert "know" not in " ".join(report_corruptions(texts, "dictation", 5, 0)).split()


def test_the_protected_list_names_what_the_issue_asks():
    assert {"no", "without", "negative", "free", "effusion", "opacity", "cardiomegaly", "consolidation",
            "pneumothorax", "heart", "lungs"} <= PROTECTED


def test_an_attack_that_deletes_a_negation_is_not_published_as_robustness(trained, indiana_root, tmp_path):
    """A planted text attack that writes "know" for "no" on every report (and so turns normal reports abnormal)
    breaks nothing that counts: each changed report is put back before scoring, the cell's figure is the clean
    one and `label_kept` says how many adversarial reports kept their label."""
    import mmrb
    from benchmark.attacks import Crafted

    @mmrb.register_attack("negation_deleter_test", modality="text", bounded=False)
    def negation_deleter(params, target, epsilon, seed):
        texts = [" ".join("know" if w == "no" else w for w in t.split()) for t in target.texts]
        return Crafted(target.images, texts, 0, {})

    model = trained("early_fusion")
    suite = {"name": "labels", "dataset": {"name": "indiana", "path": str(indiana_root), "image_size": 32},
             "models": ["m"], "seeds": [0], "limit": 40,
             "attacks": [{"name": "none"}, {"source": "mmrb", "name": "negation_deleter_test", "label": "deleter",
                                            "modality": "text"}]}
    result = mmrb.evaluate(suite, {"m": model}, only_given=True, out=tmp_path / "out", cache=tmp_path / "cache")
    frame = result.frame.set_index("attack")
    assert (frame["error"].fillna("") == "").all(), frame["error"].tolist()
    assert frame.loc["deleter", "robust_accuracy"] == pytest.approx(frame.loc["none", "clean_accuracy"])
    assert frame.loc["deleter", "label_kept"] < 1  # normal reports with "no" were changed, and put back
