"""A student's side of Pre-trained Distillation: its transfer set with the teacher's soft labels
(read from the soft-label cache, never computed here) and the distillation loss.

Loss, per batch:

* classification: ``KL(softmax(teacher / T) || softmax(student / T)) * T^2``, the cross-entropy
  against the teacher's softened probabilities less the teacher's entropy (a constant, so the
  gradients are the cross-entropy's);
* regression (STS-B): the mean squared error between the student's and the teacher's score;
* plus ``alpha`` times the gold-label loss (cross-entropy, or squared error) over the batch's
  rows that have a gold label (the task's training inputs; extra transfer files have none).

The packed targets of a row are ``[teacher outputs..., gold label, has gold]``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.nn import functional

from ..config import TrialConfig
from ..data import features as feats
from ..data.transfer import TRAIN, TransferFiles, load_soft
from ..errors import UserError


def distill_loss(logits: torch.Tensor, targets: torch.Tensor, regression: bool, temperature: float = 1.0,
                 alpha: float = 0.0) -> torch.Tensor:
    """The loss of a batch of student ``logits`` [rows, labels] against packed ``targets``."""
    logits = logits.float()
    c = logits.shape[1]
    teacher, gold, has_gold = targets[:, :c].float(), targets[:, c], targets[:, c + 1]
    n_gold = has_gold.sum().clamp(min=1.0)
    if regression:
        soft = functional.mse_loss(logits[:, 0], teacher[:, 0])
        hard = (((logits[:, 0] - gold) ** 2) * has_gold).sum() / n_gold
    else:
        t = temperature
        p_teacher = functional.softmax(teacher / t, dim=-1)
        log_ratio = functional.log_softmax(teacher / t, dim=-1) - functional.log_softmax(logits / t, dim=-1)
        kl = (p_teacher * log_ratio).sum(-1)
        soft = kl.mean() * t * t
        gold_ids = torch.where(has_gold > 0, gold, torch.zeros_like(gold)).long()
        hard = (functional.cross_entropy(logits, gold_ids, reduction="none") * has_gold).sum() / n_gold
    return soft + alpha * hard if alpha else soft


def loss_fn(config: TrialConfig, regression: bool):
    """The runner's loss for a distillation stage: (model outputs' logits, packed targets) -> loss."""
    return lambda logits, targets: distill_loss(logits, targets, regression, config.temperature, config.alpha)


def concat(parts: list[feats.Encoded]) -> feats.Encoded:
    """Encoded splits one after the other (labels left out: the targets replace them)."""
    if len(parts) == 1:
        return feats.Encoded(parts[0].input_ids, parts[0].token_type_ids, parts[0].offsets, None, parts[0].index)
    offsets, base = [np.zeros(1, np.int64)], 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += int(p.offsets[-1])
    return feats.Encoded(np.concatenate([p.input_ids for p in parts]),
                         np.concatenate([p.token_type_ids for p in parts]), np.concatenate(offsets), None,
                         np.concatenate([p.index for p in parts]))


def extra_files(config: TrialConfig) -> list[str]:
    return [x for x in config.transfer if x != TRAIN]


def transfer_parts(config: TrialConfig, task, gold: feats.Encoded, tokenizer, cache, stats) -> list[feats.Encoded]:
    """The transfer set in the teacher's order: the (capped) training rows, then each extra file."""
    files = TransferFiles(extra_files(config))
    extra = [feats.features(task, files.split(i), files, tokenizer, config.max_length, cache, stats)
             for i in range(len(files.files))]
    return ([gold] if TRAIN in config.transfer else []) + extra


def student_train(config: TrialConfig, task, gold: feats.Encoded, tokenizer, soft_labels: str | None,
                  cache=None, stats=None) -> feats.Encoded:
    """The distillation stage's training set: the transfer rows with packed targets as labels."""
    if not soft_labels:
        raise UserError(f"a {config.training} trial reads the teacher's soft labels, which the sweep computes "
                        f"first; none were given (run it in a sweep with a distill block)")
    parts = transfer_parts(config, task, gold, tokenizer, cache, stats)
    enc = concat(parts)
    soft = load_soft(soft_labels)
    if soft.logits.shape != (len(enc), task.num_labels):
        raise UserError(f"soft labels {soft_labels} hold {soft.logits.shape[0]} rows x {soft.logits.shape[1]} labels; "
                        f"the transfer set has {len(enc)} rows x {task.num_labels}: compute them again")
    gold_col = np.zeros(len(enc), np.float32)
    has_gold = np.zeros(len(enc), np.float32)
    if TRAIN in config.transfer:
        gold_col[:len(gold)] = gold.labels
        has_gold[:len(gold)] = 1.0
    enc.labels = np.concatenate([soft.logits.astype(np.float32), gold_col[:, None], has_gold[:, None]], axis=1)
    return enc


def run_stages(run, p, on_eval, on_progress, t0: float):
    """A trial with the runner's ``run``: one stage, or for distill+fine-tune the distillation stage
    (its evaluations are not reported), then ``epochs`` more on the gold labels (the trial's evaluations)."""
    if p.config.training != "distill+fine-tune":
        return run(p, on_eval, on_progress, t_start=t0)
    first = run(p, None, on_progress, t_start=t0)
    if first.status != "completed":
        return first
    return run(dataclasses.replace(p, train=gold_rows(p.train, p.task.is_regression), loss_fn=None), on_eval,
               on_progress, t_start=t0)


def gold_rows(transfer: feats.Encoded, regression: bool) -> feats.Encoded:
    """The rows of a transfer set that have a gold label, with it as their label."""
    rows = np.flatnonzero(transfer.labels[:, -1] > 0)
    out = transfer.subset(rows)
    out.labels = out.labels[:, -2].astype(np.float32 if regression else np.int64)
    return out
