"""Model names -> checkpoints: resolution, MODELS_DIR first, random init of the exact
miniature shape with no download, and offline failures that say what to do."""

from __future__ import annotations

import shutil
import socket

import pytest
import torch

from orchestrator import models as MD
from orchestrator.errors import UserError

TINY_ID = "google/bert_uncased_L-2_H-128_A-2"


@pytest.fixture(autouse=True)
def _no_models_dir(monkeypatch):
    monkeypatch.delenv("MODELS_DIR", raising=False)
    monkeypatch.delenv("GLUE_SWEEP_VOCAB", raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*a, **k):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name, want_name, want_ref, shape", [
    ("BERT-Tiny", "BERT-Tiny", TINY_ID, (2, 128)),
    ("bert-tiny", "BERT-Tiny", TINY_ID, (2, 128)),
    ("bert-mini", "BERT-Mini", "google/bert_uncased_L-4_H-256_A-4", (4, 256)),
    ("BERT-MINI", "BERT-Mini", "google/bert_uncased_L-4_H-256_A-4", (4, 256)),
    ("BERT-Small", "BERT-Small", "google/bert_uncased_L-4_H-512_A-8", (4, 512)),
    ("bert-medium", "BERT-Medium", "google/bert_uncased_L-8_H-512_A-8", (8, 512)),
    ("BERT-Base", "BERT-Base", "google/bert_uncased_L-12_H-768_A-12", (12, 768)),
    ("L-6_H-512", "L-6_H-512", "google/bert_uncased_L-6_H-512_A-8", (6, 512)),
    ("l-10_h-256", "L-10_H-256", "google/bert_uncased_L-10_H-256_A-4", (10, 256)),
    ("L-2_H-128", "BERT-Tiny", TINY_ID, (2, 128)),
    ("google/bert_uncased_L-4_H-256_A-4", "BERT-Mini", "google/bert_uncased_L-4_H-256_A-4", (4, 256)),
    ("bert_uncased_L-12_H-128_A-2", "L-12_H-128", "google/bert_uncased_L-12_H-128_A-2", (12, 128)),
    ("  BERT-Tiny ", "BERT-Tiny", TINY_ID, (2, 128)),
    ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", None),
    ("ALL-MINILM-L6-V2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", None),
    ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", None),
    ("prajjwal1/bert-tiny", "prajjwal1/bert-tiny", "prajjwal1/bert-tiny", None),
])
def test_resolve(name, want_name, want_ref, shape):
    spec = MD.resolve(name)
    assert (spec.name, spec.ref, spec.shape) == (want_name, want_ref, shape)
    assert spec.family == ("miniature" if shape else "other")


def test_resolve_local_dir(tmp_path):
    d = tmp_path / "my-model"
    d.mkdir()
    spec = MD.resolve(str(d))
    assert spec.name == "my-model" and spec.ref == str(d.resolve()) and spec.shape is None


@pytest.mark.parametrize("bad, message", [
    ("L-3_H-100", "unknown model"), ("L-2_H-100", "unknown model"), ("L-3_H-128", "unknown model"),
    ("L-14_H-768", "unknown model"), ("BERT-Huge", "unknown model"), ("bert", "unknown model"),
    ("", "empty model name"), ("   ", "empty model name"),
    ("./no/such/model", "does not exist"), ("/no/such/model", "does not exist"), ("~/no-such-model-xyz", "does not exist"),
])
def test_resolve_rejects(bad, message):
    with pytest.raises(UserError, match=message):
        MD.resolve(bad)


def test_miniature_grid():
    names = MD.miniatures()
    assert len(names) == 24 == len(set(names))
    for n in ("BERT-Tiny", "BERT-Mini", "BERT-Small", "BERT-Medium", "BERT-Base", "L-12_H-128", "L-2_H-768"):
        assert n in names
    for n in names:  # every listed name resolves to its own miniature
        spec = MD.resolve(n)
        assert spec.name == n and MD.miniature_name(*spec.shape) == n
        assert spec.ref == MD.miniature_hub_id(*spec.shape)


def test_uncased_vocab_from_the_packaged_model():
    v = MD.uncased_vocab()
    lines = v.read_text(encoding="utf-8").split("\n")
    assert len([x for x in lines if x]) == 30522
    assert lines[0] == "[PAD]" and "[CLS]" in lines and "[SEP]" in lines


@pytest.mark.parametrize("layers, hidden", [(2, 128), (4, 512), (6, 256)])
def test_random_init_builds_the_exact_miniature_without_download(no_network, layers, hidden):
    spec = MD.resolve(f"L-{layers}_H-{hidden}")
    assert MD.local_path(spec) is None
    model = MD.load_model(spec, num_labels=3, init="random")
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size) == (layers, hidden)
    assert c.num_attention_heads == hidden // 64
    assert c.intermediate_size == 4 * hidden
    assert c.vocab_size == 30522 and c.num_labels == 3
    assert len(model.bert.encoder.layer) == layers
    assert model.bert.encoder.layer[0].intermediate.dense.out_features == 4 * hidden
    assert model.classifier.out_features == 3


def test_random_init_regression_head_and_tokenizer(no_network):
    spec = MD.resolve("BERT-Tiny")
    model = MD.load_model(spec, num_labels=1, init="random")
    assert model.config.problem_type == "regression" and model.classifier.out_features == 1
    out = model(input_ids=torch.tensor([[101, 7592, 102]]), labels=torch.tensor([2.5]))
    assert out.logits.shape == (1, 1) and torch.isfinite(out.loss)
    tok = MD.load_tokenizer(spec, init="random")
    assert tok("Hello World")["input_ids"] == tok("hello world")["input_ids"] == [101, 7592, 2088, 102]
    assert len(tok) == 30522


def test_random_init_follows_the_seed():
    spec = MD.resolve("BERT-Tiny")
    torch.manual_seed(1)
    a = MD.load_model(spec, 2, "random").state_dict()
    torch.manual_seed(1)
    b = MD.load_model(spec, 2, "random").state_dict()
    torch.manual_seed(2)
    c = MD.load_model(spec, 2, "random").state_dict()
    k = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(a[k], b[k]) and not torch.equal(a[k], c[k])


def test_pretrained_miniature_offline_without_local_copy_says_models_dir():
    spec = MD.resolve("BERT-Tiny")
    with pytest.raises(UserError) as e:
        MD.load_model(spec, 2, init="pretrained")
    msg = str(e.value)
    assert "MODELS_DIR" in msg and "bert_uncased_L-2_H-128_A-2" in msg and "BERT-Tiny" in msg
    assert "\n" not in msg
    with pytest.raises(UserError, match="MODELS_DIR"):
        MD.load_tokenizer(spec, init="pretrained")


def test_bad_init_is_user_error():
    with pytest.raises(UserError, match="init must be"):
        MD.load_model(MD.resolve("BERT-Tiny"), 2, init="zeros")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A MODELS_DIR holding a (random-weight) BERT-Tiny saved under its hub name."""
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("models")
    d = root / "bert_uncased_L-2_H-128_A-2"
    torch.manual_seed(123)
    cfg = BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=512)
    model = BertModel(cfg)
    model.save_pretrained(d, safe_serialization=True)
    shutil.copy(MD.uncased_vocab(), d / "vocab.txt")  # as in the hub repo: config, weights, vocab.txt
    return root, {k: v.clone() for k, v in model.state_dict().items()}


def test_models_dir_is_looked_at_first(models_dir, monkeypatch, no_network):
    root, saved = models_dir
    monkeypatch.setenv("MODELS_DIR", str(root))
    spec = MD.resolve("BERT-Tiny")
    assert MD.local_path(spec) == root / "bert_uncased_L-2_H-128_A-2"
    assert MD.local_path(MD.resolve("BERT-Mini")) is None  # only what is there
    model = MD.load_model(spec, 2, init="pretrained")
    got = model.bert.state_dict()
    for k in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight", "pooler.dense.weight"):
        assert torch.equal(got[k], saved[k]), k
    tok = MD.load_tokenizer(spec, init="pretrained")
    assert tok("hello world")["input_ids"] == [101, 7592, 2088, 102]
    # the hub id and a shape name find the same copy
    assert MD.local_path(MD.resolve(TINY_ID)) == MD.local_path(MD.resolve("L-2_H-128"))
    # MODELS_DIR also comes before the packaged all-MiniLM-L6-v2
    (root / "all-MiniLM-L6-v2").symlink_to(root / "bert_uncased_L-2_H-128_A-2", target_is_directory=True)
    try:
        assert MD.local_path(MD.resolve("all-MiniLM-L6-v2")) == root / "all-MiniLM-L6-v2"
        assert MD.load_model(MD.resolve("all-MiniLM-L6-v2"), 2).config.hidden_size == 128
    finally:
        (root / "all-MiniLM-L6-v2").unlink()
    # random init with a local copy: the copy's architecture, fresh weights
    rnd = MD.load_model(spec, 2, init="random")
    assert rnd.config.hidden_size == 128 and rnd.config.num_hidden_layers == 2
    assert not torch.equal(rnd.bert.embeddings.word_embeddings.weight, saved["embeddings.word_embeddings.weight"])


def test_models_dir_vocab_is_used(models_dir, monkeypatch):
    root, _ = models_dir
    monkeypatch.setenv("MODELS_DIR", str(root))
    assert MD.uncased_vocab() == root / "bert_uncased_L-2_H-128_A-2" / "vocab.txt"


def test_local_directory_model(models_dir, no_network):
    root, saved = models_dir
    spec = MD.resolve(str(root / "bert_uncased_L-2_H-128_A-2"))
    assert spec.shape is None and MD.local_path(spec) == root / "bert_uncased_L-2_H-128_A-2"
    model = MD.load_model(spec, 3, init="pretrained")
    assert model.config.num_labels == 3
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, saved["embeddings.word_embeddings.weight"])


def test_packaged_all_minilm_loads_pretrained_offline(no_network):
    from safetensors import safe_open

    spec = MD.resolve("all-MiniLM-L6-v2")
    where = MD.local_path(spec)
    assert where is not None and (where / "config.json").is_file()
    model = MD.load_model(spec, 2, init="pretrained")
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads) == (6, 384, 12)
    with safe_open(str(where / "model.safetensors"), "pt") as f:
        emb = f.get_tensor("embeddings.word_embeddings.weight")
    assert torch.equal(model.bert.embeddings.word_embeddings.weight.detach(), emb)
    rnd = MD.load_model(spec, 2, init="random")
    assert rnd.config.hidden_size == 384 and rnd.config.num_hidden_layers == 6
    assert not torch.equal(rnd.bert.embeddings.word_embeddings.weight.detach(), emb)
    tok = MD.load_tokenizer(spec)
    assert tok("Hello World")["input_ids"] == [101, 7592, 2088, 102]
