"""A prepared trial's model (``p``: a ``runner.Prepared``) on a split: its outputs per row (class
probabilities or scores), predictions from them, the dev splits' metrics and headline score.
Evaluation, the test outputs of kept weights (``test_outputs``) and ``submit`` all predict
through here."""

from __future__ import annotations

import contextlib
import numpy as np
import torch

from ..data import features as feats
from ..registry import metrics as task_metrics
from .batches import padded_batches
from .device import use_bf16
from .step import model_inputs


def autocast_for(device):
    """bf16 autocast on a CUDA device that has it in hardware, else nothing (evaluation)."""
    if use_bf16(device):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def outputs(p, enc: feats.Encoded, regression: bool | None = None, autocast=None) -> np.ndarray:
    """The model's outputs for every row of ``enc`` in its order: [rows] scores (regression) or
    [rows, classes] class probabilities, float32. Batched large, sorted by length, no gradients.
    Evaluation and ``submit`` both predict through here."""
    regression = p.task.is_regression if regression is None else regression
    autocast = autocast or autocast_for(p.device)
    model = p.model
    was_training = model.training
    model.eval()
    out = np.zeros(len(enc) if regression else (len(enc), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode(), autocast():
        for rows, batch in dev_batches(p, enc):
            out[rows] = as_outputs(model(**batch).logits, regression).cpu().numpy()
    model.train(was_training)
    return out


def as_outputs(logits: torch.Tensor, regression: bool) -> torch.Tensor:
    """Logits [..., labels] as stored outputs: the score (regression) or the class probabilities, float32."""
    logits = logits.float()
    return logits[..., 0] if regression else torch.softmax(logits, dim=-1)


def decisions(out: np.ndarray, regression: bool) -> np.ndarray:
    """Predictions from outputs: the scores as they are (float64), or each row's likeliest class id."""
    return out.astype(np.float64) if regression else out.argmax(-1).astype(np.int64)


def predict(p, enc: feats.Encoded, regression: bool | None = None, autocast=None) -> np.ndarray:
    """The model's predictions for every row of ``enc`` in its order: a float score
    (regression) or a class id."""
    regression = p.task.is_regression if regression is None else regression
    return decisions(outputs(p, enc, regression, autocast), regression)


def dev_batches(p, enc: feats.Encoded, batch_size: int | None = None,
                for_model: bool = True) -> list[tuple[np.ndarray, dict]]:
    """``enc`` padded once into evaluation batches on the device, sorted by length (little padding),
    ``batch_size`` rows each (default ``eval_batch_size``), kept for the trial's dev splits:
    (rows, inputs) per batch; ``for_model``: the model's mask prepared (else the 0/1 mask)."""
    size = batch_size or p.config.eval_batch_size
    key = (id(enc), size, for_model)
    kept = p.dev_batches.get(key)
    if kept is not None and kept[0] is enc:
        return kept[1]
    batches = padded_batches(enc, p.use_token_types, p.device, size)
    if for_model:
        batches = [(rows, model_inputs(b, p.model)) for rows, b in batches]
    if any(e is enc for e in p.evals.values()):
        p.dev_batches[key] = (enc, batches)
    return batches


def score(p, preds: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
    """(metrics x100, the task's headline score) of predictions on every dev split, by split name."""
    result = task_metrics.task_metrics(p.task, preds, {k: e.labels for k, e in p.evals.items()})
    return result, task_metrics.headline(result)


def evaluate(p, autocast=None) -> tuple[dict[str, float], float]:
    """Scores every dev split; returns (metrics x100, the task's headline score)."""
    return evaluate_outputs(p, autocast)[:2]


def evaluate_outputs(p, autocast=None) -> tuple[dict[str, float], float, dict[str, np.ndarray]]:
    """(metrics x100, the task's headline score, the outputs by dev split) of every dev split."""
    outs = {s.name: outputs(p, p.evals[s.name], autocast=autocast) for s in p.task.eval_splits}
    metrics, headline = score(p, {k: decisions(v, p.task.is_regression) for k, v in outs.items()})
    return metrics, headline, outs


def stored_outputs(outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs as the store keeps them: float16 (a dev split's class probabilities or scores)."""
    return {k: np.asarray(v, dtype=np.float16) for k, v in outs.items()}
