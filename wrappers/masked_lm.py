"""A small masked language model of the training reports: the substitution source of BERT-Attack (Li et al. 2020).

BERT-Attack replaces a report's important words by the words a masked LM predicts at their positions. Nothing is
downloaded at run time, so mmrb trains one: the tiny BERT architecture of `wrappers.text` (its WordPiece vocabulary
built from the same reports, 2 layers, 64 hidden units) with a masked-LM head, trained on the training reports with
BERT's masking (15 % of the word pieces; of those 80 % [MASK], 10 % a random piece, 10 % unchanged) for `epochs`
epochs of AdamW, seeded and under the canonical numerics (one thread), so the same reports and seed give the same
model anywhere. A real masked LM (e.g. a clinical BERT written with `save_pretrained`) loads from a local folder
instead (`load_masked_lm`).

The attacker is assumed to know the report distribution (the training reports), not the model's weights: the LM
is trained without the attacked model, once per process, corpus and settings (`masked_lm_of`, an in-memory cache;
about 25 s on one CPU core for the default suite's 480 reports at 60 epochs).
"""
from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from mmrb.core.errors import ModelError
from wrappers.numerics import canonical_numerics
from wrappers.text import TINY_BERT_CONFIG, make_tiny_bert

#: Training settings of the reports' masked LM (the attack's `lm_epochs` overrides `epochs`).
MLM_DEFAULTS = {"epochs": 60, "lr": 5e-3, "batch_size": 32, "mask_probability": 0.15, "vocab_size": 2000,
                "max_length": 128}


def load_masked_lm(folder: str | Path):
    """(tokenizer, masked LM) from a local folder written with `save_pretrained`, or a ModelError naming it."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    path = Path(folder)
    if not (path / "config.json").is_file():
        raise ModelError(f"masked_lm {str(folder)!r}: no config.json there; give a folder written with "
                         "save_pretrained (a BERT-style masked LM and its tokenizer), or leave masked_lm out to train "
                         "one on the training reports")
    try:
        return AutoTokenizer.from_pretrained(str(path)), AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    except (OSError, ValueError) as exc:
        raise ModelError(f"masked_lm {str(folder)!r} cannot be loaded ({type(exc).__name__}: {exc}); give a folder "
                         "written with save_pretrained") from exc


def train_masked_lm(corpus: Sequence[str], seed: int = 0, epochs: int = MLM_DEFAULTS["epochs"]):
    """(tokenizer, masked LM) trained on `corpus` as the module says; deterministic per (corpus, seed, epochs)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast, DataCollatorForLanguageModeling

    corpus = [t for t in corpus if t.strip()]
    if not corpus:
        raise ModelError("a masked LM needs training reports: the corpus is empty")
    settings = MLM_DEFAULTS
    with tempfile.TemporaryDirectory() as folder:  # the tiny BERT's own tokenizer, built from the same reports
        tokenizer = BertTokenizerFast.from_pretrained(make_tiny_bert(corpus, folder, settings["vocab_size"], seed))
    config = dict(TINY_BERT_CONFIG, max_position_embeddings=max(TINY_BERT_CONFIG["max_position_embeddings"],
                                                                settings["max_length"]))
    encoded = tokenizer(list(corpus), truncation=True, max_length=settings["max_length"])["input_ids"]
    with canonical_numerics(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), **config))
        collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=settings["mask_probability"])
        optimiser = torch.optim.AdamW(model.parameters(), lr=settings["lr"])
        order = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(int(epochs)):
            for batch_index in torch.randperm(len(encoded), generator=order).split(settings["batch_size"]):
                batch = collate([{"input_ids": encoded[i]} for i in batch_index.tolist()])
                loss = model(**batch).loss
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return tokenizer, model.eval()


@functools.lru_cache(maxsize=4)
def _cached(corpus: tuple[str, ...], seed: int, epochs: int):
    return train_masked_lm(corpus, seed, epochs)


def masked_lm_of(corpus: Sequence[str], seed: int = 0, epochs: int = MLM_DEFAULTS["epochs"]):
    """The reports' masked LM, trained once per process for this corpus, seed and epochs."""
    return _cached(tuple(corpus), seed, epochs)
