"""The fault-injection plugin: a ``GLUE_SWEEP_HOOKS`` module (see orchestrator/sweep/hooks.py).

``GLUE_SWEEP_FAULTS`` is a comma-separated list of faults, each applied to the trials whose id
contains ``<substring>`` (anything after a further ``:`` is a tag the tests use to find their
own worker processes):

* ``raise:<substring>``: the trial raises;
* ``flaky:<substring>``: it raises on its first attempt only (a marker file in
  ``GLUE_SWEEP_FAULT_DIR`` remembers it);
* ``sleep:<substring>:<seconds>``: it waits first, so a test can act mid-sweep;
* ``stall:<substring>:<seconds>``: it waits before its second evaluation, so a test sees it
  running with its first epoch's score (a file ``stall-<trial id>`` in ``GLUE_SWEEP_FAULT_DIR``,
  when set, says the wait has begun);
* ``nan:<substring>``: its training loss becomes NaN after two steps;
* ``oom:<substring>:<rows>``: its training batches above that many rows raise an
  out-of-memory error;
* ``nodropout:<substring>``: its model trains without dropout (a fused unit's members then
  track their solo trials, so both give the same scores);
* ``enospc:<n>``: every record write of the driver after the first n fails with ENOSPC.

Every fault acts on a fused unit too, on the members it names. ``raise``, ``flaky`` and ``sleep``
act at each member's start (``trial_start`` is called for each). ``nan``, ``oom`` and ``stall``
wrap a solo trial's own model (``after_prepare``) and a unit's stacked model (``unit_ready``):
``nan`` turns only the named members' losses NaN, ``oom`` raises while a named member is in the
stack, ``stall`` waits before the unit's second evaluation while a named member is in it.
``nodropout`` changes the model's configuration, from which a unit builds its stacked model
(dropout is one mask for the whole stack: it acts on the unit of a named first member). In a
distillation sweep the driver's re-trained teacher is a trial too (its id names the teacher's
configuration): ``nan``, ``oom``, ``stall`` and ``nodropout`` act on it.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

PLUGIN = str(Path(__file__).resolve())


def _faults():
    for item in filter(None, os.environ.get("GLUE_SWEEP_FAULTS", "").split(",")):
        kind, _, rest = item.partition(":")
        pattern, _, arg = rest.partition(":")
        yield kind, pattern, arg.partition(":")[0]


def trial_start(trial) -> None:
    for kind, pattern, arg in _faults():
        if kind in ("enospc",) or pattern not in trial.id:
            continue
        if kind == "raise":
            raise RuntimeError(f"injected fault in {trial.id}")
        if kind == "flaky":
            marker = Path(os.environ.get("GLUE_SWEEP_FAULT_DIR", "/tmp")) / f"flaky-{trial.id}"
            if not marker.exists():
                marker.touch()
                raise RuntimeError(f"injected one-off fault in {trial.id}")
        if kind == "sleep":
            time.sleep(float(arg or 1))


def after_prepare(trial, prepared) -> None:
    for kind, pattern, arg in _faults():
        if kind == "nan" and pattern in trial.id:
            nan_after(prepared.model, steps=2)
        if kind == "oom" and pattern in trial.id:
            oom_above(prepared.model, int(arg or 8))
        if kind == "stall" and pattern in trial.id:
            stall_before_evaluation(prepared.model, 2, float(arg or 1), f"stall-{trial.id}")
        if kind == "nodropout" and pattern in trial.id:
            no_dropout(prepared.model)


def unit_ready(trials, unit) -> None:
    """A fused unit, built: ``trials`` are its members' trials, in the order of ``unit.members``."""
    for kind, pattern, arg in _faults():
        pairs = [(t, m) for t, m in zip(trials, unit.members) if pattern in t.id]
        if not pairs:
            continue
        named = [m for _, m in pairs]
        if kind == "nan":
            nan_members_after(unit, named, steps=2)
        if kind == "oom":
            oom_with(unit, named, int(arg or 8))
        if kind == "stall":
            stall_unit_before_evaluation(unit, named, 2, float(arg or 1),
                                         f"stall-{pairs[0][0].id}")


def before_record_write(record, writes_so_far: int) -> None:
    for kind, pattern, _ in _faults():
        if kind == "enospc" and writes_so_far >= int(pattern or 0):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def no_dropout(model) -> None:
    """Every dropout of the model off, and its configuration saying so (a fused unit builds its
    stacked model from the configuration after this hook)."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    if getattr(model.config, "classifier_dropout", None) is not None:
        model.config.classifier_dropout = 0.0


def oom_above(model, max_rows: int) -> None:
    """Raise an out-of-memory error for training batches above max_rows."""
    import torch

    forward = model.forward

    def oom_forward(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if model.training and ids is not None and ids.shape[0] > max_rows:
            raise torch.OutOfMemoryError(f"injected: out of memory for a batch of {ids.shape[0]}")
        return forward(*args, **kwargs)

    model.forward = oom_forward


def _mark(name: str | None) -> None:
    """Leave the file ``name`` in ``GLUE_SWEEP_FAULT_DIR`` (when set): a test waits for it."""
    where = os.environ.get("GLUE_SWEEP_FAULT_DIR")
    if name and where:
        (Path(where) / name).touch()


def stall_before_evaluation(model, n: int, seconds: float, marker: str | None = None) -> None:
    """Wait ``seconds`` when the model's n-th evaluation pass (a forward out of training mode
    after one in training mode) begins (``marker``: the file that says so, see ``_mark``)."""
    forward, state = model.forward, {"training": True, "passes": 0}

    def stalling_forward(*args, **kwargs):
        if state["training"] and not model.training:
            state["passes"] += 1
            if state["passes"] == n:
                _mark(marker)
                time.sleep(seconds)
        state["training"] = model.training
        return forward(*args, **kwargs)

    model.forward = stalling_forward


def nan_after(model, steps: int) -> None:
    """Make the training loss NaN from the given step on."""
    forward, calls = model.forward, [0]

    def nan_forward(*args, **kwargs):
        out = forward(*args, **kwargs)
        if model.training and getattr(out, "loss", None) is not None:
            calls[0] += 1
            if calls[0] > steps:
                out.loss = out.loss * float("nan")
        return out

    model.forward = nan_forward


def _rows(members) -> list[int]:
    """The stack rows of the members still in it (a member that left has row -1)."""
    return [m.row for m in members if m.row >= 0]


def nan_members_after(unit, members, steps: int) -> None:
    """Make only these members' training losses NaN from the given step on (the others' are untouched)."""
    import torch

    losses, calls = unit.net.losses, [0]

    def nan_losses(params, batch, labels):
        out = losses(params, batch, labels)
        if unit.net.training:
            calls[0] += 1
            rows = _rows(members)
            if calls[0] > steps and rows:
                poison = torch.zeros_like(out)
                poison[rows] = float("nan")
                out = out + poison
        return out

    unit.net.losses = nan_losses


def oom_with(unit, members, max_rows: int) -> None:
    """Raise an out-of-memory error for training batches above max_rows while these members are in the stack."""
    import torch

    losses = unit.net.losses

    def oom_losses(params, batch, labels):
        rows = batch["input_ids"].shape[0]
        if unit.net.training and rows > max_rows and _rows(members):
            raise torch.OutOfMemoryError(f"injected: out of memory for a batch of {rows}")
        return losses(params, batch, labels)

    unit.net.losses = oom_losses


def stall_unit_before_evaluation(unit, members, n: int, seconds: float, marker: str | None = None) -> None:
    """Wait ``seconds`` when the unit's n-th evaluation begins, if one of these members is still in it
    (``marker``: the file that says so, see ``_mark``)."""
    evaluate, passes = unit.scorer.evaluate_outputs, [0]   # what the unit's evaluation calls

    def stalling_evaluate(*args, **kwargs):
        passes[0] += 1
        if passes[0] == n and _rows(members):
            _mark(marker)
            time.sleep(seconds)
        return evaluate(*args, **kwargs)

    unit.scorer.evaluate_outputs = stalling_evaluate
