"""Models and tokenizers built or loaded with transformers, from plain values: an architecture,
a source (hub id or directory), a model type. Which model and which source is the registry's
decision (``models.py``, the module to call); this one knows nothing of names.

Remote code runs only where ``trust_remote_code`` says so, and only through the Auto classes (a
known model type has its own classes); a directory holding safetensors weights loads those.
"""

from __future__ import annotations

from pathlib import Path

import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

CONFIGS = {"bert": BertConfig, "distilbert": DistilBertConfig}
CLASSIFIERS = {"bert": BertForSequenceClassification, "distilbert": DistilBertForSequenceClassification}


def quiet() -> None:
    """No transformers warnings about new heads, no progress bars."""
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def head_options(num_labels: int) -> dict:
    """Config settings of a classification head of ``num_labels`` outputs (1: regression)."""
    return {"num_labels": num_labels, **({"problem_type": "regression"} if num_labels == 1 else {})}


def build_config(arch, **extra):
    """The config of an architecture (a ``models.Architecture``: model_type, layers, hidden,
    heads, intermediate, vocab, max_positions), with no file and no download; dropouts as in
    the published checkpoints. ``extra`` (num_labels, problem_type, ...) goes to the config."""
    if arch.model_type == "distilbert":
        return DistilBertConfig(vocab_size=arch.vocab, dim=arch.hidden, n_layers=arch.layers, n_heads=arch.heads,
                                hidden_dim=arch.intermediate, max_position_embeddings=arch.max_positions,
                                dropout=0.1, attention_dropout=0.1, seq_classif_dropout=0.2, qa_dropout=0.1,
                                activation="gelu", sinusoidal_pos_embds=False, **extra)
    if arch.model_type != "bert":
        raise ValueError(f"no config builder for model type {arch.model_type!r}")
    return BertConfig(vocab_size=arch.vocab, hidden_size=arch.hidden, num_hidden_layers=arch.layers,
                      num_attention_heads=arch.heads, intermediate_size=arch.intermediate,
                      max_position_embeddings=arch.max_positions, type_vocab_size=2, hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1, **extra)


def read_config(src: str, model_type: str | None = None, trust_remote_code: bool = False, **extra):
    """A checkpoint's config: read as ``model_type`` when given (whatever the file says), else
    as the file says."""
    if model_type is not None:
        return CONFIGS[model_type].from_pretrained(src, **extra)
    return AutoConfig.from_pretrained(src, trust_remote_code=trust_remote_code, **extra)


def untrained(config, model_type: str | None = None, trust_remote_code: bool = False):
    """A sequence classifier of ``config`` with fresh weights (from torch's seed)."""
    if model_type is not None:
        return CLASSIFIERS[model_type](config)
    return AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)


def pretrained(src: str, model_type: str | None = None, trust_remote_code: bool = False, **extra):
    """A sequence classifier with the checkpoint's weights and a new head; ``extra`` (num_labels,
    problem_type, ...) goes to its config, read as ``model_type`` when given."""
    local = Path(src)
    safetensors = True if local.is_dir() and any(local.glob("*.safetensors")) else None
    if model_type is not None:
        config = read_config(src, model_type, **extra)
        return CLASSIFIERS[model_type].from_pretrained(src, config=config, use_safetensors=safetensors)
    return AutoModelForSequenceClassification.from_pretrained(src, use_safetensors=safetensors,
                                                              trust_remote_code=trust_remote_code, **extra)


def wordpiece(vocab: Path, lowercase: bool = True):
    """A BERT WordPiece tokenizer from a ``vocab.txt``."""
    return BertTokenizer(vocab=str(vocab), do_lower_case=lowercase)


def tokenizer(src: str, trust_remote_code: bool = False, fallback_vocab: Path | None = None, lowercase: bool = True):
    """A checkpoint's tokenizer; when its files do not make one and ``fallback_vocab`` exists, a
    WordPiece tokenizer from that vocabulary."""
    try:
        return AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    except Exception:
        if fallback_vocab is not None and fallback_vocab.is_file():
            return wordpiece(fallback_vocab, lowercase)
        raise
