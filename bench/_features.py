"""Our features outside our runner: the feature-cache warm-up a benchmark does before timing
(so no timed run pays for tokenising), and, for ``transformers.Trainer`` (compare_trainer and
grid_vs_hpsearch), a dataset over the features and a metric function scoring as the runner does.
"""

from __future__ import annotations

from orchestrator.data.features import features
from orchestrator.data.sources import source_from
from orchestrator.registry import metrics as M
from orchestrator.registry.models import load_tokenizer, resolve
from orchestrator.registry.tasks import get_task


def warm_features(model: str, init: str, task_name: str, glue_dir: str | None = None, hub: str | None = None,
                  max_length: int = 128) -> dict:
    """Tokenises a task's training and dev splits into the feature cache, as any earlier run would
    have, so that no timed run pays for it; the cache's hit/miss counts."""
    task, tok = get_task(task_name), load_tokenizer(resolve(model), init)
    src, stats = source_from(glue_dir, hub), {}
    for split in ["train"] + [s.name for s in task.eval_splits]:
        features(task, split, src, tok, max_length, None, stats)
    return stats


class EncodedDataset:
    """A torch map-style dataset over an ``Encoded`` split: rows as python lists, like a
    ``datasets`` row; padded to ``pad_to`` (run_glue's pad_to_max_length) or left ragged for
    ``DataCollatorWithPadding``."""

    def __init__(self, enc, use_token_types: bool, pad_to: int | None, pad_id: int):
        self.enc, self.use_token_types, self.pad_to, self.pad_id = enc, use_token_types, pad_to, pad_id

    def __len__(self) -> int:
        return len(self.enc)

    def __getitem__(self, i: int) -> dict:
        s, e = int(self.enc.offsets[i]), int(self.enc.offsets[i + 1])
        n = e - s
        pad = (self.pad_to - n) if self.pad_to else 0
        item = {"input_ids": self.enc.input_ids[s:e].tolist() + [self.pad_id] * pad,
                "attention_mask": [1] * n + [0] * pad}
        if self.use_token_types:
            item["token_type_ids"] = self.enc.token_type_ids[s:e].tolist() + [0] * pad
        if self.enc.labels is not None:
            item["labels"] = self.enc.labels[i].item()
        return item


def trainer_metrics(task, suffix=lambda: ""):
    """The Trainer's ``compute_metrics`` scoring with ``orchestrator.registry.metrics``, as the runner
    does; ``suffix()`` names the split being scored when a task has several."""
    def compute(ev):
        logits = ev.predictions[0] if isinstance(ev.predictions, (tuple, list)) else ev.predictions
        preds = logits[:, 0] if task.is_regression else logits.argmax(-1)
        return M.compute(task.metrics, preds, ev.label_ids, suffix=suffix())
    return compute
