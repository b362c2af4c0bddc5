"""A probe on a training loop: hooks on the model and on every optimizer that time and count
the loop the same way whatever drives it (our runner or ``transformers.Trainer``).

The loop runs from the first training forward to the last optimizer step, minus the
evaluations in between (``timed_eval`` marks them); examples/s is training examples seen (counted
by the forward hook) over that time. The summary also gives the CPU time over the loop, the
optimizer's share, padding, losses, the learning-rate trace, and the share of the machine other
processes used meanwhile.
"""

from __future__ import annotations

import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from bench._machine import contention, cpu_snapshot


class Probe:
    """Hooks that time and count the training loop the same way whatever drives it."""

    def __init__(self):
        self.first: dict | None = None      # cpu_snapshot() at the first training forward
        self.last: dict | None = None       # ... at the last optimizer step
        self.t_first_forward: float | None = None
        self.step_end: list[float] = []
        self.lrs: list[float] = []
        self.examples = 0
        self.tokens = 0
        self.real_tokens: list = []
        self.widths: list[int] = []
        self.losses: list = []
        self.evals: list[tuple[float, float, float, float]] = []   # wall start, end; cpu start, end
        self.threads: int | None = None
        self.opt_wall = self.opt_cpu = 0.0   # time inside optimizer.step()
        self._opt_t0 = (0.0, 0.0)
        self._handles = []

    def attach(self, model) -> None:
        self._handles.append(model.register_forward_pre_hook(self._pre, with_kwargs=True))
        self._handles.append(model.register_forward_hook(self._post, with_kwargs=True))
        self._handles.append(register_optimizer_step_pre_hook(self._step_begin))
        self._handles.append(register_optimizer_step_post_hook(self._step))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _pre(self, module, args, kwargs):
        if not module.training:
            return
        if self.first is None:
            self.first = cpu_snapshot()
            self.t_first_forward = self.first["wall"]
            self.threads = torch.get_num_threads()
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        self.examples += int(ids.shape[0])
        self.tokens += int(ids.numel())
        self.widths.append(int(ids.shape[1]))
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 4:     # the runner's prepared additive mask [B, 1, 1, L]: 0 where real
            mask = mask[:, 0, 0, :] == 0
        self.real_tokens.append(mask.sum() if mask is not None else ids.numel())

    def _post(self, module, args, kwargs, output):
        if module.training and getattr(output, "loss", None) is not None:
            self.losses.append(output.loss.detach())

    def _step_begin(self, optimizer, args, kwargs):
        self._opt_t0 = (time.perf_counter(), time.process_time())

    def _step(self, optimizer, args, kwargs):
        self.last = cpu_snapshot()
        self.opt_wall += self.last["wall"] - self._opt_t0[0]
        self.opt_cpu += self.last["cpu"] - self._opt_t0[1]
        self.step_end.append(self.last["wall"])
        self.lrs.append(float(optimizer.param_groups[0]["lr"]))

    def timed_eval(self, fn):
        def wrapper(*a, **k):
            s, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.evals.append((s, time.perf_counter(), c, time.process_time()))
        return wrapper

    def summary(self) -> dict:
        if self.first is None or self.last is None:
            return {"examples": self.examples, "steps": 0}
        f, l = self.first, self.last
        inside = [e for e in self.evals if f["wall"] < e[0] < l["wall"]]
        eval_wall = sum(e[1] - e[0] for e in inside)
        eval_cpu = sum(e[3] - e[2] for e in inside)
        loop = l["wall"] - f["wall"] - eval_wall
        cpu = l["cpu"] - f["cpu"] - eval_cpu
        real = int(sum(int(x) for x in self.real_tokens))
        losses = [float(x) for x in self.losses]
        k = max(1, min(10, len(losses) // 4))
        out = {
            "steps": len(self.step_end),
            "examples": self.examples,
            "train_loop_s": round(loop, 3),
            "evals_inside_loop_s": round(eval_wall, 3),
            "examples_per_s": round(self.examples / loop, 2) if loop > 0 else None,
            "ms_per_step": round(1000 * loop / len(self.step_end), 1),
            "train_loop_cpu_s": round(cpu, 3),
            "cpu_ms_per_example": round(1000 * cpu / self.examples, 3) if self.examples else None,
            "optimizer_ms_per_step": round(1000 * self.opt_wall / len(self.step_end), 2),
            "optimizer_cpu_ms_per_step": round(1000 * self.opt_cpu / len(self.step_end), 2),
            "optimizer_share_of_loop": round(self.opt_wall / loop, 4) if loop > 0 else None,
            "padded_tokens": self.tokens,
            "real_tokens": real,
            "padding_fraction": round(1 - real / self.tokens, 4) if self.tokens else None,
            "real_tokens_per_s": round(real / loop, 1) if loop > 0 else None,
            "mean_batch_width": round(sum(self.widths) / len(self.widths), 2) if self.widths else None,
            "threads": self.threads,
            "train_loss_mean": round(sum(losses) / len(losses), 5) if losses else None,
            "train_loss_first": round(sum(losses[:k]) / k, 5) if losses else None,
            "train_loss_last": round(sum(losses[-k:]) / k, 5) if losses else None,
            "lr_trace": self.lrs,
        }
        out.update(contention(f, l))   # others' share of the machine while the loop ran
        return out
