"""Loading a registry row (orchestrator/registry/loading.py): no remote code unless a spec asks,
pickled weights never executed, safetensors checkpoints load."""

from __future__ import annotations

import json
import pickle

import pytest

from orchestrator.errors import UserError
from orchestrator.registry.models import load_model, load_tokenizer, resolve
from orchestrator.spec import sweep as S
from orchestrator.train.runner import TrialConfig


@pytest.mark.safety
def test_trust_remote_code_is_off_unless_a_spec_says_so(monkeypatch):
    assert TrialConfig(model="m", task="t", batch_size=1, learning_rate=0.5).trust_remote_code is False
    assert S.parse("name: a\nmodels: [BERT-Tiny]\ntasks: [RTE]\n").trust_remote_code is False
    assert S.parse("name: a\nmodels: [BERT-Tiny]\ntasks: [RTE]\ntrust_remote_code: true\n").trust_remote_code is True
    import transformers

    seen = {}

    def fake(src, **kw):
        seen.update(kw)
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", fake)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    with pytest.raises(UserError):
        load_model(resolve("org/some-model"), 2)
    assert seen["trust_remote_code"] is False
    seen.clear()
    with pytest.raises(UserError):
        load_tokenizer(resolve("org/some-model"))
    assert seen["trust_remote_code"] is False


class _Payload:
    """Unpickling this creates a file: proof that pickled code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.safety
def test_pickled_weights_are_not_executed(tmp_path):
    model_dir = tmp_path / "evil-bert"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": 30522,
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}))
    marker = tmp_path / "pwned"
    with open(model_dir / "pytorch_model.bin", "wb") as f:
        pickle.dump({"bert.embeddings.word_embeddings.weight": _Payload(str(marker))}, f)
    with pytest.raises(UserError):
        load_model(resolve(str(model_dir)), 2)
    assert not marker.exists(), "loading a checkpoint executed pickled code"


@pytest.mark.safety
def test_safetensors_checkpoint_loads(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    d = tmp_path / "bert-tiny-copy"
    BertForSequenceClassification(BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=512)).save_pretrained(d)
    assert (d / "model.safetensors").is_file() and not (d / "pytorch_model.bin").exists()
    m = load_model(resolve(str(d)), 2)
    assert m.config.hidden_size == 128
