"""The compact models of the seed papers (and their teachers) beside the 24 miniatures.

Every family has a short name (case-insensitive; the hub id, its last part and a few aliases
work too), its hub id and its architecture, so that a sweep can name it, ``plan`` can size it
and ``init: random`` can build it untrained with no download:

==========================  ========================================  ===========  =====================
short name                  hub id                                    family       layers/hidden/heads/FFN
==========================  ========================================  ===========  =====================
DistilBERT                  distilbert-base-uncased                   distilbert   6 / 768 / 12 / 3072
TinyBERT-4                  huawei-noah/TinyBERT_General_4L_312D      tinybert     4 / 312 / 12 / 1200
TinyBERT-6                  huawei-noah/TinyBERT_General_6L_768D      tinybert     6 / 768 / 12 / 3072
MiniLM-L12-H384             microsoft/MiniLM-L12-H384-uncased         minilm       12 / 384 / 12 / 1536
MiniLM-L6-H384              nreimers/MiniLM-L6-H384-uncased           minilm       6 / 384 / 12 / 1536
XtremeDistil-l6-h256        microsoft/xtremedistil-l6-h256-uncased    xtremedistil 6 / 256 / 8 / 1024
XtremeDistil-l6-h384        microsoft/xtremedistil-l6-h384-uncased    xtremedistil 6 / 384 / 12 / 1536
XtremeDistil-l12-h384       microsoft/xtremedistil-l12-h384-uncased   xtremedistil 12 / 384 / 12 / 1536
BERT-Base-original          bert-base-uncased                         bert         12 / 768 / 12 / 3072
BERT-Large                  bert-large-uncased                        bert         24 / 1024 / 16 / 4096
==========================  ========================================  ===========  =====================

All are uncased with BERT's 30,522-entry WordPiece vocabulary, so a random-init model gets
the same uncased tokenizer as the miniatures (``models.uncased_vocab()``). A cased family
(none here) would need its own vocabulary: random init without a local copy is refused.

``BERT-Base`` stays the miniature ``google/bert_uncased_L-12_H-768_A-12`` (same architecture,
re-trained by Google under the miniatures' regime); the original checkpoint is
``BERT-Base-original`` (or ``bert-base-uncased``). BERT-Base-original and BERT-Large are the
teachers / upper bounds.

Quirks: DistilBERT is its own architecture (``DistilBertConfig``: ``dim``, ``n_layers``,
``n_heads``, ``hidden_dim``; dropout ``dropout``/``attention_dropout``/``seq_classif_dropout``)
with no token type embeddings, so the runner sends it no ``token_type_ids``; the TinyBERT
general-distillation checkpoints carry the extra ``fit_denses.*`` projection weights of their
distillation (ignored when loading) and an old config that may lack ``model_type`` (the config
class comes from this table, not from the file); TinyBERT has 12 heads of 26 at hidden 312, MiniLM
and XtremeDistil 12 heads of 32 at hidden 384, XtremeDistil-l6-h256 8 heads of 32 (all from the
checkpoints' config.json, not hidden/64).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

VOCAB = 30522
MAX_POSITIONS = 512


@dataclass(frozen=True)
class Family:
    name: str                     # short (display) name
    hub_id: str
    family: str                   # distilbert | tinybert | minilm | xtremedistil | bert
    model_type: str               # bert | distilbert
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = VOCAB
    cased: bool = False
    role: str = "student"         # student | teacher
    aliases: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        return self.layers, self.hidden

    def names(self) -> tuple[str, ...]:
        """Every spelling that resolves to this family (compared case-insensitively)."""
        out = (self.name, self.hub_id, self.hub_id.split("/")[-1], *self.aliases)
        return tuple({n.lower(): n for n in reversed(out)}[k] for k in dict.fromkeys(n.lower() for n in out))


FAMILIES: tuple[Family, ...] = (
    Family("DistilBERT", "distilbert-base-uncased", "distilbert", "distilbert", 6, 768, 12, 3072,
           aliases=("distilbert/distilbert-base-uncased", "DistilBERT-base")),
    Family("TinyBERT-4", "huawei-noah/TinyBERT_General_4L_312D", "tinybert", "bert", 4, 312, 12, 1200,
           aliases=("TinyBERT-4L-312D",)),
    Family("TinyBERT-6", "huawei-noah/TinyBERT_General_6L_768D", "tinybert", "bert", 6, 768, 12, 3072,
           aliases=("TinyBERT-6L-768D",)),
    Family("MiniLM-L12-H384", "microsoft/MiniLM-L12-H384-uncased", "minilm", "bert", 12, 384, 12, 1536),
    Family("MiniLM-L6-H384", "nreimers/MiniLM-L6-H384-uncased", "minilm", "bert", 6, 384, 12, 1536),
    Family("XtremeDistil-l6-h256", "microsoft/xtremedistil-l6-h256-uncased", "xtremedistil", "bert", 6, 256, 8, 1024),
    Family("XtremeDistil-l6-h384", "microsoft/xtremedistil-l6-h384-uncased", "xtremedistil", "bert", 6, 384, 12, 1536),
    Family("XtremeDistil-l12-h384", "microsoft/xtremedistil-l12-h384-uncased", "xtremedistil", "bert", 12, 384, 12, 1536),
    Family("BERT-Base-original", "bert-base-uncased", "bert", "bert", 12, 768, 12, 3072, role="teacher",
           aliases=("google-bert/bert-base-uncased", "BERT-Base-uncased")),
    Family("BERT-Large", "bert-large-uncased", "bert", "bert", 24, 1024, 16, 4096, role="teacher",
           aliases=("google-bert/bert-large-uncased", "BERT-Large-uncased")),
)

_BY_NAME = {n.lower(): f for f in FAMILIES for n in f.names()}


def lookup(name: str) -> Family | None:
    """The family a name (short name, hub id, its last part, alias; any case) means, or None."""
    return _BY_NAME.get(str(name).strip().lower())


def by_ref(ref: str) -> Family | None:
    """The family whose hub id is ``ref`` (exactly as :func:`lookup` would give it), or None."""
    f = lookup(ref)
    return f if f is not None and f.hub_id == ref else None


def names() -> list[str]:
    return [f.name for f in FAMILIES]


# ----------------------------------------------------------------------------- sizes

def approx_params(f: Family) -> tuple[int, int]:
    """(total, non-embedding) parameters of the bare encoder (no task head), from the table.
    Exact for these architectures: embeddings (+ token types and LayerNorm for BERT), layers,
    BERT's pooler (DistilBERT has none)."""
    h, i = f.hidden, f.intermediate
    layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    types = 0 if f.model_type == "distilbert" else 2 * h
    emb = f.vocab * h + MAX_POSITIONS * h + types + 2 * h
    body = f.layers * layer + (0 if f.model_type == "distilbert" else h * h + h)
    return emb + body, body


# ----------------------------------------------------------------------------- configs, loading

def config(f: Family, **extra):
    """The family's transformers config, built from the table (no file, no download). ``extra``
    (num_labels, problem_type, ...) goes to the config."""
    if f.model_type == "distilbert":
        from transformers import DistilBertConfig

        # DistilBERT's own names; dropouts as in distilbert-base-uncased's config.json.
        return DistilBertConfig(vocab_size=f.vocab, dim=f.hidden, n_layers=f.layers, n_heads=f.heads,
                                hidden_dim=f.intermediate, max_position_embeddings=MAX_POSITIONS,
                                dropout=0.1, attention_dropout=0.1, seq_classif_dropout=0.2, qa_dropout=0.1,
                                activation="gelu", sinusoidal_pos_embds=False, **extra)
    from transformers import BertConfig

    return BertConfig(vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers,
                      num_attention_heads=f.heads, intermediate_size=f.intermediate,
                      max_position_embeddings=MAX_POSITIONS, type_vocab_size=2, hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1, **extra)


def _config_class(f: Family):
    from transformers import BertConfig, DistilBertConfig

    return DistilBertConfig if f.model_type == "distilbert" else BertConfig


def _model_class(f: Family):
    from transformers import BertForSequenceClassification, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification if f.model_type == "distilbert" else BertForSequenceClassification


def load_model(f: Family, where: Path | None, num_labels: int, init: str = "pretrained"):
    """A sequence-classification model of family ``f``: untrained from the table (``random``, with
    no local copy), or from ``where`` / the hub (``pretrained``). The config class is the
    family's own, so a checkpoint whose config.json lacks ``model_type`` (old TinyBERT) still
    loads; weights the classifier does not have (TinyBERT's ``fit_denses.*``, pre-training
    heads) are ignored."""
    extra = {"num_labels": num_labels}
    if num_labels == 1:
        extra["problem_type"] = "regression"
    cls = _model_class(f)
    if init == "random":
        cfg = config(f, **extra) if where is None else _config_class(f).from_pretrained(str(where), **extra)
        return cls(cfg)
    src = str(where) if where else f.hub_id
    cfg = _config_class(f).from_pretrained(src, **extra)
    safetensors = where is not None and any(where.glob("*.safetensors"))
    return cls.from_pretrained(src, config=cfg, use_safetensors=True if safetensors else None)


def load_tokenizer(f: Family, where: Path | None, init: str = "pretrained"):
    """The family's tokenizer: its own files when there is a local copy or (pretrained) the hub;
    for random init with no copy, BERT's uncased WordPiece vocabulary (every family here is
    uncased with that vocabulary). A local copy with only ``vocab.txt`` (TinyBERT) gets a
    WordPiece tokenizer from it."""
    from transformers import AutoTokenizer, BertTokenizer

    if where is None and init == "random":
        if f.cased:
            raise UserError(f"model {f.name} is cased: random init needs its own vocabulary; put a copy of "
                            f"{f.hub_id.split('/')[-1]}/ (with vocab.txt) in MODELS_DIR")
        from .models import uncased_vocab

        return BertTokenizer(vocab=str(uncased_vocab()), do_lower_case=True)
    src = str(where) if where else f.hub_id
    try:
        return AutoTokenizer.from_pretrained(src)
    except Exception:
        if where is not None and (where / "vocab.txt").is_file():
            return BertTokenizer(vocab=str(where / "vocab.txt"), do_lower_case=not f.cased)
        raise
