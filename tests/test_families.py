"""The compact models of the seed papers as sweep citizens: short names -> hub ids, the real
architectures built untrained offline and trained one epoch through the runner, the quirks
(DistilBERT: no token types, its own dropout names; TinyBERT: extra fit-dense weights and an
old config), the compact-models sweep plan, and measured speed-ups in the compact table."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from orchestrator import families as F
from orchestrator import models as MD
from orchestrator import runner as R
from orchestrator import speed as S
from orchestrator import store
from orchestrator.cli import main
from orchestrator.data import GlueDir
from orchestrator.errors import UserError

REPO = Path(__file__).resolve().parent.parent

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
    "BERT-Large": (24, 1024, 16, 4096),
}
# Families sharing one architecture (MiniLM and XtremeDistil at 6/384 and 12/384) train once:
# the first of each group; the others are checked to build the identical configuration.
SAME_ARCH = {"XtremeDistil-l6-h384": "MiniLM-L6-H384", "XtremeDistil-l12-h384": "MiniLM-L12-H384"}
TRAINED = [n for n in HUB_IDS if n != "BERT-Large" and n not in SAME_ARCH]


@pytest.fixture(autouse=True)
def _no_models_dir(monkeypatch):
    monkeypatch.delenv("MODELS_DIR", raising=False)
    monkeypatch.delenv("GLUE_SWEEP_VOCAB", raising=False)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def src(glue_dir):
    return GlueDir(glue_dir)


# ----------------------------------------------------------------------------- names

def _variants(name: str, hub: str) -> list[str]:
    return [name, name.lower(), name.upper(), f"  {name} ", hub, hub.upper(), hub.split("/")[-1]]


@pytest.mark.parametrize("name", list(HUB_IDS))
def test_short_names_resolve_to_hub_ids(name):
    for spelling in _variants(name, HUB_IDS[name]):
        spec = MD.resolve(spelling)
        assert (spec.name, spec.ref, spec.shape) == (name, HUB_IDS[name], None), spelling
    assert MD.resolve(name).family == F.lookup(name).family != "other"


def test_miniatures_keep_their_names():
    assert MD.resolve("BERT-Base").ref == "google/bert_uncased_L-12_H-768_A-12"
    assert MD.resolve("BERT-Base").family == "miniature"
    assert MD.resolve("bert-base-uncased").name == "BERT-Base-original"
    assert MD.resolve("google-bert/bert-base-uncased").ref == "bert-base-uncased"
    assert MD.resolve("distilbert/distilbert-base-uncased").name == "DistilBERT"
    assert MD.resolve("BERT-Tiny").family == "miniature"
    assert MD.resolve("prajjwal1/bert-tiny").family == "other"      # any other hub id still passes through
    owners: dict[str, set] = {}
    for f in F.FAMILIES:
        for n in f.names():
            owners.setdefault(n.lower(), set()).add(f.name)
    assert all(len(v) == 1 for v in owners.values())                  # no spelling means two models
    assert not set(owners) & {m.lower() for m in MD.miniatures()}


def test_family_table_matches_the_checkpoints():
    assert [f.name for f in F.FAMILIES] == list(HUB_IDS)
    for f in F.FAMILIES:
        assert (f.layers, f.hidden, f.heads, f.intermediate) == ARCH[f.name]
        assert f.hidden % f.heads == 0 and f.vocab == 30522 and not f.cased
    assert F.lookup("MiniLM-L12-H384").heads == 12                     # 12 heads of 32, not hidden/64
    assert F.lookup("TinyBERT-4").hidden // F.lookup("TinyBERT-4").heads == 26
    assert F.lookup("XtremeDistil-l6-h256").heads == 8


@pytest.mark.parametrize("name", list(HUB_IDS))
def test_param_formula_is_exact(name):
    """approx_params (what plan and the GPU share use) equals the built architecture's count."""
    from transformers import AutoModel

    f = F.lookup(name)
    cfg = F.config(f)
    with torch.device("meta"):
        m = AutoModel.from_config(cfg)
    total = sum(p.numel() for p in m.parameters())
    emb = sum(p.numel() for n, p in m.named_parameters() if n.startswith("embeddings."))
    assert MD.approx_params(MD.resolve(name)) == F.approx_params(f) == (total, total - emb)
    assert MD.shape_of(MD.resolve(name)) == (f.layers, f.hidden)


def test_bert_large_config_only():
    """BERT-Large (335M) is only built on the meta device: config and parameter count."""
    from transformers import BertForSequenceClassification

    cfg = F.config(F.lookup("BERT-Large"), num_labels=2)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (24, 1024, 16, 4096)
    with torch.device("meta"):
        m = BertForSequenceClassification(cfg)
    assert sum(p.numel() for p in m.bert.parameters()) == 335_141_888
    assert MD.approx_params(MD.resolve("BERT-Large"))[0] == 335_141_888
    assert MD.approx_params(MD.resolve("BERT-Base-original"))[0] == 109_482_240


# ----------------------------------------------------------------------------- training

def _prepare(src, model, init="random", n=16):
    """A real MRPC trial, kept small for a shared 2-core machine: ``n`` training examples in one
    batch (one step), 16 dev examples, sequences cut at 32 tokens."""
    cfg = R.TrialConfig(model=model, task="MRPC", batch_size=n, learning_rate=1e-4, epochs=1, seed=0, init=init,
                        max_train_examples=n, max_length=32, device="cpu")
    p = R.prepare(cfg, src)
    p.evals = {k: v.subset(np.arange(16)) for k, v in p.evals.items()}
    return p


def test_same_architecture_families_build_the_same_config():
    for name, twin in SAME_ARCH.items():
        assert F.config(F.lookup(name), num_labels=2).to_dict() == F.config(F.lookup(twin), num_labels=2).to_dict()
        assert type(MD.load_model(MD.resolve(name), 2, init="random")).__name__ == "BertForSequenceClassification"


@pytest.mark.parametrize("name", TRAINED)
def test_random_init_family_trains_and_evaluates(src, name, no_network):
    f = F.lookup(name)
    p = _prepare(src, name)
    c = p.model.config
    if f.model_type == "distilbert":
        assert (c.model_type, c.n_layers, c.dim, c.n_heads, c.hidden_dim) == ("distilbert", *ARCH[name])
    else:
        assert (c.model_type, c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == \
            ("bert", *ARCH[name])
    assert p.use_token_types == (f.model_type != "distilbert")
    head = sum(x.numel() for n, x in p.model.named_parameters() if not n.startswith(p.model.base_model_prefix + "."))
    assert sum(x.numel() for x in p.model.parameters()) - head == F.approx_params(f)[0]
    res = R.run(p)
    assert res.status == "completed", res.note
    assert res.steps == 1 and res.train_examples == 16 and len(res.evals) == 1
    ev = res.evals[0]
    assert ev.epoch == 1.0 and np.isfinite(ev.train_loss) and 0 <= ev.score <= 100
    assert set(ev.metrics) == {"f1", "accuracy"}


def test_distilbert_quirks(src):
    p = _prepare(src, "DistilBERT")
    assert not p.use_token_types
    batch = R.Collator(p.train, p.use_token_types, p.device, pin=False)(np.arange(4))
    assert set(batch) == {"input_ids", "attention_mask"}
    c = p.model.config
    assert (c.dropout, c.attention_dropout, c.seq_classif_dropout) == (0.1, 0.1, 0.2)
    assert p.model.dropout.p == 0.2                                   # the classifier's own dropout name
    assert not hasattr(p.model.distilbert.embeddings, "token_type_embeddings")
    # BERT-shaped families do get token types
    assert "token_type_ids" in R.Collator(p.train, True, p.device, pin=False)(np.arange(4))


def test_cased_family_needs_its_vocabulary():
    cased = F.Family("Cased-X", "org/cased-x", "bert", "bert", 2, 128, 2, 512, cased=True)
    with pytest.raises(UserError, match="cased"):
        F.load_tokenizer(cased, None, "random")


def test_random_init_tokenizer_is_the_uncased_vocabulary():
    tok = MD.load_tokenizer(MD.resolve("XtremeDistil-l6-h256"), "random")
    assert tok.vocab_size == 30522 and tok.tokenize("Hello World") == ["hello", "world"]


def _tinybert_checkpoint(root: Path, weights: str) -> tuple[Path, dict]:
    """A TinyBERT-4 general checkpoint as on the hub: pre-training layout (``bert.*``), the extra
    ``fit_denses.*`` projections of the distillation, a config without ``model_type``, vocab.txt."""
    from safetensors.torch import load_file, save_file
    from transformers import BertModel

    f = F.lookup("TinyBERT-4")
    d = root / "TinyBERT_General_4L_312D"
    torch.manual_seed(1)
    BertModel(F.config(f)).save_pretrained(d, safe_serialization=True)
    state = {f"bert.{k}": v for k, v in load_file(d / "model.safetensors").items()}
    for i in range(f.layers + 1):
        state[f"fit_denses.{i}.weight"] = torch.randn(768, f.hidden)
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


# ----------------------------------------------------------------------------- plan

def test_plan_lists_every_family(monkeypatch, no_network):
    def no_load(*a, **k):
        raise AssertionError("plan must not load models")
    monkeypatch.setattr(MD, "load_model", no_load)
    monkeypatch.setattr(F, "load_model", no_load)
    monkeypatch.setattr(MD, "load_tokenizer", no_load)
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
    from orchestrator.spec import parse

    with pytest.raises(UserError, match="listed twice"):
        parse("name: x\nmodels: [DistilBERT, distilbert-base-uncased]\ntasks: [SST-2]\n")
    sw = parse("name: x\nmodels: [BERT-Base, bert-base-uncased, {name: TinyBERT-4, init: random}]\ntasks: [RTE]\n")
    assert [(s.name, i) for s, i in sw.models] == [("BERT-Base", "pretrained"), ("BERT-Base-original", "pretrained"),
                                                   ("TinyBERT-4", "random")]


# ----------------------------------------------------------------------------- speed

SPEED_MODELS = ["BERT-Tiny", "DistilBERT", "BERT-Base"]
# One thread: on a shared machine two threads wait on each other at every op, which swamps
# a small model's time (the thread count is part of the cache's machine fingerprint).
THREADS = 1


@pytest.fixture(scope="module")
def measured():
    n = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return S.measure(SPEED_MODELS, batch_sizes=(1, 2), seq_len=32, quick=True, device="cpu")
    finally:
        torch.set_num_threads(n)


def test_speed_orders_tiny_fastest_base_slowest(measured):
    rows = {r["model"]: r for r in measured["models"]}
    assert list(rows) == SPEED_MODELS
    for b in (1, 2):
        thr = {m: rows[m]["batches"][b]["throughput"] for m in SPEED_MODELS}
        assert max(thr, key=thr.get) == "BERT-Tiny" and min(thr, key=thr.get) == "BERT-Base", thr
        assert rows["BERT-Tiny"]["batches"][b]["speedup"] > 1
        assert rows["BERT-Base"]["batches"][b]["speedup"] == pytest.approx(1.0)
    assert rows["BERT-Tiny"]["params_total"] == MD.approx_params(MD.resolve("BERT-Tiny"))[0] == 4_385_920
    assert rows["DistilBERT"]["params_total"] == 66_362_880 and rows["DistilBERT"]["params_non_embedding"] == 42_527_232
    assert rows["BERT-Base"]["params_total"] == 109_482_240


def test_speed_is_cached_per_model_and_machine(measured, monkeypatch):
    torch.set_num_threads(THREADS)
    m = S.machine("cpu")
    path = S.cache_path(m)
    from orchestrator.features import cache_dir

    assert path.is_file() and path.parent == cache_dir() / "speed"
    doc = json.loads(path.read_text())
    assert doc["machine"]["cpu"] and doc["machine"]["cores"] and doc["machine"]["torch"] == torch.__version__
    assert "distilbert-base-uncased|seq32|bs2" in doc["entries"]
    monkeypatch.setattr(S, "time_models", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-measured")))
    again = S.measure(["DistilBERT", "BERT-Tiny"], batch_sizes=(1, 2), seq_len=32, quick=True, device="cpu")
    assert all(r["batches"][b]["cached"] for r in again["models"] for b in (1, 2))
    assert again["models"][0]["batches"][2]["speedup"] == measured["models"][1]["batches"][2]["speedup"]
    with pytest.raises(AssertionError, match="re-measured"):      # a full measurement does not reuse quick ones
        S.measure(["BERT-Tiny"], batch_sizes=(1,), seq_len=32, quick=False, device="cpu")
    assert S.fingerprint({**m, "torch": "0.0"}) != S.fingerprint(m)
    assert S.fingerprint({**m, "threads": THREADS + 1}) != S.fingerprint(m)


def test_speedups_appear_in_the_compact_table(measured, tmp_path):
    from orchestrator.results.export import export
    from orchestrator.results.formats import read_speedups
    from orchestrator.results.reference import compact_columns
    from synthetic import unpadded

    out = tmp_path / "speedups.json"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()) as so, contextlib.redirect_stderr(err):
        rc = main(["speed", *SPEED_MODELS, "--batch-sizes", "1,2", "--seq-len", "32", "--quick", "--device", "cpu",
                   "--threads", str(THREADS), "--out", str(out)])
    assert rc == 0 and "BERT-Tiny" in so.getvalue()
    sp = read_speedups(out)                                          # the leaderboard's own reader
    rows = {r["model"]: r for r in measured["models"]}
    assert sp["BERT-Tiny"] == pytest.approx(rows["BERT-Tiny"]["batches"][2]["speedup"], rel=1e-3)
    assert sp["DistilBERT (random init)"] == sp["DistilBERT"]

    run = tmp_path / "run"
    params = {"BERT-Tiny": 4_386_178, "DistilBERT": 66_955_010, "BERT-Base": 109_483_778}
    for model in params:
        for task in ("MNLI", "QNLI", "QQP", "RTE", "SST-2", "MRPC"):
            metrics = {"MNLI": {"accuracy_m": 70.0, "accuracy_mm": 71.0}, "MRPC": {"f1": 80.0, "accuracy": 75.0},
                       "QQP": {"f1": 60.0, "accuracy": 80.0}}.get(task, {"accuracy": 77.0})
            store.write_record(run, {
                "trial_id": f"{model}__{task}__bs32_lr1e-4_s0", "sweep": "synthetic", "model": model,
                "model_ref": MD.resolve(model).ref, "init": "pretrained", "task": task, "batch_size": 32,
                "learning_rate": 1e-4, "epochs": 1, "seed": 0, "max_train_examples": None, "status": "completed",
                "attempts": 1, "error": None, "n_params": params[model], "examples_per_s": 10.0,
                "evals": [{"epoch": 1.0, "step": 10, "metrics": metrics, "score": float(np.mean(list(metrics.values()))),
                           "train_loss": 0.5, "elapsed_s": 1.0}]})
    _, written = export(run, ("csv", "md"), tmp_path / "export", speedups=sp)
    compact = pd.read_csv(tmp_path / "export" / "compact.csv")
    ours = compact[compact["source"] == "this run"].set_index("model")
    for model in params:
        assert ours.loc[model, "speedup"] == pytest.approx(sp[model], abs=1e-3)
    md = unpadded((tmp_path / "export" / "leaderboard.md").read_text())
    md = md[md.index("## Compact models"):]
    line = next(l for l in md.splitlines() if l.startswith("| DistilBERT |"))
    assert f"{sp['DistilBERT']:.1f}x" in line and "67.0M" in line
    assert f"| BERT-Tiny | 4.4M | {sp['BERT-Tiny']:.1f}x |" in md
    # and through the CLI flag
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["leaderboard", str(run), "--out", str(tmp_path / "cli"), "--speedups", str(out)]) == 0
    assert pd.read_csv(tmp_path / "cli" / "compact.csv").set_index("model").loc["BERT-Tiny", "speedup"] == \
        pytest.approx(sp["BERT-Tiny"], abs=1e-3)
    assert compact_columns()  # the table's six GLUE columns are what the records filled


def test_speed_cli_rejects_bad_input():
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["speed", "BERT-Nope", "--batch-sizes", "1", "--quick"]) == 2
    assert "unknown model" in err.getvalue()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        main(["speed", "BERT-Tiny", "--batch-sizes", "0,x"])
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["speed", "BERT-Tiny", "--batch-sizes", "1", "--speedup-batch", "8"]) == 2
    assert "speedup-batch" in err.getvalue()
