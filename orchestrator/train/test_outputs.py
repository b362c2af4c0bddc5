"""The test predictions of the very model a trial's evaluations selected: while a trial (or a
fused unit's member) trains, the weights of its best evaluation so far (by its own headline
score) and of its latest are kept on the host; when it ends (completed, or stopped early by the
scheduler) they predict the test split(s) its model answers (its task's, and those of tasks
predicted with it: AX with MNLI). ``submit`` then writes the files from these outputs, with no
re-training.

Stored beside the dev outputs (``store.outputs``): per test row the class id (int8) or score
(float32), under ``test@<epoch>`` by ``<task>/<test split>``: the best evaluation's epoch, and the last one's when it differs
(selection by final epoch). A test split the data source lacks is left out.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.features import features
from ..errors import UserError
from ..registry.models import load_tokenizer
from ..registry.tasks import test_targets
from ..store.outputs import TEST_PREFIX as PREFIX, epoch_key
from .predict import decisions, outputs


def available(source, task, split: str) -> bool:
    try:
        source.fingerprint(task, split)
    except (UserError, OSError, ValueError, KeyError):
        return False
    return True


def host_params(named) -> dict[str, torch.Tensor]:
    """A copy of parameters (name -> tensor) on the host."""
    return {n: t.detach().to("cpu", copy=True) for n, t in named}


@torch.no_grad()
def load_params(model, params: dict[str, torch.Tensor]) -> None:
    own = dict(model.named_parameters())
    for n, t in params.items():
        own[n].copy_(t.to(own[n].device))


class Kept:
    """The weights of a trial's best evaluation so far and of its latest, on the host."""

    def __init__(self):
        self.best_score, self.best_epoch, self.best = -math.inf, None, None
        self.last_epoch, self.last = None, None

    def offer(self, epoch: float, score: float, params) -> None:
        """After an evaluation: ``params()`` gives the weights it scored (name -> tensor)."""
        snap = host_params(params())
        self.last_epoch, self.last = epoch, snap
        if isinstance(score, (int, float)) and math.isfinite(score) and score > self.best_score:
            self.best_score, self.best_epoch, self.best = score, epoch, snap

    def states(self) -> dict[str, dict]:
        """Epoch key -> weights to predict with: the best evaluation's, and the last one's when it differs."""
        out = {}
        if self.best is not None:
            out[epoch_key(self.best_epoch)] = self.best
        if self.last is not None and epoch_key(self.last_epoch) not in out:
            out[epoch_key(self.last_epoch)] = self.last
        return out


def test_predictions(out: np.ndarray, regression: bool) -> np.ndarray:
    """What a submission file needs of a test split's outputs, exactly: the scores (float32) or
    each row's class id (int8, from the float32 outputs: no rounding can flip a near tie)."""
    return decisions(out, regression).astype(np.float32 if regression else np.int8)


def predict_tests(p, source, kept: Kept) -> dict[str, dict[str, np.ndarray]]:
    """``{"test@<epoch>": {"<task>/<split>": outputs}}`` of the kept weights (float16, as stored);
    {} when nothing was kept or the source has no test split of the task."""
    states = kept.states()
    todo = [(t, s) for t, s in test_targets(p.task) if available(source, t, s.name)]
    if not states or not todo:
        return {}
    tok = load_tokenizer(p.spec, p.config.init, p.config.trust_remote_code)
    encs = {f"{t.name}/{s.name}": features(t, s.name, source, tok, p.config.max_length) for t, s in todo}
    out = {}
    for key, params in states.items():
        load_params(p.model, params)
        out[PREFIX + key] = {name: test_predictions(outputs(p, enc), p.task.is_regression) for name, enc in encs.items()}
    return out
