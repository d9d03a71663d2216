"""Checks on every model before any work: each model a command will use (registered, plug-in or object) is built
and called on one small batch of the test split; a model whose forward raises, or returns anything but finite
(n, 2) logits, stops the command with one line naming the model and the fix, before any training or attack."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mmrb.core.errors import ModelError

if TYPE_CHECKING:
    from benchmark.run.engine import SuiteData
    from benchmark.spec.suite import ModelSpec, Suite

#: Samples of the test split each model is called on.
BATCH = 8
FIX = ("fix the model's forward(images, text) to return one row of two logits per sample (class 1 = abnormal), "
       "finite (see wrappers.protocol.MultimodalModel), then run the command again")


def suite_models(suite: Suite) -> list[ModelSpec]:
    """Every model spec a suite uses (models, transfer sources and targets), each label once."""
    specs = list(suite.models)
    if suite.transfer is not None:
        specs += [*suite.transfer.sources, *suite.transfer.targets]
    return list({s.label: s for s in specs}.values())


def check_models(suite: Suite, data: SuiteData, cache_dir: str | Path, specs: list[ModelSpec] | None = None,
                 models: dict | None = None) -> None:
    """Build each model of `suite` (`specs`: only these) as training starts it, or take the given object with final
    weights, and check it on `BATCH` test samples (wrappers.protocol.check_model); raise ModelError otherwise.
    `models`: the entries the run resolved (default: looked up by name)."""
    from wrappers.registry import model_entry
    from wrappers.training import build_model

    test, batch = data.test, slice(0, BATCH)
    for spec in specs if specs is not None else suite_models(suite):
        entry = (models or {}).get(spec.name) or model_entry(spec.name)
        where = f"{suite.source or 'suite ' + repr(suite.name)}: model {spec.label!r} ({entry.origin})"
        try:
            model = entry.instance if entry.instance is not None and entry.trained else \
                build_model(spec.name, spec.params, data.train_set, Path(cache_dir), suite.training_seeds[0], entry)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{where}: building it raised {type(exc).__name__}: {exc}; fix its factory or config") \
                from exc
        check_built(model, test.images[batch], test.texts[batch], where, fresh=model is not entry.instance)


def check_built(model, images, texts, where: str, fresh: bool = True) -> None:
    """wrappers.protocol.check_model with the fix appended. A `fresh` build (not a given object) that refuses to
    run before mmrb trains it (a boolean `trained` buffer, as the CLIP models have) is checked with it set."""
    from wrappers.protocol import check_model

    flag = getattr(model, "trained", None)
    if fresh and isinstance(flag, torch.Tensor) and flag.dtype == torch.bool:
        flag.fill_(True)
    try:
        check_model(model, images, texts, where=where)
    except ModelError as exc:
        raise ModelError(f"{exc}; {FIX}") from None
