"""A fused unit's evaluation: every member's predictions on each dev split from batched forwards
of the stacked model (``stacked.StackedBert.logits``, dropout off), then each member's metrics by
the solo trial's own code (``runner.score``).

The dev rows are batched in the solo trial's order (``runner.dev_batches``: sorted by length),
``eval_batch_size // K`` rows a batch (at least 1), so the K members' activations together take
about what one solo evaluation batch takes. A member's predictions are those of its weights
copied into the transformers model and scored by ``runner.predict`` (class ids identical,
regression scores to float rounding; tested), without copying any weights.

Word embeddings: a unit stacks only the rows its training set uses (``stacked.Vocabulary``).
The dev splits are renumbered once into the rows they use, and each evaluation builds every
member's table of those rows: the trained ones as trained, the others the initial rows (its
seed's) decayed by the member's factor, as ``Vocabulary.write`` builds them. No member's whole matrix is built.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..train import runner
from .stacked import WORDS, StackedBert, Vocabulary


def member_batch(eval_batch_size: int, k: int) -> int:
    """Rows per stacked evaluation batch: K members' rows stay within ``eval_batch_size``."""
    return max(1, eval_batch_size // max(1, k))


class Evaluator:
    """Scores the members of one unit (``p``, its prepared trial; ``words``, the unit's stacked
    vocabulary or None when every row is stacked)."""

    def __init__(self, p: runner.Prepared, words: Vocabulary | None):
        self.p, self.words = p, words
        self.net = StackedBert(p.model.config, p.task.num_labels)
        self.net.training = False
        self.evals = dict(p.evals)
        if words is None:
            return
        used = np.union1d(np.concatenate([e.input_ids for e in p.evals.values()]), [0])   # sorted: padding stays 0
        lookup = np.zeros(len(words.lookup), dtype=np.int32)
        lookup[used] = np.arange(len(used), dtype=np.int32)
        self.evals = {name: replace(e, input_ids=lookup[e.input_ids]) for name, e in p.evals.items()}
        device = words.base.device
        trained = np.isin(used, words.rows.cpu().numpy())
        self.ids = torch.from_numpy(used).to(device)                                   # [E] vocabulary ids
        self.at = torch.from_numpy(np.flatnonzero(trained)).to(device)                 # trained ones in the table
        self.src = torch.from_numpy(words.lookup[used[trained]].astype(np.int64)).to(device)   # their stacked rows

    def word_table(self, stacked_words: torch.Tensor) -> torch.Tensor:
        """[K, E, H]: every member's rows of the ids the dev splits use (``stacked_words``: [K, A, H])."""
        w, k = self.words, stacked_words.shape[0]
        bases = [b.index_select(0, self.ids) for b in w.bases]                       # each seed's start
        out = torch.empty(k, *bases[0].shape, dtype=bases[0].dtype, device=bases[0].device)
        for i in range(k):
            torch.mul(bases[w.group[i]], float(w.scale[i]), out=out[i])
        out[:, self.at] = stacked_words.detach().index_select(1, self.src).to(out.dtype)
        return out

    def predict(self, params: dict[str, torch.Tensor], autocast=None) -> dict[str, np.ndarray]:
        """Every member's predictions, by dev split: [K, rows] class ids or (regression) scores."""
        regression = self.p.task.is_regression
        return {k: runner.decisions(v, regression) for k, v in self.outputs(params, autocast).items()}

    def outputs(self, params: dict[str, torch.Tensor], autocast=None) -> dict[str, np.ndarray]:
        """Every member's outputs, by dev split: [K, rows, classes] probabilities or [K, rows] scores."""
        autocast = autocast or runner.autocast_for(self.p.device)
        regression, k = self.p.task.is_regression, params[WORDS].shape[0]
        per = member_batch(self.p.config.eval_batch_size, k)
        out = {}
        with torch.inference_mode():
            P = dict(params)
            if self.words is not None:
                P[WORDS] = self.word_table(params[WORDS])
            with autocast():
                for name, enc in self.evals.items():
                    shape = (k, len(enc)) if regression else (k, len(enc), self.p.task.num_labels)
                    outs = np.zeros(shape, dtype=np.float32)
                    for rows, batch in runner.dev_batches(self.p, enc, per, for_model=False):
                        logits = self.net.logits(P, batch["input_ids"], batch["attention_mask"],
                                                 batch.get("token_type_ids"))
                        outs[:, rows] = runner.as_outputs(logits, regression).cpu().numpy()
                    out[name] = outs
        return out

    def evaluate(self, params: dict[str, torch.Tensor], autocast=None) -> list[tuple[dict[str, float], float]]:
        """Every member's (metrics x100, headline score), in stack order."""
        return [(m, s) for m, s, _ in self.evaluate_outputs(params, autocast)]

    def evaluate_outputs(self, params: dict[str, torch.Tensor],
                         autocast=None) -> list[tuple[dict[str, float], float, dict[str, np.ndarray]]]:
        """Every member's (metrics x100, headline score, outputs by dev split), in stack order."""
        outs = self.outputs(params, autocast)
        regression, k = self.p.task.is_regression, params[WORDS].shape[0]
        mine = [{name: v[i] for name, v in outs.items()} for i in range(k)]
        return [(*runner.score(self.p, {n: runner.decisions(v, regression) for n, v in o.items()}), o) for o in mine]
