"""Co-Attack's text objective (Zhang et al., ACM MM 2022): word swaps that move the model's fused representation of
the (image, report) pair away from the clean pair's, instead of lowering the true class's probability.

Co-Attack attacks embeddings, not decisions: its text step (BERT-Attack in the paper) ranks the words and picks
each substitute by the distance of the attacked pair's multimodal embedding from the clean one, within the word
budget, and its image step then builds on that. mmrb's fusion classifiers expose that embedding as the input of their
`head` (`fused_representation`; the logits for a model without one). With `objective: embedding` a text attack
(`hotflip`, `bert_attack`) scores each candidate by that cosine distance (HotFlip's gradient is the distance's too)
and never stops early: the search spends its word budget on the largest move of the representation
(`EmbeddingDistance`, a TextAttack goal function that is never complete). The protected words and the re-labelling
apply as to every text attack.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: What a text attack's candidates are scored by: the model's decision (TextAttack's untargeted goal) or Co-Attack's
#: embedding distance.
OBJECTIVES = ("classification", "embedding")


@contextlib.contextmanager
def fused_representation(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect what the model's `head` receives on each forward (empty when it has no head: logits are used)."""
    seen: list[torch.Tensor] = []
    head = getattr(model, "head", None)
    hook = head.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0])) if head is not None else None
    try:
        yield seen
    finally:
        if hook is not None:
            hook.remove()


def represent(model: torch.nn.Module, images: torch.Tensor | None, tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, fused representation) of a forward pass."""
    with fused_representation(model) as seen:
        logits = model(images, tokens)
    return logits, (seen[-1] if seen else logits)


def aim_at_embeddings(view, texts: Sequence[str]) -> None:
    """Make a text view (benchmark.attacks.text.TextView or HotFlip's) score by Co-Attack's objective: store each
    sample's clean fused representation (its own image and report) as `view.reference`."""
    model = view.model
    device = next(model.parameters()).device
    model.eval()
    references = []
    with torch.no_grad():
        for i, text in enumerate(texts):
            image = None if not view.uses_images else torch.as_tensor(view.images[i:i + 1], dtype=torch.float32,
                                                                      device=device)
            tokens = {k: v.to(device) for k, v in model.tokenize([text]).items()}
            references.append(represent(model, image, tokens)[1][0])
    view.reference = torch.stack(references)


def distance(rep: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cosine distance of each row of `rep` from the reference (one representation, or one per row)."""
    return 1 - F.cosine_similarity(rep, reference.expand_as(rep), dim=1)


def scored(logits: torch.Tensor, rep: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """What the embedding goal reads per text: the class probabilities, then the distance (n, 3)."""
    return torch.cat([torch.softmax(logits, 1), distance(rep, reference)[:, None]], 1)


@functools.lru_cache(maxsize=1)
def embedding_goal_class() -> type:
    """TextAttack's goal function for Co-Attack's objective: the score is the distance, the goal is never complete."""
    from textattack.goal_function_results import ClassificationGoalFunctionResult
    from textattack.goal_functions import GoalFunction

    class EmbeddingDistance(GoalFunction):
        def _process_model_outputs(self, inputs, outputs):
            return torch.as_tensor(np.asarray(outputs)).reshape(len(inputs), -1)

        def _is_goal_complete(self, model_output, attacked_text) -> bool:
            return False

        def _get_score(self, model_output, attacked_text) -> float:
            return float(model_output[-1])

        def _get_displayed_output(self, raw_output) -> int:
            return int(raw_output[:2].argmax())

        def _goal_function_result_type(self):
            return ClassificationGoalFunctionResult

    return EmbeddingDistance


def goal_for(view):
    """The goal function a text attack on `view` searches under: Co-Attack's embedding distance where the view
    aims at embeddings, else TextAttack's untargeted classification."""
    from textattack.goal_functions import UntargetedClassification

    if view.reference is not None:
        return embedding_goal_class()(view)
    return UntargetedClassification(view)


def objective_problems(params: dict, key: str = "objective") -> list[tuple[str, str]]:
    """An unknown objective (`params[key]`: a text attack's `objective`, a joint attack's `text_objective`), before
    any work."""
    value = params.get(key, "classification")
    if value not in OBJECTIVES:
        return [(f"params.{key}", f"one of {', '.join(OBJECTIVES)}; got {value!r}")]
    return []
