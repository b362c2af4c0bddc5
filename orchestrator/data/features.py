"""Tokenise once per (task, split, data, vocabulary, max length) and cache on disk.

The cache key is the data's content fingerprint, the tokenizer's own definition (its
vocabulary, normaliser and special tokens; not its padding or truncation settings) and the
maximum length, so every model sharing a vocabulary (all 24 miniatures use the uncased one)
reuses one encoding, and a trial with a warm cache reads no raw data and tokenises nothing.
Arrays are stored ragged (flat ids + offsets) in an ``.npz`` read without pickle. A process keeps
the splits it read last (``MEMO_SPLITS``, while their cache file is unchanged) and each tokenizer's
fingerprint, so a worker that runs trial after trial reads and hashes neither again (the arrays are
never written to in place).

The commands that fill the cache (``run``, ``train``, ``submit``, ``speed``) refuse, in one line
before any work, a cache directory they cannot use (:func:`check_cache_dir`: ``GLUE_SWEEP_CACHE``
naming a file, a symbolic link loop, a dangling link or a directory that cannot be written),
rather than tokenise every split again on every run without saying so. Past that check, a cache
file that cannot be written costs speed, never correctness (a debug line).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import tempfile
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

FEATURE_VERSION = "1"
MEMO_SPLITS = 8   # encoded splits a process keeps in memory (the largest, MNLI's train split, is about 60 MB)

_memo: OrderedDict[Path, tuple] = OrderedDict()   # path -> (its file's signature when read, Encoded)
_fingerprints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("GLUE_SWEEP_CACHE", Path.home() / ".cache" / "glue-sweep")).expanduser()


def check_cache_dir() -> Path:
    """The cache directory, made when missing and checked writable (what the check writes, it
    removes); else one line (UserError) saying which directory (``GLUE_SWEEP_CACHE`` or the
    default) and why it cannot be used."""
    d = cache_dir()
    env = os.environ.get("GLUE_SWEEP_CACHE")
    what = f"GLUE_SWEEP_CACHE={env}" if env else f"the cache directory {d}"
    fix = "; point GLUE_SWEEP_CACHE at a directory you can write"
    try:
        st = os.stat(d)
    except FileNotFoundError:
        st = None
        if os.path.islink(d):
            raise UserError(f"{what}: a symbolic link to {os.readlink(d)}, which does not exist{fix}") from None
    except OSError as e:
        why = "a symbolic link loop" if e.errno == errno.ELOOP else (e.strerror or str(e))
        raise UserError(f"{what}: {why}{fix}") from None
    if st is not None and not os.path.isdir(d):
        raise UserError(f"{what}: a file, not a directory{fix}")
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=d, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = "a symbolic link loop" if e.errno == errno.ELOOP else (e.strerror or str(e))
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(d) and not str(e.filename).startswith(
            str(d / ".write-check-")) else ""
        raise UserError(f"{what}: cannot write there: {why}{where}{fix}") from None
    return d


@dataclass
class Encoded:
    input_ids: np.ndarray       # int32, all examples concatenated
    token_type_ids: np.ndarray  # int8, same layout
    offsets: np.ndarray         # int64, len n+1
    labels: np.ndarray | None   # int64 / float32 / None
    index: np.ndarray           # str, the examples' indices in the source

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, rows: np.ndarray) -> "Encoded":
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if len(rows) else np.zeros(0, np.int64)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        return Encoded(self.input_ids[take], self.token_type_ids[take], offsets,
                       None if self.labels is None else self.labels[rows], self.index[rows])


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the ids a tokenizer produces, hashed: two tokenizers with the same
    vocabulary and normalisation share features whatever their padding settings. Computed once
    per tokenizer object."""
    try:
        return _fingerprints[tokenizer]
    except (KeyError, TypeError):
        pass
    fp = _tokenizer_fingerprint(tokenizer)
    try:
        _fingerprints[tokenizer] = fp
    except TypeError:   # not weakly referable: hashed again next time
        pass
    return fp


def _tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
    else:  # a slow tokenizer: its vocabulary and the options that change tokens
        spec = {"class": type(tokenizer).__name__, "vocab": sorted(tokenizer.get_vocab().items()),
                "lower": getattr(tokenizer, "do_lower_case", None)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def encode(split_data, tokenizer, max_length: int, chunk: int = 4096) -> Encoded:
    ids, types, lengths = [], [], []
    n = len(split_data)
    for start in range(0, n, chunk):
        a = split_data.text_a[start:start + chunk]
        b = split_data.text_b[start:start + chunk] if split_data.text_b is not None else None
        enc = tokenizer(a, b, truncation=True, max_length=max_length, padding=False,
                        return_attention_mask=False, return_token_type_ids=True)
        for x, t in zip(enc["input_ids"], enc["token_type_ids"]):
            ids.append(np.asarray(x, dtype=np.int32))
            types.append(np.asarray(t, dtype=np.int8))
            lengths.append(len(x))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Encoded(np.concatenate(ids) if ids else np.zeros(0, np.int32),
                   np.concatenate(types) if types else np.zeros(0, np.int8), offsets,
                   split_data.labels, np.asarray(split_data.index, dtype=str))


def _save(enc: Encoded, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(input_ids=enc.input_ids, token_type_ids=enc.token_type_ids, offsets=enc.offsets, index=enc.index)
    if enc.labels is not None:
        arrays["labels"] = enc.labels
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> Encoded:
    with np.load(path, allow_pickle=False) as z:
        return Encoded(z["input_ids"], z["token_type_ids"], z["offsets"],
                       z["labels"] if "labels" in z.files else None, z["index"])


def feature_key(task, split: str, source, tokenizer, max_length: int = 128) -> str:
    """What identifies an encoded split: the data's fingerprint, the tokenizer's, the length."""
    key_src = json.dumps([FEATURE_VERSION, task.name, split, source.fingerprint(task, split),
                          tokenizer_fingerprint(tokenizer), int(max_length)])
    return hashlib.sha256(key_src.encode()).hexdigest()[:20]


def features(task, split: str, source, tokenizer, max_length: int = 128, cache: Path | None = None,
             stats: dict | None = None) -> Encoded:
    """The encoded split, from the cache when it is there, else from the source's shipped
    features when it has them (``source.encoded(key)``: a sweep's workers), else tokenised.
    ``stats`` (if given) counts ``hits`` and ``misses``."""
    key = feature_key(task, split, source, tokenizer, max_length)
    path = (cache or cache_dir()) / "features" / f"{task.name}-{split}-{max_length}-{key}.npz"
    seen = _memo.get(path)
    if seen is not None and seen[0] == _signature(path):   # the cache file as it was read (or still absent)
        _memo.move_to_end(path)
        if stats is not None:
            stats["hits"] = stats.get("hits", 0) + 1
        return seen[1]
    enc = _features(task, split, source, tokenizer, max_length, path, key, stats)
    _memo[path] = (_signature(path), enc)
    while len(_memo) > MEMO_SPLITS:
        _memo.popitem(last=False)
    return enc


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _features(task, split, source, tokenizer, max_length, path: Path, key: str, stats: dict | None) -> Encoded:
    shipped = source.encoded(key) if hasattr(source, "encoded") and not path.is_file() else None
    if shipped is not None:
        if stats is not None:
            stats["shipped"] = stats.get("shipped", 0) + 1
        return shipped
    if path.is_file():
        try:
            enc = _load(path)
            if stats is not None:
                stats["hits"] = stats.get("hits", 0) + 1
            return enc
        except Exception:  # a damaged cache file is rebuilt, never trusted
            log.debug(f"features: {path} is damaged: tokenising {task.name} {split} again")
            path.unlink(missing_ok=True)
    enc = encode(source.load(task, split), tokenizer, max_length)
    try:
        _save(enc, path)
    except OSError as e:
        log.debug(f"features: cannot cache {path} ({e.strerror or e})")  # costs speed, not correctness
    if stats is not None:
        stats["misses"] = stats.get("misses", 0) + 1
    return enc
