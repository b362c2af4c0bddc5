"""The feature cache: hits are hits, shared across miniatures with one vocabulary, not
across vocabularies, and a damaged file is rebuilt."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from orchestrator.data import features as F
from orchestrator.data.sources import GlueDir
from orchestrator.errors import UserError
from orchestrator.registry.models import load_tokenizer, resolve, uncased_vocab
from orchestrator.registry.tasks import get_task


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(resolve("BERT-Tiny"), init="random")


def _same(a: F.Encoded, b: F.Encoded) -> None:
    for name in ("input_ids", "token_type_ids", "offsets", "labels", "index"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), name


def _files(cache):
    return sorted((cache / "features").glob("*.npz"))


def test_second_call_is_a_hit_with_identical_arrays(tmp_path, src, tok):
    task, stats = get_task("RTE"), {}
    a = F.features(task, "dev", src, tok, 128, cache=tmp_path, stats=stats)
    assert stats == {"misses": 1}
    b = F.features(task, "dev", src, tok, 128, cache=tmp_path, stats=stats)
    assert stats == {"misses": 1, "hits": 1}
    _same(a, b)
    assert len(_files(tmp_path)) == 1
    assert len(a) == 277 and a.labels.dtype == np.int64 and a.input_ids.dtype == np.int32


def test_encoding_matches_the_tokenizer(tmp_path, src, tok):
    task = get_task("RTE")
    enc = F.features(task, "dev", src, tok, 128, cache=tmp_path)
    data = src.load(task, "dev")
    assert enc.offsets[0] == 0 and enc.offsets[-1] == len(enc.input_ids) == len(enc.token_type_ids)
    for i in (0, 5, 276):
        want = tok(data.text_a[i], data.text_b[i], truncation=True, max_length=128)
        s, e = enc.offsets[i], enc.offsets[i + 1]
        assert enc.input_ids[s:e].tolist() == want["input_ids"]
        assert enc.token_type_ids[s:e].tolist() == want["token_type_ids"]
    assert enc.lengths.max() <= 128
    assert list(enc.index) == data.index
    assert np.array_equal(enc.labels, data.labels)


def test_max_length_is_part_of_the_key(tmp_path, src, tok):
    task, stats = get_task("RTE"), {}
    long = F.features(task, "dev", src, tok, 128, cache=tmp_path, stats=stats)
    short = F.features(task, "dev", src, tok, 16, cache=tmp_path, stats=stats)
    assert stats == {"misses": 2}
    assert short.lengths.max() == 16 and long.lengths.max() > 16
    assert len(_files(tmp_path)) == 2


def test_warm_cache_reads_no_data(tmp_path, src, tok, monkeypatch):
    task = get_task("WNLI")
    a = F.features(task, "train", src, tok, 128, cache=tmp_path)

    def boom(*args, **kw):
        raise AssertionError("raw data read on a warm cache")

    monkeypatch.setattr(src, "load", boom)
    stats = {}
    _same(a, F.features(task, "train", src, tok, 128, cache=tmp_path, stats=stats))
    assert stats == {"hits": 1}


def test_miniatures_with_one_vocabulary_share_an_entry(tmp_path, src):
    task, stats = get_task("WNLI"), {}
    tiny = load_tokenizer(resolve("BERT-Tiny"), init="random")
    medium = load_tokenizer(resolve("L-8_H-512"), init="random")
    a = F.features(task, "dev", src, tiny, 128, cache=tmp_path, stats=stats)
    b = F.features(task, "dev", src, medium, 128, cache=tmp_path, stats=stats)
    assert stats == {"misses": 1, "hits": 1}
    _same(a, b)
    assert len(_files(tmp_path)) == 1
    # padding / truncation settings are not part of the tokenizer's identity
    tiny.padding_side = "left"
    tiny.backend_tokenizer.enable_padding(length=64)
    tiny.backend_tokenizer.enable_truncation(32)
    assert F.tokenizer_fingerprint(tiny) == F.tokenizer_fingerprint(medium)


def _small_vocab_tokenizer(tmp_path):
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "is", "it", ".", ",", "was"]
    v = tmp_path / "vocab.txt"
    v.write_text("\n".join(words) + "\n", encoding="utf-8")
    return BertTokenizer(vocab=str(v), do_lower_case=True)


def test_another_vocabulary_does_not_share(tmp_path, src, tok):
    from transformers import BertTokenizer

    task, stats = get_task("WNLI"), {}
    a = F.features(task, "dev", src, tok, 128, cache=tmp_path, stats=stats)
    small = _small_vocab_tokenizer(tmp_path)
    b = F.features(task, "dev", src, small, 128, cache=tmp_path, stats=stats)
    assert stats == {"misses": 2}
    assert len(_files(tmp_path)) == 2
    assert b.input_ids.max() < 12 and not np.array_equal(a.input_ids, b.input_ids)
    # same vocabulary, different normalisation (cased): different ids, so no sharing either
    cased = BertTokenizer(vocab=str(uncased_vocab()), do_lower_case=False)
    assert F.tokenizer_fingerprint(cased) != F.tokenizer_fingerprint(tok)
    F.features(task, "dev", src, cased, 128, cache=tmp_path, stats=stats)
    assert stats == {"misses": 3}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong_arrays"])
def test_corrupted_cache_file_is_rebuilt(tmp_path, src, tok, damage):
    task = get_task("WNLI")
    good = F.features(task, "dev", src, tok, 128, cache=tmp_path)
    (path,) = _files(tmp_path)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"this is not an npz file at all")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.savez(path, something=np.arange(3))
    stats = {}
    again = F.features(task, "dev", src, tok, 128, cache=tmp_path, stats=stats)
    assert stats == {"misses": 1}
    _same(good, again)
    stats = {}
    _same(good, F.features(task, "dev", src, tok, 128, cache=tmp_path, stats=stats))
    assert stats == {"hits": 1}  # the rebuilt file is whole again


def test_changed_data_is_a_new_entry(tmp_path, real_glue_dir, tok):
    glue = tmp_path / "glue"
    shutil.copytree(real_glue_dir / "WNLI", glue / "WNLI")
    cache = tmp_path / "cache"
    src, task, stats = GlueDir(glue), get_task("WNLI"), {}
    a = F.features(task, "dev", src, tok, 128, cache=cache, stats=stats)
    p = glue / "WNLI" / "dev.tsv"
    p.write_bytes(p.read_bytes() + b"71\tThe cat slept.\tThe cat was asleep.\t1\n")
    b = F.features(task, "dev", src, tok, 128, cache=cache, stats=stats)
    assert stats == {"misses": 2}
    assert len(b) == len(a) + 1 and b.labels[-1] == 1


def test_unlabelled_split_and_env_cache_dir(src, tok, monkeypatch, tmp_path):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "envcache"))
    assert F.cache_dir() == tmp_path / "envcache"
    stats = {}
    enc = F.features(get_task("WNLI"), "test", src, tok, 128, stats=stats)
    assert enc.labels is None and len(enc) == 146
    assert len(list((tmp_path / "envcache" / "features").glob("*.npz"))) == 1
    enc2 = F.features(get_task("WNLI"), "test", src, tok, 128, stats=stats)
    assert stats == {"misses": 1, "hits": 1} and enc2.labels is None


def test_unwritable_cache_still_returns_features(tmp_path, src, tok):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    stats = {}
    enc = F.features(get_task("WNLI"), "dev", src, tok, 128, cache=blocker, stats=stats)
    assert len(enc) == 71 and stats == {"misses": 1}


def test_subset(tmp_path, src, tok):
    enc = F.features(get_task("RTE"), "dev", src, tok, 128, cache=tmp_path)
    rows = np.array([5, 0, 276, 5])
    sub = enc.subset(rows)
    assert len(sub) == 4
    assert np.array_equal(sub.lengths, enc.lengths[rows])
    for k, r in enumerate(rows):
        assert np.array_equal(sub.input_ids[sub.offsets[k]:sub.offsets[k + 1]], enc.input_ids[enc.offsets[r]:enc.offsets[r + 1]])
        assert np.array_equal(sub.token_type_ids[sub.offsets[k]:sub.offsets[k + 1]],
                              enc.token_type_ids[enc.offsets[r]:enc.offsets[r + 1]])
    assert sub.labels.tolist() == enc.labels[rows].tolist() and list(sub.index) == list(enc.index[rows])
    empty = enc.subset(np.array([], dtype=np.int64))
    assert len(empty) == 0 and len(empty.input_ids) == 0


# ----------------------------------------------------------------------------- a cache that cannot be used

def _unusable(tmp_path, case: str):
    if case == "a file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile", "a file, not a directory"
    if case == "a symlink loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        return tmp_path / "loop", "a symbolic link loop"
    if case == "a dangling link":
        (tmp_path / "dangling").symlink_to(tmp_path / "gone")
        return tmp_path / "dangling", f"a symbolic link to {tmp_path / 'gone'}, which does not exist"
    if case == "below a file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile" / "cache", "Not a directory"
    raise AssertionError(case)


UNUSABLE = ["a file", "a symlink loop", "a dangling link", "below a file"]


@pytest.mark.bad_input
@pytest.mark.parametrize("case", UNUSABLE)
def test_an_unusable_cache_dir_is_one_line_naming_the_variable(case, tmp_path, monkeypatch):
    path, words = _unusable(tmp_path, case)
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(path))
    with pytest.raises(UserError) as e:
        F.check_cache_dir()
    msg = str(e.value)
    assert msg.startswith(f"GLUE_SWEEP_CACHE={path}: ") and words in msg and "\n" not in msg, msg
    assert "point GLUE_SWEEP_CACHE at a directory you can write" in msg


@pytest.mark.bad_input
def test_an_unwritable_cache_dir_is_one_line(tmp_path, monkeypatch):
    d = tmp_path / "readonly"
    d.mkdir()
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(d))
    if os.geteuid() == 0:   # root writes through permissions: the probe's refusal as the kernel gives it
        def refused(dir=None, prefix=None, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / f"{prefix}x"))
        monkeypatch.setattr(F.tempfile, "mkstemp", refused)
    else:
        d.chmod(0o500)
    try:
        with pytest.raises(UserError, match=f"GLUE_SWEEP_CACHE={d}: cannot write there: Permission denied; point"):
            F.check_cache_dir()
    finally:
        d.chmod(0o700)
    assert list(d.iterdir()) == []


def test_a_usable_cache_dir_is_made_and_left_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "new" / "cache"))
    assert F.check_cache_dir() == tmp_path / "new" / "cache"
    assert (tmp_path / "new" / "cache").is_dir() and list((tmp_path / "new" / "cache").iterdir()) == []
    (tmp_path / "link").symlink_to(tmp_path / "new" / "cache")
    monkeypatch.setenv("GLUE_SWEEP_CACHE", str(tmp_path / "link"))
    assert F.check_cache_dir() == tmp_path / "link"
