"""White-box word swaps chosen by the embedding gradient (HotFlip, Ebrahimi et al. 2018, eq. 1), and a random word
swap of the same word budget as its control.

`hotflip`: TextAttack's recipe parts (untargeted goal, repeat/stopword/max-words constraints, greedy search by
word importance) around `WordSwapGradientBased`, fed by a gradient view of mmrb's BERT models: `get_grad` returns one
gradient and one id per *word* (the word's word-pieces summed; its first piece's id), each sample scored with its own
image. Budget: at most `round_half_up(word_fraction × n_words)` whitespace words change per report (asserted).
`objective: embedding`: the gradient and the search follow Co-Attack's objective instead, the fused representation's
distance from the clean pair's (benchmark.attacks.text_objective).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchmark.attacks import Crafted, Target
from benchmark.attacks import text as ta
from benchmark.attacks.registry import register_attack
from benchmark.attacks.text_objective import aim_at_embeddings, distance, goal_for, objective_problems, represent
from benchmark.data.report_terms import PROTECTED, is_protected
from mmrb.core.errors import AttackError

DEFAULTS = {"word_fraction": 0.1, "top_n": 5}


def word_budget(text: str, fraction: float) -> int:
    """Words of `text` an attack with `fraction` may change (the house rule: round half up)."""
    return ta._count(fraction, len(text.split()))


def changed_words(original: str, adversarial: str) -> int:
    """Whitespace words that differ between two texts (a length change counts every extra word)."""
    a, b = original.split(), adversarial.split()
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


def assert_budget(texts: Sequence[str], adversarial: Sequence[str], fraction: float, name: str) -> None:
    """Raise AttackError if any report changed more words than its budget allows."""
    for i, (t, a) in enumerate(zip(texts, adversarial)):
        if changed_words(t, a) > word_budget(t, fraction):
            raise AttackError(f"mmrb {name}: report {i} changed {changed_words(t, a)} words; budget "
                              f"{word_budget(t, fraction)} (word_fraction {fraction})")


def bert_encoder(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's BERT encoder (a module with `bert` and `tokenizer`), None for a model without one."""
    return next((m for m in model.modules() if hasattr(m, "bert") and hasattr(m, "tokenizer")), None)


def text_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The model's BERT encoder, or AttackError for a model without one."""
    found = bert_encoder(model)
    if found is None:
        raise AttackError(f"{type(model).__name__} has no BERT text encoder: gradient text attacks need one")
    return found


def whole_words(tokenizer) -> np.ndarray:
    """Vocabulary ids of alphabetic whole words (no '##' pieces, no special tokens, no protected word of a report: a
    swap may not write in a finding or a negation, benchmark.data.report_terms): the swap candidates."""
    vocab = tokenizer.get_vocab()
    return np.array(sorted(i for w, i in vocab.items() if w.isalpha() and w not in tokenizer.all_special_tokens
                           and w.lower() not in PROTECTED))


class _WordTokenizer:
    """What WordSwapGradientBased asks of a tokenizer: the pad id and id -> word ('' for a non-word piece)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.pad_token_id = tokenizer, tokenizer.pad_token_id
        self.allowed = set(whole_words(tokenizer).tolist())

    def convert_id_to_word(self, i: int) -> str:
        return self.tokenizer.convert_ids_to_tokens(int(i)) if int(i) in self.allowed else ""


@functools.lru_cache(maxsize=1)
def _gradient_view_class() -> type:
    view_class = ta._text_view_class()

    class GradientView(view_class):
        """TextView plus `get_grad`: the loss gradient at each word's embedding, with the bound sample's image."""

        def get_grad(self, text_input: str) -> dict[str, Any]:
            from textattack.shared.utils import words_from_text

            encoder = text_encoder(self.model)
            tokenizer, words = encoder.tokenizer, words_from_text(text_input)
            pieces = [tokenizer(w, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id] for w in words]
            ids = [tokenizer.cls_token_id] + [p for w in pieces for p in w]
            ids = ids[:encoder.max_length - 1] + [tokenizer.sep_token_id]
            device = next(self.model.parameters()).device
            tokens = {"input_ids": torch.tensor([ids], device=device), "attention_mask": torch.ones(1, len(ids), device=device,
                                                                                                  dtype=torch.long)}
            captured = []

            def keep(module, inputs, out) -> torch.Tensor:
                out = out if out.requires_grad else out.detach().requires_grad_(True)  # a frozen encoder too
                out.retain_grad()
                captured.append(out)
                return out

            hook = encoder.bert.get_input_embeddings().register_forward_hook(keep)
            try:
                image = None if not self.uses_images else torch.as_tensor(self.images[self.index:self.index + 1],
                                                                          dtype=torch.float32, device=device)
                with torch.enable_grad():
                    logits, rep = represent(self.model, image, tokens)
                    (torch.nn.functional.cross_entropy(logits, logits.argmax(1)) if self.reference is None  # away from
                     else distance(rep, self.reference[self.index]).sum()).backward()  # the decision / the clean pair
            finally:
                hook.remove()
                self.model.zero_grad(set_to_none=True)
            # summed over every forward and row the view's model made (one, or one per image of a scale set)
            grad = sum(c.grad.sum(0) for c in captured if c.grad is not None).detach().cpu()
            out_grad, out_ids, at = np.zeros((len(words), grad.shape[1]), np.float32), [], 1
            for j, word in enumerate(pieces):
                end = min(at + len(word), len(ids) - 1)
                out_grad[j] = grad[at:end].sum(0).numpy() if end > at else 0.0
                out_ids.append(word[0])
                at = end
            return {"ids": out_ids, "gradient": out_grad}

    return GradientView


def _hotflip_attack(view, top_n: int, max_words: int):
    import textattack
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapGradientBased

    class EmbeddingGradientSwap(WordSwapGradientBased):
        # TextAttack's check admits only its own LSTM (word-level tokens); the view's get_grad is word-aligned.
        def __init__(self, view, top_n: int) -> None:
            self.model, self.model_wrapper = text_encoder(view.model).bert, view
            self.tokenizer, self.top_n, self.is_black_box = _WordTokenizer(text_encoder(view.model).tokenizer), top_n, False

    with ta._quiet_textattack():
        return textattack.Attack(goal_for(view),
                                 [RepeatModification(), StopwordModification(), *ta.protected_constraints(),
                                  MaxWordsPerturbed(max_num_words=max_words)],
                                 EmbeddingGradientSwap(view, top_n), GreedyWordSwapWIR(wir_method="delete"))


def per_report(target: Target, fraction: float, seed: int, view, build) -> tuple[list[str], np.ndarray]:
    """Each report attacked by the TextAttack `Attack` that `build(view, budget)` makes for its word budget, its own
    image bound in `view`, seeded per sample from (seed, i): the adversarial reports (a failed search keeps its best
    swaps: the budget is spent either way, like PGD's last iterate) and the model queries per sample."""
    from textattack.attack_results import SkippedAttackResult
    from textattack.shared.utils import set_seed

    adv, queries = [], np.zeros(len(target.texts), dtype=np.int64)
    with ta._restored_global_rngs():
        for i, (text, label) in enumerate(zip(target.texts, target.labels)):
            budget = word_budget(text, fraction)
            if budget == 0:
                adv.append(text)
                continue
            attack = build(view, budget)
            view.bind(i)
            set_seed(ta._example_seed(seed, i))
            result = attack.attack(text, int(label))
            queries[i] = attack.goal_function.num_queries
            skipped = isinstance(result, SkippedAttackResult)
            adv.append(text if skipped else result.perturbed_result.attacked_text.text)
    return adv, queries


@register_attack("hotflip", modality="text", bounded=False, white_box=True, params=("word_fraction", "top_n", "objective"),
                 defaults={**DEFAULTS, "objective": "classification"}, check=objective_problems)
def hotflip(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Gradient-chosen word swaps on each report, its own image bound, at most its word budget."""
    fraction, top_n = float(params.get("word_fraction", 0.1)), int(params.get("top_n", 5))
    objective = params.get("objective", "classification")
    ta.ensure_text_resources()
    images = target.images if "image" in target.model.modalities else None
    view = _gradient_view_class()(target.model, images, batch_size=32)
    if objective == "embedding":
        aim_at_embeddings(view, target.texts)
    adv, queries = per_report(target, fraction, seed, view, lambda v, budget: _hotflip_attack(v, top_n, budget))
    assert_budget(target.texts, adv, fraction, "hotflip")
    return Crafted(target.images, adv, 1, {"word_fraction": fraction, "top_n": top_n, "objective": objective}, queries)


@register_attack("random_word_swap", modality="text", bounded=False, params=("word_fraction",), defaults=DEFAULTS)
def random_word_swap(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """HotFlip's control: the same number of words, chosen and replaced (by whole vocabulary words) at random."""
    fraction = float(params.get("word_fraction", 0.1))
    tokenizer = text_encoder(target.model).tokenizer
    vocab = tokenizer.convert_ids_to_tokens(whole_words(tokenizer).tolist())
    adv = []
    for i, text in enumerate(target.texts):
        rng, tokens = np.random.default_rng([seed, i]), text.split()
        slots = [j for j, t in enumerate(tokens) if ta._split_core(t)[1].isalpha()
                 and ta._split_core(t)[1].lower() not in ta.STOPWORDS and not is_protected(t)]
        for j in rng.permutation(slots)[:word_budget(text, fraction)]:
            lead, core, trail = ta._split_core(tokens[j])
            tokens[j] = lead + str(vocab[rng.integers(len(vocab))]) + trail
        adv.append(" ".join(tokens))
    assert_budget(target.texts, adv, fraction, "random_word_swap")
    return Crafted(target.images, adv, 0, {"word_fraction": fraction})
