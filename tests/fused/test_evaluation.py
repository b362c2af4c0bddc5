"""A fused unit's stacked evaluation: every member's predictions equal those of its weights
loaded into the transformers model and predicted member by member (class ids identical,
regression scores to float rounding), its metrics are the solo code's, and K members' rows per
stacked batch stay within the evaluation batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.fused import loop as FU, stacked
from orchestrator.fused.evaluation import member_batch
from orchestrator.train import runner as R

pytestmark = pytest.mark.usefixtures("one_thread")
UNCOUNTED = stacked.StackedBert.logits   # the test counts the evaluation's own forwards


def cfg(**kw) -> R.TrialConfig:
    # 320 rows at batch 16: 20 steps, evaluated at 10 and 20; eval batches of 50 rows (16 a member for 3)
    base = dict(model="BERT-Tiny", task="RTE", batch_size=16, learning_rate=1e-3, epochs=1, seed=3, init="random",
                max_train_examples=320, max_length=64, eval_every_steps=10, eval_batch_size=50)
    base.update(kw)
    return R.TrialConfig(**base)


def stacked_logits(u, split: str) -> torch.Tensor:
    """Every member's logits for the shortest 40 rows of a dev split, stacked: [K, 40, labels]."""
    rows, batch = R.dev_batches(u.p, u.scorer.evals[split], 40, for_model=False)[0]
    P = dict(u.params)
    if u.words is not None:
        P[stacked.WORDS] = u.scorer.word_table(u.params[stacked.WORDS])
    with torch.inference_mode():
        return UNCOUNTED(u.scorer.net, P, batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


def solo_logits(p: R.Prepared, split: str) -> torch.Tensor:
    """The transformers model's logits for the same rows (its weights loaded): [40, labels]."""
    rows, batch = R.dev_batches(p, p.evals[split], 40)[0]
    p.model.eval()
    with torch.inference_mode():
        out = p.model(**batch).logits
    p.model.train()
    return out


def test_member_batches_keep_k_members_within_the_eval_batch():
    assert [member_batch(256, k) for k in (1, 3, 4, 8)] == [256, 85, 64, 32]
    assert member_batch(4, 8) == 1 and member_batch(1, 1) == 1


@pytest.mark.parametrize("task,all_words", [("RTE", False), ("STS-B", False), ("MNLI", False), ("RTE", True)],
                         ids=["RTE", "STS-B", "MNLI-two-splits", "RTE-every-word-row-stacked"])
def test_stacked_predictions_equal_member_by_member_predictions(src, monkeypatch, task, all_words):
    """At every evaluation (the second after member 0 left the stack), each member's stacked
    predictions against its weights in the transformers model (``load_member``, ``runner.predict``),
    and its recorded metrics against ``runner.evaluate`` of those weights."""
    monkeypatch.setattr(FU, "STACK_ALL_WORDS", all_words)
    configs = [cfg(task=task, learning_rate=lr) for lr in (1e-3, 3e-4, 1e-4)]
    p = R.prepare(configs[0], src)
    regression = p.task.is_regression
    shapes: list[tuple[int, int]] = []            # (members, rows) of every stacked evaluation forward
    def counted(self, P, *a, **kw):
        out = UNCOUNTED(self, P, *a, **kw)
        if not self.training:
            shapes.append(tuple(out.shape[:2]))
        return out
    monkeypatch.setattr(stacked.StackedBert, "logits", counted)

    expected: dict[int, list] = {k: [] for k in range(3)}   # each member's metrics member by member
    evaluate, compared = FU._Unit.evaluate, []

    def checked(u, step, steps_per_epoch):
        got = u.scorer.predict(u.params, u.eval_autocast)
        for m in u.alive:
            k = u.members.index(m)
            stacked.load_member(p.model, u.params, m.row, u.words)
            for name, enc in p.evals.items():
                ref = R.predict(p, enc, autocast=u.eval_autocast)
                if regression:
                    np.testing.assert_allclose(got[name][m.row], ref, rtol=1e-5, atol=1e-5)
                else:
                    assert np.array_equal(got[name][m.row], ref), (k, name)
                # the logits too (a barely trained classifier may predict one class for every row)
                assert torch.allclose(stacked_logits(u, name)[m.row], solo_logits(p, name), rtol=1e-4, atol=1e-5)
            expected[k].append(R.evaluate(p, u.eval_autocast)[0])
            compared.append((step, k))
        evaluate(u, step, steps_per_epoch)
    monkeypatch.setattr(FU._Unit, "evaluate", checked)

    stop_first = [lambda ev: ev.step != 10, None, None]    # member 0 leaves at its first evaluation
    results = FU.run_fused(p, configs, stop_first)
    assert compared == [(10, 0), (10, 1), (10, 2), (20, 1), (20, 2)]
    assert [r.status for r in results] == ["stopped", "completed", "completed"]
    for k, res in enumerate(results):
        assert len(res.evals) == len(expected[k]) > 0
        for ev, ref in zip(res.evals, expected[k]):
            assert ev.metrics.keys() == ref.keys()
            if regression:   # a barely trained regressor's scores are nearly equal: rounding moves ranks, a little
                assert ev.metrics == pytest.approx(ref, abs=0.02)
            else:
                assert ev.metrics == ref
    rows = sum(len(e) for e in p.evals.values())
    assert sum(b for k, b in shapes if k == 3) == 2 * rows and sum(b for k, b in shapes if k == 2) == 2 * rows
    assert max(k * b for k, b in shapes) <= 50 and {b for k, b in shapes if k == 3} >= {16}
