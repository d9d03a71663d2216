"""Text attacks on the report input: the paper's synonym replacing and half-sentence deleting, and
TextAttack searches (PWWS, DeepWordBug, a greedy WordNet swap) with each report's own X-ray held fixed.

Tokenisation (`eligible_words`, `synonym_swap`, `word_deletion`): a text's words are its
whitespace-separated tokens (`text.split()`); punctuation stays attached to its token. A token's
*core* is the token with leading and trailing punctuation (`string.punctuation`) stripped; swaps
replace the core and keep the punctuation around it ("effusion." -> "gush."). Outputs are the tokens
joined by single spaces, so token i of the output is word i of the input (swaps) or a subsequence
(deletion). Counts are `fraction × n` rounded half up (`floor(x + 0.5)`, not Python's banker's round).

Everything is seeded explicitly: per text i, `numpy.random.default_rng([seed, i])`; TextAttack's own
randomness (DeepWordBug's character edits) uses the global RNGs, which `textattack_recipe` seeds per
example and restores afterwards. NLTK data (WordNet, stopwords) comes from
`benchmark.data.text_resources.ensure_text_resources()`, called before TextAttack is imported
(lazily, on first use: importing this module does not import TextAttack).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import string
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from benchmark.attacks import Crafted, Problem, Target
from benchmark.attacks.registry import register_attack
from benchmark.attacks.text_objective import represent, scored
from benchmark.data.report_terms import PROTECTED, is_protected
from benchmark.data.text_resources import ENGLISH_STOPWORDS, ensure_text_resources
from mmrb.core.errors import AttackError

RECIPES = ("PWWS", "DeepWordBug", "WordNetGreedy")
#: params each recipe accepts (besides these, an unknown key is an error).
COMMON_PARAMS = ("query_budget", "batch_size")
RECIPE_PARAMS = {"PWWS": (), "DeepWordBug": (), "WordNetGreedy": ("max_words", "wir_method")}
STOPWORDS = frozenset(ENGLISH_STOPWORDS)
_PUNCT = string.punctuation


# --------------------------------------------------------------------------- word-level perturbations

def _count(fraction: float, n: int) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise AttackError(f"fraction must be in [0, 1] (got {fraction})")
    return min(n, int(math.floor(fraction * n + 0.5)))


def _split_core(token: str) -> tuple[str, str, str]:
    """token -> (leading punctuation, core, trailing punctuation)."""
    core = token.strip(_PUNCT)
    if not core:
        return token, "", ""
    start = len(token) - len(token.lstrip(_PUNCT))
    return token[:start], core, token[start + len(core):]


@contextlib.contextmanager
def _no_nltk_downloads() -> Iterator[None]:
    """TextAttack's WordSwapWordNet calls nltk.download("omw-1.4") (multilingual WordNet, not needed for
    English) on construction; offline that only prints an error or waits for a network timeout."""
    import nltk

    original = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        yield
    finally:
        nltk.download = original


@contextlib.contextmanager
def _quiet_textattack() -> Iterator[None]:
    """Silence TextAttack's "Unknown if model of class ... compatible with goal function" warning: its
    validator knows only HuggingFace/TextAttack model classes, and TextView returns classification logits."""
    from textattack.shared.utils import logger

    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@functools.lru_cache(maxsize=1)
def _wordnet_swap():
    ensure_text_resources()
    from textattack.transformations import WordSwapWordNet

    with _no_nltk_downloads():
        return WordSwapWordNet()


@functools.lru_cache(maxsize=65536)
def _synonyms(word: str) -> tuple[str, ...]:
    """WordNet synonyms of a lower-case word (TextAttack's WordSwapWordNet: single words, no phrases),
    minus the word itself in any case; sorted so that a seeded choice is reproducible."""
    return tuple(sorted({s for s in _wordnet_swap()._get_replacement_words(word) if s.lower() != word}))


def _eligible(token: str) -> bool:
    core = _split_core(token)[1]
    return core.isalpha() and core.lower() not in STOPWORDS and not is_protected(core) and bool(_synonyms(core.lower()))


def eligible_words(text: str) -> list[int]:
    """Indices into `text.split()` of the words a synonym swap may replace: core (punctuation stripped)
    alphabetic, not one of NLTK's English stopwords (case-insensitive), not a protected word of a radiology report
    (a finding, its anatomy, a negation cue: benchmark.data.report_terms), at least one WordNet synonym."""
    return [i for i, token in enumerate(text.split()) if _eligible(token)]


def _match_case(replacement: str, original: str) -> str:
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def fraction_problems(params: dict[str, Any]) -> list[Problem]:
    """A `fraction` of the words outside [0, 1], before any work."""
    fraction = params.get("fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        return [("params.fraction", f"a fraction of the words, in [0, 1]; got {fraction!r}")]
    return []


@register_attack("synonym_swap", modality="text", bounded=False, params=("fraction",), check=fraction_problems,
                 defaults={"fraction": 0.2})
def craft_synonym_swap(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """The paper's "Synonym replacing" of a `fraction` of each report's words (default 0.2)."""
    fraction = params.get("fraction", 0.2)
    return Crafted(target.images, synonym_swap(target.texts, fraction, seed), 0, {"fraction": fraction})


@register_attack("word_deletion", modality="text", bounded=False, params=("fraction",), check=fraction_problems,
                 defaults={"fraction": 0.5})
def craft_word_deletion(params: dict[str, Any], target: Target, epsilon: float | None, seed: int) -> Crafted:
    """The paper's "Half-sentence deleting": a `fraction` of each report's words deleted (default 0.5)."""
    fraction = params.get("fraction", 0.5)
    return Crafted(target.images, word_deletion(target.texts, fraction, seed), 0, {"fraction": fraction})


def synonym_swap(texts: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The paper's "synonym replacing": in each text, `fraction × #eligible_words` (rounded half up)
    eligible words, chosen at random, each replaced by one of its WordNet synonyms (from TextAttack's
    WordSwapWordNet) chosen at random. Stopwords are never replaced. Text i uses default_rng([seed, i])."""
    out = []
    for i, text in enumerate(texts):
        tokens = text.split()
        eligible = eligible_words(text)
        k = _count(fraction, len(eligible))
        rng = np.random.default_rng([seed, i])
        for j in sorted(rng.choice(eligible, size=k, replace=False).tolist()) if k else []:
            lead, core, trail = _split_core(tokens[j])
            options = _synonyms(core.lower())
            tokens[j] = lead + _match_case(options[int(rng.integers(len(options)))], core) + trail
        out.append(" ".join(tokens))
    return out


def word_deletion(texts: Sequence[str], fraction: float = 0.5, seed: int = 0) -> list[str]:
    """The paper's "half-sentence deleting": delete `fraction × #words` (rounded half up) of the words of each text
    that are not protected (a finding, its anatomy, a negation cue: benchmark.data.report_terms), at positions drawn
    with default_rng([seed, i]); the others keep their order."""
    out = []
    for i, text in enumerate(texts):
        tokens = text.split()
        free = [j for j, token in enumerate(tokens) if not is_protected(token)]
        k = _count(fraction, len(free))
        drop = set(np.random.default_rng([seed, i]).choice(free, size=k, replace=False).tolist()) if k else set()
        out.append(" ".join(t for j, t in enumerate(tokens) if j not in drop))
    return out


# --------------------------------------------------------------------------- TextAttack model wrapper

class _TextViewBase:
    """The text view of an mmrb model for TextAttack: `bind(i)`, then `view(texts)` scores every
    candidate text with example i's image(s) (the bound image repeated), returning logits (n, 2).

    TextAttack queries many candidate texts of ONE example at a time, so the image is the bound one,
    never looked up per row. `queries[i]` counts the texts scored while example i was bound.
    """

    def __init__(self, model: torch.nn.Module, images: np.ndarray | None, batch_size: int = 32) -> None:
        self.model = model  # TextAttack reads model_wrapper.model
        self.uses_images = "image" in model.modalities
        self.uses_text = "text" in model.modalities
        if not self.uses_text:
            raise AttackError(f"model {type(model).__name__} has no text input ({sorted(model.modalities)}): "
                              "text attacks do not apply to it")
        if self.uses_images and images is None:
            raise AttackError(f"model {type(model).__name__} needs images: give the examples' images to TextView")
        self.images = images
        self.batch_size = int(batch_size)
        self.index: int | None = None
        # per sample, the clean pair's fused representation when scoring by Co-Attack's objective
        # (benchmark.attacks.text_objective.aim_at_embeddings); None: by the decision
        self.reference: torch.Tensor | None = None
        self.queries: Counter[int] = Counter()

    def bind(self, i: int):
        """Score the next queries with example i's image(s); returns the view."""
        if self.images is not None and not 0 <= i < len(self.images):
            raise AttackError(f"cannot bind example {i}: the view holds {len(self.images)} images")
        self.index = int(i)
        return self

    @torch.no_grad()
    def __call__(self, text_input_list: Sequence[str], **kwargs: Any) -> np.ndarray:
        if self.index is None:
            raise AttackError("TextView: bind(i) an example before querying the model")
        texts = list(text_input_list)
        self.queries[self.index] += len(texts)
        self.model.eval()
        device = next(self.model.parameters()).device
        image = None
        if self.uses_images:
            image = torch.as_tensor(self.images[self.index:self.index + 1], dtype=torch.float32, device=device)
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            tokens = {k: v.to(device) for k, v in self.model.tokenize(chunk).items()}
            images = None if image is None else image.expand(len(chunk), *image.shape[1:])
            if self.reference is not None:  # Co-Attack's objective (benchmark.attacks.text_objective)
                logits, rep = represent(self.model, images, tokens)
                out.append(scored(logits, rep, self.reference[self.index]).float().cpu())
            else:
                out.append(self.model(images, tokens).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 2), dtype=np.float32)

    def _tokenize(self, inputs: Sequence[str]) -> list[list[str]]:
        """Word pieces of each input (TextAttack's ModelWrapper.tokenize; not used by these recipes)."""
        tokenizer = next((m.tokenizer for m in self.model.modules() if hasattr(m, "tokenizer")), None)
        if tokenizer is None:
            raise NotImplementedError(f"{type(self.model).__name__} exposes no tokenizer")
        return [tokenizer.convert_ids_to_tokens(tokenizer(x, truncation=True)["input_ids"]) for x in inputs]


@functools.lru_cache(maxsize=1)
def _text_view_class() -> type:
    ensure_text_resources()
    from textattack.models.wrappers import ModelWrapper

    return type("TextView", (_TextViewBase, ModelWrapper), {"__module__": __name__, "__doc__": _TextViewBase.__doc__})


def __getattr__(name: str):
    # TextView subclasses TextAttack's ModelWrapper: built on first access so importing this module
    # neither imports TextAttack nor needs its NLTK data.
    if name == "TextView":
        return _text_view_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- TextAttack searches

@contextlib.contextmanager
def _restored_global_rngs() -> Iterator[None]:
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _example_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def protected_constraints() -> list:
    """TextAttack constraints that keep a search off the words of a report that carry its label
    (benchmark.data.report_terms.PROTECTED): none of them may be modified, and none may be written in."""
    from textattack.constraints import Constraint
    from textattack.constraints.pre_transformation import StopwordModification

    class NoProtectedWordWritten(Constraint):
        """Rejects a swap whose new word is a finding, its anatomy or a negation cue."""

        def __init__(self) -> None:
            super().__init__(compare_against_original=False)

        def _check_constraint(self, transformed_text, reference_text) -> bool:
            changed = transformed_text.attack_attrs.get("newly_modified_indices", ())
            return not any(is_protected(transformed_text.words[i]) for i in changed if i < len(transformed_text.words))

    return [StopwordModification(stopwords=PROTECTED), NoProtectedWordWritten()]


def build_attack(name: str, view, params: dict[str, Any]):
    """The TextAttack `Attack` for recipe `name` on `view` (only parts that download nothing)."""
    import textattack
    from textattack.attack_recipes import DeepWordBugGao2018, PWWSRen2019

    with _no_nltk_downloads(), _quiet_textattack():
        if name == "PWWS":
            attack = PWWSRen2019.build(view)
        elif name == "DeepWordBug":
            attack = DeepWordBugGao2018.build(view)
        elif name == "WordNetGreedy":
            from textattack.constraints.overlap import MaxWordsPerturbed
            from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
            from textattack.goal_functions import UntargetedClassification
            from textattack.search_methods import GreedyWordSwapWIR
            from textattack.transformations import WordSwapWordNet

            attack = textattack.Attack(
                UntargetedClassification(view),
                [RepeatModification(), StopwordModification(), MaxWordsPerturbed(max_num_words=int(params.get("max_words", 5)))],
                WordSwapWordNet(),
                GreedyWordSwapWIR(wir_method=params.get("wir_method", "unk")),
            )
        else:
            raise AttackError(f"unknown TextAttack recipe {name!r}; known: {', '.join(RECIPES)}")
    # no recipe may touch a finding, its anatomy or a negation cue, nor write one in (benchmark.data.report_terms)
    pre, post = protected_constraints()
    attack.pre_transformation_constraints.append(pre)
    attack.constraints.append(post)
    if params.get("query_budget") is not None:
        attack.goal_function.query_budget = int(params["query_budget"])
    attack.goal_function.batch_size = view.batch_size
    return attack


def textattack_recipe(name: str, model: torch.nn.Module, images: np.ndarray | None, texts: Sequence[str],
                      labels: Sequence[int] | np.ndarray, params: dict[str, Any] | None, seed: int
                      ) -> tuple[list[str], np.ndarray]:
    """Run TextAttack recipe `name` ("PWWS", "DeepWordBug", "WordNetGreedy") on each example, its own
    image(s) bound, its true label as ground truth.

    Returns the perturbed texts (the original where the attack was skipped, i.e. the example was
    already misclassified, or failed) and the model queries per example (TextAttack's goal-function
    count, which `query_budget` caps). params: `query_budget`, `batch_size` (texts per forward pass,
    default 32), for WordNetGreedy `max_words` (default 5) and `wir_method` (default "unk").
    The global random/numpy/torch RNGs are seeded per example from (seed, i) and restored afterwards.
    """
    params = dict(params or {})
    if name not in RECIPES:
        raise AttackError(f"unknown TextAttack recipe {name!r}; known: {', '.join(RECIPES)}")
    allowed = COMMON_PARAMS + RECIPE_PARAMS[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise AttackError(f"TextAttack recipe {name!r}: unknown params {unknown}; allowed: {', '.join(allowed)}")
    labels = np.asarray(labels)
    if len(labels) != len(texts) or (images is not None and "image" in model.modalities and len(images) != len(texts)):
        raise AttackError(f"texts ({len(texts)}), labels ({len(labels)}) and images "
                          f"({'none' if images is None else len(images)}) disagree in length")
    ensure_text_resources()
    from textattack.attack_results import MaximizedAttackResult, SuccessfulAttackResult
    from textattack.shared.utils import set_seed

    view = _text_view_class()(model, images, batch_size=params.get("batch_size", 32))
    adv, queries = [], np.zeros(len(texts), dtype=np.int64)
    with _restored_global_rngs():
        set_seed(seed)
        attack = build_attack(name, view, params)
        for i, (text, label) in enumerate(zip(texts, labels)):
            view.bind(i)
            attack.clear_cache()  # the model cache is keyed by text only: never reuse another image's scores
            set_seed(_example_seed(seed, i))
            result = attack.attack(text, int(label))
            queries[i] = attack.goal_function.num_queries
            done = isinstance(result, (SuccessfulAttackResult, MaximizedAttackResult))
            adv.append(result.perturbed_result.attacked_text.text if done else text)
    return adv, queries
