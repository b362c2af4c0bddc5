"""What travels with the trials, so that a worker node needs neither the GLUE files, nor the
feature cache, nor the vocabulary.

The driver tokenises every (task, split, vocabulary, max length) the sweep needs once
(``pack``: from its feature cache when warm) and hands the encoded splits, their data
fingerprints and, for ``init: random``, the uncased vocabulary to Tune with
``tune.with_parameters``: they go into Ray's object store once and each node fetches them
from there. In a worker, ``ShippedSource`` is the data source: it answers fingerprints from
the driver's and encoded splits from the shipment (a node whose own feature cache holds the
split reads that instead); only a split the driver did not ship is read from the data source
itself (the same absolute path or hub id, which that node must then have).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TrialConfig
from ..data.features import Encoded, feature_key, features
from ..data.sources import source_from
from ..errors import UserError
from ..registry.models import SHIPPED_MODELS_ENV, entry_of, load_tokenizer, local_path, resolve, uncased_vocab
from ..registry.tasks import get_task, test_targets

VOCAB_ENV = "GLUE_SWEEP_VOCAB"
MODEL_SHIP_LIMIT = 512 * 2**20   # bytes of one local model's files shipped to the workers

log = logging.getLogger(__name__)


@dataclass
class Shipment:
    glue_dir: str | None                                   # absolute, as the driver saw it
    hub: str | None
    prints: dict[tuple[str, str], str] = field(default_factory=dict)   # (task, split) -> data fingerprint
    encoded: dict[str, Encoded] = field(default_factory=dict)          # feature key -> encoded split
    vocab: str | None = None                               # the uncased vocabulary's text (random init)
    spec_text: str | None = None                           # the sweep file, read before anything moves
    soft: dict[str, bytes] = field(default_factory=dict)   # task -> the teacher's soft labels (.npz bytes)
    models: dict[str, dict[str, bytes]] = field(default_factory=dict)  # local model name -> {file: bytes}

    def nbytes(self) -> int:
        return sum(e.input_ids.nbytes + e.token_type_ids.nbytes + e.offsets.nbytes + e.index.nbytes
                   + (e.labels.nbytes if e.labels is not None else 0) for e in self.encoded.values()) \
            + sum(len(b) for files in self.models.values() for b in files.values())


def ship_model(ship: Shipment, cfg: TrialConfig) -> None:
    """A pretrained model that lies on the driver's disk (MODELS_DIR, a directory, the packaged
    offline model) travels with the trials when it is at most ``MODEL_SHIP_LIMIT`` bytes; a
    larger one must be on every worker node (its MODELS_DIR or the same path)."""
    spec = resolve(cfg.model)
    path = local_path(spec) if cfg.init == "pretrained" else None
    name = spec.ref.rstrip("/").split("/")[-1]
    if path is None or name in ship.models:
        return
    files = [f for f in sorted(path.rglob("*")) if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    if size > MODEL_SHIP_LIMIT:
        log.info(f"note: {path} ({size / 2**20:.0f} MiB) is over the {MODEL_SHIP_LIMIT // 2**20} MiB shipping "
                 f"limit: every worker node needs its own copy (MODELS_DIR or the same path)")
        return
    ship.models[name] = {f.relative_to(path).as_posix(): f.read_bytes() for f in files}


def needs_vocab(cfg: TrialConfig) -> bool:
    """A registry row built untrained with no local copy tokenises with the uncased vocabulary."""
    spec = resolve(cfg.model)
    return cfg.init == "random" and entry_of(spec) is not None and local_path(spec) is None


def pack(configs: list[TrialConfig], glue_dir: str | None, hub: str | None) -> Shipment:
    """Tokenise every (task, vocabulary) the trials need once (the cache warm-up) and keep the
    encoded splits for the workers."""
    source = source_from(glue_dir, hub)
    ship = Shipment(glue_dir, hub)
    done, stats, t0 = set(), {}, time.perf_counter()
    for cfg in configs:
        key = (cfg.model, cfg.init, cfg.task, cfg.max_length)
        if key in done:
            continue
        done.add(key)
        task = get_task(cfg.task)
        tok = load_tokenizer(resolve(cfg.model), cfg.init, cfg.trust_remote_code)
        if ship.vocab is None and needs_vocab(cfg):
            ship.vocab = uncased_vocab().read_text(encoding="utf-8")
        ship_model(ship, cfg)
        for split in ["train"] + [s.name for s in task.eval_splits]:
            ship.prints[(task.name, split)] = source.fingerprint(task, split)
            fkey = feature_key(task, split, source, tok, cfg.max_length)
            if fkey not in ship.encoded:
                ship.encoded[fkey] = features(task, split, source, tok, cfg.max_length, stats=stats)
        for t, s in test_targets(task):   # what the trials' kept weights predict when they end, where the data has it
            try:
                ship.prints[(t.name, s.name)] = source.fingerprint(t, s.name)
            except (UserError, OSError, ValueError, KeyError):
                continue
            fkey = feature_key(t, s.name, source, tok, cfg.max_length)
            if fkey not in ship.encoded:
                ship.encoded[fkey] = features(t, s.name, source, tok, cfg.max_length, stats=stats)
    log.info(f"features ready in {time.perf_counter() - t0:.1f}s ({stats.get('misses', 0)} tokenised, "
             f"{stats.get('hits', 0)} from cache); {len(ship.encoded)} split(s), {ship.nbytes() / 2**20:.1f} MiB "
             f"shipped to the workers through Ray's object store")
    return ship


class ShippedSource:
    """The data source of a trial in a worker: the driver's shipment first, the real source
    (``glue_dir``/``hub``) only for what was not shipped."""

    def __init__(self, ship: Shipment):
        self.ship = ship
        self._real = None

    def real(self):
        if self._real is None:
            self._real = source_from(self.ship.glue_dir, self.ship.hub)
        return self._real

    def describe(self) -> str:
        where = self.ship.glue_dir or self.ship.hub or "the default source"
        return f"features shipped from the driver (data: {where})"

    def fingerprint(self, task, split: str) -> str:
        fp = self.ship.prints.get((task.name, split))
        return fp if fp is not None else self.real().fingerprint(task, split)

    def encoded(self, key: str) -> Encoded | None:
        return self.ship.encoded.get(key)

    def load(self, task, split: str):
        return self.real().load(task, split)


def ship_soft_labels(ship: Shipment, soft: dict) -> Shipment:
    """Distillation: the teachers' soft labels (``teacher.prepare``: task -> (file, meta)) travel
    with the features, so no worker needs the driver's soft-label cache."""
    ship.soft = {task: Path(path).read_bytes() for task, (path, _) in soft.items()}
    return ship


def _node_file(prefix: str, suffix: str, data: bytes) -> Path:
    """``data`` written once per node under the temporary directory, named by its content."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"{prefix}{digest}{suffix}"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{prefix}")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path


def soft_labels_file(ship: Shipment, task: str) -> str | None:
    """In a worker: the task's shipped soft labels as a local file (None without distillation)."""
    data = ship.soft.get(task)
    return None if data is None else str(_node_file("glue-sweep-soft-", ".npz", data))


def use_models(ship: Shipment) -> None:
    """In a worker: the shipped model files written once per node under the temporary directory
    (a directory named by their content, moved into place whole), and found there first."""
    if not ship.models:
        os.environ.pop(SHIPPED_MODELS_ENV, None)
        return
    h = hashlib.sha256()
    for name, files in sorted(ship.models.items()):
        for rel, data in sorted(files.items()):
            h.update(f"{name}/{rel}:{len(data)}:".encode())
            h.update(data)
    root = Path(tempfile.gettempdir()) / f"glue-sweep-models-{h.hexdigest()[:16]}"
    if not root.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".glue-sweep-models-"))
        for name, files in ship.models.items():
            for rel, data in files.items():
                (tmp / name / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name / rel).write_bytes(data)
        try:
            os.replace(tmp, root)
        except OSError:   # another trial on this node put the same files there first
            shutil.rmtree(tmp, ignore_errors=True)
    os.environ[SHIPPED_MODELS_ENV] = str(root)


def use_vocab(ship: Shipment) -> None:
    """In a worker: point the vocabulary lookup at the driver's vocabulary (written once per
    node under the temporary directory, named by its content), so every node tokenises, and
    keys its features, exactly as the driver did."""
    if ship.vocab is None:
        return
    os.environ[VOCAB_ENV] = str(_node_file("glue-sweep-vocab-", ".txt", ship.vocab.encode("utf-8")))
