"""The model registry: names -> checkpoints (miniatures, all-MiniLM-L6-v2, the compact models of
the seed papers), MODELS_DIR first, random init of the exact architecture with no download,
offline failures that say what to do; the compact models' real architectures built untrained
and trained one epoch through the runner, and their quirks (DistilBERT: no token types, its own
dropout names; TinyBERT: extra fit-dense weights and an old config); the compact-models plan."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator.cli.main import main
from orchestrator.config import Runtime
from orchestrator.errors import UserError
from orchestrator.registry import loading as LD, models as MD
from orchestrator.train import runner as R
from orchestrator.train.batches import DeviceRows

REPO = Path(__file__).resolve().parents[2]
TINY_ID = "google/bert_uncased_L-2_H-128_A-2"


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


@pytest.mark.parametrize("typo, meant", [("BERT-Tinny", "BERT-Tiny"), ("bert-smal", "BERT-Small"),
                                         ("DistillBERT", "DistilBERT")])
def test_an_unknown_model_names_the_closest_one(typo, meant):
    with pytest.raises(UserError, match=rf"unknown model '{typo}' \(did you mean '{meant}'\?\)"):
        MD.resolve(typo)


def test_a_model_that_cannot_load_says_so_in_one_sentence_per_cause():
    why = MD._unavailable(MD.resolve("google/bert_uncased_L-2_H-128_A-3x"), OSError("We couldn't connect to the hub to load files."))
    assert "(did you mean 'google/bert_uncased_L-2_H-128_A-2'?)" in why
    assert "to load files. Offline, set MODELS_DIR" in why and ".." not in why


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


def test_remote_code_only_when_asked_and_only_through_auto_classes(monkeypatch):
    """A model outside the registry: every Auto call gets trust_remote_code as asked (off by
    default), random init included; a registry row never reaches the Auto classes."""
    import transformers

    seen = []

    def fake(*a, **kw):
        seen.append(kw.get("trust_remote_code"))
        raise OSError("stop here")

    for cls in (transformers.AutoConfig, transformers.AutoModelForSequenceClassification, transformers.AutoTokenizer):
        monkeypatch.setattr(cls, "from_pretrained", fake)
    other = MD.resolve("org/some-model")
    for init in ("pretrained", "random"):
        for trust in (False, True):
            seen.clear()
            with pytest.raises(UserError, match="org/some-model"):
                MD.load_model(other, 2, init, trust_remote_code=trust)
            with pytest.raises(UserError, match="org/some-model"):
                MD.load_tokenizer(other, init, trust_remote_code=trust)
            assert seen == [trust, trust], (init, trust)
    seen.clear()
    MD.load_model(MD.resolve("TinyBERT-4"), 2, "random", trust_remote_code=True)
    MD.load_tokenizer(MD.resolve("TinyBERT-4"), "random", trust_remote_code=True)
    assert seen == []


def test_registry_and_transformers_are_apart():
    """Resolving and sizing models needs no transformers (plan and spec use them), and the
    transformers side knows nothing of the registry: no import circle."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    checks = {"import orchestrator.registry.models, orchestrator.spec.plan, orchestrator.spec.resources":
              "'transformers' not in sys.modules and 'torch' not in sys.modules",
              "import orchestrator.registry.loading": "'orchestrator.registry.models' not in sys.modules"}
    for stmt, cond in checks.items():
        code = f"import sys; {stmt}; assert {cond}, sorted(m for m in sys.modules if m.startswith('orchestrator'))"
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]


# ----------------------------------------------------------------------------- compact models

HUB_IDS = {
    "DistilBERT": "distilbert-base-uncased",
    "TinyBERT-4": "huawei-noah/TinyBERT_General_4L_312D",
    "TinyBERT-6": "huawei-noah/TinyBERT_General_6L_768D",
    "MiniLM-L12-H384": "microsoft/MiniLM-L12-H384-uncased",
    "MiniLM-L6-H384": "nreimers/MiniLM-L6-H384-uncased",
    "XtremeDistil-l6-h256": "microsoft/xtremedistil-l6-h256-uncased",
    "XtremeDistil-l6-h384": "microsoft/xtremedistil-l6-h384-uncased",
    "XtremeDistil-l12-h384": "microsoft/xtremedistil-l12-h384-uncased",
    "BERT-Base-original": "bert-base-uncased",
    "BERT-Large": "bert-large-uncased",
}
# (layers, hidden, heads, intermediate) from the checkpoints' config.json
ARCH = {
    "DistilBERT": (6, 768, 12, 3072), "TinyBERT-4": (4, 312, 12, 1200), "TinyBERT-6": (6, 768, 12, 3072),
    "MiniLM-L12-H384": (12, 384, 12, 1536), "MiniLM-L6-H384": (6, 384, 12, 1536),
    "XtremeDistil-l6-h256": (6, 256, 8, 1024), "XtremeDistil-l6-h384": (6, 384, 12, 1536),
    "XtremeDistil-l12-h384": (12, 384, 12, 1536), "BERT-Base-original": (12, 768, 12, 3072),
    "BERT-Large": (24, 1024, 16, 4096), "all-MiniLM-L6-v2": (6, 384, 12, 1536),
}
# Models sharing one architecture (MiniLM and XtremeDistil at 6/384 and 12/384) train once:
# the first of each group; the others are checked to build the identical configuration.
SAME_ARCH = {"XtremeDistil-l6-h384": "MiniLM-L6-H384", "XtremeDistil-l12-h384": "MiniLM-L12-H384"}
TRAINED = [n for n in HUB_IDS if n != "BERT-Large" and n not in SAME_ARCH]


def _variants(name: str, hub: str) -> list[str]:
    return [name, name.lower(), name.upper(), f"  {name} ", hub, hub.upper(), hub.split("/")[-1]]


@pytest.mark.parametrize("name", list(HUB_IDS))
def test_short_names_resolve_to_hub_ids(name):
    for spelling in _variants(name, HUB_IDS[name]):
        spec = MD.resolve(spelling)
        assert (spec.name, spec.ref, spec.shape) == (name, HUB_IDS[name], None), spelling
    assert MD.resolve(name).family == MD.lookup(name).family != "other"


def test_miniatures_keep_their_names():
    assert MD.resolve("BERT-Base").ref == "google/bert_uncased_L-12_H-768_A-12"
    assert MD.resolve("BERT-Base").family == "miniature"
    assert MD.resolve("bert-base-uncased").name == "BERT-Base-original"
    assert MD.resolve("google-bert/bert-base-uncased").ref == "bert-base-uncased"
    assert MD.resolve("distilbert/distilbert-base-uncased").name == "DistilBERT"
    assert MD.resolve("BERT-Tiny").family == "miniature"
    assert MD.resolve("prajjwal1/bert-tiny").family == "other"      # any other hub id still passes through
    owners: dict[str, set] = {}
    for e in MD.REGISTRY:
        for n in e.names():
            owners.setdefault(n.lower(), set()).add(e.name)
    assert all(len(v) == 1 for v in owners.values())                  # no spelling means two models
    compact = {n.lower() for e in MD.COMPACT for n in e.names()}
    assert not compact & {m.lower() for m in MD.miniatures()}


def test_registry_table():
    """One table: the 24 miniatures generated from the grid, all-MiniLM-L6-v2, the compact models."""
    assert len(MD.REGISTRY) == 24 + 1 + 10 and len({e.hub_id for e in MD.REGISTRY}) == len(MD.REGISTRY)
    assert [e.name for e in MD.REGISTRY[:24]] == MD.miniatures()
    for e in MD.REGISTRY[:24]:
        a = e.arch
        assert e.family == "miniature" and (a.model_type, a.heads, a.intermediate) == ("bert", a.hidden // 64, 4 * a.hidden)
        assert e.hub_id == MD.miniature_hub_id(a.layers, a.hidden)
    assert MD.lookup(MD.MINILM_NAME).hub_id == MD.MINILM_HUB_ID
    assert [e.name for e in MD.COMPACT] == list(HUB_IDS)
    for e in (*MD.COMPACT, MD.lookup(MD.MINILM_NAME)):
        a = e.arch
        assert (a.layers, a.hidden, a.heads, a.intermediate) == ARCH[e.name]
        assert a.hidden % a.heads == 0 and a.vocab == 30522 and not e.cased
    assert MD.lookup("MiniLM-L12-H384").arch.heads == 12                # 12 heads of 32, not hidden/64
    assert MD.lookup("TinyBERT-4").arch.hidden // MD.lookup("TinyBERT-4").arch.heads == 26
    assert MD.lookup("XtremeDistil-l6-h256").arch.heads == 8


@pytest.mark.parametrize("name", [*HUB_IDS, "all-MiniLM-L6-v2", *MD.miniatures()])
def test_param_formula_is_exact(name):
    """approx_params (what plan and the GPU share use) equals the built architecture's count,
    for every row of the registry."""
    from transformers import AutoModel

    e = MD.lookup(name)
    cfg = LD.build_config(e.arch)
    with torch.device("meta"):
        m = AutoModel.from_config(cfg)
    total = sum(p.numel() for p in m.parameters())
    emb = sum(p.numel() for n, p in m.named_parameters() if n.startswith("embeddings."))
    assert MD.approx_params(MD.resolve(name)) == MD.encoder_params(e.arch) == (total, total - emb)
    assert MD.shape_of(MD.resolve(name)) == (e.arch.layers, e.arch.hidden)


def test_local_directory_size_from_its_config(tmp_path):
    d = tmp_path / "my-model"
    d.mkdir()
    spec = MD.resolve(str(d))
    assert MD.approx_params(spec) is None and MD.shape_of(spec) is None
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 128}))
    assert MD.shape_of(spec) == (2, 128)
    assert MD.approx_params(spec) == MD.approx_params(MD.resolve("BERT-Tiny"))


def test_bert_large_config_only():
    """BERT-Large (335M) is only built on the meta device: config and parameter count."""
    from transformers import BertForSequenceClassification

    cfg = LD.build_config(MD.lookup("BERT-Large").arch, num_labels=2)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (24, 1024, 16, 4096)
    with torch.device("meta"):
        m = BertForSequenceClassification(cfg)
    assert sum(p.numel() for p in m.bert.parameters()) == 335_141_888
    assert MD.approx_params(MD.resolve("BERT-Large"))[0] == 335_141_888
    assert MD.approx_params(MD.resolve("BERT-Base-original"))[0] == 109_482_240


def _prepare(src, model, init="random", n=16):
    """A real MRPC trial, kept small for a shared 2-core machine: ``n`` training examples in one
    batch (one step), 16 dev examples, sequences cut at 32 tokens."""
    cfg = R.TrialConfig(model=model, task="MRPC", batch_size=n, learning_rate=1e-4, epochs=1, seed=0, init=init,
                        max_train_examples=n, max_length=32)
    p = R.prepare(cfg, src, runtime=Runtime(device="cpu"))
    p.evals = {k: v.subset(np.arange(16)) for k, v in p.evals.items()}
    return p


def test_same_architecture_families_build_the_same_config():
    for name, twin in SAME_ARCH.items():
        assert LD.build_config(MD.lookup(name).arch, num_labels=2).to_dict() == \
            LD.build_config(MD.lookup(twin).arch, num_labels=2).to_dict()
        assert type(MD.load_model(MD.resolve(name), 2, init="random")).__name__ == "BertForSequenceClassification"


@pytest.mark.parametrize("name", TRAINED)
def test_random_init_family_trains_and_evaluates(src, name, no_network):
    e = MD.lookup(name)
    p = _prepare(src, name)
    c = p.model.config
    if e.arch.model_type == "distilbert":
        assert (c.model_type, c.n_layers, c.dim, c.n_heads, c.hidden_dim) == ("distilbert", *ARCH[name])
    else:
        assert (c.model_type, c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == \
            ("bert", *ARCH[name])
    assert p.use_token_types == (e.arch.model_type != "distilbert")
    head = sum(x.numel() for n, x in p.model.named_parameters() if not n.startswith(p.model.base_model_prefix + "."))
    assert sum(x.numel() for x in p.model.parameters()) - head == MD.encoder_params(e.arch)[0]
    res = R.run(p)
    assert res.status == "completed", res.note
    assert res.steps == 1 and res.train_examples == 16 and len(res.evals) == 1
    ev = res.evals[0]
    assert ev.epoch == 1.0 and np.isfinite(ev.train_loss) and 0 <= ev.score <= 100
    assert set(ev.metrics) == {"f1", "accuracy"}


def test_distilbert_quirks(src):
    p = _prepare(src, "DistilBERT")
    assert not p.use_token_types
    batch = DeviceRows(p.train, p.use_token_types, p.device).padded(np.arange(4))
    assert set(batch) == {"input_ids", "attention_mask"}
    c = p.model.config
    assert (c.dropout, c.attention_dropout, c.seq_classif_dropout) == (0.1, 0.1, 0.2)
    assert p.model.dropout.p == 0.2                                   # the classifier's own dropout name
    assert not hasattr(p.model.distilbert.embeddings, "token_type_embeddings")
    # BERT-shaped families do get token types
    assert "token_type_ids" in DeviceRows(p.train, True, p.device).padded(np.arange(4))


def test_cased_row_needs_its_vocabulary(monkeypatch):
    cased = MD.Entry("Cased-X", "org/cased-x", "bert", MD.Architecture.bert(2, 128), cased=True)
    with pytest.raises(UserError, match="cased"):
        MD.random_init_vocab(cased)
    monkeypatch.setattr(MD, "entry_of", lambda spec: cased if spec.ref == cased.hub_id else None)
    with pytest.raises(UserError, match="cased"):
        MD.load_tokenizer(MD.ModelSpec("Cased-X", "org/cased-x"), "random")


def test_random_init_tokenizer_is_the_uncased_vocabulary():
    tok = MD.load_tokenizer(MD.resolve("XtremeDistil-l6-h256"), "random")
    assert tok.vocab_size == 30522 and tok.tokenize("Hello World") == ["hello", "world"]


def _tinybert_checkpoint(root: Path, weights: str) -> tuple[Path, dict]:
    """A TinyBERT-4 general checkpoint as on the hub: pre-training layout (``bert.*``), the extra
    ``fit_denses.*`` projections of the distillation, a config without ``model_type``, vocab.txt."""
    from safetensors.torch import load_file, save_file
    from transformers import BertModel

    arch = MD.lookup("TinyBERT-4").arch
    d = root / "TinyBERT_General_4L_312D"
    torch.manual_seed(1)
    BertModel(LD.build_config(arch)).save_pretrained(d, safe_serialization=True)
    state = {f"bert.{k}": v for k, v in load_file(d / "model.safetensors").items()}
    for i in range(arch.layers + 1):
        state[f"fit_denses.{i}.weight"] = torch.randn(768, arch.hidden)
        state[f"fit_denses.{i}.bias"] = torch.randn(768)
    (d / "model.safetensors").unlink()
    if weights == "safetensors":
        save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    else:
        torch.save(state, d / "pytorch_model.bin")
    cfg = json.loads((d / "config.json").read_text())
    for k in ("model_type", "architectures"):
        cfg.pop(k, None)
    cfg.update({"cell": {}, "emb_size": 312, "pre_trained": "", "structure": []})
    (d / "config.json").write_text(json.dumps(cfg))
    shutil.copy(MD.uncased_vocab(), d / "vocab.txt")
    return d, state


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_tinybert_fit_dense_checkpoint_loads(tmp_path, monkeypatch, src, weights, no_network):
    d, state = _tinybert_checkpoint(tmp_path / "models", weights)
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    spec = MD.resolve("TinyBERT-4")
    assert MD.local_path(spec) == d
    model = MD.load_model(spec, num_labels=2)
    assert model.config.num_attention_heads == 12 and model.config.hidden_size == 312
    sd = model.state_dict()
    for k in ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.3.output.dense.weight", "bert.pooler.dense.weight"):
        assert torch.equal(sd[k], state[k]), k                         # the checkpoint's weights, not fresh ones
    assert not any("fit_dense" in k for k in sd)
    tok = MD.load_tokenizer(spec)
    assert tok.tokenize("Hello World") == ["hello", "world"]
    if weights == "safetensors":
        p = _prepare(src, "TinyBERT-4", init="pretrained", n=8)      # and through the runner
        assert p.use_token_types
        assert R.run(p).status == "completed"


# ----------------------------------------------------------------------------- plan, spec

def test_plan_lists_every_family(monkeypatch, no_network):
    def no_load(*a, **k):
        raise AssertionError("plan must not load models")
    for name in ("load_model", "load_tokenizer"):
        monkeypatch.setattr(MD, name, no_load)
    for name in ("build_config", "read_config", "untrained", "pretrained", "tokenizer", "wordpiece"):
        monkeypatch.setattr(LD, name, no_load)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["plan", str(REPO / "sweeps" / "compact-models.yaml")])
    text = out.getvalue()
    assert rc == 0
    for name in [*HUB_IDS, "BERT-Tiny", "BERT-Mini", "BERT-Small", "BERT-Medium", "BERT-Base"]:
        assert any(line.split()[:1] == [name] and line.split()[-1] == "180" for line in text.splitlines()), name
    assert "2,700 trials = 15 models x 9 tasks x 20 configurations" in text
    assert "batch sizes [8, 16, 32, 64, 128]" in text and "[3e-4, 1e-4, 5e-5, 3e-5]" in text
    assert "sizes unknown" not in text


def test_spec_rejects_two_names_for_one_family():
    from orchestrator.spec.sweep import parse

    with pytest.raises(UserError, match="listed twice"):
        parse("name: x\nmodels: [DistilBERT, distilbert-base-uncased]\ntasks: [SST-2]\n")
    sw = parse("name: x\nmodels: [BERT-Base, bert-base-uncased, {name: TinyBERT-4, init: random}]\ntasks: [RTE]\n")
    assert [(s.name, i) for s, i in sw.models] == [("BERT-Base", "pretrained"), ("BERT-Base-original", "pretrained"),
                                                   ("TinyBERT-4", "random")]
