"""Co-Attack on tiny trained fusion models: within its joint budget (ε, word fraction), each sample with its own
report, and stronger than nothing."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.attacks import Target, registry
from benchmark.attacks import co_attack as co
from benchmark.attacks import hotflip as hf
from mmrb.core.errors import AttackError
from wrappers.training import predict_logits

EPS, FRACTION = 0.1, 0.1  # the tiny test models shrug off 8/255 on these samples, even under pgd


pytestmark = pytest.mark.usefixtures("nltk_data", "one_torch_thread")


@pytest.mark.parametrize("model_name", ["early_fusion", "late_fusion"])
def test_co_attack_within_joint_budget_each_with_its_own_report(model_name, trained, test_split):
    model = trained(model_name)
    idx = np.arange(10)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx])
    crafted = registry.craft("mmrb", "co_attack", {"word_fraction": FRACTION, "steps": 10}, target, EPS, seed=0)
    assert np.abs(crafted.images - target.images).max() <= EPS + 1e-6
    assert crafted.images.min() >= 0 and crafted.images.max() <= 1
    for original, adv in zip(target.texts, crafted.texts):  # report i stays report i, at most its budget changed
        assert len(adv.split()) == len(original.split())
        assert hf.changed_words(original, adv) <= hf.word_budget(original, FRACTION)
    clean = (predict_logits(model, target.images, target.texts).argmax(1).numpy() == target.labels).mean()
    robust = (predict_logits(model, crafted.images, crafted.texts).argmax(1).numpy() == target.labels).mean()
    assert robust < clean, (robust, clean)


def test_joint_budget_assertion_refuses_overspend():
    clean = np.zeros((1, 1, 2, 2), np.float32)
    with pytest.raises(AttackError, match="budget"):
        co.assert_joint_budget(clean, clean + 2 * EPS, EPS, ["a b"], ["a b"], FRACTION)
    with pytest.raises(AttackError, match="budget"):
        co.assert_joint_budget(clean, clean, EPS, ["a b c d e f g h i j"], ["x y c d e f g h i j"], FRACTION)


def test_registered_as_a_gradient_joint_attack():
    info = registry.info("mmrb", "co_attack")
    assert info.modality == "joint" and info.gradient and info.steps == "steps" and info.step_size == "step_size"
    with pytest.raises(AttackError):
        registry.craft("mmrb", "co_attack", {}, None, None, seed=0)



@pytest.mark.e2e
def test_co_attack_on_a_clip_model_takes_bert_attack_for_its_text_step(train_set, test_split, cache_dir):
    """A CLIP fusion model has no BERT (HotFlip's gradient view needs one): `text_attack: auto` takes BERT-Attack, whose
    masked LM is trained on the training reports; both budgets hold and each sample keeps its own report."""
    from wrappers.training import obtain_trained

    model = obtain_trained("clip_fusion", {}, train_set, cache_dir, seed=0)  # (a 2-epoch CLIP predicts one class here)
    idx = np.arange(6)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx],
                    corpus=train_set.texts)
    params = {"word_fraction": FRACTION, "steps": 5, "max_candidates": 8}
    crafted = registry.craft("mmrb", "co_attack", params, target, EPS, seed=0)
    assert crafted.params["text_attack"] == "bert_attack"
    assert np.abs(crafted.images - target.images).max() <= EPS + 1e-6
    for original, adv in zip(target.texts, crafted.texts):
        assert len(adv.split()) == len(original.split())
        assert hf.changed_words(original, adv) <= hf.word_budget(original, FRACTION)
    clean = (predict_logits(model, target.images, target.texts).argmax(1).numpy() == target.labels).mean()
    robust = (predict_logits(model, crafted.images, crafted.texts).argmax(1).numpy() == target.labels).mean()
    assert robust < clean, (robust, clean)
    assert registry.check("mmrb", "co_attack", {"text_attack": "pwws"})[0][0] == "params.text_attack"


@pytest.mark.parametrize("attack", ["hotflip", "bert_attack"])
def test_the_embedding_objective_moves_the_fused_representation_further(attack, trained, test_split, train_set):
    """Co-Attack's text objective (benchmark.attacks.text_objective): scored by the fused representation's distance
    from the clean pair's and never stopping early, the word swaps move that representation further than the same
    attack aimed at the decision, within the same budget."""
    import torch

    from benchmark.attacks.text_objective import distance, represent

    model = trained("early_fusion")
    idx = np.arange(8)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx],
                    corpus=list(train_set.texts))
    params = {"word_fraction": 0.2, **({"max_candidates": 8, "lm_epochs": 5} if attack == "bert_attack" else {})}
    by_decision = registry.craft("mmrb", attack, params, target, None, seed=0)
    by_embedding = registry.craft("mmrb", attack, {**params, "objective": "embedding"}, target, None, seed=0)
    assert by_embedding.params["objective"] == "embedding"

    def moved(texts):
        images = torch.as_tensor(target.images)
        with torch.no_grad():
            _, clean = represent(model.eval(), images, model.tokenize(list(target.texts)))
            _, adv = represent(model, images, model.tokenize(list(texts)))
        return np.array([float(distance(adv[i:i + 1], clean[i])) for i in range(len(texts))])

    for original, adv in zip(target.texts, by_embedding.texts):
        assert hf.changed_words(original, adv) <= hf.word_budget(original, 0.2)
    assert moved(by_embedding.texts).mean() > moved(by_decision.texts).mean(), \
        (moved(by_embedding.texts), moved(by_decision.texts))
    assert registry.check("mmrb", attack, {"objective": "loss"})  # an unknown objective is refused before any work


def test_sep_attack_crafts_each_part_on_the_clean_pair_within_the_joint_budget(trained, test_split):
    """Sep-Attack, Co-Attack's baseline (`joint` with order independent): the image attacked against the clean report
    and the report against the clean image, then shown together — each part is exactly its attack alone."""
    model = trained("early_fusion")
    idx = np.arange(8)
    target = Target(model, test_split.images[idx], [test_split.texts[i] for i in idx], test_split.labels[idx])
    pgd = {"source": "mmrb", "name": "pgd", "params": {"steps": 5}}
    text = {"source": "mmrb", "name": "hotflip", "params": {"word_fraction": FRACTION}}
    sep = registry.craft("mmrb", "joint", {"image": pgd, "text": text, "order": "independent"}, target, EPS, seed=0)
    image_alone = registry.craft("mmrb", "pgd", pgd["params"], target, EPS, seed=0)
    text_alone = registry.craft("mmrb", "hotflip", text["params"], target, None, seed=0)
    assert np.array_equal(sep.images, image_alone.images) and list(sep.texts) == list(text_alone.texts)
    assert np.abs(sep.images - target.images).max() <= EPS + 1e-6
    for original, adv in zip(target.texts, sep.texts):
        assert hf.changed_words(original, adv) <= hf.word_budget(original, FRACTION)
    sequential = registry.craft("mmrb", "joint", {"image": pgd, "text": text, "order": "text_first"}, target, EPS, 0)
    changed = [i for i, (a, b) in enumerate(zip(target.texts, text_alone.texts)) if a != b]
    assert changed and not np.array_equal(sequential.images[changed], sep.images[changed])  # crafted against the swap
