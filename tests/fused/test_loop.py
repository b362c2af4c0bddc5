"""Fused units: each member tracks its solo trial (dropout off, and on), the stacked AdamW matches
torch's, members leave the stack on NaN or early stopping, the unit's rules, and the runner
and the fused path import without Ray, optuna or datasets."""

from __future__ import annotations

import math
from types import SimpleNamespace
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orchestrator.config import make_trial
from orchestrator.errors import UserError
from orchestrator.fused import loop as FU, seeds, stacked
from orchestrator.fused.adamw import StackedAdamW
from orchestrator.sweep import hooks
from orchestrator.train import runner as R
from orchestrator.train.batches import DeviceRows

pytestmark = pytest.mark.usefixtures("one_thread")
LRS = (1e-3, 1e-4)


def cfg(**kw) -> R.TrialConfig:
    # 800 rows at batch 16: 50 optimizer steps in one epoch, evaluated every 25
    base = dict(model="BERT-Tiny", task="RTE", batch_size=16, learning_rate=1e-3, epochs=1, seed=3, init="random",
                max_train_examples=800, max_length=64, eval_every_steps=25)
    base.update(kw)
    return R.TrialConfig(**base)


def no_dropout(p: R.Prepared) -> R.Prepared:
    for m in p.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    p.model.config.hidden_dropout_prob = p.model.config.attention_probs_dropout_prob = 0.0
    return p


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def weights_differ(a: dict, b: dict) -> float:
    """The largest relative difference of a parameter tensor; tensors whose gradient is zero in
    exact arithmetic (attention key biases) stay at rounding level and count absolutely."""
    return max(float((a[n] - b[n]).norm() / max(float(b[n].norm()), 1e-2)) for n in b)


def keep_dropout(p: R.Prepared) -> R.Prepared:
    return p


def solo(c: R.TrialConfig, src, dropout=no_dropout):
    p = dropout(R.prepare(c, src))
    return R.run(p), {n: t.detach().clone() for n, t in p.model.named_parameters()}


def fused(configs, src, on_evals=None, dropout=no_dropout):
    """Run a unit; returns its results and each member's weights at its last evaluation."""
    p = dropout(R.prepare(configs[0], src))
    weights: dict[int, dict] = {}
    evaluate = FU._Unit.evaluate

    def grab(u, step, steps_per_epoch):
        for m in u.alive:   # each member's weights in the model's own layout, as evaluated
            weights[u.members.index(m)] = stacked.member(p.model, u.params, m.row, u.words)
        evaluate(u, step, steps_per_epoch)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FU._Unit, "evaluate", grab)
        return FU.run_fused(p, configs, on_evals), weights


@pytest.mark.parametrize("task,dropout", [("RTE", no_dropout), ("STS-B", no_dropout), ("RTE", keep_dropout)],
                         ids=["RTE", "STS-B", "RTE-dropout-on"])
def test_members_track_their_solo_trials(src, task, dropout):
    """Dropout on too: the members share the dropout masks their solo trials draw (same seed,
    same calls in the same order), so they track them as closely as without."""
    configs = [cfg(task=task, learning_rate=lr) for lr in LRS]
    results, weights = fused(configs, src, dropout=dropout)
    for k, c in enumerate(configs):
        ref, ref_w = solo(c, src, dropout)
        got = results[k]
        assert got.status == ref.status == "completed" and got.steps == ref.steps == 50
        assert [e.step for e in got.evals] == [e.step for e in ref.evals] == [25, 50]
        for a, b in zip(got.evals, ref.evals):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
            assert a.epoch == b.epoch and a.metrics.keys() == b.metrics.keys()
            assert a.score == pytest.approx(b.score, abs=0.5)   # a prediction on the boundary may flip
        worst = weights_differ(weights[k], ref_w)
        assert worst < 1e-4, f"member {k} (lr {c.learning_rate}): parameters differ by {worst:.2e}"
    # the learning rates really differ: members end apart
    assert rel(weights[0]["classifier.weight"], weights[1]["classifier.weight"]) > 1e-2


@pytest.mark.parametrize("dropout,kw", [(keep_dropout, {}), (keep_dropout, dict(max_train_examples=792, grad_accum=2))],
                         ids=["dropout-on", "short-batch-micro-batches"])   # (without dropout: a subset of the same checks)
def test_members_of_several_seeds_track_their_solo_trials(src, dropout, kw):
    """Two seeds x two learning rates in one unit, the seeds interleaved (the stack puts each
    seed's members together): each member starts from its own seed's model, takes its own seed's
    batches and draws its own seed's dropout masks, so each tracks its solo trial. 792 rows: each
    seed's epoch has a short batch of 8 rows at its own step, which with micro-batches of 8 is
    one micro-batch where the other seed has two."""
    configs = [cfg(seed=seed, learning_rate=lr, **kw) for lr in LRS for seed in (3, 4)]
    results, weights = fused(configs, src, dropout=dropout)
    for k, c in enumerate(configs):
        ref, ref_w = solo(c, src, dropout)
        got = results[k]
        assert got.status == ref.status == "completed" and got.steps == ref.steps == 50
        assert [e.step for e in got.evals] == [e.step for e in ref.evals] == [25, 50]
        for a, b in zip(got.evals, ref.evals):
            assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
            assert a.epoch == b.epoch and a.metrics.keys() == b.metrics.keys()
            assert a.score == pytest.approx(b.score, abs=0.5)   # a prediction on the boundary may flip
        worst = weights_differ(weights[k], ref_w)
        assert worst < 1e-4, f"member {k} (seed {c.seed}, lr {c.learning_rate}): parameters differ by {worst:.2e}"
    # the seeds really differ: same learning rate, another seed, apart from the start
    words = "bert.embeddings.word_embeddings.weight"
    assert rel(weights[0][words], weights[1][words]) > 1e-1


def test_each_member_starts_from_its_solo_trials_head_and_loss(src):
    configs = [cfg(learning_rate=lr) for lr in LRS]
    p = no_dropout(R.prepare(configs[0], src))
    params = stacked.stack_parameters(p.model, len(configs))
    net = stacked.StackedBert(p.model.config, p.task.num_labels)
    rows = R.batch_order(p.train.lengths, 16, __import__("numpy").random.default_rng(3), True)[0]
    batch = DeviceRows(p.train, p.use_token_types, p.device).padded(rows)
    labels = torch.from_numpy(p.train.labels)[rows]
    losses = net.losses(params, batch, labels)
    for k, c in enumerate(configs):
        q = no_dropout(R.prepare(c, src))
        own = stacked.member(p.model, params, k)
        assert torch.equal(own["classifier.weight"], q.model.classifier.weight)
        assert torch.equal(own["classifier.bias"], q.model.classifier.bias)
        assert losses[k].item() == pytest.approx(q.model(**batch, labels=labels).loss.item(), rel=1e-5)


def _members(k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"a.weight": (5, 7), "a.bias": (5,), "LayerNorm.weight": (7,), "b.weight": (3, 5)}
    return {n: torch.randn(k, *s, generator=g) for n, s in shapes.items()}, g


@pytest.mark.parametrize("fused_kernel", [True, False])
def test_stacked_adamw_matches_torch_adamw_per_member(fused_kernel):
    lrs, wd, max_norm = [1e-2, 3e-3, 1e-3], 0.01, 1.0
    init, g = _members(len(lrs))
    stack = {n: t.clone().requires_grad_() for n, t in init.items()}
    opt = StackedAdamW(stack, lrs, {"a.weight", "b.weight"}, wd, fused=fused_kernel)
    solos = []
    for k, lr in enumerate(lrs):
        ps = {n: torch.nn.Parameter(t[k].clone()) for n, t in init.items()}
        groups = [{"params": [ps["a.weight"], ps["b.weight"]], "weight_decay": wd},
                  {"params": [ps["a.bias"], ps["LayerNorm.weight"]], "weight_decay": 0.0}]
        solos.append((ps, torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)))
    for step in range(20):
        factor = min(1.0, (step + 1) / 5)
        grads = {n: torch.randn(t.shape, generator=g) * (3.0 if step % 3 else 0.1) for n, t in init.items()}
        for n, t in stack.items():
            t.grad = grads[n].clone()
        norms = opt.clip_(max_norm)
        opt.step(factor)
        opt.zero_grad()
        for k, (ps, o) in enumerate(solos):
            for n, p in ps.items():
                p.grad = grads[n][k].clone()
            norm = torch.nn.utils.clip_grad_norm_(list(ps.values()), max_norm, foreach=True)
            assert norms[k].item() == pytest.approx(norm.item(), rel=1e-6)
            for grp in o.param_groups:
                grp["lr"] = lrs[k] * factor
            o.step()
            o.zero_grad()
    for k, (ps, _) in enumerate(solos):
        for n, p in ps.items():
            assert torch.allclose(stack[n][k], p, rtol=1e-6, atol=1e-6), (k, n)


def test_a_nan_member_leaves_the_stack_and_the_others_go_on(src, monkeypatch):
    configs = [cfg(learning_rate=lr, max_train_examples=320, eval_every_steps=10) for lr in LRS]
    original = stacked.stack_parameters

    def poisoned(model, k, words=None, *more):
        params = original(model, k, words, *more)
        with torch.no_grad():
            params["classifier.weight"][0] = float("nan")
        return params

    monkeypatch.setattr(FU, "stack_parameters", poisoned)
    results, _ = fused(configs, src)
    assert results[0].status == "diverged" and results[0].evals == []
    assert results[0].note == "loss became nan at step 1" and results[0].steps == 0
    ref, _ = solo(configs[1], src)
    assert results[1].status == "completed" and len(results[1].evals) == 2
    assert [e.train_loss for e in results[1].evals] == pytest.approx([e.train_loss for e in ref.evals], rel=1e-4)


def test_a_member_stopped_early_leaves_the_stack(src):
    configs = [cfg(learning_rate=lr, max_train_examples=320, eval_every_steps=10) for lr in LRS]
    seen = {k: [] for k in range(2)}

    def cb(k):
        def on_eval(ev):
            seen[k].append(ev.step)
            return not (k == 0 and ev.step == 10)   # the scheduler stops member 0 at its first rung
        return on_eval
    results, weights = fused(configs, src, [cb(k) for k in range(2)])
    assert results[0].status == "stopped" and results[0].steps == 10 and seen[0] == [10]
    ref, ref_w = solo(configs[1], src)
    assert results[1].status == "completed" and seen[1] == [10, 20]
    assert weights_differ(weights[1], ref_w) < 1e-4


def test_a_unit_holds_trials_that_differ_only_in_learning_rate(src):
    with pytest.raises(UserError, match="only in their learning rate"):
        FU.check_unit([cfg(), cfg(batch_size=32)])
    p = R.prepare(cfg(), src)
    with pytest.raises(UserError, match="only in their learning rate"):
        FU.run_fused(p, [cfg(epochs=2)])
    FU.check_unit([cfg(), cfg(seed=4, learning_rate=1e-4)])   # seeds may differ ...
    with pytest.raises(UserError, match="when they do not compile their step"):
        FU.check_unit([cfg(compile=True), cfg(compile=True, seed=4)])   # ... but not in a compiled unit
    assert not math.isnan(R.lr_factor(10, 0.1)(0)) and R.lr_factor(10, 0.1)(1) == 1.0


def test_a_seeds_members_draw_its_solo_mask_from_its_own_generator():
    """A group of one seed among several draws from its own generator what its solo trial draws
    from the default one, and leaves the default generator alone."""
    net = stacked.StackedBert(type("C", (), {"hidden_act": "gelu", "num_attention_heads": 1, "hidden_dropout_prob": 0.1,
                                             "layer_norm_eps": 1e-12})(), 2)
    shape, x = (40, 30, 200), torch.rand(2, 40 * 30, 200) + 0.5
    torch.manual_seed(7)
    default = torch.get_rng_state()
    y = net._drop(x, 0.1, shape, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), default)
    torch.manual_seed(1)
    solo_mask = torch.nn.functional.dropout(torch.ones(shape), 0.1, True) != 0
    for k in range(2):
        assert torch.equal(y[k].view(shape) != 0, solo_mask)


def test_a_units_rows_put_each_seeds_members_together():
    p = SimpleNamespace(model=None, device=torch.device("cpu"), spec=None, task=None, config=None)
    one = seeds.Seeds(p, [cfg(learning_rate=lr) for lr in LRS])
    assert not one.many and one.row_of == [0, 1] and one.runs() == [(0, 0, 2)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seeds.runner, "seeded_model", lambda spec, task, config, seed: torch.nn.Linear(1, 1))
        mixed = seeds.Seeds(p, [cfg(seed=s, learning_rate=lr) for lr in LRS for s in (4, 3, 5)])
    assert mixed.order == [4, 3, 5] and mixed.row_of == [0, 2, 4, 1, 3, 5]
    assert mixed.group == [0, 0, 1, 1, 2, 2] and mixed.runs() == [(0, 0, 2), (1, 2, 4), (2, 4, 6)]
    mixed.keep([0, 1, 4, 5])   # seed 3's members left
    assert mixed.runs() == [(0, 0, 2), (2, 2, 4)]


def test_the_runner_and_the_fused_path_import_without_ray_optuna_or_datasets():
    code = ("import sys\n"
            "for name in ('ray', 'optuna', 'datasets'):\n"
            "    sys.modules[name] = None   # importing it now raises ImportError\n"
            "import orchestrator.train.runner, orchestrator.fused.loop, orchestrator.train.device, bench.gpu_check\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna', 'datasets')"
            " and sys.modules[m] is not None)\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_untrained_word_rows_decay_as_torch_adamw_decays_them():
    """Rows of the word embeddings no training batch uses are not stacked: each member keeps one
    decay factor for them. After steps whose gradients touch only the trained rows, every
    member's whole matrix equals torch.optim.AdamW's on the full matrix."""
    g = torch.Generator().manual_seed(0)
    vocab, hidden, lrs, wd = 50, 4, [3e-2, 1e-2], 0.1
    weight = torch.randn(vocab, hidden, generator=g)
    train_ids = torch.tensor([3, 7, 7, 20, 41]).numpy()
    words = stacked.Vocabulary(train_ids, weight, len(lrs))
    assert words.rows.tolist() == [0, 3, 7, 20, 41]          # the padding id 0 always trains
    stack = {stacked.WORDS: words.stacked(len(lrs)).requires_grad_()}
    opt = StackedAdamW(stack, lrs, {stacked.WORDS}, wd)
    solos = [(p := torch.nn.Parameter(weight.clone()), torch.optim.AdamW([p], lr=lr, eps=1e-6, weight_decay=wd))
             for lr in lrs]
    for step in range(30):
        factor = 1.0 - step / 30
        grad = torch.randn(len(words.rows), hidden, generator=g)
        stack[stacked.WORDS].grad = grad.unsqueeze(0).repeat(len(lrs), 1, 1)
        opt.step(factor)
        words.decay([lr * factor for lr in lrs], wd)
        for k, (p, o) in enumerate(solos):
            full = torch.zeros(vocab, hidden)
            full[words.rows] = grad
            p.grad = full
            o.param_groups[0]["lr"] = lrs[k] * factor
            o.step()
    for k, (p, _) in enumerate(solos):
        got = words.write(torch.empty(vocab, hidden), stack[stacked.WORDS][k], k)
        untrained = [i for i in range(vocab) if i not in words.rows.tolist()]
        assert not torch.equal(p.detach()[untrained], weight[untrained])   # they did decay
        assert torch.allclose(got, p.detach(), rtol=1e-6, atol=1e-7), k


def test_out_of_memory_splits_the_unit_and_its_members_start_again(src, monkeypatch):
    """A unit of 4 that runs out of memory after its first evaluation trains again as two
    units of 2; a unit of 2 that does splits into two solo trials. Every member is told it
    starts again, its evaluations then are those of a fresh run, and its note says why."""
    configs = [cfg(learning_rate=lr, max_train_examples=160, eval_every_steps=5) for lr in (1e-3, 3e-4, 1e-4, 3e-5)]
    original, calls = stacked.StackedBert.losses, {"n": 0}

    def losses(self, P, batch, labels):
        k = next(iter(P.values())).shape[0]
        calls["n"] += 1
        if k >= 3 and calls["n"] > 7:   # after the evaluation at step 5
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, P, batch, labels)

    monkeypatch.setattr(stacked.StackedBert, "losses", losses)
    seen, restarts = {k: [] for k in range(4)}, []
    on_evals = [lambda ev, k=k: seen[k].append(ev.step) for k in range(4)]
    results = FU.run_unit(configs, src, on_evals=on_evals, after_prepare=no_dropout,
                          on_restart=lambda ms, why, accum: restarts.append((ms, accum, why)))
    assert [m for m, _, _ in restarts] == [[0, 1], [2, 3]] and all(a == 1 for _, a, _ in restarts)
    assert "out of memory" in restarts[0][2]
    for k, res in enumerate(results):
        assert res.status == "completed" and res.steps == 10 and [e.step for e in res.evals] == [5, 10]
        assert seen[k] == [5, 5, 10]   # the failed run's first evaluation, then the fresh run's
        assert res.note.startswith("out of memory with 4 members fused") and "units of 2" in res.note
    ref, _ = solo(configs[2], src)
    assert [e.train_loss for e in results[2].evals] == pytest.approx([e.train_loss for e in ref.evals], rel=1e-4)

    calls["n"], restarts[:] = 0, []
    monkeypatch.setattr(stacked.StackedBert, "losses", lambda self, P, b, y: (_ for _ in ()).throw(
        torch.OutOfMemoryError("CUDA out of memory")))
    pair = FU.run_unit(configs[:2], src, after_prepare=no_dropout,
                       on_restart=lambda ms, why, accum: restarts.append(ms))
    assert restarts == [[0], [1]] and [r.status for r in pair] == ["completed", "completed"]
    for c, res in zip(configs[:2], pair):   # each ran as its solo trial
        ref, _ = solo(c, src)
        assert [e.train_loss for e in res.evals] == [e.train_loss for e in ref.evals]


def test_stacked_dropout_draws_the_solo_trials_mask_for_every_member():
    net = stacked.StackedBert(type("C", (), {"hidden_act": "gelu", "num_attention_heads": 1, "hidden_dropout_prob": 0.1,
                                             "layer_norm_eps": 1e-12})(), 2)
    shape = (40, 50, 200)                               # a solo trial's [B, L, H]
    x = torch.rand(3, 40 * 50, 200) + 0.5               # K = 3 members, no zeros
    torch.manual_seed(0)
    y = net._drop(x, 0.1, shape)
    torch.manual_seed(0)
    solo_mask = torch.nn.functional.dropout(x[0].view(shape), 0.1, True) != 0    # what the solo trial keeps
    assert solo_mask.double().mean().item() == pytest.approx(0.9, abs=0.002)
    for k in range(3):
        assert torch.equal(y[k].view(shape) != 0, solo_mask)
        assert torch.allclose(y[k].view(shape), x[k].view(shape) * solo_mask / 0.9, rtol=1e-6)
    # bf16 activations: scaled with one rounding, as F.dropout scales them
    xb = x.bfloat16()
    torch.manual_seed(0)
    yb = net._drop(xb, 0.1, shape)
    assert yb.dtype == torch.bfloat16
    assert torch.equal(yb[0].view(shape), (xb[0].view(shape).float() * solo_mask / 0.9).bfloat16())
    net.training = False
    assert net._drop(x, 0.1, shape) is x


def test_word_grads_equal_the_embeddings_own_gradient_step_after_step():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 10, 3, generator=g)                     # K = 2 members, 10 rows
    wg = stacked.WordGrads()
    # each step's rows differ; the last step has two micro-batches
    for step in ([[1, 4, 4, 9]], [[0, 2]], [[7, 7, 7], [2, 7]]):
        dense = weight.clone().requires_grad_()
        for ids in step:
            flat = torch.tensor([ids]) + torch.tensor([[0], [10]])    # member k's rows at k * 10
            upstream = torch.randn(2, flat.shape[1], 3, generator=g)
            (torch.nn.functional.embedding(flat, dense.reshape(-1, 3)) * upstream).sum().backward()
            (wg.lookup(weight, flat) * upstream).sum().backward()
        assert torch.allclose(wg.grad(weight), dense.grad, atol=1e-6)   # the last step's rows zeroed again
    with torch.no_grad():                                            # evaluation: nothing kept
        wg.lookup(weight, torch.tensor([[1]]))
    assert wg.parts == []


PLUGIN = str(Path(__file__).resolve().parents[1] / "faults" / "plugin.py")


def test_the_fault_plugin_acts_on_the_members_of_a_unit_it_names(src, monkeypatch):
    """``nan`` names one member: only its loss turns NaN, it leaves the stack and is told so at
    once (before the others' first evaluation), the others train to the end; ``stall`` names
    another: the unit waits before its second evaluation."""
    configs = [cfg(learning_rate=lr, max_train_examples=320, eval_every_steps=10) for lr in (1e-3, 3e-4, 1e-4)]
    trials = [make_trial(c, "BERT-Tiny") for c in configs]
    monkeypatch.setenv("GLUE_SWEEP_HOOKS", PLUGIN)
    monkeypatch.setenv("GLUE_SWEEP_FAULTS", "nan:lr3e-4,stall:lr1e-4:7")
    events, slept = [], []
    plugin = hooks._load(PLUGIN)
    monkeypatch.setattr(plugin.time, "sleep", lambda s: slept.append((s, len(events))))
    results = FU.run_unit(configs, src, on_evals=[lambda ev, k=k: events.append(("eval", k)) for k in range(3)],
                          on_left=lambda k, res: events.append(("left", k, res.status)),
                          on_unit=lambda u: hooks.call("unit_ready", trials, u))
    assert results[1].status == "diverged" and results[1].note == "loss became nan at step 3"
    assert results[1].evals == [] and events[0] == ("left", 1, "diverged")
    assert [e for e in events if e[0] == "left"] == [("left", 1, "diverged")]
    for k in (0, 2):
        assert results[k].status == "completed" and len(results[k].evals) == 2
        assert all(math.isfinite(e.train_loss) and math.isfinite(e.score) for e in results[k].evals)
    assert slept == [(7.0, 1 + 2)]   # once, before the second evaluation (after the first's two reports)


def test_a_member_named_by_no_fault_trains_as_without_the_plugin(src, monkeypatch):
    """The plugin installed, its faults naming no member: the unit's results are those of a run without it."""
    configs = [cfg(learning_rate=lr, max_train_examples=160, eval_every_steps=10) for lr in LRS]
    trials = [make_trial(c, "BERT-Tiny") for c in configs]
    plain = FU.run_unit(configs, src)
    monkeypatch.setenv("GLUE_SWEEP_HOOKS", PLUGIN)
    monkeypatch.setenv("GLUE_SWEEP_FAULTS", "nan:nothing,stall:nothing:7,oom:nothing:1")
    hooked = FU.run_unit(configs, src, on_unit=lambda u: hooks.call("unit_ready", trials, u))
    for a, b in zip(plain, hooked):
        assert a.status == b.status == "completed"
        assert [(e.score, e.train_loss) for e in a.evals] == [(e.score, e.train_loss) for e in b.evals]


def test_the_plugins_oom_splits_the_unit_and_a_member_going_nan_in_a_half_is_told_by_its_position(src, monkeypatch):
    """``oom`` names member 2: the unit of 3 runs out of memory at its first step and splits into a
    unit of members 0 and 1 and member 2 alone, which as a solo trial meets the plugin's solo
    ``oom`` and halves its micro-batch. ``nan`` names member 1: it diverges in its half-unit and
    is reported by its position in the whole unit."""
    configs = [cfg(learning_rate=lr, max_train_examples=160, eval_every_steps=5) for lr in (1e-3, 3e-4, 1e-4)]
    by_lr = {c.learning_rate: make_trial(c, "BERT-Tiny") for c in configs}   # as the trainable finds them
    monkeypatch.setenv("GLUE_SWEEP_HOOKS", PLUGIN)
    monkeypatch.setenv("GLUE_SWEEP_FAULTS", "oom:lr1e-4:8,nan:lr3e-4")
    left, restarts = [], []
    results = FU.run_unit(configs, src, on_left=lambda k, res: left.append((k, res.status)),
                          after_prepare=lambda p: hooks.call("after_prepare", by_lr[p.config.learning_rate], p),
                          on_unit=lambda u: hooks.call("unit_ready", [by_lr[m.config.learning_rate] for m in u.members], u),
                          on_restart=lambda ms, why, accum: restarts.append((ms, accum)))
    assert restarts == [([0, 1], 1), ([2], 1), ([2], 2)]
    assert left == [(1, "diverged")] and [r.status for r in results] == ["completed", "diverged", "completed"]
    assert results[1].note.startswith("out of memory with 3 members fused") and "loss became nan at step 3" in results[1].note
    assert results[2].grad_accum == 2 and [e.step for e in results[2].evals] == [5, 10]
    assert [e.step for e in results[0].evals] == [5, 10] and results[0].grad_accum == 1
