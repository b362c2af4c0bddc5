"""Safe defaults: a local Ray listens on loopback only (metrics exporters included), the dashboard
refuses requests without Ray's token, and the token file is private;
no checkpoint code runs unless a spec asks; pickled weights are never executed."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import UserError
from orchestrator.registry.models import load_model, load_tokenizer, resolve
from orchestrator.spec import sweep as S
from orchestrator.train.runner import TrialConfig

REPO = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, os, stat, sys, urllib.request, urllib.error
os.environ["RAY_AUTH_MODE"] = "token"
from orchestrator.cli.preflight import LOCAL_ONLY_ENV   # what `glue-sweep run` sets for a local Ray (no Ray import)
os.environ.update(LOCAL_ONLY_ENV)
import psutil
from orchestrator.sweep.cluster import start_ray, dashboard_info
import ray
ctx, url = start_ray(None, 1, secure=True)
mine = {p.pid: p.name() for p in psutil.Process().children(recursive=True)}   # this Ray's processes only
listeners = sorted({(c.laddr.ip, mine[c.pid]) for c in psutil.net_connections("tcp")
                    if c.status == "LISTEN" and c.pid in mine})
info = dashboard_info(url, True)
token = open(info["token_file"]).read().strip()
def get(headers):
    req = urllib.request.Request(url + "/api/version", headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
port = int(url.rsplit(":", 1)[1])
binds = sorted({c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port})
print(json.dumps({"url": url, "no_token": get({}), "bad_token": get({"Authorization": "Bearer nope"}),
                  "token": get({"Authorization": "Bearer " + token}), "binds": binds, "listeners": listeners,
                  "token_mode": stat.S_IMODE(os.stat(info["token_file"]).st_mode)}))
ray.shutdown()
"""


def test_local_ray_listens_on_loopback_only_and_the_dashboard_needs_the_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["url"].startswith("http://127.0.0.1:")
    assert got["binds"] == ["127.0.0.1"]
    assert got["no_token"] == 401 and got["bad_token"] in (401, 403)   # refused either way
    assert got["token"] == 200
    # every listener of the local Ray (GCS, raylet, workers, agents, both Prometheus metrics
    # exporters) is on loopback, and the login token is readable by its owner only
    names = {n for _, n in got["listeners"]}
    assert {"gcs_server", "raylet"} <= names, got["listeners"]
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip, _ in got["listeners"]), got["listeners"]
    assert got["token_mode"] == 0o600


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


def test_safetensors_checkpoint_loads(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    d = tmp_path / "bert-tiny-copy"
    BertForSequenceClassification(BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=512)).save_pretrained(d)
    assert (d / "model.safetensors").is_file() and not (d / "pytorch_model.bin").exists()
    m = load_model(resolve(str(d)), 2)
    assert m.config.hidden_size == 128
