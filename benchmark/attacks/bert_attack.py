"""BERT-Attack (Li et al., EMNLP 2020): a report's important words replaced by a masked language model's predictions.

TextAttack's recipe parts (`BERTAttackLi2020`: untargeted goal, repeat/stopword/max-words constraints, greedy search
by word importance with each word replaced by [UNK], `WordSwapMaskedLM(method="bert-attack")`: the top-k predictions
of the masked LM at the word's position in the unmasked report, sub-word words by their best-perplexity combinations),
run on each report with its own image bound. The recipe's Universal Sentence Encoder constraint is left out: it is a
hub download. The masked LM is `wrappers.masked_lm`'s, trained on the suite's training reports (the attacker knows the
report distribution, not the model), or a real one from a local folder (`masked_lm: path/to/folder`, written with
`save_pretrained`). `objective: embedding`: Co-Attack's text objective (benchmark.attacks.text_objective).
Budget: at most `round_half_up(word_fraction × n_words)` whitespace words change per report
(asserted); the paper's budget is 40 % of the words, mmrb's default the text attacks' 10 %.

A masked LM proposes words that fit the context, which in a radiology report is often the opposite finding ("no
effusion" -> "small effusion"): the search runs under the protected-word constraints of every text attack (no
finding, its anatomy or a negation cue is modified or written in; benchmark.data.report_terms), and an adversarial
report whose label the report rules still read differently is put back to its original before scoring (the cell's
`label_kept`). Words the masked LM splits into several word-pieces are left alone (`MAX_PIECES`): the authors' code
substitutes them by combinations of 4 candidates per piece, which with mmrb's small LM gave nonsense tokens. The
recipe's sentence-similarity constraint (the Universal Sentence Encoder, a hub download) is not applied.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from benchmark.attacks import Crafted, Problem, Target
from benchmark.attacks import text as ta
from benchmark.attacks.hotflip import assert_budget, per_report
from benchmark.attacks.registry import register_attack
from benchmark.attacks.text_objective import aim_at_embeddings, goal_for, objective_problems
from mmrb.core.errors import AttackError
from wrappers.masked_lm import load_masked_lm, masked_lm_of  # at the top: its code is part of the cell key

DEFAULTS = {"word_fraction": 0.1, "max_candidates": 48, "lm_epochs": 60, "objective": "classification"}


def _problems(params: dict[str, Any]) -> list[Problem]:
    """Bad budgets, candidate counts, epochs or masked-LM folders, before any work."""
    problems = []
    fraction = params.get("word_fraction", DEFAULTS["word_fraction"])
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        problems.append(("params.word_fraction", f"a fraction of each report's words, in [0, 1]; got {fraction!r}"))
    for name in ("max_candidates", "lm_epochs"):
        value = params.get(name, DEFAULTS[name])
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((f"params.{name}", f"a positive whole number; got {value!r}"))
    problems += objective_problems(params)
    folder = params.get("masked_lm")
    if folder is not None and not (Path(str(folder)) / "config.json").is_file():
        problems.append(("params.masked_lm", f"{folder!r} is not a folder written with save_pretrained (no "
                                             "config.json); give one, or leave masked_lm out to train a masked LM on "
                                             "the training reports"))
    return problems


def masked_lm(params: dict[str, Any], target: Target, seed: int):
    """(tokenizer, masked LM): the folder's, else one trained on the target's training reports."""
    if params.get("masked_lm") is not None:
        return load_masked_lm(params["masked_lm"])
    if not target.corpus:
        raise AttackError("mmrb bert_attack trains its masked LM on the training reports, and this target carries "
                          "none (Target.corpus): run it through a suite, or give params.masked_lm (a local folder)")
    return masked_lm_of(target.corpus, seed, int(params.get("lm_epochs", DEFAULTS["lm_epochs"])))


#: Words of more word-pieces than this are left alone. TextAttack scores every combination of the pieces' top-k
#: predictions (k^pieces language-model losses, in Python): minutes per report once the search could no longer stop at
#: a finding, and with mmrb's small masked LM the combinations were nonsense tokens that can hide a finding
#: ("xabnormalitydisease"). The authors' code combines 4 candidates per piece.
MAX_PIECES = 1


@functools.lru_cache(maxsize=1)
def _bounded_swap_class() -> type:
    from textattack.transformations import WordSwapMaskedLM

    class WholeWordMaskedLM(WordSwapMaskedLM):
        """BERT-Attack's masked-LM swap on words of at most MAX_PIECES word-pieces."""

        def _bert_attack_replacement_words(self, current_text, index, id_preds, masked_lm_logits):
            if len(self._lm_tokenizer.encode(current_text.words[index], add_special_tokens=False)) > MAX_PIECES:
                return []
            return super()._bert_attack_replacement_words(current_text, index, id_preds, masked_lm_logits)

    return WholeWordMaskedLM


def _bert_attack(view, tokenizer, lm, max_candidates: int, max_words: int):
    import textattack
    from textattack.constraints.overlap import MaxWordsPerturbed
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.search_methods import GreedyWordSwapWIR

    with ta._quiet_textattack():
        swap = _bounded_swap_class()(method="bert-attack", masked_language_model=lm, tokenizer=tokenizer,
                                     max_length=min(128, lm.config.max_position_embeddings), max_candidates=max_candidates)
        attack = textattack.Attack(goal_for(view),
                                   [RepeatModification(), StopwordModification(), *ta.protected_constraints(),
                                    MaxWordsPerturbed(max_num_words=max_words)],
                                   swap, GreedyWordSwapWIR(wir_method="unk"))
    attack.goal_function.batch_size = view.batch_size
    return attack


@register_attack("bert_attack", modality="text", bounded=False, black_box=True,
                 params=("word_fraction", "max_candidates", "lm_epochs", "masked_lm", "objective"), check=_problems,
                 defaults=DEFAULTS, files=("masked_lm",))
def bert_attack(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """Masked-LM word substitutions on each report, its own image bound, at most its word budget."""
    fraction = float(params.get("word_fraction", DEFAULTS["word_fraction"]))
    max_candidates = int(params.get("max_candidates", DEFAULTS["max_candidates"]))
    ta.ensure_text_resources()
    tokenizer, lm = masked_lm(params, target, seed)
    images = target.images if "image" in target.model.modalities else None
    view = ta._text_view_class()(target.model, images, batch_size=32)
    objective = params.get("objective", "classification")
    if objective == "embedding":  # Co-Attack's objective (benchmark.attacks.text_objective)
        aim_at_embeddings(view, target.texts)
    adv, queries = per_report(target, fraction, seed, view,
                              lambda v, budget: _bert_attack(v, tokenizer, lm, max_candidates, budget))
    assert_budget(target.texts, adv, fraction, "bert_attack")
    used = {"word_fraction": fraction, "max_candidates": max_candidates, "objective": objective,
            "masked_lm": str(params["masked_lm"]) if params.get("masked_lm") else "trained on the training reports"}
    if not params.get("masked_lm"):
        used["lm_epochs"] = int(params.get("lm_epochs", DEFAULTS["lm_epochs"]))
    return Crafted(target.images, adv, 0, used, queries)
