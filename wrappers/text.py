"""BERT text encoders: the paper's Bio_ClinicalBERT by hub name, or a tiny BERT trained here."""
from __future__ import annotations

import contextlib
import contextvars
import functools
import string
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

from mmrb.core.errors import ModelError
from wrappers.configs import TEXT_KEYS, resolve_config
from wrappers.registry import register_model

#: The text_encoder value that asks for a tiny BERT whose WordPiece vocabulary is trained on the
#: training reports (see `make_tiny_bert`); anything else is a hub name or a local folder.
TINY_BERT = "tiny_bert"
TINY_BERT_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=256)
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_vocab(corpus: Sequence[str], vocab_size: int) -> dict[str, int]:
    """A deterministic WordPiece vocabulary: special tokens, every character seen plus a-z and 0-9 (word-initial
    and ##-continued, so unseen words are spelled out rather than [UNK]),
    then the corpus's words by descending count (ties alphabetical) up to `vocab_size`.

    Built by hand rather than with tokenizers' WordPieceTrainer, whose vocabulary order changes from
    run to run (hash-map ties), which would make cached tiny models irreproducible.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalize, split = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(word for text in corpus for word, _ in split.pre_tokenize_str(normalize.normalize_str(text)))
    chars = sorted({c for word in counts for c in word} | set(string.ascii_lowercase + string.digits))
    tokens = SPECIAL_TOKENS + chars + ["##" + c for c in chars]
    taken = set(tokens)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in taken]
    tokens += words[: max(0, vocab_size - len(tokens))]
    return {token: i for i, token in enumerate(tokens)}


def make_tiny_bert(corpus: Sequence[str], out_dir: str | Path, vocab_size: int = 4000, seed: int = 0) -> Path:
    """Build a WordPiece tokenizer from `corpus` and a random-init tiny BERT; save both with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = wordpiece_vocab(corpus, vocab_size)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(tokenizer_object=tok, model_max_length=TINY_BERT_CONFIG["max_position_embeddings"])
    torch.manual_seed(seed)
    encoder = BertModel(BertConfig(vocab_size=len(vocab), **TINY_BERT_CONFIG), add_pooling_layer=False)
    out = Path(out_dir)
    tokenizer.save_pretrained(out)
    encoder.save_pretrained(out)
    return out


def load_text_encoder(name_or_path: str | Path) -> tuple[BertTokenizerFast, nn.Module]:
    """Tokenizer and encoder from a hub name or a local save_pretrained folder (one code path for both)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        encoder = AutoModel.from_pretrained(str(name_or_path), add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"text_encoder {str(name_or_path)!r} cannot be loaded ({exc.__class__.__name__}: {exc}). "
            "Give a local folder written with save_pretrained (download it once where the hub is reachable), "
            f"or use text_encoder: {TINY_BERT}."
        ) from exc
    return tokenizer, encoder


#: While set (wrappers.training.obtain_trained), `TextEncoder("tiny_bert")` asks it for the folder of the tiny BERT
#: built from the current training reports: any model, of any preset, can use the tiny encoder.
_TINY_BERT_SOURCE: contextvars.ContextVar[Callable[[], Path] | None] = contextvars.ContextVar("tiny_bert", default=None)


@contextlib.contextmanager
def tiny_bert_from(build: Callable[[], Path]) -> Iterator[None]:
    """Within this block, `TextEncoder("tiny_bert")` loads the folder `build()` returns (built lazily, once)."""
    token = _TINY_BERT_SOURCE.set(functools.lru_cache(maxsize=1)(build))
    try:
        yield
    finally:
        _TINY_BERT_SOURCE.reset(token)


class TextEncoder(nn.Module):
    """Report text -> [CLS] features of a BERT; `tokenize` turns strings into fixed-length id tensors."""

    def __init__(self, name_or_path: str | Path, max_length: int = 128) -> None:
        super().__init__()
        if str(name_or_path) == TINY_BERT:
            build = _TINY_BERT_SOURCE.get()
            if build is None:
                raise ModelError(f"text_encoder {TINY_BERT!r} is built from the training reports: build the model through "
                                 "mmrb (mmrb run / mmrb.evaluate / wrappers.training.obtain_trained), or give a hub name "
                                 "or a folder written with save_pretrained")
            name_or_path = build()
        self.tokenizer, self.bert = load_text_encoder(name_or_path)
        self.max_length = max_length
        self.feature_dim = self.bert.config.hidden_size

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Fixed-length (padded, truncated) input ids and attention masks, one row per text."""
        batch = self.tokenizer(list(texts), padding="max_length", truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def forward(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.bert(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
        return out.last_hidden_state[:, 0]

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write tokenizer and encoder so that `TextEncoder(out_dir)` rebuilds this architecture offline."""
        self.tokenizer.save_pretrained(out_dir)
        self.bert.save_pretrained(out_dir)


class TextClassifier(nn.Module):
    """Text-only model M_T: BERT [CLS] features -> linear head (normal / abnormal)."""

    family = "text"
    modalities = frozenset({"text"})

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config
        self.encoder = TextEncoder(config["text_encoder"], config["max_length"])
        self.head = nn.Linear(self.encoder.feature_dim, 2)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.encoder.tokenize(texts)

    def forward(self, images: torch.Tensor | None, text: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(text))


#: This family's built-in models: name -> (family, modalities, preset, training recipe: TrainRecipe fields), read by
#: wrappers.registry from this file's text, without importing it (no torch).
BUILTIN_MODELS = {
    "text_only": ("text", "text", "tiny", {"lr": 5e-4, "epochs": 10, "batch_size": 32}),
    "text_only_paper": ("text", "text", "paper", {"lr": 2e-5, "epochs": 5, "batch_size": 16}),  # Mozhegova et al. Sec. 4.1
}


def _register(name: str, preset: str) -> None:
    @register_model(name, TextClassifier, preset, TEXT_KEYS)
    def factory(**overrides) -> TextClassifier:
        return TextClassifier({"name": name, **resolve_config("text", preset, overrides, TEXT_KEYS)})


for _name, (_family, _modalities, _preset, _recipe) in BUILTIN_MODELS.items():
    _register(_name, _preset)
