"""Attack speed for the gate's pytest-benchmark tests: one cell's attack crafted on a small batch."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmark import default_cache
from benchmark.gate import CellKey
from benchmark.spec.suite import Suite

BATCH = 8


def crafts(suite: Suite, key: CellKey) -> bool:
    """Whether the cell crafts adversarial inputs itself (not clean, transfer scoring or a worst case of others)."""
    attack = next((a for a in suite.attacks if a.label == key.attack), None)
    return not (attack is None or key.transfer_source or attack.modality == "none" or attack.combined)


def time_attack(suite: Suite, key: CellKey, cache: str | Path | None, device: str = "cpu",
                batch: int = BATCH) -> Callable[[], int] | None:
    """A function crafting the cell's attack on the first `batch` test samples with the first training seed's model
    (returns the number of adversarial examples), or None for cells that craft nothing here (clean, transfer,
    worst case: its parts are timed)."""
    from benchmark.attacks import Target, craft
    from benchmark.run.runner import prepare_data
    from wrappers.estimators import ImageView
    from wrappers.training import obtain_trained

    if not crafts(suite, key):
        return None
    attack = next(a for a in suite.attacks if a.label == key.attack)
    spec = next(m for m in suite.models if m.label == key.model)
    cache = Path(cache) if cache is not None else default_cache()
    data, seed = prepare_data(suite, cache), suite.training_seeds[0]
    model = obtain_trained(spec.name, spec.params, data.train_set, cache, seed, device)
    test = data.test
    images, texts, labels = test.images[:batch], list(test.texts[:batch]), test.labels[:batch]
    view = ImageView(model, images, texts, device=device) if "image" in model.modalities else None
    target = Target(model, images, texts, labels, view)

    def run() -> int:
        craft(attack.source, attack.name, attack.params, target, key.epsilon, seed)
        return len(labels)

    return run
